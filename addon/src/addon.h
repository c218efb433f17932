// Per-environment state of the addon (one per Node.js main thread or worker).
#pragma once

#include <napi.h>

#include <memory>
#include <unordered_set>

namespace xdpwall {

class BpfObject;

// Open objects of one environment, closed by the environment's cleanup hook.
// Shared with each object so whichever goes last frees it.
struct ObjectRegistry {
  std::unordered_set<BpfObject*> open;
};

struct AddonState {
  Napi::FunctionReference errorClass;  // BpfError from index.js, once registered
  Napi::FunctionReference objectClass;
  Napi::FunctionReference programClass;
  Napi::FunctionReference mapClass;
  std::shared_ptr<ObjectRegistry> objects = std::make_shared<ObjectRegistry>();

  static AddonState& Of(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }
};

}  // namespace xdpwall

// Module init: registers the classes and functions declared in index.d.ts.
#include <napi.h>

#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <vector>

#include "addon.h"
#include "errors.h"
#include "link.h"
#include "map.h"
#include "netdev.h"
#include "object.h"
#include "program.h"
#include "ringbuf.h"

namespace xdpwall {

namespace {

// index.js hands over its BpfError class so native errors are real instances.
void SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass expects a class");
  AddonState::Of(info.Env()).errorClass = Napi::Persistent(info[0].As<Napi::Function>());
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus < 0) ThrowBpfError(info.Env(), cpus, "libbpf_num_possible_cpus");
  return Napi::Number::New(info.Env(), cpus);
}

// Frees every open object when the environment (main thread or worker) exits.
void CloseAllObjects(const std::shared_ptr<ObjectRegistry>& registry) {
  const std::vector<BpfObject*> open(registry->open.begin(), registry->open.end());
  for (BpfObject* object : open) object->Close();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfPrint();
  auto* state = new AddonState();
  env.SetInstanceData<AddonState>(state);
  env.AddCleanupHook([registry = state->objects] { CloseAllObjects(registry); });

  Napi::Function objectClass = BpfObject::Init(env);
  Napi::Function programClass = BpfProgram::Init(env);
  Napi::Function mapClass = BpfMap::Init(env);
  state->objectClass = Napi::Persistent(objectClass);
  state->programClass = Napi::Persistent(programClass);
  state->mapClass = Napi::Persistent(mapClass);
  exports.Set("BpfObject", objectClass);
  exports.Set("BpfProgram", programClass);
  exports.Set("BpfMap", mapClass);

  exports.Set("setErrorClass", Napi::Function::New<SetErrorClass>(env, "setErrorClass"));
  exports.Set("numPossibleCpus", Napi::Function::New<NumPossibleCpus>(env, "numPossibleCpus"));
  exports.Set("BPF_ANY", Napi::Number::New(env, BPF_ANY));
  exports.Set("BPF_NOEXIST", Napi::Number::New(env, BPF_NOEXIST));
  exports.Set("BPF_EXIST", Napi::Number::New(env, BPF_EXIST));
  exports.Set("BPF_F_TEST_RUN_ON_CPU", Napi::Number::New(env, BPF_F_TEST_RUN_ON_CPU));
  exports.Set("BPF_F_TEST_XDP_LIVE_FRAMES", Napi::Number::New(env, BPF_F_TEST_XDP_LIVE_FRAMES));
  InitNetdev(env, exports);
  InitLink(env, exports);
  InitRingBuffer(env, exports);
  return exports;
}

}  // namespace

}  // namespace xdpwall

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return xdpwall::Init(env, exports); }

NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitModule)

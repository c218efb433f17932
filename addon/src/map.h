// BpfMap: one map of a BpfObject (kept alive by the wrapper).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

#include "common.h"

struct bpf_map;

namespace xdpwall {

class BpfObject;

class BpfMap : public Napi::ObjectWrap<BpfMap> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, Napi::Object owner, bpf_map* map);

  // Only NewInstance() constructs instances.
  explicit BpfMap(const Napi::CallbackInfo& info);

 private:
  Napi::Value GetName(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetId(const Napi::CallbackInfo& info);
  Napi::Value GetType(const Napi::CallbackInfo& info);
  Napi::Value GetKeySize(const Napi::CallbackInfo& info);
  Napi::Value GetValueSize(const Napi::CallbackInfo& info);
  Napi::Value GetMaxEntries(const Napi::CallbackInfo& info);
  Napi::Value GetMapFlags(const Napi::CallbackInfo& info);
  Napi::Value GetPerCpu(const Napi::CallbackInfo& info);
  Napi::Value GetValueStride(const Napi::CallbackInfo& info);

  Napi::Value Lookup(const Napi::CallbackInfo& info);
  void Update(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value NextKey(const Napi::CallbackInfo& info);
  Napi::Value UpdateBatch(const Napi::CallbackInfo& info);
  Napi::Value DeleteBatch(const Napi::CallbackInfo& info);
  Napi::Value LookupAll(const Napi::CallbackInfo& info);
  Napi::Value LookupBatch(const Napi::CallbackInfo& info);
  void Pin(const Napi::CallbackInfo& info);
  void Unpin(const Napi::CallbackInfo& info);

  // -1 unless the owning object is open and loaded.
  int Fd() const;
  // The fd, or throws EBADF naming op.
  int RequireFd(Napi::Env env, const char* op) const;
  // A private duplicate of the fd for a worker thread.
  UniqueFd DupFd(Napi::Env env, const char* op) const;
  bpf_map* RequireOpen(Napi::Env env, const char* op) const;
  // Throws EINVAL unless buffer holds exactly `size` bytes (at least, if atLeast).
  void CheckSize(Napi::Env env, const Napi::Buffer<uint8_t>& buffer, size_t size, const char* what,
                 const char* op, bool atLeast = false) const;
  std::string Context() const { return "map '" + name_ + "'"; }

  Napi::ObjectReference ownerRef_;
  BpfObject* owner_ = nullptr;
  bpf_map* map_ = nullptr;
  // Fixed at open time, so they stay readable after close().
  std::string name_;
  std::string type_;
  uint32_t keySize_ = 0;
  uint32_t valueSize_ = 0;
  uint32_t maxEntries_ = 0;
  uint32_t mapFlags_ = 0;
  bool perCpu_ = false;
  uint32_t valueStride_ = 0;
};

}  // namespace xdpwall

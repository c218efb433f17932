// BpfProgram: one program of a BpfObject (kept alive by the wrapper).
#pragma once

#include <napi.h>

#include <string>

struct bpf_program;

namespace xdpwall {

class BpfObject;

class BpfProgram : public Napi::ObjectWrap<BpfProgram> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, Napi::Object owner, bpf_program* program);

  // Only NewInstance() constructs instances.
  explicit BpfProgram(const Napi::CallbackInfo& info);

 private:
  Napi::Value GetName(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetId(const Napi::CallbackInfo& info);
  Napi::Value GetType(const Napi::CallbackInfo& info);
  Napi::Value TestRun(const Napi::CallbackInfo& info);
  Napi::Value TestRunSync(const Napi::CallbackInfo& info);
  void Pin(const Napi::CallbackInfo& info);
  void Unpin(const Napi::CallbackInfo& info);

  // -1 unless the owning object is open and loaded.
  int Fd() const;
  // The fd, or throws EBADF naming op.
  int RequireFd(Napi::Env env, const char* op) const;
  bpf_program* RequireOpen(Napi::Env env, const char* op) const;

  Napi::ObjectReference ownerRef_;
  BpfObject* owner_ = nullptr;
  bpf_program* program_ = nullptr;
  std::string name_;
  std::string type_;
};

}  // namespace xdpwall

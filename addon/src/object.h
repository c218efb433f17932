// BpfObject: one libbpf bpf_object (an ELF file of programs and maps).
#pragma once

#include <napi.h>

#include <memory>

#include "addon.h"

struct bpf_object;

namespace xdpwall {

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Init(Napi::Env env);

  // Only BpfObject.open() constructs instances (with an External handle).
  explicit BpfObject(const Napi::CallbackInfo& info);
  ~BpfObject() override;

  bool IsOpen() const { return object_ != nullptr; }
  bool IsLoaded() const { return loaded_; }
  bpf_object* Raw() const { return object_; }

  // Frees the object and its fds; deferred while a load() is running.
  void Close();

 private:
  friend class LoadWorker;

  static Napi::Value Open(const Napi::CallbackInfo& info);
  void SetMapMaxEntries(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value GetLoaded(const Napi::CallbackInfo& info);
  Napi::Value ProgramNames(const Napi::CallbackInfo& info);
  Napi::Value MapNames(const Napi::CallbackInfo& info);
  Napi::Value Program(const Napi::CallbackInfo& info);
  Napi::Value Map(const Napi::CallbackInfo& info);
  Napi::Value Variable(const Napi::CallbackInfo& info);
  void CloseMethod(const Napi::CallbackInfo& info);

  // Throws EBADF when closed, naming op.
  bpf_object* Require(Napi::Env env, const char* op) const;

  bpf_object* object_ = nullptr;
  bool loaded_ = false;
  bool loading_ = false;
  bool closeRequested_ = false;
  std::shared_ptr<ObjectRegistry> registry_;
};

}  // namespace xdpwall

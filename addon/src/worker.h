// Base of every asynchronous operation: the subclass copies its inputs on the
// JS thread (constructor), Run() makes the system calls on a libuv worker
// thread, and the Promise settles back on the JS thread.
#pragma once

#include <napi.h>

#include <string>

#include "errors.h"

namespace xdpwall {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  // owner is kept alive until the operation settles.
  PromiseWorker(Napi::Env env, const char* resourceName, Napi::Object owner)
      : Napi::AsyncWorker(env, resourceName),
        deferred_(Napi::Promise::Deferred::New(env)),
        owner_(Napi::Persistent(owner)) {}

  // Queues the work; the worker deletes itself once settled.
  Napi::Promise Start() {
    Napi::Promise promise = deferred_.Promise();
    Queue();
    return promise;
  }

 protected:
  // Worker thread: 0 on success or -errno, with op_ (and context_) naming the
  // failed call. Must not touch JavaScript values.
  virtual int Run() = 0;
  // JS thread, on success: the value the Promise resolves to.
  virtual Napi::Value Result(Napi::Env env) = 0;
  // JS thread, after Run() whatever its outcome.
  virtual void Finished() {}

  std::string op_;
  std::string context_;
  std::string log_;

 private:
  void Execute() override { err_ = Run(); }

  void OnOK() override {
    Napi::Env env = Env();
    Finished();
    try {
      if (err_ != 0) {
        deferred_.Reject(MakeBpfError(env, err_, op_, context_, log_).Value());
      } else {
        deferred_.Resolve(Result(env));
      }
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference owner_;
  int err_ = 0;
};

// For async methods: every failure, argument errors included, rejects.
inline Napi::Promise RejectedPromise(Napi::Env env, const Napi::Error& error) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(error.Value());
  return deferred.Promise();
}

}  // namespace xdpwall

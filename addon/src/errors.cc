#include "errors.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "addon.h"

namespace xdpwall {

namespace {

// The kernel's ENOTSUPP (not the userspace ENOTSUP) leaks out of bpf(2).
constexpr int kEnotsupp = 524;
constexpr size_t kMaxCapturedLog = 16 * 1024;

thread_local LibbpfLogCapture* activeCapture = nullptr;
thread_local std::string capturedLog;

int PrintLibbpf(enum libbpf_print_level level, const char* format, va_list args) {
  if (activeCapture == nullptr) {
    return level == LIBBPF_WARN ? vfprintf(stderr, format, args) : 0;
  }
  if (level == LIBBPF_DEBUG) return 0;
  char line[1024];
  int n = vsnprintf(line, sizeof line, format, args);
  capturedLog += line;
  if (capturedLog.size() > kMaxCapturedLog) {
    capturedLog.erase(0, capturedLog.size() - kMaxCapturedLog);
  }
  return n;
}

}  // namespace

std::string ErrnoName(int errnum) {
  errnum = std::abs(errnum);
  if (errnum == kEnotsupp) return "ENOTSUPP";
  const char* name = strerrorname_np(errnum);
  if (name != nullptr) return name;
  std::string unknown = "E";
  return unknown.append(std::to_string(errnum));
}

Napi::Error MakeBpfError(Napi::Env env, int err, const std::string& op, const std::string& context,
                         const std::string& log) {
  const int errnum = std::abs(err);
  const std::string code = ErrnoName(errnum);
  const std::string reason = errnum == kEnotsupp ? "Operation not supported" : strerror(errnum);
  std::string message = op + (context.empty() ? "" : " (" + context + ")") + ": " + reason + " [" + code + "]";
  if (!log.empty()) message += "\n" + log;

  AddonState* state = env.GetInstanceData<AddonState>();
  if (state != nullptr && !state->errorClass.IsEmpty()) {
    Napi::Object error = state->errorClass.New({Napi::String::New(env, message), Napi::Number::New(env, errnum),
                                                Napi::String::New(env, code), Napi::String::New(env, op)});
    return Napi::Error(env, error);
  }
  // Only reached when the .node file is loaded without index.js.
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("name", "BpfError");
  error.Set("errno", Napi::Number::New(env, errnum));
  error.Set("code", code);
  error.Set("op", op);
  return error;
}

void ThrowBpfError(Napi::Env env, int err, const std::string& op, const std::string& context,
                   const std::string& log) {
  throw MakeBpfError(env, err, op, context, log);
}

void ThrowErrno(Napi::Env env, const std::string& op, const std::string& context) {
  const int err = errno;
  ThrowBpfError(env, err, op, context);
}

void InstallLibbpfPrint() { libbpf_set_print(PrintLibbpf); }

LibbpfLogCapture::LibbpfLogCapture() : previous_(activeCapture) {
  activeCapture = this;
  capturedLog.clear();
}

LibbpfLogCapture::~LibbpfLogCapture() { activeCapture = previous_; }

std::string LibbpfLogCapture::Take() {
  std::string log = std::move(capturedLog);
  capturedLog.clear();
  while (!log.empty() && log.back() == '\n') log.pop_back();
  return log;
}

}  // namespace xdpwall

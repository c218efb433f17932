// BpfError: every native failure reaches JavaScript as an instance of the
// BpfError class defined in index.js, carrying errno, its name and the
// libbpf/syscall operation that failed.
#pragma once

#include <napi.h>

#include <string>

namespace xdpwall {

// "E2BIG" for 7; "ENOTSUPP" for the kernel-internal 524; "E<n>" otherwise.
std::string ErrnoName(int errnum);

// err may be errno or -errno. context names the object acted on ("map 'x'"),
// log is extra text (e.g. the verifier log) appended to the message.
Napi::Error MakeBpfError(Napi::Env env, int err, const std::string& op,
                         const std::string& context = {}, const std::string& log = {});

[[noreturn]] void ThrowBpfError(Napi::Env env, int err, const std::string& op,
                                const std::string& context = {}, const std::string& log = {});

// ThrowBpfError with the current errno (of the call just made).
[[noreturn]] void ThrowErrno(Napi::Env env, const std::string& op, const std::string& context = {});

// Routes libbpf's log output: while a capture is active on this thread it is
// collected (so a failed load can report the verifier log in its error);
// otherwise warnings go to stderr and debug output is dropped.
void InstallLibbpfPrint();

class LibbpfLogCapture {
 public:
  LibbpfLogCapture();
  ~LibbpfLogCapture();
  LibbpfLogCapture(const LibbpfLogCapture&) = delete;
  LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;
  // Everything captured so far (bounded: the last 16 KiB).
  std::string Take();

 private:
  LibbpfLogCapture* previous_;
};

}  // namespace xdpwall

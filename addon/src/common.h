// Small helpers shared by every wrapped class: argument parsing, file
// descriptors and libbpf option structs.
#pragma once

#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

namespace xdpwall {

// A libbpf *_opts struct with every byte zeroed (libbpf rejects non-zero
// bytes after the last field it knows, padding included) and sz set.
template <typename Opts>
Opts ZeroedOpts() {
  Opts opts;
  std::memset(&opts, 0, sizeof opts);
  opts.sz = sizeof opts;
  return opts;
}

// libbpf 1.x returns -errno; plain syscall wrappers return -1 and set errno.
inline int NegErrno(int ret) { return ret < 0 ? (ret == -1 ? -errno : ret) : 0; }

// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  // A private duplicate, so work on another thread keeps the kernel object
  // alive and can never hit a reused descriptor number after close().
  static UniqueFd Dup(int fd) { return UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 3)); }

  int Get() const { return fd_; }
  bool Valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// ---- argument parsing: wrong types are programming errors (TypeError) ----

inline std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

inline bool IsAbsent(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

inline uint32_t U32Value(Napi::Env env, const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint64_t>(d)))
    throw Napi::RangeError::New(env, std::string(name) + " must be an integer in [0, 2^32)");
  return static_cast<uint32_t>(d);
}

inline uint32_t OptionalU32(Napi::Env env, const Napi::Value& v, const char* name, uint32_t fallback) {
  return IsAbsent(v) ? fallback : U32Value(env, v, name);
}

inline int32_t FdArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

inline Napi::Buffer<uint8_t> BufferArg(Napi::Env env, const Napi::Value& v, const char* name) {
  if (!v.IsBuffer()) throw Napi::TypeError::New(env, std::string(name) + " must be a Buffer");
  return v.As<Napi::Buffer<uint8_t>>();
}

inline Napi::Object OptionsArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (IsAbsent(info[i])) return Napi::Object::New(info.Env());
  if (!info[i].IsObject()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an object");
  return info[i].As<Napi::Object>();
}

}  // namespace xdpwall

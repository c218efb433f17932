#include "ringbuf.h"

#include <bpf/libbpf.h>

#include <cstdint>
#include <vector>

#include "common.h"
#include "errors.h"

namespace xdpwall {

namespace {

class BpfRingBuffer : public Napi::ObjectWrap<BpfRingBuffer> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "BpfRingBuffer",
                       {
                           InstanceMethod<&BpfRingBuffer::Consume>("consume"),
                           InstanceMethod<&BpfRingBuffer::Close>("close"),
                           InstanceAccessor<&BpfRingBuffer::GetClosed>("closed"),
                       });
  }

  // new BpfRingBuffer(mapFd): the fd is duplicated; the caller keeps its own.
  explicit BpfRingBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfRingBuffer>(info) {
    Napi::Env env = info.Env();
    const uint32_t mapFd = U32Value(env, info[0], "mapFd");
    fd_ = UniqueFd::Dup(static_cast<int>(mapFd));
    if (!fd_.Valid()) ThrowErrno(env, "fcntl(F_DUPFD_CLOEXEC)", "ring buffer");
    ring_ = ring_buffer__new(fd_.Get(), &BpfRingBuffer::OnRecord, this, nullptr);
    if (!ring_) {
      const int err = errno;
      fd_.Reset();
      ThrowBpfError(env, err, "ring_buffer__new", "ring buffer");
    }
  }

  ~BpfRingBuffer() override { Free(); }

 private:
  static int OnRecord(void* ctx, void* data, size_t size) {
    auto* self = static_cast<BpfRingBuffer*>(ctx);
    const auto* bytes = static_cast<const uint8_t*>(data);
    self->batch_.emplace_back(bytes, bytes + size);
    // A negative return stops libbpf after this record (which it consumed).
    return self->batch_.size() >= self->limit_ ? -1 : 0;
  }

  // consume(maxRecords = 4096): copies of the records available now, oldest
  // first, at most maxRecords; the rest stay for the next call.
  Napi::Value Consume(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ring_) ThrowBpfError(env, EBADF, "ring_buffer__consume", "ring buffer (closed)");
    limit_ = OptionalU32(env, info[0], "maxRecords", 4096);
    if (limit_ == 0) throw Napi::RangeError::New(env, "maxRecords must be at least 1");
    batch_.clear();
    const int ret = ring_buffer__consume(ring_);
    if (ret < 0 && batch_.size() < limit_) {
      batch_.clear();
      ThrowBpfError(env, ret, "ring_buffer__consume", "ring buffer");
    }
    Napi::Array out = Napi::Array::New(env, batch_.size());
    for (size_t i = 0; i < batch_.size(); i++) {
      out.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, batch_[i].data(), batch_[i].size()));
    }
    batch_.clear();
    return out;
  }

  void Close(const Napi::CallbackInfo&) { Free(); }
  Napi::Value GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), ring_ == nullptr); }

  void Free() {
    if (ring_) ring_buffer__free(ring_);
    ring_ = nullptr;
    fd_.Reset();
  }

  UniqueFd fd_;
  ring_buffer* ring_ = nullptr;
  std::vector<std::vector<uint8_t>> batch_;
  size_t limit_ = 0;
};

}  // namespace

void InitRingBuffer(Napi::Env env, Napi::Object exports) {
  exports.Set("BpfRingBuffer", BpfRingBuffer::Init(env));
}

}  // namespace xdpwall

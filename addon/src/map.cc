#include "map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "object.h"
#include "worker.h"

namespace xdpwall {

namespace {

constexpr int kEnotsupp = 524;  // kernel-internal "no such operation for this map type"
constexpr uint32_t kDefaultLookupBatch = 4096;

bool IsPerCpu(bpf_map_type type) {
  switch (type) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}

std::vector<uint8_t> CopyPrefix(const Napi::Buffer<uint8_t>& buffer, size_t length) {
  return std::vector<uint8_t>(buffer.Data(), buffer.Data() + length);
}

Napi::Buffer<uint8_t> CopyToBuffer(Napi::Env env, const std::vector<uint8_t>& bytes, size_t length) {
  return Napi::Buffer<uint8_t>::Copy(env, bytes.data(), length);
}

class UpdateBatchWorker : public PromiseWorker {
 public:
  UpdateBatchWorker(Napi::Env env, Napi::Object owner, UniqueFd fd, std::vector<uint8_t> keys,
                    std::vector<uint8_t> values, uint32_t count, uint64_t flags, std::string context)
      : PromiseWorker(env, "xdpwall:BpfMap.updateBatch", owner),
        fd_(std::move(fd)),
        keys_(std::move(keys)),
        values_(std::move(values)),
        count_(count),
        flags_(flags) {
    context_ = std::move(context);
  }

 protected:
  int Run() override {
    if (count_ == 0) return 0;
    auto opts = ZeroedOpts<bpf_map_batch_opts>();
    opts.elem_flags = flags_;
    uint32_t count = count_;
    int err = NegErrno(bpf_map_update_batch(fd_.Get(), keys_.data(), values_.data(), &count, &opts));
    updated_ = count;
    if (err != 0) {
      op_ = "bpf_map_update_batch";
      context_ += ", " + std::to_string(count) + " of " + std::to_string(count_) + " updated";
    }
    return err;
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, updated_); }

 private:
  UniqueFd fd_;
  std::vector<uint8_t> keys_;
  std::vector<uint8_t> values_;
  uint32_t count_;
  uint64_t flags_;
  uint32_t updated_ = 0;
};

// Deletes what exists: an absent key stops the kernel's loop with ENOENT, so
// the batch resumes after it.
class DeleteBatchWorker : public PromiseWorker {
 public:
  DeleteBatchWorker(Napi::Env env, Napi::Object owner, UniqueFd fd, std::vector<uint8_t> keys, uint32_t keySize,
                    uint32_t count, std::string context)
      : PromiseWorker(env, "xdpwall:BpfMap.deleteBatch", owner),
        fd_(std::move(fd)),
        keys_(std::move(keys)),
        keySize_(keySize),
        count_(count) {
    context_ = std::move(context);
  }

 protected:
  int Run() override {
    auto opts = ZeroedOpts<bpf_map_batch_opts>();
    uint32_t done = 0;
    while (done < count_) {
      uint32_t count = count_ - done;
      int err = NegErrno(bpf_map_delete_batch(fd_.Get(), keys_.data() + size_t{done} * keySize_, &count, &opts));
      deleted_ += count;
      done += count;
      if (err == 0 && count == 0) break;  // no progress: never spin
      if (err == -ENOENT) {
        ++done;  // the absent key
      } else if (err != 0) {
        op_ = "bpf_map_delete_batch";
        return err;
      }
    }
    return 0;
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, deleted_); }

 private:
  UniqueFd fd_;
  std::vector<uint8_t> keys_;
  uint32_t keySize_;
  uint32_t count_;
  uint32_t deleted_ = 0;
};

class LookupAllWorker : public PromiseWorker {
 public:
  LookupAllWorker(Napi::Env env, Napi::Object owner, UniqueFd fd, uint32_t keySize, uint32_t valueStride,
                  uint32_t batchSize, std::string context)
      : PromiseWorker(env, "xdpwall:BpfMap.lookupAll", owner),
        fd_(std::move(fd)),
        keySize_(keySize),
        valueStride_(valueStride),
        batchSize_(batchSize) {
    context_ = std::move(context);
  }

 protected:
  int Run() override {
    int err = RunBatched();
    if (err == -EINVAL || err == -kEnotsupp || err == -EOPNOTSUPP) {
      // No batch support for this map type (or kernel): walk the keys.
      count_ = 0;
      err = RunKeyByKey();
    }
    return err;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("keys", CopyToBuffer(env, keys_, size_t{count_} * keySize_));
    result.Set("values", CopyToBuffer(env, values_, size_t{count_} * valueStride_));
    result.Set("count", Napi::Number::New(env, count_));
    return result;
  }

 private:
  void Reserve(uint32_t extra) {
    keys_.resize((size_t{count_} + extra) * keySize_);
    values_.resize((size_t{count_} + extra) * valueStride_);
  }

  // 0, or -EINVAL/-ENOTSUPP on the first call so the caller can fall back.
  int RunBatched() {
    // The token is a bucket index for hash maps and a key for the others.
    const size_t tokenSize = std::max<size_t>(keySize_, sizeof(uint64_t));
    std::vector<uint8_t> inToken(tokenSize), outToken(tokenSize);
    auto opts = ZeroedOpts<bpf_map_batch_opts>();
    bool first = true;
    uint32_t batch = batchSize_;
    for (;;) {
      Reserve(batch);
      uint32_t count = batch;
      int err = NegErrno(bpf_map_lookup_batch(fd_.Get(), first ? nullptr : inToken.data(), outToken.data(),
                                              keys_.data() + size_t{count_} * keySize_,
                                              values_.data() + size_t{count_} * valueStride_, &count, &opts));
      if (err == -ENOSPC && count == 0 && batch < UINT32_MAX / 2) {
        batch *= 2;  // one hash bucket holds more elements than fit in a batch
        continue;
      }
      if (err != 0 && err != -ENOENT) {
        if (first && (err == -EINVAL || err == -kEnotsupp || err == -EOPNOTSUPP)) return err;
        op_ = "bpf_map_lookup_batch";
        return err;
      }
      count_ += count;
      if (err == -ENOENT) return 0;  // end of map
      std::swap(inToken, outToken);
      first = false;
    }
  }

  int RunKeyByKey() {
    std::vector<uint8_t> key(keySize_), next(keySize_);
    bool first = true;
    for (;;) {
      int err = NegErrno(bpf_map_get_next_key(fd_.Get(), first ? nullptr : key.data(), next.data()));
      if (err == -ENOENT) return 0;
      if (err != 0) {
        op_ = "bpf_map_get_next_key";
        return err;
      }
      first = false;
      key = next;
      Reserve(1);
      err = NegErrno(bpf_map_lookup_elem(fd_.Get(), key.data(), values_.data() + size_t{count_} * valueStride_));
      if (err == -ENOENT) continue;  // deleted meanwhile
      if (err != 0) {
        op_ = "bpf_map_lookup_elem";
        return err;
      }
      std::copy(key.begin(), key.end(), keys_.begin() + size_t{count_} * keySize_);
      ++count_;
    }
  }

  UniqueFd fd_;
  uint32_t keySize_;
  uint32_t valueStride_;
  uint32_t batchSize_;
  std::vector<uint8_t> keys_;
  std::vector<uint8_t> values_;
  uint32_t count_ = 0;
};

// One bpf_map_lookup_batch call: a page of at most maxCount elements from
// the position `inToken` names (the start when empty), and the token of the
// next page (empty at the end). Callers walk a large map a page at a time and
// do their own work between pages.
class LookupBatchWorker : public PromiseWorker {
 public:
  LookupBatchWorker(Napi::Env env, Napi::Object owner, UniqueFd fd, uint32_t keySize, uint32_t valueStride,
                    uint32_t maxCount, std::vector<uint8_t> inToken, std::string context)
      : PromiseWorker(env, "xdpwall:BpfMap.lookupBatch", owner),
        fd_(std::move(fd)),
        keySize_(keySize),
        valueStride_(valueStride),
        maxCount_(maxCount),
        inToken_(std::move(inToken)) {
    context_ = std::move(context);
  }

  static size_t TokenSize(uint32_t keySize) { return std::max<size_t>(keySize, sizeof(uint64_t)); }

 protected:
  int Run() override {
    const bool first = inToken_.empty();
    inToken_.resize(TokenSize(keySize_));
    outToken_.resize(TokenSize(keySize_));
    auto opts = ZeroedOpts<bpf_map_batch_opts>();
    uint32_t batch = maxCount_;
    for (;;) {
      keys_.resize(size_t{batch} * keySize_);
      values_.resize(size_t{batch} * valueStride_);
      count_ = batch;
      int err = NegErrno(bpf_map_lookup_batch(fd_.Get(), first ? nullptr : inToken_.data(), outToken_.data(),
                                              keys_.data(), values_.data(), &count_, &opts));
      if (err == -ENOSPC && count_ == 0 && batch < UINT32_MAX / 2) {
        batch *= 2;  // one hash bucket holds more elements than fit in a page
        continue;
      }
      if (err == -ENOENT) {
        end_ = true;
        return 0;
      }
      if (err != 0) op_ = "bpf_map_lookup_batch";
      return err;
    }
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("keys", CopyToBuffer(env, keys_, size_t{count_} * keySize_));
    result.Set("values", CopyToBuffer(env, values_, size_t{count_} * valueStride_));
    result.Set("count", Napi::Number::New(env, count_));
    result.Set("cursor", end_ ? env.Null() : Napi::Value(CopyToBuffer(env, outToken_, outToken_.size())));
    return result;
  }

 private:
  UniqueFd fd_;
  uint32_t keySize_;
  uint32_t valueStride_;
  uint32_t maxCount_;
  std::vector<uint8_t> inToken_;
  std::vector<uint8_t> outToken_;
  std::vector<uint8_t> keys_;
  std::vector<uint8_t> values_;
  uint32_t count_ = 0;
  bool end_ = false;
};

}  // namespace

Napi::Function BpfMap::Init(Napi::Env env) {
  return DefineClass(env, "BpfMap",
                     {
                         InstanceAccessor<&BpfMap::GetName>("name"),
                         InstanceAccessor<&BpfMap::GetFd>("fd"),
                         InstanceAccessor<&BpfMap::GetId>("id"),
                         InstanceAccessor<&BpfMap::GetType>("type"),
                         InstanceAccessor<&BpfMap::GetKeySize>("keySize"),
                         InstanceAccessor<&BpfMap::GetValueSize>("valueSize"),
                         InstanceAccessor<&BpfMap::GetMaxEntries>("maxEntries"),
                         InstanceAccessor<&BpfMap::GetMapFlags>("mapFlags"),
                         InstanceAccessor<&BpfMap::GetPerCpu>("perCpu"),
                         InstanceAccessor<&BpfMap::GetValueStride>("valueStride"),
                         InstanceMethod<&BpfMap::Lookup>("lookup"),
                         InstanceMethod<&BpfMap::Update>("update"),
                         InstanceMethod<&BpfMap::Delete>("delete"),
                         InstanceMethod<&BpfMap::NextKey>("nextKey"),
                         InstanceMethod<&BpfMap::UpdateBatch>("updateBatch"),
                         InstanceMethod<&BpfMap::DeleteBatch>("deleteBatch"),
                         InstanceMethod<&BpfMap::LookupAll>("lookupAll"),
                         InstanceMethod<&BpfMap::LookupBatch>("lookupBatch"),
                         InstanceMethod<&BpfMap::Pin>("pin"),
                         InstanceMethod<&BpfMap::Unpin>("unpin"),
                     });
}

Napi::Object BpfMap::NewInstance(Napi::Env env, Napi::Object owner, bpf_map* map) {
  return AddonState::Of(env).mapClass.New({Napi::External<bpf_map>::New(env, map), owner});
}

BpfMap::BpfMap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfMap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsExternal() || !info[1].IsObject()) {
    throw Napi::TypeError::New(env, "use BpfObject.map(name) to get a BpfMap");
  }
  map_ = info[0].As<Napi::External<bpf_map>>().Data();
  ownerRef_ = Napi::Persistent(info[1].As<Napi::Object>());
  owner_ = BpfObject::Unwrap(info[1].As<Napi::Object>());

  name_ = bpf_map__name(map_);
  const bpf_map_type type = bpf_map__type(map_);
  const char* typeName = libbpf_bpf_map_type_str(type);
  type_ = typeName != nullptr ? typeName : "unknown";
  keySize_ = bpf_map__key_size(map_);
  valueSize_ = bpf_map__value_size(map_);
  maxEntries_ = bpf_map__max_entries(map_);
  mapFlags_ = bpf_map__map_flags(map_);
  perCpu_ = IsPerCpu(type);
  valueStride_ = valueSize_;
  if (perCpu_) {
    const int cpus = libbpf_num_possible_cpus();
    if (cpus < 0) ThrowBpfError(env, cpus, "libbpf_num_possible_cpus");
    // The kernel copies each CPU's value into an 8-byte aligned slot.
    valueStride_ = ((valueSize_ + 7) / 8 * 8) * static_cast<uint32_t>(cpus);
  }
}

int BpfMap::Fd() const {
  if (!owner_->IsOpen() || !owner_->IsLoaded()) return -1;
  const int fd = bpf_map__fd(map_);
  return fd >= 0 ? fd : -1;
}

int BpfMap::RequireFd(Napi::Env env, const char* op) const {
  const int fd = Fd();
  if (fd < 0) ThrowBpfError(env, EBADF, op, Context() + " is not loaded");
  return fd;
}

UniqueFd BpfMap::DupFd(Napi::Env env, const char* op) const {
  UniqueFd fd = UniqueFd::Dup(RequireFd(env, op));
  if (!fd.Valid()) ThrowErrno(env, "fcntl(F_DUPFD_CLOEXEC)", Context());
  return fd;
}

bpf_map* BpfMap::RequireOpen(Napi::Env env, const char* op) const {
  if (!owner_->IsOpen()) ThrowBpfError(env, EBADF, op, Context() + ": object is closed");
  return map_;
}

void BpfMap::CheckSize(Napi::Env env, const Napi::Buffer<uint8_t>& buffer, size_t size, const char* what,
                       const char* op, bool atLeast) const {
  if (buffer.Length() == size || (atLeast && buffer.Length() > size)) return;
  ThrowBpfError(env, EINVAL, op,
                Context() + ": " + what + " is " + std::to_string(buffer.Length()) + " bytes, expected " +
                    (atLeast ? "at least " : "") + std::to_string(size));
}

Napi::Value BpfMap::GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
Napi::Value BpfMap::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Fd()); }
Napi::Value BpfMap::GetType(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), type_); }
Napi::Value BpfMap::GetKeySize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), keySize_); }
Napi::Value BpfMap::GetPerCpu(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), perCpu_); }

Napi::Value BpfMap::GetValueSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), valueSize_);
}

Napi::Value BpfMap::GetValueStride(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), valueStride_);
}

Napi::Value BpfMap::GetMapFlags(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), mapFlags_);
}

Napi::Value BpfMap::GetMaxEntries(const Napi::CallbackInfo& info) {
  // setMapMaxEntries() may change it until load.
  const uint32_t maxEntries = owner_->IsOpen() ? bpf_map__max_entries(map_) : maxEntries_;
  return Napi::Number::New(info.Env(), maxEntries);
}

Napi::Value BpfMap::GetId(const Napi::CallbackInfo& info) {
  const int fd = Fd();
  bpf_map_info mapInfo = {};
  uint32_t length = sizeof mapInfo;
  if (fd < 0 || bpf_obj_get_info_by_fd(fd, &mapInfo, &length) != 0) return Napi::Number::New(info.Env(), 0);
  return Napi::Number::New(info.Env(), mapInfo.id);
}

Napi::Value BpfMap::Lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_lookup_elem";
  auto key = BufferArg(env, info[0], "key");
  CheckSize(env, key, keySize_, "key", op);
  auto value = Napi::Buffer<uint8_t>::New(env, valueStride_);
  int err = NegErrno(bpf_map_lookup_elem(RequireFd(env, op), key.Data(), value.Data()));
  if (err == -ENOENT) return env.Null();
  if (err != 0) ThrowBpfError(env, err, op, Context());
  return value;
}

void BpfMap::Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_update_elem";
  auto key = BufferArg(env, info[0], "key");
  auto value = BufferArg(env, info[1], "value");
  const uint32_t flags = OptionalU32(env, info[2], "flags", BPF_ANY);
  CheckSize(env, key, keySize_, "key", op);
  CheckSize(env, value, valueStride_, "value", op);
  int err = NegErrno(bpf_map_update_elem(RequireFd(env, op), key.Data(), value.Data(), flags));
  if (err != 0) ThrowBpfError(env, err, op, Context());
}

Napi::Value BpfMap::Delete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_delete_elem";
  auto key = BufferArg(env, info[0], "key");
  CheckSize(env, key, keySize_, "key", op);
  int err = NegErrno(bpf_map_delete_elem(RequireFd(env, op), key.Data()));
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err != 0) ThrowBpfError(env, err, op, Context());
  return Napi::Boolean::New(env, true);
}

Napi::Value BpfMap::NextKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_get_next_key";
  const void* key = nullptr;
  if (!IsAbsent(info[0])) {
    auto keyBuffer = BufferArg(env, info[0], "key");
    CheckSize(env, keyBuffer, keySize_, "key", op);
    key = keyBuffer.Data();
  }
  auto next = Napi::Buffer<uint8_t>::New(env, keySize_);
  int err = NegErrno(bpf_map_get_next_key(RequireFd(env, op), key, next.Data()));
  if (err == -ENOENT) return env.Null();
  if (err != 0) ThrowBpfError(env, err, op, Context());
  return next;
}

Napi::Value BpfMap::UpdateBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_update_batch";
  try {
    auto keys = BufferArg(env, info[0], "keys");
    auto values = BufferArg(env, info[1], "values");
    const uint32_t count = U32Value(env, info[2], "count");
    const uint32_t flags = OptionalU32(env, info[3], "flags", BPF_ANY);
    const size_t keyBytes = size_t{count} * keySize_;
    const size_t valueBytes = size_t{count} * valueStride_;
    CheckSize(env, keys, keyBytes, "keys", op, true);
    CheckSize(env, values, valueBytes, "values", op, true);
    UniqueFd fd = DupFd(env, op);
    return (new UpdateBatchWorker(env, Value(), std::move(fd), CopyPrefix(keys, keyBytes),
                                  CopyPrefix(values, valueBytes), count, flags, Context()))
        ->Start();
  } catch (const Napi::Error& e) {
    return RejectedPromise(env, e);
  }
}

Napi::Value BpfMap::DeleteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_delete_batch";
  try {
    auto keys = BufferArg(env, info[0], "keys");
    const uint32_t count = U32Value(env, info[1], "count");
    const size_t keyBytes = size_t{count} * keySize_;
    CheckSize(env, keys, keyBytes, "keys", op, true);
    UniqueFd fd = DupFd(env, op);
    return (new DeleteBatchWorker(env, Value(), std::move(fd), CopyPrefix(keys, keyBytes), keySize_, count,
                                  Context()))
        ->Start();
  } catch (const Napi::Error& e) {
    return RejectedPromise(env, e);
  }
}

Napi::Value BpfMap::LookupAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    const uint32_t batchSize = OptionalU32(env, info[0], "batchSize", kDefaultLookupBatch);
    if (batchSize == 0) throw Napi::RangeError::New(env, "batchSize must be at least 1");
    UniqueFd fd = DupFd(env, "bpf_map_lookup_batch");
    return (new LookupAllWorker(env, Value(), std::move(fd), keySize_, valueStride_, batchSize, Context()))->Start();
  } catch (const Napi::Error& e) {
    return RejectedPromise(env, e);
  }
}

Napi::Value BpfMap::LookupBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    const char* op = "bpf_map_lookup_batch";
    std::vector<uint8_t> token;
    if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined()) {
      if (!info[0].IsBuffer()) throw Napi::TypeError::New(env, "cursor must be a Buffer or null");
      auto cursor = info[0].As<Napi::Buffer<uint8_t>>();
      CheckSize(env, cursor, LookupBatchWorker::TokenSize(keySize_), "cursor", op, false);
      token = CopyPrefix(cursor, cursor.Length());
    }
    const uint32_t maxCount = OptionalU32(env, info[1], "maxCount", kDefaultLookupBatch);
    if (maxCount == 0) throw Napi::RangeError::New(env, "maxCount must be at least 1");
    UniqueFd fd = DupFd(env, op);
    return (new LookupBatchWorker(env, Value(), std::move(fd), keySize_, valueStride_, maxCount, std::move(token),
                                  Context()))
        ->Start();
  } catch (const Napi::Error& e) {
    return RejectedPromise(env, e);
  }
}

void BpfMap::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = StringArg(info, 0, "path");
  LibbpfLogCapture log;
  int err = bpf_map__pin(RequireOpen(env, "bpf_map__pin"), path.c_str());
  if (err != 0) ThrowBpfError(env, err, "bpf_map__pin", Context() + " at " + path, log.Take());
}

void BpfMap::Unpin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = StringArg(info, 0, "path");
  LibbpfLogCapture log;
  int err = bpf_map__unpin(RequireOpen(env, "bpf_map__unpin"), path.c_str());
  if (err != 0) ThrowBpfError(env, err, "bpf_map__unpin", Context() + " at " + path, log.Take());
}

}  // namespace xdpwall

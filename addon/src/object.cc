#include "object.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/limits.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "common.h"
#include "errors.h"
#include "map.h"
#include "program.h"
#include "worker.h"

namespace xdpwall {

namespace {

// Without a pinRoot nothing is pinned: clears the pin path that
// LIBBPF_PIN_BY_NAME gave a map (libbpf's default root, /sys/fs/bpf), so
// tests and benchmarks get private maps that vanish with the object.
void UnpinAllMaps(bpf_object* object) {
  bpf_map* map;
  bpf_object__for_each_map(map, object) bpf_map__set_pin_path(map, nullptr);
}

// libbpf 1.1 cannot reuse its own pinned device maps: the kernel adds
// BPF_F_RDONLY_PROG to their flags, and libbpf's compatibility check then
// fails with "parameter mismatch" (fixed in libbpf 1.2). Reuse such pins here
// with the same check minus that flag.
int ReusePinnedDeviceMaps(bpf_object* object, std::string& failedMap) {
  bpf_map* map;
  bpf_object__for_each_map(map, object) {
    const bpf_map_type type = bpf_map__type(map);
    if ((type != BPF_MAP_TYPE_DEVMAP && type != BPF_MAP_TYPE_DEVMAP_HASH) || bpf_map__pin_path(map) == nullptr) {
      continue;
    }
    failedMap = bpf_map__name(map);
    UniqueFd pinned(bpf_obj_get(bpf_map__pin_path(map)));
    if (!pinned.Valid()) {
      if (errno == ENOENT) continue;  // libbpf creates and pins it
      return -errno;
    }
    bpf_map_info info;
    std::memset(&info, 0, sizeof info);
    uint32_t length = sizeof info;
    int err = bpf_obj_get_info_by_fd(pinned.Get(), &info, &length);
    if (err != 0) return NegErrno(err);
    const bool compatible = info.type == type && info.key_size == bpf_map__key_size(map) &&
                            info.value_size == bpf_map__value_size(map) &&
                            info.max_entries == bpf_map__max_entries(map) &&
                            (info.map_flags & ~BPF_F_RDONLY_PROG) == bpf_map__map_flags(map);
    if (!compatible) return -EINVAL;
    err = bpf_map__reuse_fd(map, pinned.Get());  // duplicates the fd
    if (err == 0) err = bpf_map__set_pin_path(map, nullptr);  // it is pinned already
    if (err != 0) return NegErrno(err);
  }
  return 0;
}

}  // namespace

// Verifies and loads the programs and creates (or reuses pinned) maps.
class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, Napi::Object owner, BpfObject* object)
      : PromiseWorker(env, "xdpwall:BpfObject.load", owner), object_(object), raw_(object->Raw()) {
    object_->loading_ = true;
  }

 protected:
  int Run() override {
    LibbpfLogCapture capture;
    int err = NegErrno(bpf_object__load(raw_));
    log_ = capture.Take();
    if (err != 0) op_ = "bpf_object__load";
    return err;
  }

  void Finished() override {
    object_->loading_ = false;
    if (op_.empty()) {
      object_->loaded_ = true;
      // Warnings from a successful load are still worth seeing.
      if (!log_.empty()) fprintf(stderr, "%s\n", log_.c_str());
    }
    if (object_->closeRequested_) object_->Close();
  }

  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  BpfObject* object_;
  bpf_object* raw_;
};

Napi::Function BpfObject::Init(Napi::Env env) {
  return DefineClass(env, "BpfObject",
                     {
                         StaticMethod<&BpfObject::Open>("open"),
                         InstanceMethod<&BpfObject::SetMapMaxEntries>("setMapMaxEntries"),
                         InstanceMethod<&BpfObject::Load>("load"),
                         InstanceAccessor<&BpfObject::GetLoaded>("loaded"),
                         InstanceMethod<&BpfObject::ProgramNames>("programNames"),
                         InstanceMethod<&BpfObject::MapNames>("mapNames"),
                         InstanceMethod<&BpfObject::Program>("program"),
                         InstanceMethod<&BpfObject::Map>("map"),
                         InstanceMethod<&BpfObject::Variable>("variable"),
                         InstanceMethod<&BpfObject::CloseMethod>("close"),
                     });
}

BpfObject::BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "use BpfObject.open(path) to create a BpfObject");
  }
  object_ = info[0].As<Napi::External<bpf_object>>().Data();
  registry_ = AddonState::Of(info.Env()).objects;
  registry_->open.insert(this);
}

BpfObject::~BpfObject() {
  // A finalizer never runs during load(): the worker holds a reference.
  Close();
}

void BpfObject::Close() {
  if (loading_) {
    closeRequested_ = true;
    return;
  }
  if (object_ != nullptr) {
    bpf_object__close(object_);
    object_ = nullptr;
    registry_->open.erase(this);
  }
  loaded_ = false;
}

bpf_object* BpfObject::Require(Napi::Env env, const char* op) const {
  if (object_ == nullptr || closeRequested_) ThrowBpfError(env, EBADF, op, "object is closed");
  return object_;
}

Napi::Value BpfObject::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = StringArg(info, 0, "path");
  Napi::Object options = OptionsArg(info, 1, "options");

  std::string pinRoot;
  if (!IsAbsent(options.Get("pinRoot"))) {
    if (!options.Get("pinRoot").IsString()) throw Napi::TypeError::New(env, "options.pinRoot must be a string");
    pinRoot = options.Get("pinRoot").As<Napi::String>().Utf8Value();
    while (pinRoot.size() > 1 && pinRoot.back() == '/') pinRoot.pop_back();
  }

  auto opts = ZeroedOpts<bpf_object_open_opts>();
  if (!pinRoot.empty()) opts.pin_root_path = pinRoot.c_str();

  LibbpfLogCapture capture;
  bpf_object* object = bpf_object__open_file(path.c_str(), &opts);
  if (object == nullptr) {
    const int err = errno;
    ThrowBpfError(env, err, "bpf_object__open_file", path, capture.Take());
  }

  // With a pinRoot, libbpf pins the maps marked LIBBPF_PIN_BY_NAME there
  // (and only those: scratch and internal maps stay private to this load).
  if (pinRoot.empty()) UnpinAllMaps(object);
  // The wrapper owns the object from here on, even if construction throws later.
  return AddonState::Of(env).objectClass.New({Napi::External<bpf_object>::New(env, object)});
}

void BpfObject::SetMapMaxEntries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map__set_max_entries";
  bpf_object* object = Require(env, op);
  const std::string name = StringArg(info, 0, "mapName");
  const uint32_t maxEntries = U32Value(env, info[1], "maxEntries");
  if (loading_ || loaded_) ThrowBpfError(env, EBUSY, op, "map '" + name + "': object is already loaded");
  bpf_map* map = bpf_object__find_map_by_name(object, name.c_str());
  if (map == nullptr) ThrowBpfError(env, ENOENT, op, "map '" + name + "'");
  int err = bpf_map__set_max_entries(map, maxEntries);
  if (err != 0) ThrowBpfError(env, err, op, "map '" + name + "'");
}

Napi::Value BpfObject::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_object__load";
  try {
    Require(env, op);
    if (loading_ || loaded_) ThrowBpfError(env, EALREADY, op, "object is already loaded");
    std::string failedMap;
    int err = ReusePinnedDeviceMaps(object_, failedMap);
    if (err != 0) ThrowBpfError(env, err, "bpf_map__reuse_fd", "pinned map '" + failedMap + "'");
  } catch (const Napi::Error& e) {
    return RejectedPromise(env, e);
  }
  return (new LoadWorker(env, Value(), this))->Start();
}

Napi::Value BpfObject::GetLoaded(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), loaded_ && IsOpen());
}

Napi::Value BpfObject::ProgramNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* object = Require(env, "bpf_object__next_program");
  Napi::Array names = Napi::Array::New(env);
  bpf_program* program;
  uint32_t i = 0;
  bpf_object__for_each_program(program, object) names.Set(i++, bpf_program__name(program));
  return names;
}

Napi::Value BpfObject::MapNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* object = Require(env, "bpf_object__next_map");
  Napi::Array names = Napi::Array::New(env);
  bpf_map* map;
  uint32_t i = 0;
  bpf_object__for_each_map(map, object) names.Set(i++, bpf_map__name(map));
  return names;
}

Napi::Value BpfObject::Program(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_object__find_program_by_name";
  bpf_object* object = Require(env, op);
  const std::string name = StringArg(info, 0, "name");
  bpf_program* program = bpf_object__find_program_by_name(object, name.c_str());
  if (program == nullptr) ThrowBpfError(env, ENOENT, op, "program '" + name + "'");
  return BpfProgram::NewInstance(env, Value(), program);
}

Napi::Value BpfObject::Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_object__find_map_by_name";
  bpf_object* object = Require(env, op);
  const std::string name = StringArg(info, 0, "name");
  bpf_map* map = bpf_object__find_map_by_name(object, name.c_str());
  if (map == nullptr) ThrowBpfError(env, ENOENT, op, "map '" + name + "'");
  return BpfMap::NewInstance(env, Value(), map);
}

// The global's initial bytes: BTF names the data section (.rodata, .data)
// and the offset; the section's internal map holds the bytes from open() on.
Napi::Value BpfObject::Variable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "btf__find_by_name_kind";
  bpf_object* object = Require(env, op);
  const std::string name = StringArg(info, 0, "name");
  const btf* types = bpf_object__btf(object);
  const int varId = types == nullptr ? -ENOENT : btf__find_by_name_kind(types, name.c_str(), BTF_KIND_VAR);
  if (varId < 0) ThrowBpfError(env, ENOENT, op, "variable '" + name + "'");
  const uint32_t count = btf__type_cnt(types);
  for (uint32_t id = 1; id < count; ++id) {
    const btf_type* section = btf__type_by_id(types, id);
    if (!btf_is_datasec(section)) continue;
    const btf_var_secinfo* vars = btf_var_secinfos(section);
    for (uint16_t i = 0; i < btf_vlen(section); ++i) {
      if (vars[i].type != static_cast<uint32_t>(varId)) continue;
      const char* sectionName = btf__name_by_offset(types, section->name_off);
      bpf_map* map = bpf_object__find_map_by_name(object, sectionName);
      size_t size = 0;
      const void* data = map == nullptr ? nullptr : bpf_map__initial_value(map, &size);
      if (data == nullptr || vars[i].offset + vars[i].size > size) {
        ThrowBpfError(env, ENOENT, "bpf_map__initial_value", "variable '" + name + "' in " + sectionName);
      }
      return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(data) + vars[i].offset, vars[i].size);
    }
  }
  ThrowBpfError(env, ENOENT, op, "variable '" + name + "' is in no data section");
}

void BpfObject::CloseMethod(const Napi::CallbackInfo&) { Close(); }

}  // namespace xdpwall

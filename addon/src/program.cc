#include "program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <string>
#include <vector>

#include "addon.h"
#include "common.h"
#include "errors.h"
#include "object.h"
#include "worker.h"

namespace xdpwall {

namespace {

constexpr const char* kTestRunOp = "bpf_prog_test_run_opts";

// TestRunOptions copied out of JavaScript, so the run can happen on any thread.
struct TestRunInput {
  std::vector<uint8_t> data;
  std::vector<uint8_t> ctx;
  int repeat = 1;
  uint32_t flags = 0;
  uint32_t cpu = 0;
  uint32_t batchSize = 0;
  uint32_t dataSizeOut = 0;
};

struct TestRunOutput {
  uint32_t retval = 0;
  uint32_t durationNs = 0;
  std::vector<uint8_t> data;
};

std::vector<uint8_t> CopyBytes(const Napi::Buffer<uint8_t>& buffer) {
  return std::vector<uint8_t>(buffer.Data(), buffer.Data() + buffer.Length());
}

TestRunInput ParseTestRunOptions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "options must be an object");
  Napi::Object options = info[0].As<Napi::Object>();

  TestRunInput input;
  input.data = CopyBytes(BufferArg(env, options.Get("data"), "options.data"));
  if (!IsAbsent(options.Get("ctxIn"))) input.ctx = CopyBytes(BufferArg(env, options.Get("ctxIn"), "options.ctxIn"));
  const uint32_t repeat = OptionalU32(env, options.Get("repeat"), "options.repeat", 1);
  if (repeat > INT32_MAX) throw Napi::RangeError::New(env, "options.repeat must be below 2^31");
  input.repeat = static_cast<int>(repeat);
  input.flags = OptionalU32(env, options.Get("flags"), "options.flags", 0);
  input.cpu = OptionalU32(env, options.Get("cpu"), "options.cpu", 0);
  input.batchSize = OptionalU32(env, options.Get("batchSize"), "options.batchSize", 0);
  input.dataSizeOut = OptionalU32(env, options.Get("dataSizeOut"), "options.dataSizeOut",
                                  static_cast<uint32_t>(input.data.size()) + 256);
  return input;
}

// Any thread. 0 or -errno.
int RunTest(int fd, const TestRunInput& input, TestRunOutput& output) {
  output.data.resize(input.dataSizeOut);
  auto opts = ZeroedOpts<bpf_test_run_opts>();
  opts.data_in = input.data.data();
  opts.data_out = input.dataSizeOut != 0 ? output.data.data() : nullptr;
  opts.data_size_in = static_cast<uint32_t>(input.data.size());
  opts.data_size_out = input.dataSizeOut;
  opts.ctx_in = input.ctx.empty() ? nullptr : input.ctx.data();
  opts.ctx_size_in = static_cast<uint32_t>(input.ctx.size());
  opts.repeat = input.repeat;
  opts.flags = input.flags;
  opts.cpu = input.cpu;
  opts.batch_size = input.batchSize;
  int err = NegErrno(bpf_prog_test_run_opts(fd, &opts));
  if (err != 0) return err;
  output.retval = opts.retval;
  output.durationNs = opts.duration;
  output.data.resize(input.dataSizeOut != 0 ? opts.data_size_out : 0);
  return 0;
}

Napi::Object TestRunResult(Napi::Env env, const TestRunOutput& output) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("retval", Napi::Number::New(env, output.retval));
  result.Set("durationNs", Napi::Number::New(env, output.durationNs));
  result.Set("dataOut", Napi::Buffer<uint8_t>::Copy(env, output.data.data(), output.data.size()));
  return result;
}

class TestRunWorker : public PromiseWorker {
 public:
  TestRunWorker(Napi::Env env, Napi::Object owner, UniqueFd fd, TestRunInput input, std::string context)
      : PromiseWorker(env, "xdpwall:BpfProgram.testRun", owner), fd_(std::move(fd)), input_(std::move(input)) {
    context_ = std::move(context);
  }

 protected:
  int Run() override {
    int err = RunTest(fd_.Get(), input_, output_);
    if (err != 0) op_ = kTestRunOp;
    return err;
  }
  Napi::Value Result(Napi::Env env) override { return TestRunResult(env, output_); }

 private:
  UniqueFd fd_;
  TestRunInput input_;
  TestRunOutput output_;
};

}  // namespace

Napi::Function BpfProgram::Init(Napi::Env env) {
  return DefineClass(env, "BpfProgram",
                     {
                         InstanceAccessor<&BpfProgram::GetName>("name"),
                         InstanceAccessor<&BpfProgram::GetFd>("fd"),
                         InstanceAccessor<&BpfProgram::GetId>("id"),
                         InstanceAccessor<&BpfProgram::GetType>("type"),
                         InstanceMethod<&BpfProgram::TestRun>("testRun"),
                         InstanceMethod<&BpfProgram::TestRunSync>("testRunSync"),
                         InstanceMethod<&BpfProgram::Pin>("pin"),
                         InstanceMethod<&BpfProgram::Unpin>("unpin"),
                     });
}

Napi::Object BpfProgram::NewInstance(Napi::Env env, Napi::Object owner, bpf_program* program) {
  return AddonState::Of(env).programClass.New({Napi::External<bpf_program>::New(env, program), owner});
}

BpfProgram::BpfProgram(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfProgram>(info) {
  if (info.Length() != 2 || !info[0].IsExternal() || !info[1].IsObject()) {
    throw Napi::TypeError::New(info.Env(), "use BpfObject.program(name) to get a BpfProgram");
  }
  program_ = info[0].As<Napi::External<bpf_program>>().Data();
  ownerRef_ = Napi::Persistent(info[1].As<Napi::Object>());
  owner_ = BpfObject::Unwrap(info[1].As<Napi::Object>());
  name_ = bpf_program__name(program_);
  const char* type = libbpf_bpf_prog_type_str(bpf_program__type(program_));
  type_ = type != nullptr ? type : "unknown";
}

int BpfProgram::Fd() const {
  if (!owner_->IsOpen() || !owner_->IsLoaded()) return -1;
  int fd = bpf_program__fd(program_);
  return fd >= 0 ? fd : -1;
}

int BpfProgram::RequireFd(Napi::Env env, const char* op) const {
  int fd = Fd();
  if (fd < 0) ThrowBpfError(env, EBADF, op, "program '" + name_ + "' is not loaded");
  return fd;
}

bpf_program* BpfProgram::RequireOpen(Napi::Env env, const char* op) const {
  if (!owner_->IsOpen()) ThrowBpfError(env, EBADF, op, "program '" + name_ + "': object is closed");
  return program_;
}

Napi::Value BpfProgram::GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }

Napi::Value BpfProgram::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Fd()); }

Napi::Value BpfProgram::GetId(const Napi::CallbackInfo& info) {
  const int fd = Fd();
  bpf_prog_info progInfo = {};
  uint32_t length = sizeof progInfo;
  if (fd < 0 || bpf_obj_get_info_by_fd(fd, &progInfo, &length) != 0) return Napi::Number::New(info.Env(), 0);
  return Napi::Number::New(info.Env(), progInfo.id);
}

Napi::Value BpfProgram::GetType(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), type_); }

Napi::Value BpfProgram::TestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    TestRunInput input = ParseTestRunOptions(info);
    UniqueFd fd = UniqueFd::Dup(RequireFd(env, kTestRunOp));
    if (!fd.Valid()) ThrowErrno(env, "fcntl(F_DUPFD_CLOEXEC)", "program '" + name_ + "'");
    return (new TestRunWorker(env, Value(), std::move(fd), std::move(input), "program '" + name_ + "'"))->Start();
  } catch (const Napi::Error& e) {
    return RejectedPromise(env, e);
  }
}

Napi::Value BpfProgram::TestRunSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TestRunInput input = ParseTestRunOptions(info);
  TestRunOutput output;
  int err = RunTest(RequireFd(env, kTestRunOp), input, output);
  if (err != 0) ThrowBpfError(env, err, kTestRunOp, "program '" + name_ + "'");
  return TestRunResult(env, output);
}

void BpfProgram::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = StringArg(info, 0, "path");
  LibbpfLogCapture log;
  int err = bpf_program__pin(RequireOpen(env, "bpf_program__pin"), path.c_str());
  if (err != 0) ThrowBpfError(env, err, "bpf_program__pin", path, log.Take());
}

void BpfProgram::Unpin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = StringArg(info, 0, "path");
  LibbpfLogCapture log;
  int err = bpf_program__unpin(RequireOpen(env, "bpf_program__unpin"), path.c_str());
  if (err != 0) ThrowBpfError(env, err, "bpf_program__unpin", path, log.Take());
}

}  // namespace xdpwall

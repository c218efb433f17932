#include "netdev.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common.h"
#include "errors.h"

namespace xdpwall {

namespace {

// "NETNS/IFNAME" split; netns is empty for the current namespace.
struct Interface {
  std::string spec;
  std::string netns;
  std::string name;
};

Interface ParseInterface(const Napi::CallbackInfo& info, size_t i) {
  Interface iface;
  iface.spec = StringArg(info, i, "iface");
  const size_t slash = iface.spec.find('/');
  iface.name = slash == std::string::npos ? iface.spec : iface.spec.substr(slash + 1);
  if (slash != std::string::npos) iface.netns = iface.spec.substr(0, slash);
  const bool badNetns = slash != std::string::npos &&
                        (iface.netns.empty() || iface.netns == "." || iface.netns == "..");
  if (iface.name.empty() || iface.name.size() >= IFNAMSIZ || iface.name.find('/') != std::string::npos || badNetns) {
    throw Napi::TypeError::New(info.Env(), "iface must be \"IFNAME\" or \"NETNS/IFNAME\", got \"" + iface.spec + "\"");
  }
  return iface;
}

// Moves the calling thread into /run/netns/NAME for its lifetime. Netlink
// sockets opened meanwhile (by libbpf, if_nametoindex) belong to that
// namespace. The thread always returns to its original namespace: if it
// cannot, the process aborts rather than run JavaScript in the wrong one.
class NetnsScope {
 public:
  NetnsScope(Napi::Env env, const Interface& iface) {
    if (iface.netns.empty()) return;
    original_ = UniqueFd(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!original_.Valid()) ThrowErrno(env, "open", "/proc/thread-self/ns/net");
    const std::string path = "/run/netns/" + iface.netns;
    UniqueFd target(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!target.Valid()) ThrowErrno(env, "open", path);
    if (setns(target.Get(), CLONE_NEWNET) != 0) ThrowErrno(env, "setns", path);
  }

  ~NetnsScope() {
    if (!original_.Valid()) return;
    if (setns(original_.Get(), CLONE_NEWNET) != 0) {
      perror("xdpwall: cannot return to the original network namespace");
      std::abort();
    }
  }

  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;

 private:
  UniqueFd original_;
};

// A negative fd would make bpf_xdp_attach detach instead: refuse it, e.g. the
// -1 of a program whose object is not loaded.
void RequireProgramFd(Napi::Env env, int progFd, const char* op, const Interface& iface) {
  if (progFd < 0) ThrowBpfError(env, EBADF, op, iface.spec + ": program is not loaded");
}

// Call inside the interface's NetnsScope.
int ResolveIfindex(Napi::Env env, const Interface& iface) {
  const unsigned index = if_nametoindex(iface.name.c_str());
  if (index == 0) ThrowErrno(env, "if_nametoindex", iface.spec);
  return static_cast<int>(index);
}

// libbpf logs the kernel's extack text ("Peer MTU is too large to set XDP",
// "Exclusivity flag on, ...") as warnings: each call collects it, and it goes
// into the error message if the call fails instead of onto stderr.
void Check(Napi::Env env, int err, const char* op, const Interface& iface, LibbpfLogCapture& log) {
  if (err != 0) ThrowBpfError(env, err, op, iface.spec, log.Take());
}

uint32_t XdpModeFlag(Napi::Env env, const Napi::Value& value) {
  if (value.IsString()) {
    const std::string mode = value.As<Napi::String>().Utf8Value();
    if (mode == "native") return XDP_FLAGS_DRV_MODE;
    if (mode == "generic") return XDP_FLAGS_SKB_MODE;
  }
  throw Napi::TypeError::New(env, "mode must be 'native' or 'generic'");
}

const char* XdpModeName(uint8_t attachMode) {
  switch (attachMode) {
    case XDP_ATTACHED_DRV:
      return "native";
    case XDP_ATTACHED_SKB:
      return "generic";
    case XDP_ATTACHED_HW:
      return "offload";
    case XDP_ATTACHED_MULTI:
      return "multi";
    default:
      return "none";
  }
}

bpf_xdp_query_opts QueryXdp(Napi::Env env, const Interface& iface, int ifindex, LibbpfLogCapture& log) {
  auto opts = ZeroedOpts<bpf_xdp_query_opts>();
  Check(env, bpf_xdp_query(ifindex, 0, &opts), "bpf_xdp_query", iface, log);
  return opts;
}

Napi::Value Ifindex(const Napi::CallbackInfo& info) {
  const Interface iface = ParseInterface(info, 0);
  NetnsScope scope(info.Env(), iface);
  return Napi::Number::New(info.Env(), ResolveIfindex(info.Env(), iface));
}

Napi::Value XdpAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Interface iface = ParseInterface(info, 0);
  const int progFd = FdArg(info, 1, "progFd");
  const uint32_t modeFlag = XdpModeFlag(env, info[2]);
  RequireProgramFd(env, progFd, "bpf_xdp_attach", iface);
  NetnsScope scope(env, iface);
  const int ifindex = ResolveIfindex(env, iface);
  LibbpfLogCapture log;
  // Without XDP_FLAGS_UPDATE_IF_NOEXIST the kernel replaces the program.
  Check(env, bpf_xdp_attach(ifindex, progFd, modeFlag, nullptr), "bpf_xdp_attach", iface, log);
  Napi::Object result = Napi::Object::New(env);
  result.Set("ifindex", ifindex);
  result.Set("mode", info[2]);
  return result;
}

void XdpDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Interface iface = ParseInterface(info, 0);
  const bool allModes = IsAbsent(info[1]);
  const uint32_t modeFlag = allModes ? 0 : XdpModeFlag(env, info[1]);
  const uint32_t expectedId = OptionalU32(env, OptionsArg(info, 2, "options").Get("expectedProgId"), "options.expectedProgId", 0);
  // With an expected program the kernel detaches only if that one is still
  // attached (XDP_FLAGS_REPLACE): never someone else's that replaced it.
  UniqueFd expected;
  if (expectedId != 0) {
    expected = UniqueFd(bpf_prog_get_fd_by_id(expectedId));
    if (!expected.Valid()) ThrowErrno(env, "bpf_prog_get_fd_by_id", iface.spec + ", program id " + std::to_string(expectedId));
  }
  NetnsScope scope(env, iface);
  const int ifindex = ResolveIfindex(env, iface);
  LibbpfLogCapture log;
  // Zeroed in place: libbpf rejects non-zero padding, and a copy may not keep it.
  bpf_xdp_attach_opts opts;
  std::memset(&opts, 0, sizeof opts);
  opts.sz = sizeof opts;
  opts.old_prog_fd = expected.Get();  // libbpf adds XDP_FLAGS_REPLACE
  auto detach = [&](uint32_t flag) {
    Check(env, bpf_xdp_detach(ifindex, flag, expected.Valid() ? &opts : nullptr), "bpf_xdp_detach", iface, log);
  };
  if (!allModes) return detach(modeFlag);
  const bpf_xdp_query_opts state = QueryXdp(env, iface, ifindex, log);
  if (state.drv_prog_id != 0) detach(XDP_FLAGS_DRV_MODE);
  if (state.skb_prog_id != 0) detach(XDP_FLAGS_SKB_MODE);
}

Napi::Value XdpQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Interface iface = ParseInterface(info, 0);
  NetnsScope scope(env, iface);
  const int ifindex = ResolveIfindex(env, iface);
  LibbpfLogCapture log;
  const bpf_xdp_query_opts state = QueryXdp(env, iface, ifindex, log);
  // prog_id is only set for a single attachment; report one id in any case.
  uint32_t progId = state.prog_id;
  for (uint32_t id : {state.drv_prog_id, state.skb_prog_id, state.hw_prog_id}) {
    if (progId == 0) progId = id;
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("ifindex", ifindex);
  result.Set("progId", progId);
  result.Set("mode", XdpModeName(state.attach_mode));
  return result;
}

// Attach types of tcx links (kernel 6.6); not in Debian 12's uapi headers.
constexpr bpf_attach_type kTcxIngress = static_cast<bpf_attach_type>(46);
constexpr bpf_attach_type kTcxEgress = static_cast<bpf_attach_type>(47);

// A bpf_link from the program to the interface's XDP hook (flags: the mode)
// or to its tcx ingress/egress chain (appended after existing programs).
// The link lives as long as an fd or a pin refers to it.
Napi::Value LinkCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Interface iface = ParseInterface(info, 0);
  const int progFd = FdArg(info, 1, "progFd");
  const std::string hook = StringArg(info, 2, "hook");
  Napi::Object options = OptionsArg(info, 3, "options");
  auto opts = ZeroedOpts<bpf_link_create_opts>();
  bpf_attach_type type;
  if (hook == "xdp") {
    type = BPF_XDP;
    opts.flags = XdpModeFlag(env, options.Get("xdpMode"));
  } else if (hook == "tcx_ingress" || hook == "tcx_egress") {
    type = hook == "tcx_ingress" ? kTcxIngress : kTcxEgress;
  } else {
    throw Napi::TypeError::New(env, "hook must be 'xdp', 'tcx_ingress' or 'tcx_egress'");
  }
  RequireProgramFd(env, progFd, "bpf_link_create", iface);
  NetnsScope scope(env, iface);
  const int ifindex = ResolveIfindex(env, iface);
  LibbpfLogCapture log;
  const int fd = bpf_link_create(progFd, ifindex, type, &opts);
  if (fd < 0) Check(env, NegErrno(fd), "bpf_link_create", iface, log);
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", fd);
  result.Set("ifindex", ifindex);
  return result;
}

// The hook and the filter's handle/priority from (iface, direction, options).
struct TcTarget {
  bpf_tc_hook hook;
  bpf_tc_opts opts;
};

TcTarget ParseTcTarget(const Napi::CallbackInfo& info, int ifindex, size_t directionArg) {
  Napi::Env env = info.Env();
  const std::string direction = StringArg(info, directionArg, "direction");
  if (direction != "ingress" && direction != "egress") {
    throw Napi::TypeError::New(env, "direction must be 'ingress' or 'egress'");
  }
  Napi::Object options = OptionsArg(info, directionArg + 1, "options");
  TcTarget target{ZeroedOpts<bpf_tc_hook>(), ZeroedOpts<bpf_tc_opts>()};
  target.hook.ifindex = ifindex;
  target.hook.attach_point = direction == "ingress" ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  target.opts.handle = OptionalU32(env, options.Get("handle"), "options.handle", 1);
  target.opts.priority = OptionalU32(env, options.Get("priority"), "options.priority", 1);
  if (target.opts.handle == 0 || target.opts.priority == 0 || target.opts.priority > UINT16_MAX) {
    throw Napi::RangeError::New(env, "options.handle must be non-zero and options.priority in [1, 65535]");
  }
  return target;
}

Napi::Object TcState(Napi::Env env, int ifindex, uint32_t progId) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("ifindex", ifindex);
  result.Set("progId", progId);
  return result;
}

Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Interface iface = ParseInterface(info, 0);
  const int progFd = FdArg(info, 1, "progFd");
  RequireProgramFd(env, progFd, "bpf_tc_attach", iface);
  NetnsScope scope(env, iface);
  const int ifindex = ResolveIfindex(env, iface);
  LibbpfLogCapture log;
  TcTarget target = ParseTcTarget(info, ifindex, 2);
  int err = bpf_tc_hook_create(&target.hook);  // the clsact qdisc
  Check(env, err == -EEXIST ? 0 : err, "bpf_tc_hook_create", iface, log);
  target.opts.prog_fd = progFd;
  target.opts.flags = BPF_TC_F_REPLACE;
  Check(env, bpf_tc_attach(&target.hook, &target.opts), "bpf_tc_attach", iface, log);
  return TcState(env, ifindex, target.opts.prog_id);
}

void TcDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Interface iface = ParseInterface(info, 0);
  NetnsScope scope(env, iface);
  const int ifindex = ResolveIfindex(env, iface);
  LibbpfLogCapture log;
  TcTarget target = ParseTcTarget(info, ifindex, 1);
  // ENOENT: no such filter; EINVAL: no clsact qdisc at all.
  int err = bpf_tc_detach(&target.hook, &target.opts);
  Check(env, err == -ENOENT || err == -EINVAL ? 0 : err, "bpf_tc_detach", iface, log);
}

Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Interface iface = ParseInterface(info, 0);
  NetnsScope scope(env, iface);
  const int ifindex = ResolveIfindex(env, iface);
  LibbpfLogCapture log;
  TcTarget target = ParseTcTarget(info, ifindex, 1);
  int err = bpf_tc_query(&target.hook, &target.opts);
  if (err == -ENOENT || err == -EINVAL) return TcState(env, ifindex, 0);
  Check(env, err, "bpf_tc_query", iface, log);
  return TcState(env, ifindex, target.opts.prog_id);
}

// mkdir -p; the last component gets mode 0700 (pins are private by default).
int MakeDirectories(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    const std::string prefix = path.substr(0, pos);
    if (mkdir(prefix.c_str(), pos == path.size() ? 0700 : 0755) != 0 && errno != EEXIST) return -errno;
  }
  return 0;
}

Napi::Value EnsureBpffs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path.empty()) throw Napi::TypeError::New(env, "path must not be empty");
  int err = MakeDirectories(path);
  if (err != 0) ThrowBpfError(env, err, "mkdir", path);
  struct statfs fs;
  if (statfs(path.c_str(), &fs) != 0) ThrowErrno(env, "statfs", path);
  if (static_cast<uint64_t>(fs.f_type) == BPF_FS_MAGIC) return Napi::Boolean::New(env, false);
  if (mount("bpf", path.c_str(), "bpf", 0, "mode=0700") != 0) ThrowErrno(env, "mount", path);
  return Napi::Boolean::New(env, true);
}

}  // namespace

void InitNetdev(Napi::Env env, Napi::Object exports) {
  exports.Set("ifindex", Napi::Function::New<Ifindex>(env, "ifindex"));
  exports.Set("xdpAttach", Napi::Function::New<XdpAttach>(env, "xdpAttach"));
  exports.Set("xdpDetach", Napi::Function::New<XdpDetach>(env, "xdpDetach"));
  exports.Set("xdpQuery", Napi::Function::New<XdpQuery>(env, "xdpQuery"));
  exports.Set("linkCreate", Napi::Function::New<LinkCreate>(env, "linkCreate"));
  exports.Set("tcAttach", Napi::Function::New<TcAttach>(env, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New<TcDetach>(env, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New<TcQuery>(env, "tcQuery"));
  exports.Set("ensureBpffs", Napi::Function::New<EnsureBpffs>(env, "ensureBpffs"));
}

}  // namespace xdpwall

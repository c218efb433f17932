#include "link.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/file.h>

#include <cerrno>
#include <string>

#include "common.h"
#include "errors.h"

namespace xdpwall {

namespace {

// Not in Debian 12's uapi headers (kernel 6.6).
constexpr uint32_t kLinkTypeTcx = 11;

std::string FdContext(const char* what, int fd) { return std::string(what) + " fd " + std::to_string(fd); }

void ObjPin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0, "fd");
  const std::string path = StringArg(info, 1, "path");
  if (bpf_obj_pin(fd, path.c_str()) != 0) ThrowErrno(env, "bpf_obj_pin", path);
}

Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = StringArg(info, 0, "path");
  const int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(env, "bpf_obj_get", path);
  return Napi::Number::New(env, fd);
}

// Swaps the link's program atomically: packets see the old program or the
// new one, never none. With expectedProgId the kernel refuses (EPERM) if the
// link no longer runs that program.
void LinkUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int linkFd = FdArg(info, 0, "linkFd");
  const int progFd = FdArg(info, 1, "progFd");
  const uint32_t expectedId = OptionalU32(env, OptionsArg(info, 2, "options").Get("expectedProgId"), "options.expectedProgId", 0);
  auto opts = ZeroedOpts<bpf_link_update_opts>();
  UniqueFd expected;
  if (expectedId != 0) {
    expected = UniqueFd(bpf_prog_get_fd_by_id(expectedId));
    if (!expected.Valid()) ThrowErrno(env, "bpf_prog_get_fd_by_id", "program id " + std::to_string(expectedId));
    opts.flags = BPF_F_REPLACE;
    opts.old_prog_fd = expected.Get();
  }
  const int err = NegErrno(bpf_link_update(linkFd, progFd, &opts));
  if (err != 0) ThrowBpfError(env, err, "bpf_link_update", FdContext("link", linkFd));
}

// Detaches the link from its hook; the link object lives on, defunct, while
// fds or pins refer to it.
void LinkDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int linkFd = FdArg(info, 0, "linkFd");
  const int err = NegErrno(bpf_link_detach(linkFd));
  if (err != 0) ThrowBpfError(env, err, "bpf_link_detach", FdContext("link", linkFd));
}

const char* LinkTypeName(uint32_t type) {
  if (type == kLinkTypeTcx) return "tcx";
  const char* name = libbpf_bpf_link_type_str(static_cast<bpf_link_type>(type));
  return name != nullptr ? name : "unknown";
}

// XDP and tcx links start their union with the ifindex (0 once the device is
// gone); tcx follows it with the attach type.
Napi::Object LinkInfoObject(Napi::Env env, const bpf_link_info& link) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("id", link.id);
  result.Set("type", LinkTypeName(link.type));
  result.Set("progId", link.prog_id);
  const bool netdev = link.type == BPF_LINK_TYPE_XDP || link.type == kLinkTypeTcx;
  const auto* words = reinterpret_cast<const uint32_t*>(&link.xdp);
  result.Set("ifindex", netdev ? words[0] : 0);
  result.Set("attachType", link.type == kLinkTypeTcx ? words[1] : link.type == BPF_LINK_TYPE_XDP ? BPF_XDP : 0);
  return result;
}

int QueryLink(int fd, bpf_link_info& link) {
  std::memset(&link, 0, sizeof link);
  uint32_t length = sizeof link;
  return NegErrno(bpf_obj_get_info_by_fd(fd, &link, &length));
}

Napi::Value LinkInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int linkFd = FdArg(info, 0, "linkFd");
  bpf_link_info link;
  const int err = QueryLink(linkFd, link);
  if (err != 0) ThrowBpfError(env, err, "bpf_obj_get_info_by_fd", FdContext("link", linkFd));
  return LinkInfoObject(env, link);
}

// Every bpf_link in the system (links that vanish meanwhile are skipped).
Napi::Value LinkList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array links = Napi::Array::New(env);
  uint32_t id = 0;
  uint32_t n = 0;
  while (bpf_link_get_next_id(id, &id) == 0) {
    UniqueFd fd(bpf_link_get_fd_by_id(id));
    bpf_link_info link;
    if (!fd.Valid() || QueryLink(fd.Get(), link) != 0) continue;
    links.Set(n++, LinkInfoObject(env, link));
  }
  if (errno != ENOENT) ThrowErrno(env, "bpf_link_get_next_id");
  return links;
}

Napi::Value LinkFdById(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t id = U32Value(env, info[0], "id");
  const int fd = bpf_link_get_fd_by_id(id);
  if (fd < 0) ThrowErrno(env, "bpf_link_get_fd_by_id", "link id " + std::to_string(id));
  return Napi::Number::New(env, fd);
}

// A program by id: enough to name it in a message ("xdp program 'x' id 7").
Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t id = U32Value(env, info[0], "id");
  const std::string context = "program id " + std::to_string(id);
  UniqueFd fd(bpf_prog_get_fd_by_id(id));
  if (!fd.Valid()) ThrowErrno(env, "bpf_prog_get_fd_by_id", context);
  bpf_prog_info prog;
  std::memset(&prog, 0, sizeof prog);
  uint32_t length = sizeof prog;
  const int err = NegErrno(bpf_obj_get_info_by_fd(fd.Get(), &prog, &length));
  if (err != 0) ThrowBpfError(env, err, "bpf_obj_get_info_by_fd", context);
  const char* type = libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(prog.type));
  Napi::Object result = Napi::Object::New(env);
  result.Set("id", prog.id);
  result.Set("name", prog.name);
  result.Set("type", type != nullptr ? type : "unknown");
  return result;
}

// flock(LOCK_EX | LOCK_NB): true if taken, false if another open file holds
// it. Released when the fd closes, so also when the process dies.
Napi::Value FlockExclusive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0, "fd");
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return Napi::Boolean::New(env, true);
  if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
  ThrowErrno(env, "flock", FdContext("file", fd));
}

}  // namespace

void InitLink(Napi::Env env, Napi::Object exports) {
  exports.Set("objPin", Napi::Function::New<ObjPin>(env, "objPin"));
  exports.Set("objGet", Napi::Function::New<ObjGet>(env, "objGet"));
  exports.Set("linkUpdate", Napi::Function::New<LinkUpdate>(env, "linkUpdate"));
  exports.Set("linkDetach", Napi::Function::New<LinkDetach>(env, "linkDetach"));
  exports.Set("linkInfo", Napi::Function::New<LinkInfo>(env, "linkInfo"));
  exports.Set("linkList", Napi::Function::New<LinkList>(env, "linkList"));
  exports.Set("linkFdById", Napi::Function::New<LinkFdById>(env, "linkFdById"));
  exports.Set("progInfo", Napi::Function::New<ProgInfo>(env, "progInfo"));
  exports.Set("flockExclusive", Napi::Function::New<FlockExclusive>(env, "flockExclusive"));
}

}  // namespace xdpwall

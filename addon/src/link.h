// Kernel objects by file descriptor: bpf_links (update, detach, info),
// pins (bpf_obj_pin/get), program info, and an advisory lock for pin and
// state directories. Descriptors returned here belong to JavaScript, which
// closes them with fs.closeSync().
#pragma once

#include <napi.h>

namespace xdpwall {

// Adds objPin, objGet, linkUpdate, linkDetach, linkInfo, linkList,
// linkFdById, progInfo and flockExclusive to exports.
void InitLink(Napi::Env env, Napi::Object exports);

}  // namespace xdpwall

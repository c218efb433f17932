// Network devices: ifindex lookup, XDP and TC attach/detach/query, bpffs.
// Every function takes "IFNAME" or "NETNS/IFNAME" and runs synchronously on
// the calling thread (netlink round trips are short).
#pragma once

#include <napi.h>

namespace xdpwall {

// Adds ifindex, xdp*, tc* and ensureBpffs to exports.
void InitNetdev(Napi::Env env, Napi::Object exports);

}  // namespace xdpwall

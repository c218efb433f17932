// BpfRingBuffer: reads the records of a BPF_MAP_TYPE_RINGBUF map (libbpf's
// ring_buffer over a private duplicate of the map's fd). Reading is
// non-blocking and bounded per call, so a caller polling it on a timer
// never holds the event loop for longer than one batch takes to copy.
#pragma once

#include <napi.h>

namespace xdpwall {

// Adds the BpfRingBuffer class to exports.
void InitRingBuffer(Napi::Env env, Napi::Object exports);

}  // namespace xdpwall

// SPDX-License-Identifier: GPL-2.0-only
/*
 * Ladder baseline: the kernel's floor for a new flow. Inserts a fresh key
 * (a per-CPU sequence number in a flow-key-sized key) into an LRU hash of
 * the flow table's type, flags, key and value sizes, then XDP_PASS; nothing
 * else. Run behind the churn driver like xdpwall's new-flow cases, so the
 * driver's cost is in both. Variants (map type and flags) are chosen by
 * the bench before load; the default matches xw_flows.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdpwall_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define FLOOR_MAP(_name, _type, _flags, _key)                   \
	struct {                                                \
		__uint(type, _type);                            \
		__uint(max_entries, XW_DEFAULT_FLOW_ENTRIES);   \
		__uint(map_flags, _flags);                      \
		__type(key, _key);                              \
		__type(value, struct xw_flow_value);            \
	} _name SEC(".maps")

/* An IPv4-only flow key: what a separate IPv4 table would use. */
struct floor_v4_key {
	__be32 src;
	__be32 dst;
	__be16 sport;
	__be16 dport;
	__u32 ifindex;
	__u8 proto;
	__u8 pad[3];
};

/* As xw_flows: one shared LRU, per-CPU LRU lists. */
FLOOR_MAP(floor_flows, BPF_MAP_TYPE_LRU_HASH, BPF_F_NO_COMMON_LRU, struct xw_flow_key);
/* Attempts reported beside it. */
FLOOR_MAP(floor_common, BPF_MAP_TYPE_LRU_HASH, 0, struct xw_flow_key);
FLOOR_MAP(floor_percpu, BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_F_NO_COMMON_LRU, struct xw_flow_key);
FLOOR_MAP(floor_v4, BPF_MAP_TYPE_LRU_HASH, BPF_F_NO_COMMON_LRU, struct floor_v4_key);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} floor_seq SEC(".maps");

static __always_inline __u64 floor_next(void)
{
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&floor_seq, &zero);

	if (!seq)
		return 0;
	*seq += 1;
	return *seq;
}

static __always_inline int floor_insert(void *map)
{
	struct xw_flow_key key = {};
	struct xw_flow_value value = { .dir[0].packets = 1 };
	__u64 seq = floor_next();

	__builtin_memcpy(key.src, &seq, sizeof(seq));
	key.ifindex = bpf_get_smp_processor_id();
	bpf_map_update_elem(map, &key, &value, BPF_NOEXIST);
	return XDP_PASS;
}

SEC("xdp")
int bench_lru_floor(struct xdp_md *ctx)
{
	return floor_insert(&floor_flows);
}

/*
 * The floor of what a flow table must do for a packet of unknown flow: look
 * the fresh key up (a miss, in a cold bucket), then insert it, in the
 * xw_flows-like map. What it adds to bench_lru_floor is the miss itself,
 * which the insert alone pays inside its bucket lock, overlapped with the
 * eviction's own cache misses.
 */
SEC("xdp")
int bench_lru_floor_lookup(struct xdp_md *ctx)
{
	struct xw_flow_key key = {};
	struct xw_flow_value value = { .dir[0].packets = 1 };
	__u64 seq = floor_next();

	__builtin_memcpy(key.src, &seq, sizeof(seq));
	key.ifindex = bpf_get_smp_processor_id();
	if (bpf_map_lookup_elem(&floor_flows, &key))
		return XDP_PASS;
	bpf_map_update_elem(&floor_flows, &key, &value, BPF_NOEXIST);
	return XDP_PASS;
}

SEC("xdp")
int bench_lru_floor_common(struct xdp_md *ctx)
{
	return floor_insert(&floor_common);
}

SEC("xdp")
int bench_lru_floor_percpu(struct xdp_md *ctx)
{
	return floor_insert(&floor_percpu);
}

SEC("xdp")
int bench_lru_floor_v4key(struct xdp_md *ctx)
{
	struct floor_v4_key key = {};
	struct xw_flow_value value = { .dir[0].packets = 1 };
	__u64 seq = floor_next();

	key.src = (__u32)seq;
	key.dst = (__u32)(seq >> 32);
	key.ifindex = bpf_get_smp_processor_id();
	bpf_map_update_elem(&floor_v4, &key, &value, BPF_NOEXIST);
	return XDP_PASS;
}

/*
 * The floor for a rate-limit bucket insert (a new source): a fresh
 * xw_rl_key-sized key into an LRU hash of xw_rl_bucket values (the kernel's
 * default LRU, one common list), and the same into a preallocated plain
 * hash, the type xw_rl_buckets is. Run behind the new-source churn driver;
 * the bench empties both maps between calls, as it does xw_rl_buckets.
 */
#define RL_FLOOR_ENTRIES (1u << 17)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RL_FLOOR_ENTRIES);
	__type(key, struct xw_rl_key);
	__type(value, struct xw_rl_bucket);
} floor_rl_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RL_FLOOR_ENTRIES);
	__type(key, struct xw_rl_key);
	__type(value, struct xw_rl_bucket);
} floor_rl_hash SEC(".maps");

static __always_inline int floor_rl_insert(void *map)
{
	struct xw_rl_key key = { .family = 4, .prefixlen = 32 };
	struct xw_rl_bucket value = { .pkt_tokens = 1 };
	__u64 seq = floor_next();

	__builtin_memcpy(key.addr, &seq, sizeof(seq));
	key.rule_id = bpf_get_smp_processor_id();
	bpf_map_update_elem(map, &key, &value, BPF_NOEXIST);
	return XDP_PASS;
}

SEC("xdp")
int bench_lru_floor_rl(struct xdp_md *ctx)
{
	return floor_rl_insert(&floor_rl_lru);
}

SEC("xdp")
int bench_hash_floor_rl(struct xdp_md *ctx)
{
	return floor_rl_insert(&floor_rl_hash);
}

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the data plane. Names, key and value layouts are the ABI
 * (include/xdpwall_abi.h); capacities are defaults the loader overrides
 * before load. All maps are pinned by name so a restarted daemon reuses
 * them under its per-instance bpffs directory (libbpf pin_root_path).
 */
#ifndef XW_MAPS_H
#define XW_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdpwall_abi.h"

/*
 * Deny/allow prefixes. LPM tries must be created with BPF_F_NO_PREALLOC;
 * the kernel allocates nodes on update, so a large max_entries costs
 * nothing until the prefixes exist.
 */
#define XW_LPM_MAP(_name, _key, _entries)                       \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);            \
		__uint(max_entries, _entries);                  \
		__uint(map_flags, BPF_F_NO_PREALLOC);           \
		__uint(pinning, LIBBPF_PIN_BY_NAME);            \
		__type(key, _key);                              \
		__type(value, struct xw_rule_value);            \
	} _name SEC(".maps")

XW_LPM_MAP(xw_src_v4, struct xw_lpm_v4_key, XW_DEFAULT_CIDR_V4_ENTRIES);
XW_LPM_MAP(xw_dst_v4, struct xw_lpm_v4_key, XW_DEFAULT_CIDR_V4_ENTRIES);
XW_LPM_MAP(xw_src_v6, struct xw_lpm_v6_key, XW_DEFAULT_CIDR_V6_ENTRIES);
XW_LPM_MAP(xw_dst_v6, struct xw_lpm_v6_key, XW_DEFAULT_CIDR_V6_ENTRIES);

/*
 * Host routes (/32 and /128), looked up before the tries. Not preallocated:
 * sized for a full blocklist, but memory follows the rules that exist.
 */
#define XW_HOST_MAP(_name, _key, _entries)                      \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_HASH);                \
		__uint(max_entries, _entries);                  \
		__uint(map_flags, BPF_F_NO_PREALLOC);           \
		__uint(pinning, LIBBPF_PIN_BY_NAME);            \
		__type(key, _key);                              \
		__type(value, struct xw_rule_value);            \
	} _name SEC(".maps")

XW_HOST_MAP(xw_src_host_v4, __be32, XW_DEFAULT_CIDR_V4_ENTRIES);
XW_HOST_MAP(xw_dst_host_v4, __be32, XW_DEFAULT_CIDR_V4_ENTRIES);
XW_HOST_MAP(xw_src_host_v6, struct xw_host_v6_key, XW_DEFAULT_CIDR_V6_ENTRIES);
XW_HOST_MAP(xw_dst_host_v6, struct xw_host_v6_key, XW_DEFAULT_CIDR_V6_ENTRIES);

/*
 * IPv4 prefixes expanded per /24 (first level) and per address of the /24s
 * that hold a /25../31 (second level); two u32 slots per element (see
 * XW_DIR24_SLOTS). The loader sizes the second level from the block count.
 */
#define XW_DIR24_MAP(_name, _entries)                           \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_ARRAY);               \
		__uint(max_entries, _entries);                  \
		__type(key, __u32);                             \
		__type(value, __u64);                           \
	} _name SEC(".maps")

XW_DIR24_MAP(xw_src_dir24, XW_DIR24_PAIRS);
XW_DIR24_MAP(xw_dst_dir24, XW_DIR24_PAIRS);
XW_DIR24_MAP(xw_src_dir24_l2, XW_DEFAULT_DIR24_BLOCKS * XW_DIR24_BLOCK_PAIRS);
XW_DIR24_MAP(xw_dst_dir24_l2, XW_DEFAULT_DIR24_BLOCKS * XW_DIR24_BLOCK_PAIRS);

/*
 * Per-rule counters. The data plane creates a rule's entry on its first hit
 * (the control plane may also create it in advance); the control plane
 * deletes it with the rule. Not preallocated: it is sized for every
 * possible rule, and most rules never match anything.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, XW_DEFAULT_RULE_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32); /* xw_rule_value.rule_id */
	__type(value, struct xw_counter);
} xw_rule_stats SEC(".maps");

/* The block hit cache in front of xw_rule_stats (see "block hit cache" in the ABI). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XW_HIT_CACHE_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_hit_cache);
} xw_rule_hit_cache SEC(".maps");

/*
 * Hits of policy rules, by the slot their xw_pol_rule carries ("rule
 * slots" in the ABI): an indexed element, no hash probe, no first-hit
 * insert. Blocks (up to millions) keep xw_rule_stats above.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XW_POL_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_counter);
} xw_slot_hits SEC(".maps");

/*
 * Verdict and reason counters: an array indexed by XW_STATS_INDEX(), so
 * counting is an address computation and two increments, never a hash.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XW_STATS_ENTRIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_counter);
} xw_stats SEC(".maps");

/* ifindex -> interface slot of xw_stats (0: none assigned), written at attach. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XW_IFSLOT_IFINDEX_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, __u32);
} xw_ifslots SEC(".maps");

/*
 * Flow table: one entry per flow shared by all CPUs (atomic counters), so
 * its memory does not grow with the CPU count. With BPF_F_NO_COMMON_LRU
 * every CPU keeps its own LRU list and free list over the shared entries
 * (max_entries / possible CPUs each), so inserting a new flow takes no
 * shared lock: an attack spreading over all RX queues does not serialise on
 * the flow table. The price is that one busy CPU evicts within its share.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XW_DEFAULT_FLOW_ENTRIES);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct xw_flow_key);
	__type(value, struct xw_flow_value);
} xw_flows SEC(".maps");

/* Runtime settings (struct xw_config), written by the control plane. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_config);
} xw_config SEC(".maps");

/*
 * IPv6 prefixes by length (include/xdpwall_abi.h, "IPv6 prefixes by
 * length"): exact-match hashes per direction, sized for every prefix; not
 * pinned, rebuilt on every start.
 */
#define XW_V6_HASH(_name, _key, _value)                         \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_HASH);                \
		__uint(max_entries, XW_DEFAULT_CIDR_V6_ENTRIES); \
		__uint(map_flags, BPF_F_NO_PREALLOC);           \
		__type(key, _key);                              \
		__type(value, _value);                          \
	} _name SEC(".maps")

XW_V6_HASH(xw_src_v6_len, struct xw_lpm_v6_key, struct xw_rule_value);
XW_V6_HASH(xw_dst_v6_len, struct xw_lpm_v6_key, struct xw_rule_value);
XW_V6_HASH(xw_src_v6_net, __be64, struct xw_v6_net);
XW_V6_HASH(xw_dst_v6_net, __be64, struct xw_v6_net);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct xw_v6_lengths);
} xw_v6_lengths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * XW_V6_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} xw_v6_filter SEC(".maps");

#endif /* XW_MAPS_H */

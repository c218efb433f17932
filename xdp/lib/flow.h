/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-flow accounting in xw_flows.
 */
#ifndef XW_FLOW_H
#define XW_FLOW_H

#include "maps.h"
#include "parse.h"

/*
 * The flow key is oriented remote -> local: on egress the packet's source is
 * this host, so addresses and ports swap and both directions of a
 * conversation land in one entry. ICMP "ports" are not endpoints and keep
 * their places: the echo identifier in both (so a ping is one flow), or
 * sport = type, dport = code.
 */
static __always_inline void xw_flow_key_of(const struct xw_pkt *p,
					   enum xw_direction dir,
					   struct xw_flow_key *key)
{
	bool egress = dir == XW_DIR_EGRESS;
	bool swap_ports = egress && p->proto != IPPROTO_ICMP &&
			  p->proto != IPPROTO_ICMPV6;

	__builtin_memcpy(key->src, egress ? p->daddr : p->saddr, sizeof(key->src));
	__builtin_memcpy(key->dst, egress ? p->saddr : p->daddr, sizeof(key->dst));
	key->sport = swap_ports ? p->dport : p->sport;
	key->dport = swap_ports ? p->sport : p->dport;
	key->ifindex = p->ifindex;
	key->proto = p->proto;
	key->family = p->family;
	key->pad = 0;
}

/*
 * The runtime settings, read once per packet before any rule lookup (see
 * struct xw_config). NULL never happens (slot 0 of a one-slot array).
 */
static __always_inline const struct xw_config *xw_config_get(void)
{
	__u32 slot = 0;

	return bpf_map_lookup_elem(&xw_config, &slot);
}

/*
 * The packet's flow entry, or NULL. Always looked up first, SYNs too: an
 * insert into a full LRU table takes a node (evicting a flow) before it
 * learns the key exists, so inserting first would make every repeated SYN
 * evict an unrelated flow (see xdp/README.md, "New flows").
 */
static __always_inline struct xw_flow_value *xw_flow_find(const struct xw_pkt *p,
							  enum xw_direction dir)
{
	struct xw_flow_key key;

	xw_flow_key_of(p, dir, &key);
	return bpf_map_lookup_elem(&xw_flows, &key);
}

/*
 * The 32-bit word holding tcp_flags[2], cached_verdict and pad0 (see
 * struct xw_flow_value): atomics work on 32 or 64 bits, not bytes.
 */
static __always_inline __u32 *xw_flow_flags_word(struct xw_flow_value *val)
{
	return (__u32 *)&val->tcp_flags[0];
}

/*
 * Counts a passed packet in its flow, creating the entry on first sight.
 * val: the caller's xw_flow_find() result, NULL when the flow is new. The
 * entry is shared by all CPUs: counters are atomic adds and the TCP flags
 * an atomic OR; the last-seen time is a plain store (the latest writer
 * wins, which is what it means). Two CPUs creating the same flow:
 * BPF_NOEXIST makes the second count into the first one's entry.
 * cached_verdict and rules_gen are neither written nor read (see struct
 * xw_flow_value).
 */
static __always_inline void xw_flow_account(const struct xw_pkt *p,
					    enum xw_direction dir,
					    struct xw_flow_value *val)
{
	__u64 now = bpf_ktime_get_coarse_ns();

	if (!val) {
		struct xw_flow_key key;
		struct xw_flow_value init = {
			.first_seen_ns = now,
			.last_seen_ns = now,
		};

		xw_flow_key_of(p, dir, &key);
		init.dir[dir].packets = 1;
		init.dir[dir].bytes = p->len;
		init.tcp_flags[dir] = p->tcp_flags;
		if (!bpf_map_update_elem(&xw_flows, &key, &init, BPF_NOEXIST))
			return;
		val = bpf_map_lookup_elem(&xw_flows, &key);
		if (!val) /* created and already evicted: the packet goes uncounted */
			return;
	}
	if (val->last_seen_ns != now)
		val->last_seen_ns = now;
	__sync_fetch_and_add(&val->dir[dir].packets, 1);
	__sync_fetch_and_add(&val->dir[dir].bytes, p->len);
	if (p->tcp_flags & ~val->tcp_flags[dir])
		__sync_fetch_and_or(xw_flow_flags_word(val),
				    (__u32)p->tcp_flags << (8 * dir));
}

#endif /* XW_FLOW_H */

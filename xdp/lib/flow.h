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

/* The rule-set generation, read before any rule lookup (see struct xw_config). */
static __always_inline __u32 xw_rules_gen(void)
{
	__u32 slot = 0;
	const struct xw_config *cfg = bpf_map_lookup_elem(&xw_config, &slot);

	return cfg ? cfg->rules_gen : 0;
}

/* This CPU's slot of the packet's flow entry, or NULL. */
static __always_inline struct xw_flow_value *xw_flow_find(const struct xw_pkt *p,
							  enum xw_direction dir)
{
	struct xw_flow_key key;

	xw_flow_key_of(p, dir, &key);
	return bpf_map_lookup_elem(&xw_flows, &key);
}

/*
 * True when this flow passed every rule of the current generation on this
 * CPU, so ingress may skip the lookups: established flows then cost a hash
 * lookup instead of two trie walks, until the next rule change.
 */
static __always_inline bool xw_flow_pass_cached(const struct xw_flow_value *val,
						__u32 rules_gen)
{
	return val && val->cached_verdict == XW_CACHE_PASS &&
	       val->rules_gen == rules_gen;
}

/*
 * Counts a passed packet in its flow, creating the entry on first sight.
 * val: the caller's xw_flow_find() result, NULL when the flow is new (one
 * lookup per packet: in a full table each one is a cache-missing bucket
 * walk). On ingress the pass is cached under rules_gen. Values are per CPU and only this CPU
 * writes its slot, so plain increments are exact; user space merges the
 * slots (see struct xw_flow_value).
 */
static __always_inline void xw_flow_account(const struct xw_pkt *p,
					    enum xw_direction dir,
					    struct xw_flow_value *val,
					    __u32 rules_gen)
{
	bool ingress = dir == XW_DIR_INGRESS;
	__u64 now = bpf_ktime_get_coarse_ns();

	if (!val) {
		struct xw_flow_key key;
		struct xw_flow_value init = {
			.first_seen_ns = now,
			.last_seen_ns = now,
			.cached_verdict = ingress ? XW_CACHE_PASS : XW_CACHE_NONE,
			.rules_gen = rules_gen,
		};

		xw_flow_key_of(p, dir, &key);
		init.dir[dir].packets = 1;
		init.dir[dir].bytes = p->len;
		init.tcp_flags[dir] = p->tcp_flags;
		/*
		 * BPF_ANY, not BPF_NOEXIST: if another CPU created the entry
		 * since our lookup, this writes only our CPU's slot, which was
		 * still zero, so the packet is counted either way.
		 */
		bpf_map_update_elem(&xw_flows, &key, &init, BPF_ANY);
		return;
	}
	if (!val->first_seen_ns) /* entry created on another CPU */
		val->first_seen_ns = now;
	val->last_seen_ns = now;
	val->dir[dir].packets++;
	val->dir[dir].bytes += p->len;
	val->tcp_flags[dir] |= p->tcp_flags;
	if (ingress) {
		val->cached_verdict = XW_CACHE_PASS;
		val->rules_gen = rules_gen;
	}
}

#endif /* XW_FLOW_H */

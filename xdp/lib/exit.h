/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one way out of both programs: it counts the packet under its verdict
 * and reason, charges the matching rule, accounts the flow of packets that
 * pass, offers the packet to the event sampler (lib/events.h), and turns
 * the verdict into the hook's return code.
 */
#ifndef XW_EXIT_H
#define XW_EXIT_H

#include <linux/pkt_cls.h>

#include "events.h"
#include "flow.h"
#include "maps.h"
#include "parse.h"
#include "ratelimit.h"

/*
 * Adds one packet to this CPU's slot of the counter under key, creating the
 * entry on first use. If another CPU creates it between our lookup and
 * insert, the insert fails and we count into the entry it made; if the map
 * is full the packet goes uncounted.
 */
static __always_inline void xw_count(void *map, const void *key, __u32 bytes)
{
	struct xw_counter *ctr = bpf_map_lookup_elem(map, key);

	if (!ctr) {
		struct xw_counter first = { .packets = 1, .bytes = bytes };

		if (!bpf_map_update_elem(map, key, &first, BPF_NOEXIST))
			return;
		ctr = bpf_map_lookup_elem(map, key);
		if (!ctr)
			return;
	}
	ctr->packets++;
	ctr->bytes += bytes;
}

/*
 * The interface's slot, assigned by the control plane at attach; 0 for
 * interfaces without one.
 */
static __always_inline __u32 xw_ifslot(__u32 ifindex)
{
	__u32 *slot = bpf_map_lookup_elem(&xw_ifslots, &ifindex);

	return slot && *slot < XW_MAX_IFSLOTS ? *slot : 0;
}

/* This CPU's counter of (interface, direction, verdict, reason): two increments. */
static __always_inline void xw_stats_count(const struct xw_pkt *p,
					   enum xw_direction dir,
					   enum xw_verdict verdict,
					   enum xw_reason reason)
{
	__u32 index = XW_STATS_INDEX(xw_ifslot(p->ifindex), dir, verdict,
				     reason & (XW_STATS_REASONS - 1));
	struct xw_counter *ctr = bpf_map_lookup_elem(&xw_stats, &index);

	if (!ctr)
		return;
	ctr->packets++;
	ctr->bytes += p->len;
}

/*
 * Blocks' and lists' counters appear on a rule's first hit, so their per-CPU memory
 * follows the rules that match traffic, not all rules; an entry the control
 * plane created in advance is simply counted into. rule_id comes from the
 * control plane's trie values, so packets cannot invent keys.
 */
static __always_inline void xw_rule_count(__u32 rule_id, __u32 bytes)
{
	xw_count(&xw_rule_stats, &rule_id, bytes);
}

/*
 * A policy rule's packet: this CPU's element of its slot, two increments.
 * In xw_slot_hits, except a ratelimit rule's over-limit packet (reason
 * ratelimit or would_ratelimit), which counts as the rule's drop in
 * xw_rl_stats: a ratelimit rule's hits are both, its admitted packets its
 * xw_slot_hits. One count per packet either way. Two separate lookups:
 * merged into one call on a chosen map, neither would be inlined by the
 * verifier (+10 ns on every rule's packet, measured); the empty asm keeps
 * the compiler from merging the two identical tails.
 */
static __always_inline void xw_slot_count(__u32 slot, enum xw_reason reason, __u32 bytes)
{
	struct xw_counter *ctr;

	if (reason == XW_REASON_RATELIMIT || reason == XW_REASON_WOULD_RATELIMIT) {
		struct xw_rl_stats *s = bpf_map_lookup_elem(&xw_rl_stats, &slot);

		if (!s)
			return;
		asm volatile("" ::: "memory");
		s->dropped.packets++;
		s->dropped.bytes += bytes;
		return;
	}
	ctr = bpf_map_lookup_elem(&xw_slot_hits, &slot);
	if (!ctr)
		return;
	ctr->packets++;
	ctr->bytes += bytes;
}

/*
 * Only packets that were parsed as IP and allowed through own a flow:
 * denied ones must not let a spoofed flood churn the table, and malformed
 * or non-IP ones have no well-defined flow key.
 */
static __always_inline bool xw_reason_has_flow(enum xw_reason reason)
{
	/* would_drop passes are not cached: a dry-run block must see every packet */
	return reason < XW_REASON__FIRST_DROP && reason != XW_REASON_PASS_NON_IP &&
	       reason != XW_REASON_WOULD_DROP;
}

static __always_inline int xw_hook_action(enum xw_direction dir,
					  enum xw_verdict verdict)
{
	if (dir == XW_DIR_INGRESS)
		return verdict == XW_VERDICT_DROP ? XDP_DROP : XDP_PASS;
	return verdict == XW_VERDICT_DROP ? TC_ACT_SHOT : TC_ACT_OK;
}

/*
 * ctx: the hook's context (struct xdp_md or struct __sk_buff: sampled
 * events copy frame bytes through it); dir: the hook's direction, a
 * constant; rule_id: the rule that decided the verdict, or 0 (counted under
 * p->rule_slot when the policy stage set one, else in xw_rule_stats); flow: the packet's xw_flow_find() result (NULL: a new
 * flow, or none looked up because the packet will not be accounted).
 */
static __always_inline int xw_exit(void *ctx, const struct xw_pkt *p,
				   enum xw_direction dir,
				   enum xw_verdict verdict,
				   enum xw_reason reason,
				   __u32 rule_id,
				   struct xw_flow_value *flow)
{
	xw_stats_count(p, dir, verdict, reason);
	if (p->rule_slot)
		xw_slot_count(p->rule_slot, reason, p->len);
	else if (rule_id)
		xw_rule_count(rule_id, p->len);
	if (verdict == XW_VERDICT_PASS && xw_reason_has_flow(reason))
		xw_flow_account(p, dir, flow);
	xw_event(ctx, p, dir, verdict, reason, rule_id);
	return xw_hook_action(dir, verdict);
}

#endif /* XW_EXIT_H */

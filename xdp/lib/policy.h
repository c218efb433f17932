/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The policy stage: what happens to a parsed IP packet after the block
 * (deny CIDR) lookups. The order, the same as src/policy/reference.ts:
 *
 *   1. a block that matched drops (deny wins); a dry-run block passes
 *      under would_drop, an expired one no longer matches;
 *   2. else the hook's rules, by priority, first match decides:
 *      drop (drop_rule), pass (pass_rule), log (pass_log: passed, counted),
 *      ratelimit, ingress only (under the rate: pass_rule; over it:
 *      ratelimit, see ratelimit.h); a dry-run drop rule passes under
 *      would_drop, a dry-run ratelimit rule's over-limit packet under
 *      would_ratelimit;
 *   3. else the hook's default policy (the interface's own where the
 *      configuration gives one: a flagged rule after all others): accept (pass_no_match), or drop
 *      (drop_policy) except, on ingress, packets of a flow this host opened
 *      (pass_reply: the egress program recorded it);
 *   4. a packet that 1-3 would drop, or that a dry-run rule would drop or
 *      limit, passes instead if it matches a failsafe entry (pass_failsafe); on
 *      egress with its ends swapped (entries are written from this host's
 *      side: remote peer, local port).
 *
 * Checking the failsafe list last but letting it override is the same as
 * checking it first for every packet that can be dropped, and costs
 * nothing on the pass path. The deciding rule's id goes to the exit and its
 * slot into p->rule_slot: the exit counts the packet in the slot's element
 * of xw_slot_hits (a block, which has no slot, under its id in
 * xw_rule_stats).
 */
#ifndef XW_POLICY_H
#define XW_POLICY_H

#include "rules.h"
#include "flow.h"
#include "ratelimit.h"

/* Flows this host opened, keyed like xw_flows (remote -> local), for pass_reply. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XW_POL_REPLY_ENTRIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct xw_flow_key);
	__type(value, __u64); /* xw_now() of the flow's last egress packet */
} xw_pol_replies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XW_BLOCK_META_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_block_meta);
} xw_block_meta SEC(".maps");

static __always_inline bool xw_pol_is_reply(const struct xw_pkt *p)
{
	struct xw_flow_key key;
	__u64 *seen;

	xw_flow_key_of(p, XW_DIR_INGRESS, &key);
	seen = bpf_map_lookup_elem(&xw_pol_replies, &key);
	return seen && xw_now() - *seen < XW_POL_REPLY_TIMEOUT_NS;
}

/*
 * Egress: remembers the flow of a packet leaving while some ingress default
 * is drop (the control plane sets XW_POL_F_REPLIES then). The entry is
 * rewritten at most once per XW_POL_REPLY_REFRESH_NS, not per packet.
 */
static __always_inline void xw_pol_record_reply(const struct xw_pkt *p, const struct xw_pol_meta *meta)
{
	struct xw_flow_key key;
	__u64 now, *seen;

	if (!meta || !(meta->flags & XW_POL_F_REPLIES))
		return;
	xw_flow_key_of(p, XW_DIR_EGRESS, &key);
	now = xw_now();
	seen = bpf_map_lookup_elem(&xw_pol_replies, &key);
	if (seen && now - *seen < XW_POL_REPLY_REFRESH_NS)
		return;
	bpf_map_update_elem(&xw_pol_replies, &key, &now, BPF_ANY);
}

/* One element: which destination ports the failsafe table can match (struct xw_failsafe_quick; src/policy/tables.ts). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_failsafe_quick);
} xw_failsafe_quick SEC(".maps");

/* false: no failsafe entry can match this ingress packet (see struct xw_failsafe_quick). */
static __always_inline bool xw_pol_failsafe_may(const struct xw_pkt *p)
{
	__u32 zero = 0;
	const struct xw_failsafe_quick *quick = bpf_map_lookup_elem(&xw_failsafe_quick, &zero);

	if (!quick || !quick->ports_only || !xw_pkt_has_ports(p))
		return true;
	return (quick->dports >> (bpf_ntohs(p->dport) & 63)) & 1;
}

/* Swaps the packet's addresses and ports in place (twice restores it). */
static __always_inline void xw_pkt_swap_ends(struct xw_pkt *p)
{
	__be16 port = p->sport;
	__u32 *s = (__u32 *)p->saddr, *d = (__u32 *)p->daddr, t;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		t = s[i];
		s[i] = d[i];
		d[i] = t;
	}
	p->sport = p->dport;
	p->dport = port;
}

/*
 * Egress: a failsafe entry names the remote peer (cidr) and the local port,
 * which an outgoing packet carries as destination and source: it is looked
 * up with both ends swapped, so answers of failsafe connections (SSH),
 * DHCP requests and neighbour discovery leave under an egress drop too.
 */
static __always_inline bool xw_pol_failsafe_egress(struct xw_pkt *p, struct xw_pol_rule *rule)
{
	const struct xw_pol_meta *ignored;
	bool found;

	xw_pkt_swap_ends(p);
	found = xw_pol_classify(p, XW_POL_FAILSAFE, rule, &ignored);
	xw_pkt_swap_ends(p);
	return found;
}

/*
 * dir: the hook; *reason: PASS_NO_MATCH, or the DENY_* reason of a block
 * that matched (with *rule_id its id). Returns the verdict and updates
 * *reason and *rule_id.
 */
static __always_inline enum xw_verdict xw_policy(struct xw_pkt *p, enum xw_direction dir,
						 enum xw_reason *reason, __u32 *rule_id)
{
	bool ingress = dir == XW_DIR_INGRESS;
	const struct xw_pol_meta *meta = NULL, *ignored;
	struct xw_pol_rule rule;
	enum xw_verdict verdict = XW_VERDICT_PASS;
	bool matched = false;

	if (*reason >= XW_REASON__FIRST_DROP) {
		/* xw_block_meta only while some block has meta (XW_FEATURE_BLOCK_META) */
		const struct xw_config *cfg = xw_config_get();
		const struct xw_block_meta *bm = NULL;

		if (cfg && (cfg->features & XW_FEATURE_BLOCK_META))
			bm = bpf_map_lookup_elem(&xw_block_meta, rule_id);
		verdict = XW_VERDICT_DROP;
		if (bm && bm->expires_ns && bm->expires_ns <= xw_now()) {
			*reason = XW_REASON_PASS_NO_MATCH; /* expired: on to the rules */
			*rule_id = 0;
			verdict = XW_VERDICT_PASS;
		} else if (bm && (bm->flags & XW_RULE_F_DRY_RUN)) {
			*reason = XW_REASON_WOULD_DROP;
			verdict = XW_VERDICT_PASS;
		}
	}
	if (verdict == XW_VERDICT_DROP || *reason == XW_REASON_WOULD_DROP) {
		/* a block decided */
	} else if ((matched = xw_pol_classify(p, ingress ? XW_POL_INGRESS : XW_POL_EGRESS, &rule, &meta)) &&
		   !(rule.flags & XW_RULE_F_IFACE_DEFAULT)) {
		*rule_id = rule.rule_id;
		p->rule_slot = rule.slot;
		if (rule.action == XW_ACTION_DENY) {
			bool dry = rule.flags & XW_RULE_F_DRY_RUN;

			*reason = dry ? XW_REASON_WOULD_DROP : XW_REASON_DROP_RULE;
			verdict = dry ? XW_VERDICT_PASS : XW_VERDICT_DROP;
		} else if (ingress && rule.action == XW_ACTION_RATELIMIT) { /* ingress only: see model.ts */
			/* under the limit: pass_rule; over: ratelimit (dry run: would_ratelimit) */
			*reason = xw_ratelimit(p, rule.rule_id, rule.flags & XW_RULE_F_DRY_RUN);
			verdict = *reason >= XW_REASON__FIRST_DROP ? XW_VERDICT_DROP : XW_VERDICT_PASS;
		} else {
			*reason = rule.action == XW_ACTION_LOG ? XW_REASON_PASS_LOG : XW_REASON_PASS_RULE;
		}
	} else if (matched ? rule.action == XW_ACTION_DENY : meta && meta->default_action == XW_POL_DROP) {
		/* the interface's own default (a flagged rule matched), else the hook's */
		if (ingress && xw_pol_is_reply(p)) {
			*reason = XW_REASON_PASS_REPLY;
		} else {
			*reason = XW_REASON_DROP_POLICY;
			verdict = XW_VERDICT_DROP;
		}
	}

	if ((verdict == XW_VERDICT_DROP || *reason == XW_REASON_WOULD_DROP ||
	     *reason == XW_REASON_WOULD_RATELIMIT) &&
	    (ingress ? xw_pol_failsafe_may(p) && xw_pol_classify(p, XW_POL_FAILSAFE, &rule, &ignored)
		     : xw_pol_failsafe_egress(p, &rule))) {
		*reason = XW_REASON_PASS_FAILSAFE;
		*rule_id = 0;
		p->rule_slot = 0;
		return XW_VERDICT_PASS;
	}
	if (!ingress && verdict == XW_VERDICT_PASS)
		xw_pol_record_reply(p, meta);
	return verdict;
}

#endif /* XW_POLICY_H */

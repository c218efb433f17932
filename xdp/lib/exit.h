/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one way out of both programs: it counts the packet under its verdict
 * and reason, charges the matching rule, accounts the flow of packets that
 * pass, and turns the verdict into the hook's return code.
 */
#ifndef XW_EXIT_H
#define XW_EXIT_H

#include <linux/pkt_cls.h>

#include "flow.h"
#include "maps.h"
#include "parse.h"

static __always_inline void xw_counter_add(struct xw_counter *ctr, __u32 bytes)
{
	ctr->packets++;
	ctr->bytes += bytes;
}

static __always_inline void xw_stats_count(const struct xw_pkt *p,
					   enum xw_direction dir,
					   enum xw_verdict verdict,
					   enum xw_reason reason)
{
	struct xw_stats_key key = {
		.ifindex = p->ifindex,
		.direction = dir,
		.verdict = verdict,
		.reason = reason,
	};
	struct xw_counter *ctr = bpf_map_lookup_elem(&xw_stats, &key);

	if (!ctr) {
		struct xw_counter first = { .packets = 1, .bytes = p->len };

		if (!bpf_map_update_elem(&xw_stats, &key, &first, BPF_NOEXIST))
			return;
		/* Lost the race to another CPU (or the map is full). */
		ctr = bpf_map_lookup_elem(&xw_stats, &key);
		if (!ctr)
			return;
	}
	xw_counter_add(ctr, p->len);
}

/* The control plane owns the entries; a rule without one is not counted. */
static __always_inline void xw_rule_count(const struct xw_rule_value *rule,
					  __u32 bytes)
{
	__u32 rule_id = rule->rule_id;
	struct xw_counter *ctr = bpf_map_lookup_elem(&xw_rule_stats, &rule_id);

	if (ctr)
		xw_counter_add(ctr, bytes);
}

/*
 * Only packets that were parsed as IP and allowed through own a flow:
 * denied ones must not let a spoofed flood churn the table, and malformed
 * or non-IP ones have no well-defined flow key.
 */
static __always_inline bool xw_reason_has_flow(enum xw_reason reason)
{
	return reason == XW_REASON_PASS_NO_MATCH || reason == XW_REASON_PASS_ALLOW;
}

static __always_inline int xw_hook_action(enum xw_direction dir,
					  enum xw_verdict verdict)
{
	if (dir == XW_DIR_INGRESS)
		return verdict == XW_VERDICT_DROP ? XDP_DROP : XDP_PASS;
	return verdict == XW_VERDICT_DROP ? TC_ACT_SHOT : TC_ACT_OK;
}

/*
 * dir: the hook's direction, a constant; rule: the rule that decided the
 * verdict, or NULL.
 */
static __always_inline int xw_exit(const struct xw_pkt *p,
				   enum xw_direction dir,
				   enum xw_verdict verdict,
				   enum xw_reason reason,
				   const struct xw_rule_value *rule)
{
	xw_stats_count(p, dir, verdict, reason);
	if (rule)
		xw_rule_count(rule, p->len);
	if (verdict == XW_VERDICT_PASS && xw_reason_has_flow(reason))
		xw_flow_account(p, dir);
	return xw_hook_action(dir, verdict);
}

#endif /* XW_EXIT_H */

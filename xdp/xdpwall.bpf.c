// SPDX-License-Identifier: GPL-2.0-only
/*
 * xdpwall data plane: XDP on receive, TC clsact on transmit.
 *
 *   ingress  parse -> deny lookups (IPv4: host hash, DIR-24-8; IPv6: host
 *            hash, hash per prefix length) -> policy -> flow (passed
 *            packets only) -> exit
 *   egress   parse -> policy (egress rules, default) -> exit
 *
 * Both families are decided before the flow table: IPv4's two array reads
 * and a hash probe, IPv6's few hash probes (one per prefix length that can
 * match) cost less than the flow lookup that would cache them, and a packet
 * that a block, a rule or a rate limit drops never touches the flow table.
 *
 * The policy stage (lib/policy.h) applies rules, the default policy and the
 * failsafe list. Verdicts: on ingress a malformed packet drops under its own
 * reason. On egress only the policy drops (TC_ACT_SHOT): a malformed packet
 * is counted with verdict PASS
 * and its malformed reason, so the same xw_stats reasons describe both
 * directions and a "PASS + MALFORMED_*" key means "seen, not filtered".
 * Non-IP frames always pass (PASS_NON_IP). Only passed IP packets have a
 * flow entry.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdpwall_abi.h"
#include "parse.h"
#include "cidr.h"
#include "exit.h"
#include "policy.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * Anchors the ABI enums in the object's BTF (nothing else refers to the
 * types, only to their values) and records the ABI version, so user space
 * and test/abi.test.ts can check the object they load. Plain const, not
 * const volatile: this is a fact about the build, not load-time config.
 */
const struct {
	__u32 version;
	enum xw_direction direction;
	enum xw_verdict verdict;
	enum xw_reason reason;
	enum xw_action action;
	enum xw_rule_flags rule_flags;
	enum xw_cache cache;
	enum xw_pol_table pol_table;
	enum xw_pol_field pol_field;
	enum xw_pol_default pol_default;
	enum xw_pol_flags pol_flags;
	enum xw_feature feature;
	enum xw_event_stat event_stat;
	enum xw_event_flags event_flags;
	enum xw_rl_per rl_per;
	enum xw_v6_flags v6_flags;
	enum xw_v6_net_flags v6_net_flags;
	struct xw_stats_key stats_key;
	struct xw_event event;
	struct xw_event_cfg event_cfg;
	struct xw_rl_report rl_report; /* a ring buffer's record: no map names its type */
	struct xw_rl_key_v4 rl_key_v4; /* a slot's key, read as a u64 */
} xw_abi = { .version = XW_ABI_VERSION };

/*
 * Egress only: how much of a non-linear skb to make linear when its headers
 * did not fit the linear part. Enough for two VLAN tags, IPv6 with several
 * extension headers and TCP with options; headers beyond it count as
 * truncated.
 */
#define XW_TC_PULL_LEN 256

SEC("xdp")
int xw_ingress(struct xdp_md *ctx)
{
	struct xw_pkt *p = xw_pkt_begin(ctx->ingress_ifindex,
					bpf_xdp_get_buff_len(ctx));
	struct xw_flow_value *flow = NULL;
	__u32 rule_id = 0;
	struct xw_cursor c;
	enum xw_reason reason;

	if (!p)
		return XDP_PASS;
	xw_cursor_init(&c, (void *)(long)ctx->data, (void *)(long)ctx->data_end,
		       p->len, false);
	reason = xw_parse(&c, p);
	if (reason == XW_REASON_PASS_NO_MATCH) {
		/* Which lookups are configured: see struct xw_config. */
		const struct xw_config *cfg = xw_config_get();
		enum xw_verdict verdict;

		if (!cfg) /* never */
			return XDP_PASS;
		rule_id = xw_cidr_deny(p, cfg, &reason);
		verdict = xw_policy(p, XW_DIR_INGRESS, &reason, &rule_id);
		/* Only a packet that passes is accounted: a drop never pays for the flow. */
		if (verdict == XW_VERDICT_PASS && xw_reason_has_flow(reason))
			flow = xw_flow_find(p, XW_DIR_INGRESS);
		return xw_exit(ctx, p, XW_DIR_INGRESS, verdict, reason, rule_id, flow);
	}

	return xw_exit(ctx, p, XW_DIR_INGRESS,
		       reason >= XW_REASON__FIRST_DROP ? XW_VERDICT_DROP
						       : XW_VERDICT_PASS,
		       reason, rule_id, flow);
}

/*
 * A global (not inlined) function: the verifier checks it once on its own,
 * however many times and from whatever states egress calls it.
 */
__noinline int xw_parse_skb(struct __sk_buff *skb, struct xw_pkt *p)
{
	struct xw_cursor c;

	if (!p) /* never: callers pass their scratch slot; the verifier asks */
		return XW_REASON_MALFORMED_L2;
	xw_cursor_init(&c, (void *)(long)skb->data, (void *)(long)skb->data_end,
		       skb->len, skb->gso_size != 0);
	return xw_parse(&c, p);
}

SEC("tc")
int xw_egress(struct __sk_buff *skb)
{
	__u32 pull = skb->len < XW_TC_PULL_LEN ? skb->len : XW_TC_PULL_LEN;
	struct xw_pkt *p = xw_pkt_begin(skb->ifindex, skb->len);
	struct xw_flow_value *flow = NULL;
	enum xw_reason reason;

	if (!p)
		return TC_ACT_OK;
	reason = xw_parse_skb(skb, p);
	/*
	 * The stack builds headers in the linear part, so this is rare. Pulling
	 * up front instead would copy every cloned skb (all of TCP's) whose
	 * payload sits in fragments.
	 */
	if (reason >= XW_REASON__FIRST_DROP &&
	    (long)skb->data + pull > (long)skb->data_end &&
	    !bpf_skb_pull_data(skb, pull)) {
		p = xw_pkt_begin(skb->ifindex, skb->len);
		if (!p)
			return TC_ACT_OK;
		reason = xw_parse_skb(skb, p);
	}

	if (reason == XW_REASON_PASS_NO_MATCH) {
		__u32 rule_id = 0;
		enum xw_verdict verdict = xw_policy(p, XW_DIR_EGRESS, &reason, &rule_id);

		if (xw_reason_has_flow(reason))
			flow = xw_flow_find(p, XW_DIR_EGRESS);
		return xw_exit(skb, p, XW_DIR_EGRESS, verdict, reason, rule_id, flow);
	}

	return xw_exit(skb, p, XW_DIR_EGRESS, XW_VERDICT_PASS, reason, 0, flow);
}

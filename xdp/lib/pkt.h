/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The working state of the packet being processed, from the hook to the exit.
 *
 * It lives in a one-slot per-CPU array rather than on the stack, for the
 * verifier's sake: on the stack, every parse path leaves its own mix of
 * zeroed, constant and packet-loaded bytes in this struct, states after the
 * parser stop matching, and everything downstream is verified once per parse
 * path (about 5x the instructions here, and growing with every feature after
 * the parser). Map memory reads back as plain unknown scalars, so the paths
 * converge. The lookup is inlined by the verifier; the cost is a pointer
 * computation.
 */
#ifndef XW_PKT_H
#define XW_PKT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "xdpwall_abi.h"

struct xw_pkt {
	/* set by the entry point */
	__u32 ifindex;
	__u32 len;       /* frame bytes as seen by the hook */
	/* set by the parser, packet order (not flow order) */
	__u8 family;     /* 0 until an IP header parsed, then 4 or 6 */
	__u8 proto;      /* IPPROTO_* of the upper layer */
	__u8 tcp_flags;
	__u8 pad;
	__be16 sport;    /* or htons(ICMP type); 0 when not parsed */
	__be16 dport;    /* or htons(ICMP code) */
	__u8 saddr[16];  /* IPv4 as IPv4-mapped IPv6 */
	__u8 daddr[16];
	/* for the policy stage (policy.h) */
	__u16 vlan;      /* innermost VLAN id, valid with XW_PKT_VLAN */
	__u8 icmp_type;  /* valid with XW_PKT_L4 for ICMP and ICMPv6 */
	__u8 icmp_code;
	__u8 flags;      /* enum xw_pkt_flags */
	__u8 pad2;
	/* set by the policy stage: the deciding rule's slot (xw_pol_rule.slot), 0 if none */
	__u16 rule_slot;
};

enum xw_pkt_flags {
	XW_PKT_L4   = 1u << 0, /* the upper-layer header was parsed (not a non-first fragment) */
	XW_PKT_VLAN = 1u << 1, /* the frame carried a VLAN tag */
};

/* A TCP or UDP packet whose ports were parsed (sport and dport are valid). */
static __always_inline bool xw_pkt_has_ports(const struct xw_pkt *p)
{
	return (p->flags & XW_PKT_L4) && (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP);
}

/*
 * Internal, not part of the ABI: user space never reads it. No pinning
 * attribute: it holds nothing between packets, and its layout may change
 * from one build to the next, so it must not be reused across loads.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xw_pkt);
} xw_pkt_scratch SEC(".maps");

/*
 * This CPU's packet state, cleared and stamped with where the packet was
 * seen. NULL never happens (slot 0 of a one-slot array) but the verifier
 * needs the check. The direction is not stored: it is a property of the
 * hook, passed as a constant so direction-indexed accesses compile to fixed
 * offsets.
 */
static __always_inline struct xw_pkt *xw_pkt_begin(__u32 ifindex, __u32 len)
{
	__u32 slot = 0;
	struct xw_pkt *p = bpf_map_lookup_elem(&xw_pkt_scratch, &slot);

	if (!p)
		return NULL;
	__builtin_memset(p, 0, sizeof(*p));
	p->ifindex = ifindex;
	p->len = len;
	return p;
}

#endif /* XW_PKT_H */

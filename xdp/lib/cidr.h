/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Source and destination prefix lookups: the host-route hash, then the
 * DIR-24 table (IPv4) or the LPM trie (see xdpwall_abi.h for the layout).
 */
#ifndef XW_CIDR_H
#define XW_CIDR_H

#include "maps.h"
#include "parse.h"

/* The rule id of a matching rule if it denies, else 0 (no match, or an allow). */
static __always_inline __u32 xw_denying(const struct xw_rule_value *rule)
{
	return rule && rule->action == XW_ACTION_DENY ? rule->rule_id : 0;
}

/*
 * IPv4: the host hash, then the DIR-24 slot of the address's /24, and the
 * trie only when the slot says a /25../31 prefix lies in that /24 (the
 * trie's match, if any, is then longer than the slot's).
 */
static __always_inline __u32 xw_deny_v4(void *hosts, void *dir24, void *trie,
					const __u8 addr[16])
{
	struct xw_lpm_v4_key key = {
		.prefixlen = 32,
		.addr = xw_addr_v4(addr),
	};
	struct xw_rule_value *rule = bpf_map_lookup_elem(hosts, &key.addr);
	__u32 index = bpf_ntohl(key.addr) >> 8;
	__u32 *slot;

	if (rule)
		return xw_denying(rule);
	slot = bpf_map_lookup_elem(dir24, &index);
	if (!slot) /* never: the table has a slot for every /24 */
		return 0;
	if (*slot & XW_DIR24_DEEPER) {
		rule = bpf_map_lookup_elem(trie, &key);
		if (rule)
			return xw_denying(rule);
	}
	return *slot & XW_DIR24_ALLOW ? 0 : *slot & XW_DIR24_RULE_MASK;
}

/* IPv6: the host hash, then the trie. */
static __always_inline __u32 xw_deny_v6(void *hosts, void *trie, const __u8 addr[16])
{
	struct xw_lpm_v6_key key = { .prefixlen = 128 };
	struct xw_rule_value *rule;

	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	rule = bpf_map_lookup_elem(hosts, key.addr);
	return xw_denying(rule ? rule : bpf_map_lookup_elem(trie, &key));
}

/* The id of the deny rule that is the most specific match of the source (src) or destination address, or 0. */
static __always_inline __u32 xw_cidr_lookup(const struct xw_pkt *p, bool src)
{
	const __u8 *addr = src ? p->saddr : p->daddr;

	if (p->family == 4)
		return src ? xw_deny_v4(&xw_src_host_v4, &xw_src_dir24, &xw_src_v4, addr)
			   : xw_deny_v4(&xw_dst_host_v4, &xw_dst_dir24, &xw_dst_v4, addr);
	return src ? xw_deny_v6(&xw_src_host_v6, &xw_src_v6, addr)
		   : xw_deny_v6(&xw_dst_host_v6, &xw_dst_v6, addr);
}

/*
 * Deny-list check of a parsed IP packet: source first, then destination.
 * Returns the id of the deny rule that matched and sets *reason, or 0. A
 * more specific allow rule inside a deny prefix wins, as every lookup
 * returns only the longest match: that is how exceptions are expressed.
 */
static __always_inline __u32 xw_cidr_deny(const struct xw_pkt *p, enum xw_reason *reason)
{
	__u32 rule_id = xw_cidr_lookup(p, true);

	if (rule_id) {
		*reason = XW_REASON_DENY_SRC_CIDR;
		return rule_id;
	}
	rule_id = xw_cidr_lookup(p, false);
	if (rule_id)
		*reason = XW_REASON_DENY_DST_CIDR;
	return rule_id;
}

#endif /* XW_CIDR_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Source and destination prefix lookups: the host-route hash, then the LPM
 * trie (see struct xw_host_v6_key for why two structures).
 */
#ifndef XW_CIDR_H
#define XW_CIDR_H

#include "maps.h"
#include "parse.h"

static __always_inline struct xw_rule_value *xw_lookup_v4(void *hosts, void *trie,
							  const __u8 addr[16])
{
	struct xw_lpm_v4_key key = {
		.prefixlen = 32,
		.addr = xw_addr_v4(addr),
	};
	struct xw_rule_value *rule = bpf_map_lookup_elem(hosts, &key.addr);

	return rule ? rule : bpf_map_lookup_elem(trie, &key);
}

static __always_inline struct xw_rule_value *xw_lookup_v6(void *hosts, void *trie,
							  const __u8 addr[16])
{
	struct xw_lpm_v6_key key = { .prefixlen = 128 };
	struct xw_rule_value *rule;

	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	rule = bpf_map_lookup_elem(hosts, key.addr);
	return rule ? rule : bpf_map_lookup_elem(trie, &key);
}

/* The most specific rule covering the source (src) or destination address. */
static __always_inline struct xw_rule_value *xw_cidr_lookup(const struct xw_pkt *p, bool src)
{
	const __u8 *addr = src ? p->saddr : p->daddr;

	if (p->family == 4)
		return src ? xw_lookup_v4(&xw_src_host_v4, &xw_src_v4, addr)
			   : xw_lookup_v4(&xw_dst_host_v4, &xw_dst_v4, addr);
	return src ? xw_lookup_v6(&xw_src_host_v6, &xw_src_v6, addr)
		   : xw_lookup_v6(&xw_dst_host_v6, &xw_dst_v6, addr);
}

static __always_inline bool xw_rule_denies(const struct xw_rule_value *rule)
{
	return rule && rule->action == XW_ACTION_DENY;
}

/*
 * Deny-list check of a parsed IP packet: source first, then destination.
 * Returns the matching deny rule and sets *reason, or NULL. A more specific
 * allow entry inside a deny prefix wins, as the trie returns only the
 * longest match: that is how exceptions are expressed.
 */
static __always_inline const struct xw_rule_value *
xw_cidr_deny(const struct xw_pkt *p, enum xw_reason *reason)
{
	struct xw_rule_value *rule;

	rule = xw_cidr_lookup(p, true);
	if (xw_rule_denies(rule)) {
		*reason = XW_REASON_DENY_SRC_CIDR;
		return rule;
	}
	rule = xw_cidr_lookup(p, false);
	if (xw_rule_denies(rule)) {
		*reason = XW_REASON_DENY_DST_CIDR;
		return rule;
	}
	return NULL;
}

#endif /* XW_CIDR_H */

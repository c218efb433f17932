/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Source and destination prefix lookups: the host-route hash, then the
 * DIR-24-8 table (IPv4) or the LPM trie (see xdpwall_abi.h for the layout).
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

/* A DIR-24-8 slot pair element: the u32 slot `index` holds (low half = even). */
static __always_inline __u32 xw_dir24_slot(void *table, __u32 index)
{
	__u32 pair = index >> 1;
	__u64 *two = bpf_map_lookup_elem(table, &pair);

	if (!two) /* never for the first level; a block beyond the map is a bug */
		return 0;
	return index & 1 ? (__u32)(*two >> 32) : (__u32)*two;
}

/*
 * IPv4: the host hash, then the DIR-24 slot of the address's /24, then the
 * address's slot in the /24's second-level block if it has one (a /24 left
 * without a block when they ran out asks the trie instead). A slot without
 * a rule falls to the /0 rule in xw_config. No IPv4 lookup walks the trie
 * unless the blocks ran out.
 */
static __always_inline __u32 xw_deny_v4(void *hosts, void *dir24, void *l2, void *trie,
					__u32 v4_default, const __u8 addr[16])
{
	struct xw_lpm_v4_key key = {
		.prefixlen = 32,
		.addr = xw_addr_v4(addr),
	};
	struct xw_rule_value *rule = bpf_map_lookup_elem(hosts, &key.addr);
	__u32 host = bpf_ntohl(key.addr);
	__u32 slot;

	if (rule)
		return xw_denying(rule);
	slot = xw_dir24_slot(dir24, host >> 8);
	if (slot & XW_DIR24_BLOCK) {
		slot = xw_dir24_slot(l2, (slot & XW_DIR24_RULE_MASK) * 256 + (host & 0xff));
	} else if (slot & XW_DIR24_DEEPER) {
		rule = bpf_map_lookup_elem(trie, &key);
		if (rule)
			return xw_denying(rule);
	}
	if (!(slot & XW_DIR24_RULE_MASK))
		slot = v4_default;
	return slot & XW_DIR24_ALLOW ? 0 : slot & XW_DIR24_RULE_MASK;
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
static __always_inline __u32 xw_cidr_lookup(const struct xw_pkt *p,
					    const struct xw_config *cfg, bool src)
{
	const __u8 *addr = src ? p->saddr : p->daddr;

	if (p->family == 4)
		return src ? xw_deny_v4(&xw_src_host_v4, &xw_src_dir24, &xw_src_dir24_l2, &xw_src_v4,
					cfg->v4_default[0], addr)
			   : xw_deny_v4(&xw_dst_host_v4, &xw_dst_dir24, &xw_dst_dir24_l2, &xw_dst_v4,
					cfg->v4_default[1], addr);
	return src ? xw_deny_v6(&xw_src_host_v6, &xw_src_v6, addr)
		   : xw_deny_v6(&xw_dst_host_v6, &xw_dst_v6, addr);
}

/*
 * Deny-list check of a parsed IP packet: source first, then destination.
 * Returns the id of the deny rule that matched and sets *reason, or 0. A
 * more specific allow rule inside a deny prefix wins, as every lookup
 * returns only the longest match: that is how exceptions are expressed.
 */
static __always_inline __u32 xw_cidr_deny(const struct xw_pkt *p,
					  const struct xw_config *cfg,
					  enum xw_reason *reason)
{
	__u32 rule_id = xw_cidr_lookup(p, cfg, true);

	if (rule_id) {
		*reason = XW_REASON_DENY_SRC_CIDR;
		return rule_id;
	}
	rule_id = xw_cidr_lookup(p, cfg, false);
	if (rule_id)
		*reason = XW_REASON_DENY_DST_CIDR;
	return rule_id;
}

#endif /* XW_CIDR_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Source and destination prefix lookups: the host-route hash, then the
 * DIR-24-8 table (IPv4) or the hash per prefix length (IPv6), with the LPM
 * tries as their fallback (see xdpwall_abi.h for the layouts).
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

/* Whether the side's filter has the bit of `hash`: false means the entry does not exist. */
static __always_inline bool xw_v6_maybe(__u32 side, __u32 hash)
{
	__u32 bit = hash >> (32 - XW_V6_FILTER_BITS);
	__u32 index = side * XW_V6_FILTER_WORDS + (bit >> 6);
	const __u64 *word = bpf_map_lookup_elem(&xw_v6_filter, &index);

	return word && ((*word >> (bit & 63)) & 1);
}

/* The filter hash of an IPv4 host route (host order; see "IPv6 prefixes by length" in the ABI). */
static __always_inline __u32 xw_v4_hash_host(__u32 host)
{
	return (host ^ (host >> 16)) * 0x7feb352du;
}

/*
 * IPv4: the host hash, then the DIR-24 slot of the address's /24, then the
 * address's slot in the /24's second-level block if it has one (a /24 left
 * without a block when they ran out asks the trie instead). A slot without
 * a rule falls to the /0 rule in xw_config. No IPv4 lookup walks the trie
 * unless the blocks ran out. With `filtered` (XW_FEATURE_V4_HOST_FILTER)
 * the host hash is probed only when the side's filter bit of the address
 * is set.
 */
static __always_inline __u32 xw_deny_v4(void *hosts, void *dir24, void *l2, void *trie,
					__u32 v4_default, const __u8 addr[16],
					__u32 side, bool filtered)
{
	struct xw_lpm_v4_key key = {
		.prefixlen = 32,
		.addr = xw_addr_v4(addr),
	};
	struct xw_rule_value *rule;
	__u32 host = bpf_ntohl(key.addr);
	__u32 slot;

	if (!filtered || xw_v6_maybe(side, xw_v4_hash_host(host))) {
		rule = bpf_map_lookup_elem(hosts, &key.addr);
		if (rule)
			return xw_denying(rule);
	}
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

/* The flat-table key of the address's first len (0..64) bits; hi is the address's first half in host order. */
static __always_inline void xw_v6_key_short(struct xw_lpm_v6_key *key, __u64 hi, __u32 len)
{
	__u64 h = len ? bpf_cpu_to_be64(hi & (~0ull << ((64 - len) & 63))) : 0;

	key->prefixlen = len;
	__builtin_memcpy(key->addr, &h, 8);
	__builtin_memset(key->addr + 8, 0, 8);
}

/* Filter hashes (see "IPv6 prefixes by length" in xdpwall_abi.h). */
static __always_inline __u32 xw_v6_hash_net(__u64 hi)
{
	return ((__u32)(hi >> 32) ^ (__u32)hi * 0x85ebca6bu) * 0x9e3779b1u;
}

static __always_inline __u32 xw_v6_hash_host(__u64 hi, __u64 lo)
{
	__u32 cd = ((__u32)(lo >> 32) ^ (__u32)lo * 0xc2b2ae35u) * 0x27d4eb2fu;

	return ((__u32)(hi >> 32) ^ ((__u32)hi ^ cd) * 0x85ebca6bu) * 0x9e3779b1u;
}

/*
 * An IPv6 address's prefix lookup (hi, lo: its halves in host order) in the
 * source (side 0) or destination (1) tables: the deny rule id of the
 * longest match, 0 if none or an allow. The host hash, then the flat
 * tables (see "IPv6 prefixes by length" in xdpwall_abi.h): the address's
 * /64 and the lengths inside it, then the lengths below /64, each longest
 * first; the filter skips host and /64 probes that cannot hit. The trie
 * answers where the flat tables say so (too many lengths) or are not filled.
 * Inlined into one global function per side (below), so every map is a
 * constant there: the verifier inlines each hash lookup instead of calling
 * through the map's ops (a map chosen at run time would cost an indirect
 * call per probe).
 */
static __always_inline __u32 xw_lookup_v6(__u64 hi, __u64 lo, __u32 side, void *hosts, void *nets,
					  void *flat, void *trie)
{
	const struct xw_v6_lengths *lens = bpf_map_lookup_elem(&xw_v6_lengths, &side);
	bool filled = lens && (lens->flags & XW_V6_FLAT);
	const struct xw_rule_value *rule;
	struct xw_lpm_v6_key key;
	__u64 h = bpf_cpu_to_be64(hi), l = bpf_cpu_to_be64(lo);
	__u32 i;

	__builtin_memcpy(key.addr, &h, 8);
	__builtin_memcpy(key.addr + 8, &l, 8);
	if (!filled || xw_v6_maybe(side, xw_v6_hash_host(hi, lo))) {
		rule = bpf_map_lookup_elem(hosts, key.addr);
		if (rule)
			return xw_denying(rule);
	}
	if (!filled)
		goto trie;
	if ((lens->flags & XW_V6_HAS64) && xw_v6_maybe(side, xw_v6_hash_net(hi))) {
		const struct xw_v6_net *net = bpf_map_lookup_elem(nets, &h);

		if (net) {
			struct xw_rule_value own = net->rule;
			__u32 flags = net->flags;

			if (flags & XW_V6_DEEPER)
				goto trie;
			if (flags & XW_V6_LISTED) {
				__u8 longer[XW_V6_PROBES];

				/* A copy: read after lookups into another map. */
				__builtin_memcpy(longer, net->longer, sizeof(longer));
				xw_v6_key_short(&key, hi, 64);
				for (i = 0; i < XW_V6_PROBES; i++) {
					__u32 len = longer[i];
					__u64 cut;

					if (len <= 64)
						break;
					cut = bpf_cpu_to_be64(lo & (~0ull << ((128 - len) & 63)));
					key.prefixlen = len;
					__builtin_memcpy(key.addr + 8, &cut, 8);
					rule = bpf_map_lookup_elem(flat, &key);
					if (rule)
						return xw_denying(rule);
				}
			} else {
				for (i = 0; i < XW_V6_PROBES; i++) {
					const struct xw_v6_sub *sub = &net->sub[i];

					if (i >= net->count)
						break;
					if ((lo & (~0ull << ((128 - sub->len) & 63))) == sub->low)
						return sub->action == XW_ACTION_DENY ? sub->rule_id : 0;
				}
			}
			if (own.rule_id)
				return xw_denying(&own);
		}
	}
	if (lens->flags & XW_V6_SHORT_TRIE)
		goto trie;
	for (i = 0; i < XW_V6_PROBES; i++) {
		if (i >= lens->count)
			return 0;
		xw_v6_key_short(&key, hi, lens->shorter[i] & 63);
		rule = bpf_map_lookup_elem(flat, &key);
		if (rule)
			return xw_denying(rule);
	}
	if (lens->count <= XW_V6_PROBES)
		return 0;
trie:
	key.prefixlen = 128;
	__builtin_memcpy(key.addr, &h, 8);
	__builtin_memcpy(key.addr + 8, &l, 8);
	return xw_denying(bpf_map_lookup_elem(trie, &key));
}

/*
 * Global functions: the verifier checks each once, with the lengths read
 * from maps as unknowns, however often ingress calls them.
 */
__noinline __u32 xw_lookup_v6_src(__u64 hi, __u64 lo)
{
	return xw_lookup_v6(hi, lo, 0, &xw_src_host_v6, &xw_src_v6_net, &xw_src_v6_len, &xw_src_v6);
}

__noinline __u32 xw_lookup_v6_dst(__u64 hi, __u64 lo)
{
	return xw_lookup_v6(hi, lo, 1, &xw_dst_host_v6, &xw_dst_v6_net, &xw_dst_v6_len, &xw_dst_v6);
}

static __always_inline __u32 xw_deny_v6(__u32 side, const __u8 addr[16])
{
	__u64 hi, lo;

	__builtin_memcpy(&hi, addr, 8);
	__builtin_memcpy(&lo, addr + 8, 8);
	hi = bpf_be64_to_cpu(hi);
	lo = bpf_be64_to_cpu(lo);
	return side ? xw_lookup_v6_dst(hi, lo) : xw_lookup_v6_src(hi, lo);
}

/* The id of the deny rule that is the most specific match of the source (src) or destination address, or 0. */
static __always_inline __u32 xw_cidr_lookup(const struct xw_pkt *p,
					    const struct xw_config *cfg, bool src)
{
	const __u8 *addr = src ? p->saddr : p->daddr;
	__u32 feature = p->family == 4 ? (src ? XW_FEATURE_SRC_V4 : XW_FEATURE_DST_V4)
				       : (src ? XW_FEATURE_SRC_V6 : XW_FEATURE_DST_V6);

	if (!(cfg->features & feature)) /* no rules of this kind: nothing to ask */
		return 0;
	if (p->family == 4) {
		bool filtered = cfg->features & XW_FEATURE_V4_HOST_FILTER;

		return src ? xw_deny_v4(&xw_src_host_v4, &xw_src_dir24, &xw_src_dir24_l2, &xw_src_v4,
					cfg->v4_default[0], addr, 0, filtered)
			   : xw_deny_v4(&xw_dst_host_v4, &xw_dst_dir24, &xw_dst_dir24_l2, &xw_dst_v4,
					cfg->v4_default[1], addr, 1, filtered);
	}
	return xw_deny_v6(src ? 0 : 1, addr);
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

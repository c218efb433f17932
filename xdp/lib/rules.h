/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Rule classification without walking rules (bpf-iptables' bit vectors):
 * one lookup per field the table's rules constrain, each yielding the
 * bitmap of the rules that field lets through; their AND's lowest set bit
 * is the first matching rule in priority order. A table of rules on
 * protocol and destination port only answers a TCP/UDP packet from one
 * element per port interval instead (XW_POL_F_PORT_FIRST). See
 * xdpwall_abi.h ("policy") for the tables and their double buffering; the
 * TypeScript reference of the same order is src/policy/reference.ts.
 */
#ifndef XW_RULES_H
#define XW_RULES_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdpwall_abi.h"
#include "parse.h"

/* The policy's pinned arrays: every index a u32 (see "policy" in the ABI). */
#define XW_POL_ARRAY(_name, _value, _entries)                   \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_ARRAY);               \
		__uint(max_entries, _entries);                  \
		__uint(pinning, LIBBPF_PIN_BY_NAME);            \
		__type(key, __u32);                             \
		__type(value, _value);                          \
	} _name SEC(".maps")

XW_POL_ARRAY(xw_pol_active, __u32, XW_POL_TABLES);
XW_POL_ARRAY(xw_pol_meta, struct xw_pol_meta, XW_POL_TABLES * 2);
XW_POL_ARRAY(xw_pol_rules, struct xw_pol_rule, XW_POL_TABLES * 2 * XW_POL_MAX_RULES);

/* Protocol, all-ones and destination-port bitmaps: see XW_POL_BM_PER_BUF. */
XW_POL_ARRAY(xw_pol_bm, struct xw_pol_bitmap, XW_POL_TABLES * 2 * XW_POL_BM_PER_BUF);

/* Memory follows the distinct values rules name, not the capacity. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1u << 17);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct xw_pol_bitmap_key);
	__type(value, struct xw_pol_bitmap);
} xw_pol_bitmaps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, XW_POL_TABLES * 2 * XW_POL_MAX_ADDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct xw_pol_addr_key);
	__type(value, __u32); /* xw_pol_bitmap_key.value of the prefix's bitmap */
} xw_pol_addrs SEC(".maps");

XW_POL_ARRAY(xw_pol_ports, struct xw_pol_port_slot, XW_POL_TABLES * 2 * 2 * XW_POL_PORT_SLOTS);
XW_POL_ARRAY(xw_pol_port_first, struct xw_pol_port_first, XW_POL_TABLES * 2 * XW_POL_PORT_BITMAPS);

/* Only its update matters: the kernel waits for running programs (see the ABI). */
struct xw_pol_sync_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} xw_pol_sync_inner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__array(values, struct xw_pol_sync_inner);
} xw_pol_sync SEC(".maps") = {
	.values = { [0] = &xw_pol_sync_inner },
};

/* Fields whose bitmaps are in xw_pol_bitmaps (the others: xw_pol_bm). */
#define XW_POL_HASH_FIELDS (~((1u << XW_FIELD_PROTO) | (1u << XW_FIELD_DPORT)) & ((1u << XW_FIELD__MAX) - 1))

/* Index of the lowest set bit of x (x != 0), branch-free: de Bruijn. */
static const __u8 xw_debruijn64[64] = {
	 0,  1, 48,  2, 57, 49, 28,  3, 61, 58, 50, 42, 38, 29, 17,  4,
	62, 55, 59, 36, 53, 51, 43, 22, 45, 39, 33, 30, 24, 18, 12,  5,
	63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52, 21, 44, 32, 23, 11,
	46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19,  9, 13,  8,  7,  6,
};

static __always_inline __u32 xw_lowest_bit(__u64 x)
{
	return xw_debruijn64[((x & -x) * 0x03f79d71b4cb0a89ULL) >> 58];
}

/* The coarse clock rule expiry is checked against; tests may replace it. */
#ifndef xw_now
static __always_inline __u64 xw_now(void)
{
	return bpf_ktime_get_coarse_ns();
}
#endif

/* The bitmap of one hash-looked-up field: its value's entry, else the wildcard's, else NULL (no rule passes). */
static __always_inline const struct xw_pol_bitmap *
xw_pol_field(__u32 table, __u32 buf, __u32 field, __u32 value, bool has_value)
{
	struct xw_pol_bitmap_key key = { .table = table, .buf = buf, .field = field, .value = value };
	const struct xw_pol_bitmap *bm = NULL;

	if (has_value)
		bm = bpf_map_lookup_elem(&xw_pol_bitmaps, &key);
	if (!bm) {
		key.value = XW_POL_WILDCARD;
		bm = bpf_map_lookup_elem(&xw_pol_bitmaps, &key);
	}
	return bm;
}

static __always_inline const struct xw_pol_bitmap *
xw_pol_addr(__u32 table, __u32 buf, __u32 field, const struct xw_pkt *p)
{
	struct xw_pol_addr_key key = { .table = table, .buf = buf, .field = field, .family = p->family };
	const __u8 *addr = field == XW_FIELD_SRC ? p->saddr : p->daddr;
	const __u32 *index;

	if (p->family == 4) {
		key.prefixlen = 32 + 32;
		__builtin_memcpy(key.addr, addr + 12, 4);
	} else {
		key.prefixlen = 32 + 128;
		__builtin_memcpy(key.addr, addr, 16);
	}
	index = bpf_map_lookup_elem(&xw_pol_addrs, &key);
	return xw_pol_field(table, buf, field, index ? *index : 0, index != NULL);
}

/* The interval index of a port (0: none, the wildcard). */
static __always_inline __u32 xw_pol_port(__u32 table, __u32 buf, bool dst, __be16 port)
{
	__u32 host = bpf_ntohs(port);
	__u32 index = ((table * 2 + buf) * 2 + dst) * XW_POL_PORT_SLOTS + host / 4;
	const struct xw_pol_port_slot *slot = bpf_map_lookup_elem(&xw_pol_ports, &index);

	return slot ? slot->interval[host & 3] : 0;
}

/*
 * Bitmaps of every field, in a fixed order; a field no rule constrains
 * gets the buffer's all-ones bitmap (key field XW_FIELD__MAX), or a
 * bitmap of another field already in the AND (the same result). Pointers
 * are into xw_pol_bitmaps, or the protocol and port arrays for those two
 * fields. Returns false when some field
 * lets no rule through, or as soon as the fields looked up so far share
 * no rule (their words for a table of <= 64 rules, else their word
 * summaries): the remaining lookups (the address tries last, the dearest)
 * are not asked for.
 */
struct xw_pol_fields {
	const struct xw_pol_bitmap *bm[XW_FIELD__MAX];
};

static __always_inline bool xw_pol_lookup(const struct xw_pkt *p, __u32 table, __u32 buf,
					  __u32 fields, bool one_word, __u32 dport_interval,
					  struct xw_pol_fields *out)
{
	struct xw_pol_bitmap_key all = { .table = table, .buf = buf, .field = XW_FIELD__MAX };
	bool l4 = p->flags & XW_PKT_L4;
	bool ports = xw_pkt_has_ports(p);
	bool icmp = l4 && (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6);
	const struct xw_pol_bitmap *ones, *hones, *proto = NULL, *dport = NULL;
	__u32 base = (table * 2 + buf) * XW_POL_BM_PER_BUF;
	__u64 summary = ~0ULL;
	__u32 interval, index;

#define XW_NARROW(_bm)                                                        \
	do {                                                                  \
		summary &= one_word ? (_bm)->words[0] : (_bm)->summary;       \
		if (!summary)                                                 \
			return false;                                         \
	} while (0)
	/*
	 * Protocol and destination port first, before the all-ones bitmap: a
	 * packet they rule out (most drops' failsafe check) asks for nothing
	 * else. Two optional pointers keep the verifier's states few.
	 */
	if (fields & (1u << XW_FIELD_PROTO)) {
		index = base + p->proto;
		proto = bpf_map_lookup_elem(&xw_pol_bm, &index);
		if (!proto)
			return false;
		XW_NARROW(proto);
	}
	if (fields & (1u << XW_FIELD_DPORT)) {
		index = base + XW_POL_BM_DPORT + dport_interval;
		dport = bpf_map_lookup_elem(&xw_pol_bm, &index);
		if (!dport)
			return false;
		XW_NARROW(dport);
	}
	/*
	 * What an unconstrained field stands for: any bitmap already in the
	 * AND does (x & x = x), so the all-ones one is asked for only when
	 * neither protocol nor port is constrained. The verifier prunes only
	 * states whose pointers are into the same map: the fields of the hash
	 * stand for themselves with the hash's all-ones bitmap, asked for only
	 * when one of them is constrained (one probe), else with the array's.
	 */
	ones = proto ? proto : dport;
	if (!ones) {
		index = base + XW_POL_BM_ALL;
		ones = bpf_map_lookup_elem(&xw_pol_bm, &index);
	}
	if (!ones)
		return false;
	out->bm[XW_FIELD_PROTO] = ones;
	out->bm[XW_FIELD_DPORT] = dport ? dport : ones;
	if (!(fields & XW_POL_HASH_FIELDS)) {
		out->bm[XW_FIELD_IFACE] = ones;
		out->bm[XW_FIELD_SPORT] = ones;
		out->bm[XW_FIELD_TCP_FLAGS] = ones;
		out->bm[XW_FIELD_ICMP_TYPE] = ones;
		out->bm[XW_FIELD_ICMP_CODE] = ones;
		out->bm[XW_FIELD_VLAN] = ones;
		out->bm[XW_FIELD_SRC] = ones;
		out->bm[XW_FIELD_DST] = ones;
		return true;
	}
	hones = bpf_map_lookup_elem(&xw_pol_bitmaps, &all);
	if (!hones)
		return false;
	out->bm[XW_FIELD_IFACE] = hones;
	out->bm[XW_FIELD_SPORT] = hones;
	out->bm[XW_FIELD_TCP_FLAGS] = hones;
	out->bm[XW_FIELD_ICMP_TYPE] = hones;
	out->bm[XW_FIELD_ICMP_CODE] = hones;
	out->bm[XW_FIELD_VLAN] = hones;
	out->bm[XW_FIELD_SRC] = hones;
	out->bm[XW_FIELD_DST] = hones;

#define XW_FIELD(_f, _lookup)                                                 \
	if (fields & (1u << (_f))) {                                          \
		out->bm[_f] = _lookup;                                        \
		if (!out->bm[_f])                                             \
			return false;                                         \
		XW_NARROW(out->bm[_f]);                                       \
	}
	XW_FIELD(XW_FIELD_IFACE, xw_pol_field(table, buf, XW_FIELD_IFACE, p->ifindex, true));
	if (fields & (1u << XW_FIELD_SPORT)) {
		interval = ports ? xw_pol_port(table, buf, false, p->sport) : 0;
		XW_FIELD(XW_FIELD_SPORT, xw_pol_field(table, buf, XW_FIELD_SPORT, interval, interval != 0));
	}
	XW_FIELD(XW_FIELD_TCP_FLAGS, xw_pol_field(table, buf, XW_FIELD_TCP_FLAGS, p->tcp_flags,
						  l4 && p->proto == IPPROTO_TCP));
	XW_FIELD(XW_FIELD_ICMP_TYPE, xw_pol_field(table, buf, XW_FIELD_ICMP_TYPE, p->icmp_type, icmp));
	XW_FIELD(XW_FIELD_ICMP_CODE, xw_pol_field(table, buf, XW_FIELD_ICMP_CODE, p->icmp_code, icmp));
	XW_FIELD(XW_FIELD_VLAN, xw_pol_field(table, buf, XW_FIELD_VLAN, p->vlan, p->flags & XW_PKT_VLAN));
	XW_FIELD(XW_FIELD_SRC, xw_pol_addr(table, buf, XW_FIELD_SRC, p));
	XW_FIELD(XW_FIELD_DST, xw_pol_addr(table, buf, XW_FIELD_DST, p));
#undef XW_FIELD
#undef XW_NARROW
	return true;
}

/* What the scan reads and fills (bpf_loop context, on the caller's stack). */
struct xw_pol_scan {
	struct xw_pol_fields fb;
	__u64 todo;  /* words not yet visited where every field has some rule */
	__u64 acc;   /* the current word's matching rules not yet tried */
	__u32 base;  /* index in xw_pol_rules of the current word's position 0 */
	__u32 found;
	struct xw_pol_rule rule;
};

/*
 * One set bit of the current word, lowest first: returns 1 (stop) when the
 * word is exhausted or its rule has not expired (then found). Expired rules
 * are skipped; the sweeper removes them.
 */
static long xw_pol_scan_bit(__u64 k, void *ctx)
{
	struct xw_pol_scan *s = ctx;
	const struct xw_pol_rule *r;
	__u64 acc = s->acc;
	__u32 index;

	if (!acc)
		return 1;
	index = s->base + xw_lowest_bit(acc);
	s->acc = acc & (acc - 1);
	r = bpf_map_lookup_elem(&xw_pol_rules, &index);
	if (!r)
		return 1;
	if (r->expires_ns && r->expires_ns <= xw_now())
		return 0;
	s->rule = *r;
	s->found = 1;
	return 1;
}

/*
 * The next word worth a look (lowest first): the AND of the fields' words,
 * then its bits. Returns 1 once found or when no word is left.
 */
static long xw_pol_scan_word(__u64 k, void *ctx)
{
	struct xw_pol_scan *s = ctx;
	__u64 todo = s->todo;
	__u32 i;

	if (!todo)
		return 1;
	i = xw_lowest_bit(todo) & (XW_POL_WORDS - 1);
	s->todo = todo & (todo - 1);

	s->acc = s->fb.bm[0]->words[i] & s->fb.bm[1]->words[i] & s->fb.bm[2]->words[i] &
		 s->fb.bm[3]->words[i] & s->fb.bm[4]->words[i] & s->fb.bm[5]->words[i] &
		 s->fb.bm[6]->words[i] & s->fb.bm[7]->words[i] & s->fb.bm[8]->words[i] &
		 s->fb.bm[9]->words[i];
	if (!s->acc)
		return 0;
	s->base += i * 64;
	bpf_loop(64, xw_pol_scan_bit, s, 0);
	s->base -= i * 64;
	return s->found ? 1 : 0;
}

/*
 * The common case without the loops: the first candidate word's lowest
 * rule, if it has not expired, is the answer (the scan would visit it
 * first and stop there). Otherwise the caller scans from the start, which
 * skips expired rules; *s is left as it was.
 */
static __always_inline bool xw_pol_first(const struct xw_pol_scan *s, struct xw_pol_rule *rule)
{
	__u32 i = xw_lowest_bit(s->todo) & (XW_POL_WORDS - 1);
	const struct xw_pol_rule *r;
	__u64 acc;
	__u32 index;

	acc = s->fb.bm[0]->words[i] & s->fb.bm[1]->words[i] & s->fb.bm[2]->words[i] &
	      s->fb.bm[3]->words[i] & s->fb.bm[4]->words[i] & s->fb.bm[5]->words[i] &
	      s->fb.bm[6]->words[i] & s->fb.bm[7]->words[i] & s->fb.bm[8]->words[i] &
	      s->fb.bm[9]->words[i];
	if (!acc)
		return false;
	index = s->base + i * 64 + xw_lowest_bit(acc);
	r = bpf_map_lookup_elem(&xw_pol_rules, &index);
	if (!r || (r->expires_ns && r->expires_ns <= xw_now()))
		return false;
	*rule = *r;
	return true;
}

/*
 * The first rule of `table` (as its active buffer holds it) that matches
 * the packet and has not expired, copied to *rule; false when none does.
 * *meta_out: the buffer's metadata (NULL before the control plane wrote
 * any). Only words set in every field's summary are visited, lowest
 * first, with bpf_loop so the verifier checks one word's work once, not 64
 * times: a packet costs the same whether its rule is the first or the
 * 4,000th.
 */
static __always_inline bool xw_pol_classify(const struct xw_pkt *p, __u32 table,
					    struct xw_pol_rule *rule,
					    const struct xw_pol_meta **meta_out)
{
	bool ports = xw_pkt_has_ports(p);
	const struct xw_pol_meta *meta;
	struct xw_pol_scan s;
	__u32 *active, buf, words, index, dport_interval = 0;

	*meta_out = NULL;
	active = bpf_map_lookup_elem(&xw_pol_active, &table);
	if (!active)
		return false;
	buf = *active & 1;
	index = table * 2 + buf;
	meta = bpf_map_lookup_elem(&xw_pol_meta, &index);
	if (!meta)
		return false;
	*meta_out = meta;
	words = meta->words;
	if (words == 0)
		return false;
	if (words > XW_POL_WORDS)
		words = XW_POL_WORDS;
	/* The port's interval, read once for the check below and the port's bitmap. */
	if (ports) {
		if (meta->fields & (1u << XW_FIELD_DPORT))
			dport_interval = xw_pol_port(table, buf, true, p->dport);
		else if (meta->flags & XW_POL_F_DPORT_ALL)
			return false; /* no rule can match a TCP/UDP packet */
		if ((meta->flags & XW_POL_F_DPORT_ALL) && !dport_interval)
			return false; /* no rule covers the port: see XW_POL_F_DPORT_ALL */
	}
	/*
	 * A table of protocol and port rules answers a TCP/UDP packet from
	 * its interval's element: a copy of the first rule, no bitmap. An
	 * expired rule there sends the packet the long way, which skips it.
	 */
	if ((meta->flags & XW_POL_F_PORT_FIRST) && ports && dport_interval < XW_POL_PORT_BITMAPS) {
		__u32 at = index * XW_POL_PORT_BITMAPS + dport_interval;
		const struct xw_pol_port_first *first = bpf_map_lookup_elem(&xw_pol_port_first, &at);

		if (first) {
			const struct xw_pol_rule *r = p->proto == IPPROTO_TCP ? &first->tcp : &first->udp;

			if (!r->action)
				return false;
			if (!(r->expires_ns && r->expires_ns <= xw_now())) {
				*rule = *r;
				return true;
			}
		}
	}
	/* Zeroed only here: most packets leave above, and 120 bytes of stores are not free. */
	__builtin_memset(&s, 0, sizeof(s));
	if (!xw_pol_lookup(p, table, buf, meta->fields, words == 1, dport_interval, &s.fb))
		return false;
	s.base = index * XW_POL_MAX_RULES;
	s.todo = s.fb.bm[0]->summary & s.fb.bm[1]->summary & s.fb.bm[2]->summary &
		 s.fb.bm[3]->summary & s.fb.bm[4]->summary & s.fb.bm[5]->summary &
		 s.fb.bm[6]->summary & s.fb.bm[7]->summary & s.fb.bm[8]->summary &
		 s.fb.bm[9]->summary;
	if (!s.todo)
		return false;
	if (xw_pol_first(&s, rule))
		return true;
	bpf_loop(words, xw_pol_scan_word, &s, 0);
	if (!s.found)
		return false;
	*rule = s.rule;
	return true;
}

#endif /* XW_RULES_H */

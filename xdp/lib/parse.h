/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing with a cursor.
 *
 * Each xw_parse_* helper reads the header at the cursor, bounds-checks it,
 * advances the cursor past it and returns the next protocol (an ethertype or
 * an IP protocol number, in host order), or -1 when the header is truncated
 * or invalid. xw_parse() strings them together and turns "-1 at layer X"
 * into the reason counted for the packet.
 *
 * Two bounds apply to every read: the end of the linear data (what the
 * verifier lets us touch) and the cursor's limit, the end of the current
 * layer's datagram. The limit starts as the frame length and shrinks to the
 * IP total/payload length, so Ethernet padding is never read as L4 header.
 */
#ifndef XW_PARSE_H
#define XW_PARSE_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xdpwall_abi.h"
#include "pkt.h"

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

#define XW_IP_OFFSET_MASK   0x1fff /* IPv4 fragment offset, in 8-byte units */
#define XW_IP6_OFFSET_MASK  0xfff8 /* IPv6 fragment offset, already scaled by 8 */
#define XW_TCP_FLAGS_OFFSET 13     /* CWR..FIN byte of the TCP header */
#define XW_ICMP_HDR_LEN     8      /* what icmp_rcv/icmpv6_rcv require too */

/* 802.1Q / 802.1ad tag as it follows the MAC addresses (not in uapi). */
struct xw_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* IPv6 fragment extension header (RFC 8200 4.5); uapi has no definition. */
struct xw_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset (13 bits, 8-byte units) << 3 | M flag */
	__be32 identification;
};

struct xw_cursor {
	void *pos;   /* next unread byte */
	void *end;   /* end of the linear data */
	__u32 off;   /* bytes from the frame start to pos */
	__u32 limit; /* offset where the current datagram ends; off <= limit */
	bool gso;    /* TC super-packet: a zero IP length means "the rest" */
};

static __always_inline void xw_cursor_init(struct xw_cursor *c, void *data,
					   void *data_end, __u32 frame_len,
					   bool gso)
{
	c->pos = data;
	c->end = data_end;
	c->off = 0;
	c->limit = frame_len;
	c->gso = gso;
}

/*
 * Returns the header at the cursor and moves past it, or NULL (cursor
 * unchanged) when fewer than size bytes remain in the linear data or in the
 * current datagram. size may vary if the caller bounds it (the verifier adds
 * it to a packet pointer).
 */
static __always_inline void *xw_pull(struct xw_cursor *c, __u32 size)
{
	void *hdr = c->pos;

	if (size > c->limit - c->off)
		return NULL;
	if (hdr + size > c->end)
		return NULL;
	c->pos = hdr + size;
	c->off += size;
	return hdr;
}

/* IPv4 addresses are kept as IPv4-mapped IPv6, ::ffff:a.b.c.d. */
static __always_inline void xw_addr_from_v4(__u8 addr[16], __be32 v4)
{
	__u32 *w = (__u32 *)addr;

	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0x0000ffff);
	w[3] = v4;
}

/* The IPv4 address inside an IPv4-mapped IPv6 address. */
static __always_inline __be32 xw_addr_v4(const __u8 addr[16])
{
	return ((const __u32 *)addr)[3];
}

static __always_inline bool xw_is_vlan(int proto)
{
	return proto == ETH_P_8021Q || proto == ETH_P_8021AD;
}

/*
 * Ethernet and up to XW_MAX_VLAN_DEPTH tags of either kind, in any nesting.
 * Returns the ethertype after the tags; -1 if truncated or a tag remains.
 */
static __always_inline int xw_parse_eth(struct xw_cursor *c, struct xw_pkt *p)
{
	struct ethhdr *eth = xw_pull(c, sizeof(*eth));
	struct xw_vlan_hdr *vlan;
	int proto;

	if (!eth)
		return -1;
	proto = bpf_ntohs(eth->h_proto);

#pragma unroll
	for (int i = 0; i < XW_MAX_VLAN_DEPTH; i++) {
		if (!xw_is_vlan(proto))
			break;
		vlan = xw_pull(c, sizeof(*vlan));
		if (!vlan)
			return -1;
		proto = bpf_ntohs(vlan->encap_proto);
		p->vlan = bpf_ntohs(vlan->tci) & 0x0fff;
		p->flags |= XW_PKT_VLAN;
	}
	return xw_is_vlan(proto) ? -1 : proto;
}

/*
 * IPv4 header and options. Returns the IP protocol; -1 on a bad version or
 * IHL, a header past the packet, or a total length that contradicts either.
 * Sets *non_first for fragments at a non-zero offset (they carry no ports).
 */
static __always_inline int xw_parse_ipv4(struct xw_cursor *c,
					 struct xw_pkt *p, bool *non_first)
{
	__u32 l3_off = c->off;
	struct iphdr *iph = xw_pull(c, sizeof(*iph));
	__u32 hdr_len, tot_len;

	if (!iph || iph->version != 4)
		return -1;
	hdr_len = iph->ihl * 4;
	tot_len = bpf_ntohs(iph->tot_len);
	/* BIG TCP (>64 KiB GSO) leaves tot_len 0 on transmit. */
	if (tot_len == 0 && c->gso)
		tot_len = c->limit - l3_off;
	if (hdr_len < sizeof(*iph) || tot_len < hdr_len ||
	    tot_len > c->limit - l3_off)
		return -1;
	c->limit = l3_off + tot_len;
	if (!xw_pull(c, hdr_len - sizeof(*iph))) /* options, skipped */
		return -1;

	p->family = 4;
	xw_addr_from_v4(p->saddr, iph->saddr);
	xw_addr_from_v4(p->daddr, iph->daddr);
	*non_first = (bpf_ntohs(iph->frag_off) & XW_IP_OFFSET_MASK) != 0;
	return iph->protocol;
}

/* Returns the next header after the IPv6 fixed header; -1 if truncated. */
static __always_inline int xw_parse_ipv6(struct xw_cursor *c, struct xw_pkt *p)
{
	__u32 l3_off = c->off;
	struct ipv6hdr *ip6h = xw_pull(c, sizeof(*ip6h));
	__u32 payload_len;

	if (!ip6h || ip6h->version != 6)
		return -1;
	payload_len = bpf_ntohs(ip6h->payload_len);
	/* BIG TCP (>64 KiB GSO) leaves payload_len 0 on transmit. */
	if (payload_len == 0 && c->gso)
		payload_len = c->limit - c->off;
	if (payload_len > c->limit - c->off)
		return -1;
	c->limit = l3_off + sizeof(*ip6h) + payload_len;

	p->family = 6;
	__builtin_memcpy(p->saddr, &ip6h->saddr, sizeof(p->saddr));
	__builtin_memcpy(p->daddr, &ip6h->daddr, sizeof(p->daddr));
	return ip6h->nexthdr;
}

static __always_inline bool xw_is_ipv6_ext(int nexthdr)
{
	switch (nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_AH:
	case IPPROTO_DSTOPTS:
		return true;
	default:
		return false;
	}
}

/*
 * Walks at most XW_MAX_IPV6_EXT extension headers. Returns the header it
 * stopped at: the upper-layer protocol, or, when the bound ran out, another
 * extension header (the caller treats that as over the limit unless
 * *non_first is set). -1 if an extension runs past the packet.
 * A non-first fragment ends the walk: what follows its header is payload.
 */
static __always_inline int xw_skip_ipv6_ext(struct xw_cursor *c, int nexthdr,
					    bool *non_first)
{
#pragma unroll
	for (int i = 0; i < XW_MAX_IPV6_EXT; i++) {
		__u8 *hdr;
		__u32 len;

		if (!xw_is_ipv6_ext(nexthdr))
			break;
		/* Every extension header is at least 8 bytes long; the first
		 * two are always next header and a length field. */
		hdr = xw_pull(c, 8);
		if (!hdr)
			return -1;
		switch (nexthdr) {
		case IPPROTO_FRAGMENT: {
			struct xw_frag_hdr *fh = (struct xw_frag_hdr *)hdr;

			if (bpf_ntohs(fh->frag_off) & XW_IP6_OFFSET_MASK) {
				*non_first = true;
				return fh->nexthdr;
			}
			len = sizeof(*fh);
			break;
		}
		case IPPROTO_AH: /* RFC 4302: 32-bit words, minus 2 */
			len = ((__u32)hdr[1] + 2) * 4;
			break;
		default: /* RFC 8200: 8-octet units, not counting the first */
			len = ((__u32)hdr[1] + 1) * 8;
			break;
		}
		nexthdr = hdr[0];
		if (!xw_pull(c, len - 8))
			return -1;
	}
	return nexthdr;
}

/* ICMP echo request/reply (8/0) or ICMPv6 echo request/reply (128/129). */
static __always_inline bool xw_icmp_is_echo(__u8 proto, __u8 type)
{
	if (proto == IPPROTO_ICMP)
		return type == 8 || type == 0;
	return type == 128 || type == 129;
}

/*
 * Ports (the echo identifier for ICMP echo, else ICMP type and code) and
 * TCP flags of a first fragment or an
 * unfragmented packet. Returns 0, or -1 if the header is truncated.
 * Other protocols carry no ports and always succeed.
 */
static __always_inline int xw_parse_l4(struct xw_cursor *c, struct xw_pkt *p)
{
	switch (p->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = xw_pull(c, sizeof(*th));

		if (!th || th->doff < sizeof(*th) / 4)
			return -1;
		/* The options must be there too: doff is what TCP will read. */
		if (!xw_pull(c, th->doff * 4 - sizeof(*th)))
			return -1;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[XW_TCP_FLAGS_OFFSET];
		p->flags |= XW_PKT_L4;
		return 0;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = xw_pull(c, sizeof(*uh));

		if (!uh)
			return -1;
		p->sport = uh->source;
		p->dport = uh->dest;
		p->flags |= XW_PKT_L4;
		return 0;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		__u8 *ih = xw_pull(c, XW_ICMP_HDR_LEN);

		if (!ih)
			return -1;
		p->icmp_type = ih[0];
		p->icmp_code = ih[1];
		p->flags |= XW_PKT_L4;
		if (xw_icmp_is_echo(p->proto, ih[0])) {
			/*
			 * Echo request and reply share the identifier, as in
			 * conntrack: both directions of a ping are one flow.
			 */
			p->sport = *(__be16 *)&ih[4];
			p->dport = p->sport;
		} else {
			p->sport = bpf_htons(ih[0]); /* type */
			p->dport = bpf_htons(ih[1]); /* code */
		}
		return 0;
	}
	default:
		return 0;
	}
}

/*
 * Parses a whole frame into p. Returns XW_REASON_PASS_NO_MATCH for a
 * well-formed IP packet (policy decides what happens to it next),
 * XW_REASON_PASS_NON_IP for other ethertypes, or the malformed reason.
 */
static __always_inline enum xw_reason xw_parse(struct xw_cursor *c,
					       struct xw_pkt *p)
{
	bool non_first = false;
	int proto;

	proto = xw_parse_eth(c, p);
	if (proto < 0)
		return XW_REASON_MALFORMED_L2;

	if (proto == ETH_P_IP) {
		proto = xw_parse_ipv4(c, p, &non_first);
		if (proto < 0)
			return XW_REASON_MALFORMED_IPV4;
	} else if (proto == ETH_P_IPV6) {
		proto = xw_parse_ipv6(c, p);
		if (proto < 0)
			return XW_REASON_MALFORMED_IPV6;
		proto = xw_skip_ipv6_ext(c, proto, &non_first);
		if (proto < 0)
			return XW_REASON_MALFORMED_IPV6;
		if (!non_first && xw_is_ipv6_ext(proto))
			return XW_REASON_IPV6_EXT_LIMIT;
	} else {
		return XW_REASON_PASS_NON_IP;
	}

	p->proto = proto;
	if (non_first)
		return XW_REASON_PASS_NO_MATCH;
	if (xw_parse_l4(c, p) < 0)
		return XW_REASON_MALFORMED_L4;
	return XW_REASON_PASS_NO_MATCH;
}

#endif /* XW_PARSE_H */

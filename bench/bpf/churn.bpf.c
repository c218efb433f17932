// SPDX-License-Identifier: GPL-2.0-only
/*
 * Flow-churn driver for the cost ladder. BPF_PROG_TEST_RUN repeats one
 * packet, and (outside live-frames mode) the packet bytes persist from one
 * repetition to the next. This program rewrites the UDP source port and the
 * low 16 bits of the destination address from a per-CPU sequence number, so
 * every repetition is a new flow, then tail-calls the program under test
 * (slot 0 of churn_target). Checksums are left stale: xdpwall does not
 * verify them. Its own cost is measured by pointing the slot at a bare
 * XDP_DROP program. bench_churn_src makes every repetition a new source
 * instead (rate-limit bucket inserts).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} churn_target SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} churn_seq SEC(".maps");

/*
 * Rewrites the packet for repetition *seq: the UDP source port and either
 * the low 16 bits of the destination (a new flow: bench_churn) or the
 * source address (a new source: bench_churn_src; IPv4 240.0.0.0/8 plus the
 * low 24 bits of seq, class E space that no bench prefix covers; IPv6 the
 * low 32 bits), then tail-calls the program under test.
 */
static __always_inline int churn(struct xdp_md *ctx, int new_source)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;
	__u8 *dst_low;
	__be32 *src_low;
	__u32 src_base = 0;
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&churn_seq, &zero);

	if (!seq || (void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return XDP_ABORTED;
		dst_low = (__u8 *)&ip->daddr + 2;
		src_low = &ip->saddr;
		src_base = 0xf0000000;
		udp = (void *)(ip + 1); /* no IP options in the bench's packets */
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return XDP_ABORTED;
		dst_low = (__u8 *)&ip6->daddr + 14;
		src_low = &ip6->saddr.in6_u.u6_addr32[3];
		udp = (void *)(ip6 + 1);
	}
	if ((void *)(udp + 1) > data_end)
		return XDP_ABORTED;
	*seq += 1;
	udp->source = bpf_htons((__u16)*seq);
	if (new_source) {
		*src_low = bpf_htonl(src_base ? src_base | ((__u32)*seq & 0xffffff) : (__u32)*seq);
	} else {
		dst_low[0] = (__u8)(*seq >> 24);
		dst_low[1] = (__u8)(*seq >> 16);
	}
	bpf_tail_call(ctx, &churn_target, 0);
	return XDP_ABORTED; /* the slot was empty */
}

SEC("xdp")
int bench_churn(struct xdp_md *ctx)
{
	return churn(ctx, 0);
}

SEC("xdp")
int bench_churn_src(struct xdp_md *ctx)
{
	return churn(ctx, 1);
}

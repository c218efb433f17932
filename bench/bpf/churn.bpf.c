// SPDX-License-Identifier: GPL-2.0-only
/*
 * Flow-churn driver for the cost ladder. BPF_PROG_TEST_RUN repeats one
 * packet, and (outside live-frames mode) the packet bytes persist from one
 * repetition to the next. This program rewrites the UDP source port and the
 * low 16 bits of the destination address from a per-CPU sequence number, so
 * every repetition is a new flow, then tail-calls the program under test
 * (slot 0 of churn_target). Checksums are left stale: xdpwall does not
 * verify them. Its own cost is measured by pointing the slot at a bare
 * XDP_DROP program.
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

SEC("xdp")
int bench_churn(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;
	__u8 *dst_low;
	__u32 zero = 0;
	__u64 *seq = bpf_map_lookup_elem(&churn_seq, &zero);

	if (!seq || (void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return XDP_ABORTED;
		dst_low = (__u8 *)&ip->daddr + 2;
		udp = (void *)(ip + 1); /* no IP options in the bench's packets */
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return XDP_ABORTED;
		dst_low = (__u8 *)&ip6->daddr + 14;
		udp = (void *)(ip6 + 1);
	}
	if ((void *)(udp + 1) > data_end)
		return XDP_ABORTED;
	*seq += 1;
	udp->source = bpf_htons((__u16)*seq);
	dst_low[0] = (__u8)(*seq >> 24);
	dst_low[1] = (__u8)(*seq >> 16);
	bpf_tail_call(ctx, &churn_target, 0);
	return XDP_ABORTED; /* the slot was empty */
}

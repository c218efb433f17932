// SPDX-License-Identifier: GPL-2.0-only
/*
 * Traffic generator for the veth suite, run with BPF_PROG_TEST_RUN in
 * BPF_F_TEST_XDP_LIVE_FRAMES mode: each frame gets the next source address
 * from gen_srcs (a power-of-two count in gen_cfg[0]), a fresh IPv4 header
 * checksum, and goes out of the ctx's ingress interface as XDP_TX.
 * The template packet is IPv4/UDP without IP options and UDP checksum 0.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define GEN_MAX_SRCS 65536

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GEN_MAX_SRCS);
	__type(key, __u32);
	__type(value, __be32);
} gen_srcs SEC(".maps");

/* [0]: number of sources (a power of two); [1]: unused. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} gen_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} gen_seq SEC(".maps");

static __always_inline __u16 ipv4_csum(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int bench_gen_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 zero = 0, idx;
	__u32 *seq = bpf_map_lookup_elem(&gen_seq, &zero);
	__u32 *count = bpf_map_lookup_elem(&gen_cfg, &zero);
	__be32 *src;

	if (!seq || !count || (void *)(ip + 1) > data_end)
		return XDP_ABORTED;
	idx = (*seq)++ & (*count - 1);
	src = bpf_map_lookup_elem(&gen_srcs, &idx);
	if (!src)
		return XDP_ABORTED;
	ip->saddr = *src;
	ip->check = 0;
	ip->check = ipv4_csum(ip);
	return XDP_TX;
}

// SPDX-License-Identifier: GPL-2.0-only
/*
 * Ladder baseline: the textbook XDP prefix filter, as Cilium's prefilter and
 * most peers build it. Parse Ethernet and IPv4 (no VLANs, no options
 * beyond IHL), one LPM-trie lookup of the source address in a trie loaded
 * with the same prefixes as xdpwall's, XDP_DROP on a match, else XDP_PASS.
 * No counters, no flows.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct lpm_v4_key {
	__u32 prefixlen;
	__be32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
} textbook_v4 SEC(".maps");

SEC("xdp")
int bench_textbook(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct lpm_v4_key key = { .prefixlen = 32 };

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	key.addr = ip->saddr;
	return bpf_map_lookup_elem(&textbook_v4, &key) ? XDP_DROP : XDP_PASS;
}

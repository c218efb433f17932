// SPDX-License-Identifier: GPL-2.0-only
/*
 * Receiver stub for the rows without an XDP filter (no filter, nftables,
 * iptables): frames XDP_TX'd into a veth are only delivered when the
 * receiving end runs an XDP program, so this one lets every frame through
 * to the stack.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int bench_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

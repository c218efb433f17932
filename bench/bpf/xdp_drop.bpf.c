// SPDX-License-Identifier: GPL-2.0-only
/* The floor of the cost ladder: an XDP program that does nothing but drop. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int bench_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

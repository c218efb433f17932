// SPDX-License-Identifier: GPL-2.0-only
/*
 * Second rung of the cost ladder: xdpwall's own parser (xdp/lib/parse.h,
 * with its per-CPU scratch packet) and nothing else, then XDP_DROP. The
 * difference to xw_ingress is what lookups and accounting cost.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdpwall_abi.h"
#include "pkt.h"
#include "parse.h"

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int bench_parse_drop(struct xdp_md *ctx)
{
	struct xw_pkt *p = xw_pkt_begin(ctx->ingress_ifindex, bpf_xdp_get_buff_len(ctx));
	struct xw_cursor c;

	if (!p)
		return XDP_ABORTED;
	xw_cursor_init(&c, (void *)(long)ctx->data, (void *)(long)ctx->data_end, p->len, false);
	/* Use the verdict so the parse cannot be optimised away. */
	return xw_parse(&c, p) >= XW_REASON__FIRST_DROP ? XDP_ABORTED : XDP_DROP;
}

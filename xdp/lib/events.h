/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Sampled packet events: what is dropped (or logged) and why, with the
 * frame's first XW_EVENT_SNAP_LEN bytes, through the xw_events ring buffer.
 *
 * Cost: the exit calls xw_event() for every packet. With nobody listening
 * (XW_FEATURE_EVENTS clear, the default) that is one inlined array lookup
 * and a bit test. While listening, two more inlined lookups and a
 * decrement; only a sampled packet pays for a call, the bucket, the ring
 * and the copy, and the bucket caps those at rate_per_sec however hard the
 * flood, so a flood cannot overwhelm the daemon reading the ring.
 *
 * The work for sampled packets lives in global functions, one per hook
 * (the context types differ): the verifier checks each once, not once per
 * exit.
 */
#ifndef XW_EVENTS_H
#define XW_EVENTS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdpwall_abi.h"
#include "flow.h"
#include "pkt.h"

_Static_assert(XW_EVENT_F_L4 == XW_PKT_L4 && XW_EVENT_F_VLAN == XW_PKT_VLAN,
	       "xw_event.flags copies xw_pkt.flags");
_Static_assert(sizeof(struct xw_event) % 8 == 0, "ring records are 8-byte aligned");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, XW_EVENTS_RING_BYTES);
} xw_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xw_event_cfg);
} xw_event_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XW_EVSTAT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} xw_event_stats SEC(".maps");

/* Internal: per-CPU countdowns of the 1-in-N samplers, by reason. */
struct xw_event_sampler {
	__u32 left[XW_STATS_REASONS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xw_event_sampler);
} xw_event_samplers SEC(".maps");

/*
 * Internal: the one token bucket all CPUs share. Tokens are counted in
 * event-nanoseconds (1e9 per event) so refilling is one multiplication.
 */
struct xw_event_bucket {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 tokens;
	__u64 last_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xw_event_bucket);
} xw_event_bucket SEC(".maps");

#define XW_NS_PER_SEC 1000000000ULL

static __always_inline void xw_event_stat(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&xw_event_stats, &stat);

	if (n)
		(*n)++;
}

/*
 * The packet's reason sampler: the first packet of a reason is sampled,
 * then every N-th after it (deterministic per CPU, so tests can count).
 */
static __always_inline bool xw_event_sampled(const struct xw_event_cfg *cfg,
					     __u32 reason)
{
	struct xw_event_sampler *s;
	__u32 zero = 0, every;

	reason &= XW_STATS_REASONS - 1;
	every = cfg->sample[reason];
	if (!every)
		return false;
	s = bpf_map_lookup_elem(&xw_event_samplers, &zero);
	if (!s)
		return false;
	if (s->left[reason]) {
		s->left[reason]--;
		return false;
	}
	s->left[reason] = every - 1;
	return true;
}

/* Takes one token from the shared bucket; false when it is empty. */
static __always_inline bool xw_event_take_token(const struct xw_event_cfg *cfg)
{
	struct xw_event_bucket *b;
	__u64 now, cap, tokens;
	__u32 zero = 0;
	bool ok;

	if (!cfg->rate_per_sec)
		return true;
	b = bpf_map_lookup_elem(&xw_event_bucket, &zero);
	if (!b)
		return false;
	now = cfg->test_now_ns ? cfg->test_now_ns : bpf_ktime_get_ns();
	cap = cfg->burst * XW_NS_PER_SEC;
	bpf_spin_lock(&b->lock);
	tokens = b->tokens;
	if (now > b->last_ns) {
		/* past the time an empty bucket takes to fill: full (and no overflow) */
		__u64 elapsed = now - b->last_ns;

		tokens = elapsed >= cap / cfg->rate_per_sec ? cap
							     : tokens + elapsed * cfg->rate_per_sec;
		if (tokens > cap)
			tokens = cap;
	}
	b->last_ns = now;
	ok = tokens >= XW_NS_PER_SEC;
	b->tokens = ok ? tokens - XW_NS_PER_SEC : tokens;
	bpf_spin_unlock(&b->lock);
	return ok;
}

/*
 * What a sampled packet does, for both hooks. meta packs the direction
 * (bits 24..31), verdict (16..23) and reason (0..15). Returns a reservation
 * to fill with the frame bytes, or NULL when the bucket is empty or the
 * ring full.
 */
static __always_inline struct xw_event *xw_event_begin(const struct xw_pkt *p,
						       __u32 meta, __u32 rule_id)
{
	const struct xw_event_cfg *cfg;
	struct xw_event *e;
	__u32 zero = 0;

	if (!p)
		return NULL;
	cfg = bpf_map_lookup_elem(&xw_event_cfg, &zero);
	if (!cfg)
		return NULL;
	if (!xw_event_take_token(cfg)) {
		xw_event_stat(XW_EVSTAT_LOST_CAP);
		return NULL;
	}
	e = bpf_ringbuf_reserve(&xw_events, sizeof(*e), 0);
	if (!e) {
		xw_event_stat(XW_EVSTAT_LOST_RING);
		return NULL;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->ifindex = p->ifindex;
	e->rule_id = rule_id;
	e->len = p->len;
	e->reason = meta & 0xffff;
	e->verdict = (meta >> 16) & 0xff;
	e->direction = meta >> 24;
	e->family = p->family;
	e->proto = p->proto;
	e->tcp_flags = p->tcp_flags;
	e->flags = p->flags;
	e->vlan = p->vlan;
	e->sport = p->sport;
	e->dport = p->dport;
	__builtin_memcpy(e->saddr, p->saddr, sizeof(e->saddr));
	__builtin_memcpy(e->daddr, p->daddr, sizeof(e->daddr));
	e->pad = 0;
	return e;
}

/* Bytes of the frame an event copies: at most XW_EVENT_SNAP_LEN, at least 1. */
static __always_inline __u32 xw_event_snap_len(const struct xw_pkt *p)
{
	__u32 n = p->len < XW_EVENT_SNAP_LEN ? p->len : XW_EVENT_SNAP_LEN;

	return n ? n : 1;
}

static __always_inline void xw_event_commit(struct xw_event *e, __u32 n, long err)
{
	if (err) {
		/* the frame was shorter than it claimed: keep the metadata */
		n = 0;
		__builtin_memset(e->data, 0, sizeof(e->data));
	}
	e->snap_len = n;
	bpf_ringbuf_submit(e, 0);
	xw_event_stat(XW_EVSTAT_SAMPLED);
}

__noinline int xw_event_xdp(struct xdp_md *ctx, struct xw_pkt *p, __u32 meta,
			    __u32 rule_id)
{
	struct xw_event *e = xw_event_begin(p, meta, rule_id);
	__u32 n;

	if (!e || !p) {
		if (e)
			bpf_ringbuf_discard(e, 0);
		return 0;
	}
	n = xw_event_snap_len(p);
	if (n > XW_EVENT_SNAP_LEN)
		n = XW_EVENT_SNAP_LEN;
	xw_event_commit(e, n, bpf_xdp_load_bytes(ctx, 0, e->data, n));
	return 0;
}

__noinline int xw_event_skb(struct __sk_buff *skb, struct xw_pkt *p, __u32 meta,
			    __u32 rule_id)
{
	struct xw_event *e = xw_event_begin(p, meta, rule_id);
	__u32 n;

	if (!e || !p) {
		if (e)
			bpf_ringbuf_discard(e, 0);
		return 0;
	}
	n = xw_event_snap_len(p);
	if (n > XW_EVENT_SNAP_LEN)
		n = XW_EVENT_SNAP_LEN;
	xw_event_commit(e, n, bpf_skb_load_bytes(skb, 0, e->data, n));
	return 0;
}

/*
 * Called by the exit for every packet. dir is the hook's constant, so only
 * that hook's function is referenced; ctx is the hook's context.
 */
static __always_inline void xw_event(void *ctx, const struct xw_pkt *p,
				     enum xw_direction dir,
				     enum xw_verdict verdict,
				     enum xw_reason reason, __u32 rule_id)
{
	const struct xw_config *cfg = xw_config_get();
	const struct xw_event_cfg *ecfg;
	__u32 zero = 0, meta;

	if (!cfg || !(cfg->features & XW_FEATURE_EVENTS))
		return;
	/* inline up to here: a packet that is not sampled makes no call */
	ecfg = bpf_map_lookup_elem(&xw_event_cfg, &zero);
	if (!ecfg || !xw_event_sampled(ecfg, reason))
		return;
	meta = (__u32)dir << 24 | (__u32)verdict << 16 | (reason & 0xffff);
	if (dir == XW_DIR_INGRESS)
		xw_event_xdp(ctx, (struct xw_pkt *)p, meta, rule_id);
	else
		xw_event_skb(ctx, (struct xw_pkt *)p, meta, rule_id);
}

#endif /* XW_EVENTS_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Token buckets of ratelimit rules: see "rate limits" in xdpwall_abi.h for
 * the arithmetic, the multi-CPU scheme and the bucket table's semantics when
 * it is full. The TypeScript reference is src/ratelimit/reference.ts.
 */
#ifndef XW_RATELIMIT_H
#define XW_RATELIMIT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdpwall_abi.h"
#include "pkt.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XW_RL_RULE_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_rl_conf);
} xw_rl_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XW_RL_RULE_ENTRIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_rl_bucket);
} xw_rl_shared SEC(".maps");

/* Preallocated: inserting a new source never allocates, and never evicts. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XW_DEFAULT_RL_BUCKETS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct xw_rl_key);
	__type(value, struct xw_rl_bucket);
} xw_rl_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, XW_RL_RULE_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_rl_stats);
} xw_rl_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, XW_RL_REPORT_RING);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xw_rl_reports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_rl_bucket);
} xw_rl_report_budget SEC(".maps");

#ifdef XW_TEST_CLOCK
/* Test build only: the limiter's clock, set by the test before each run. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} xw_test_clock SEC(".maps");

static __always_inline __u64 xw_rl_now(void)
{
	__u32 slot = 0;
	__u64 *now = bpf_map_lookup_elem(&xw_test_clock, &slot);

	return now ? *now : 0;
}
#else
static __always_inline __u64 xw_rl_now(void)
{
	return bpf_ktime_get_ns();
}
#endif

/*
 * Claims the time since the bucket's last refill for this CPU: the one CPU
 * whose compare-and-swap moves last_ns to `now` gets the interval, every
 * other gets 0 (the winner refills for it).
 */
static __always_inline __u64 xw_rl_claim(struct xw_rl_bucket *b, __u64 now)
{
	__u64 last = *(volatile __u64 *)&b->last_ns;

	if (now <= last)
		return 0;
	if (__sync_val_compare_and_swap(&b->last_ns, last, now) != last)
		return 0;
	return now - last;
}

/*
 * Adds `refill` to *tokens (clamped to cap) and takes `cost` if that much is
 * there. Returns whether it was taken; the refill is applied either way.
 */
static __always_inline bool xw_rl_take(__s64 *tokens, __s64 refill, __s64 cap, __s64 cost)
{
	__s64 old, avail;

#pragma unroll
	for (int i = 0; i < XW_RL_CAS_TRIES; i++) {
		old = *(volatile __s64 *)tokens;
		avail = old + refill;
		if (avail > cap)
			avail = cap;
		if (__sync_val_compare_and_swap(tokens, old, avail >= cost ? avail - cost : avail) == old)
			return avail >= cost;
	}
	/* Contended: atomic adds, unclamped until the next compare-and-swap. */
	if (refill)
		__sync_fetch_and_add(tokens, refill);
	if (cost == 0)
		return true;
	if (__sync_fetch_and_add(tokens, -cost) >= cost)
		return true;
	__sync_fetch_and_add(tokens, cost);
	return false;
}

/* Whether a packet of `len` bytes fits the bucket now; refills it first. */
static __always_inline bool xw_rl_admit(struct xw_rl_bucket *b, const struct xw_rl_conf *c,
					__u64 now, __u32 len)
{
	__u64 elapsed = xw_rl_claim(b, now);
	bool ok = true;

	if (c->pps) {
		__u64 e = elapsed < c->pkt_fill_ns ? elapsed : c->pkt_fill_ns;

		ok = xw_rl_take(&b->pkt_tokens, e * c->pps, c->pkt_cap, XW_RL_SCALE);
	}
	if (c->bps) {
		__u64 e = elapsed < c->bit_fill_ns ? elapsed : c->bit_fill_ns;
		/* Over the packet limit: only the refill, nothing taken. */
		__s64 cost = ok ? (__s64)len * 8 * XW_RL_SCALE : 0;

		if (!xw_rl_take(&b->bit_tokens, e * c->bps, c->bit_cap, cost)) {
			ok = false;
			if (c->pps) /* give the packet token back */
				__sync_fetch_and_add(&b->pkt_tokens, XW_RL_SCALE);
		}
	}
	return ok;
}

/* The bucket key of the packet's source under the rule's `per`. */
static __always_inline void xw_rl_key_of(const struct xw_pkt *p, const struct xw_rl_conf *c,
					 __u32 rule_id, struct xw_rl_key *key)
{
	bool prefix = c->per == XW_RL_PER_PREFIX;
	__u32 len;

	__builtin_memset(key, 0, sizeof(*key));
	key->rule_id = rule_id;
	key->family = p->family;
	if (p->family == 4) {
		len = prefix ? c->prefix_v4 : 32;
		__builtin_memcpy(key->addr, p->saddr + 12, 4);
	} else {
		len = prefix ? c->prefix_v6 : 128;
		__builtin_memcpy(key->addr, p->saddr, 16);
	}
	key->prefixlen = len;
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (len <= i * 8)
			key->addr[i] = 0;
		else if (len < (i + 1) * 8)
			key->addr[i] &= (__u8)(0xff << ((i + 1) * 8 - len));
	}
}

/* The source's bucket, created full on its first packet; NULL when the table is full. */
static __always_inline struct xw_rl_bucket *xw_rl_source_bucket(const struct xw_rl_key *key,
								const struct xw_rl_conf *c, __u64 now)
{
	struct xw_rl_bucket *b = bpf_map_lookup_elem(&xw_rl_buckets, key);

	if (b)
		return b;
	{
		struct xw_rl_bucket fresh = {
			.pkt_tokens = c->pkt_cap,
			.bit_tokens = c->bit_cap,
			.last_ns = now,
			.window_ns = now,
		};

		/* EEXIST (another CPU made it) and E2BIG (full) both end in the lookup. */
		bpf_map_update_elem(&xw_rl_buckets, key, &fresh, BPF_NOEXIST);
	}
	return bpf_map_lookup_elem(&xw_rl_buckets, key);
}

/* The rule's shared bucket (created by the control plane; here only if it is missing). */
static __always_inline struct xw_rl_bucket *xw_rl_shared_bucket(__u32 rule_id, const struct xw_rl_conf *c,
								__u64 now)
{
	struct xw_rl_bucket *b = bpf_map_lookup_elem(&xw_rl_shared, &rule_id);

	if (b)
		return b;
	{
		struct xw_rl_bucket fresh = {
			.pkt_tokens = c->pkt_cap,
			.bit_tokens = c->bit_cap,
			.last_ns = now,
			.window_ns = now,
		};

		bpf_map_update_elem(&xw_rl_shared, &rule_id, &fresh, BPF_NOEXIST);
	}
	return bpf_map_lookup_elem(&xw_rl_shared, &rule_id);
}

static __always_inline void xw_rl_count(__u32 rule_id, bool admitted, __u32 bytes)
{
	struct xw_rl_stats *s = bpf_map_lookup_elem(&xw_rl_stats, &rule_id);
	struct xw_counter *ctr;

	if (!s) {
		struct xw_rl_stats first = {};

		bpf_map_update_elem(&xw_rl_stats, &rule_id, &first, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&xw_rl_stats, &rule_id);
		if (!s)
			return;
	}
	ctr = admitted ? &s->admitted : &s->dropped;
	ctr->packets++;
	ctr->bytes += bytes;
}

/*
 * A drop of a source with its own bucket: counts it in the current window
 * (ban_within_ns; the control plane sets one second for rules without a
 * ban, so the window's drops also say who is being limited now) and, with
 * a ban, reports the source once, when its drops in the window reach
 * ban_after. Reports share one budget of XW_RL_REPORT_RATE per second.
 */
static __always_inline void xw_rl_ban_check(struct xw_rl_bucket *b, const struct xw_rl_conf *c,
					    const struct xw_rl_key *key, __u64 now)
{
	static const struct xw_rl_conf budget_conf = {
		.pps = XW_RL_REPORT_RATE,
		.pkt_cap = XW_RL_REPORT_RATE * XW_RL_SCALE,
		.pkt_fill_ns = 1000000000ULL,
	};
	__u64 start = *(volatile __u64 *)&b->window_ns;
	struct xw_rl_bucket *budget;
	struct xw_rl_report *r;
	__u32 slot = 0, drops;

	if (now - start >= c->ban_within_ns &&
	    __sync_val_compare_and_swap(&b->window_ns, start, now) == start)
		b->window_drops = 0; /* a new window (a racing drop may be lost: a bound, not a total) */
	drops = __sync_fetch_and_add(&b->window_drops, 1) + 1;
	if (drops != c->ban_after)
		return;
	budget = bpf_map_lookup_elem(&xw_rl_report_budget, &slot);
	if (!budget || !xw_rl_admit(budget, &budget_conf, now, 0))
		return;
	r = bpf_ringbuf_reserve(&xw_rl_reports, sizeof(*r), 0);
	if (!r)
		return;
	r->key = *key;
	r->time_ns = now;
	r->drops = drops;
	r->pad = 0;
	bpf_ringbuf_submit(r, 0);
}

/*
 * Charges the packet to its bucket under ratelimit rule `rule_id` and
 * returns its reason: XW_REASON_PASS_RULE when admitted, else
 * XW_REASON_RATELIMIT (XW_REASON_WOULD_RATELIMIT when `dry`). A rule
 * without a conf (never: the control plane writes it before the rule
 * tables) admits. A global function: the verifier checks it once, and its
 * result is one unknown value to the caller rather than three constants
 * that would triple the states of everything after the policy stage.
 */
__noinline int xw_ratelimit(const struct xw_pkt *p, __u32 rule_id, __u32 dry)
{
	const struct xw_rl_conf *c = bpf_map_lookup_elem(&xw_rl_rules, &rule_id);
	struct xw_rl_bucket *b = NULL;
	struct xw_rl_key key;
	bool own = false, ok;
	__u64 now;

	if (!c || !p) /* p: never NULL (the caller's scratch slot); the verifier asks */
		return XW_REASON_PASS_RULE;
	now = xw_rl_now();
	if (c->per != XW_RL_PER_RULE) {
		xw_rl_key_of(p, c, rule_id, &key);
		b = xw_rl_source_bucket(&key, c, now);
		own = b != NULL;
	}
	if (!b)
		b = xw_rl_shared_bucket(rule_id, c, now);
	if (!b)
		return XW_REASON_PASS_RULE;
	ok = xw_rl_admit(b, c, now, p->len);
	__sync_fetch_and_add(ok ? &b->admitted : &b->dropped, 1);
	xw_rl_count(rule_id, ok, p->len);
	if (!ok && own)
		xw_rl_ban_check(b, c, &key, now);
	if (ok)
		return XW_REASON_PASS_RULE;
	return dry ? XW_REASON_WOULD_RATELIMIT : XW_REASON_RATELIMIT;
}

#endif /* XW_RATELIMIT_H */

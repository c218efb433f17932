/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Token buckets of ratelimit rules: see "rate limits" in xdpwall_abi.h for
 * the arithmetic, the multi-CPU scheme and the bucket table's semantics when
 * it is full. The TypeScript reference is src/ratelimit/reference.ts.
 */
#ifndef XW_RATELIMIT_H
#define XW_RATELIMIT_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xdpwall_abi.h"
#include "pkt.h"

/* By rule slot (see "rule slots"): the classifier's rule read carries the index. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XW_POL_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_rl_conf);
} xw_rl_rules SEC(".maps");

/* By rule slot, like the conf: a rule's own bucket (per rule) or its overflow bucket. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XW_POL_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_rl_bucket);
} xw_rl_rule_buckets SEC(".maps");

/* IPv6 source buckets: a preallocated hash (inserting never allocates, never evicts). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XW_DEFAULT_RL_BUCKETS_V6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct xw_rl_key);
	__type(value, struct xw_rl_bucket);
} xw_rl_buckets SEC(".maps");

/* IPv4 source buckets: slots of a key and its bucket (see "rate limits" in the ABI). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XW_DEFAULT_RL_BUCKETS);
	__uint(map_flags, BPF_F_MMAPABLE); /* page-aligned values: a slot is a cache line */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct xw_rl_slot_v4);
} xw_rl_buckets_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XW_POL_SLOTS);
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

static __always_inline __u64 xw_rl_now(const struct xw_rl_conf *c)
{
	__u32 slot = 0;
	__u64 *now = bpf_map_lookup_elem(&xw_test_clock, &slot);

	return now ? *now : 0;
}
#else
/*
 * The precise clock costs a clock-source read (tens of ns under kvm-clock),
 * the coarse one (the last tick's CLOCK_MONOTONIC) a load. Ticks quantize
 * refills, which only matters when a tick's refill is a real share of the
 * bucket's depth: a rule whose every bucket holds at least
 * XW_RL_COARSE_FILL_NS of its rate (the default burst is one second's worth)
 * takes the coarse clock; a shallow one (burst 1 at a high rate) the precise.
 */
static __always_inline __u64 xw_rl_now(const struct xw_rl_conf *c)
{
	if ((!c->pps || c->pkt_fill_ns >= XW_RL_COARSE_FILL_NS) &&
	    (!c->bps || c->bit_fill_ns >= XW_RL_COARSE_FILL_NS))
		return bpf_ktime_get_coarse_ns();
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

/*
 * Whether `cost` is more than the tokens the bucket would have after
 * `elapsed` ns of refill. Read-only: no cap needed (a clamped bucket holds
 * cap >= cost, or the packet never fits, which the exact path decides).
 */
static __always_inline bool xw_rl_short(const __s64 *tokens, __u64 elapsed, __u64 fill_ns, __u64 rate, __s64 cost)
{
	__u64 e = elapsed < fill_ns ? elapsed : fill_ns;

	return *(volatile const __s64 *)tokens + (__s64)(e * rate) < cost;
}

/*
 * Whether a packet of `len` bytes fits the bucket now; refills it first.
 *
 * A packet over the limit writes nothing: its refill stays pending in
 * now - last_ns for the next packet. That is the same bucket: below the
 * cap no clamp applies, and min(min(x + a, cap) + b, cap) = min(x + a + b,
 * cap) for a, b >= 0, so refilling in one step later equals refilling in
 * two; a drop implies elapsed < fill_ns (a full fill would admit it; tokens
 * go below zero only briefly, under contention), so neither does the
 * elapsed clamp. So a flood's drops cost two reads, no
 * compare-and-swap, and the exact path below runs for admitted packets.
 * (The sweep stays exact too: a bucket idle since last_ns for fill_ns is
 * full whatever it dropped meanwhile.)
 */
static __always_inline bool xw_rl_admit(struct xw_rl_bucket *b, const struct xw_rl_conf *c,
					__u64 now, __u32 len)
{
	__u64 last = *(volatile __u64 *)&b->last_ns;
	__u64 pending = now > last ? now - last : 0;
	__s64 bits = (__s64)len * 8 * XW_RL_SCALE;
	__u64 elapsed;
	bool ok = true;

	if (c->pps && xw_rl_short(&b->pkt_tokens, pending, c->pkt_fill_ns, c->pps, XW_RL_SCALE))
		return false;
	if (c->bps && xw_rl_short(&b->bit_tokens, pending, c->bit_fill_ns, c->bps, bits))
		return false;

	elapsed = xw_rl_claim(b, now);
	if (c->pps) {
		__u64 e = elapsed < c->pkt_fill_ns ? elapsed : c->pkt_fill_ns;

		ok = xw_rl_take(&b->pkt_tokens, e * c->pps, c->pkt_cap, XW_RL_SCALE);
	}
	if (c->bps) {
		__u64 e = elapsed < c->bit_fill_ns ? elapsed : c->bit_fill_ns;
		/* Over the packet limit: only the refill, nothing taken. */
		__s64 cost = ok ? bits : 0;

		if (!xw_rl_take(&b->bit_tokens, e * c->bps, c->bit_cap, cost)) {
			ok = false;
			if (c->pps) /* give the packet token back */
				__sync_fetch_and_add(&b->pkt_tokens, XW_RL_SCALE);
		}
	}
	return ok;
}

/* The high `bits` bits of a 32-bit word (0..32), in network byte order. */
static __always_inline __be32 xw_rl_mask32(__s32 bits)
{
	if (bits <= 0)
		return 0;
	if (bits >= 32)
		return 0xffffffff;
	return bpf_htonl((__u32)(0xffffffff00000000ULL >> bits));
}

/* The IPv6 bucket key (and any report's key) of the packet's source under the rule's `per`. */
static __always_inline void xw_rl_key_of(const struct xw_pkt *p, const struct xw_rl_conf *c,
					 __u32 rule_id, struct xw_rl_key *key)
{
	bool prefix = c->per == XW_RL_PER_PREFIX;
	__be32 w[4];
	__u32 len;

	__builtin_memcpy(w, p->saddr, sizeof(w));
	key->rule_id = rule_id;
	key->family = p->family;
	key->pad = 0;
	if (p->family == 4) {
		len = prefix ? c->prefix_v4 : 32;
		w[0] = w[3] & xw_rl_mask32(len);
		w[1] = w[2] = w[3] = 0;
	} else if (prefix) {
		len = c->prefix_v6;
#pragma unroll
		for (int i = 0; i < 4; i++)
			w[i] &= xw_rl_mask32((__s32)len - 32 * i);
	} else {
		len = 128;
	}
	key->prefixlen = len;
	__builtin_memcpy(key->addr, w, sizeof(w));
}

/* A new source's bucket: full as of now, no drops. */
static __always_inline void xw_rl_fill(struct xw_rl_bucket *b, const struct xw_rl_conf *c, __u64 now)
{
	b->pkt_tokens = c->pkt_cap;
	b->bit_tokens = c->bit_cap;
	b->last_ns = now;
	b->admitted = 0;
	b->dropped = 0;
	b->window_ns = now;
	b->window_base = 0;
}

/* The bucket of `key` in `map`, created full on its first packet; NULL when the map is full. */
static __always_inline struct xw_rl_bucket *xw_rl_bucket_in(void *map, const void *key,
							     const struct xw_rl_conf *c, __u64 now)
{
	struct xw_rl_bucket *b = bpf_map_lookup_elem(map, key);

	if (b)
		return b;
	{
		struct xw_rl_bucket fresh;

		xw_rl_fill(&fresh, c, now);
		/* EEXIST (another CPU made it) and E2BIG (full) both end in the lookup. */
		bpf_map_update_elem(map, key, &fresh, BPF_NOEXIST);
	}
	return bpf_map_lookup_elem(map, key);
}

/*
 * A drop of a source with its own bucket, `dropped` its count after this
 * one: counts it in the current window (ban_within_ns; the control plane
 * sets one second for rules without a ban, so the window's drops also say
 * who is being limited now) and, with a ban, reports the source once, when
 * its drops in the window reach ban_after. Reports share one budget of
 * XW_RL_REPORT_RATE per second.
 */
static __always_inline void xw_rl_ban_check(struct xw_rl_bucket *b, const struct xw_rl_conf *c,
					    const struct xw_pkt *p, __u32 rule_id, __u64 now,
					    __u64 dropped)
{
	static const struct xw_rl_conf budget_conf = {
		.pps = XW_RL_REPORT_RATE,
		.pkt_cap = XW_RL_REPORT_RATE * XW_RL_SCALE,
		.pkt_fill_ns = 1000000000ULL,
	};
	__u64 start = *(volatile __u64 *)&b->window_ns;
	struct xw_rl_bucket *budget;
	struct xw_rl_report *r;
	__u32 slot = 0;
	__u64 drops;

	/* A new window starts with this drop (a racing drop may count in either: a bound, not a total). */
	if (now - start >= c->ban_within_ns &&
	    __sync_val_compare_and_swap(&b->window_ns, start, now) == start)
		b->window_base = dropped - 1;
	drops = dropped - *(volatile __u64 *)&b->window_base;
	if (drops != c->ban_after)
		return;
	budget = bpf_map_lookup_elem(&xw_rl_report_budget, &slot);
	if (!budget || !xw_rl_admit(budget, &budget_conf, now, 0))
		return;
	r = bpf_ringbuf_reserve(&xw_rl_reports, sizeof(*r), 0);
	if (!r)
		return;
	xw_rl_key_of(p, c, rule_id, &r->key);
	r->time_ns = now;
	r->drops = drops;
	r->pad = 0;
	bpf_ringbuf_submit(r, 0);
}

/*
 * The bucket of IPv4 key `key` (see xw_rl_slot_v4): the first of its
 * slots that holds it, else the first free one, claimed and written full;
 * NULL when all its slots hold other keys.
 */
static __always_inline struct xw_rl_bucket *xw_rl_bucket_v4(__u64 key, const struct xw_rl_conf *c, __u64 now)
{
	__u32 slots = c->slots_v4;
	__u32 first = (__u32)((((key * XW_RL_SLOT_HASH) >> 32) * slots) >> 32);
	__u32 free = slots; /* none */
	struct xw_rl_slot_v4 *s;
	__u64 held;

#pragma unroll
	for (__u32 i = 0; i < XW_RL_PROBES; i++) {
		__u32 index = first + i < slots ? first + i : first + i - slots;

		s = bpf_map_lookup_elem(&xw_rl_buckets_v4, &index);
		if (!s) /* slots_v4 beyond the map (or 0): never */
			return NULL;
		held = *(volatile __u64 *)&s->key;
		if (held == key)
			return &s->bucket;
		if (!held && free == slots)
			free = index;
	}
	/* A new key: claim the first free slot (a pointer kept from the loop would cost the verifier its bounds). */
	s = free < slots ? bpf_map_lookup_elem(&xw_rl_buckets_v4, &free) : NULL;
	if (!s)
		return NULL;
	held = __sync_val_compare_and_swap(&s->key, 0, key);
	if (held == 0)
		xw_rl_fill(&s->bucket, c, now);
	else if (held != key) /* taken by another key meanwhile: this packet overflows */
		return NULL;
	return &s->bucket;
}

/* The source's own bucket under the rule (made on its first packet); NULL when its table has no room. */
static __always_inline struct xw_rl_bucket *xw_rl_source_bucket(const struct xw_pkt *p, const struct xw_rl_conf *c,
								 __u32 rule_id, __u64 now)
{
	struct xw_rl_key key;

	if (p->family == 4) {
		__be32 addr;

		__builtin_memcpy(&addr, p->saddr + 12, sizeof(addr));
		addr &= xw_rl_mask32(c->per == XW_RL_PER_PREFIX ? c->prefix_v4 : 32);
		/* struct xw_rl_key_v4's bytes as a little-endian u64 */
		return xw_rl_bucket_v4((__u64)addr << 32 | rule_id, c, now);
	}
	xw_rl_key_of(p, c, rule_id, &key);
	return xw_rl_bucket_in(&xw_rl_buckets, &key, c, now);
}

/*
 * Charges the packet to its bucket under ratelimit rule `rule_id` (its conf
 * and counters at p->rule_slot) and returns its reason: XW_REASON_PASS_RULE
 * when admitted, else XW_REASON_RATELIMIT (XW_REASON_WOULD_RATELIMIT when
 * `dry`). A rule without a conf (no rate in its slot: never, the control
 * plane writes it before the rule tables flip) admits. A global function:
 * the verifier checks it once, and its result is one unknown value to the
 * caller rather than three constants that would triple the states of
 * everything after the policy stage.
 */
__noinline int xw_ratelimit(const struct xw_pkt *p, __u32 rule_id, __u32 dry)
{
	const struct xw_rl_conf *c;
	struct xw_rl_bucket *b = NULL;
	bool own = false, ok;
	__u32 slot;
	__u64 now;

	if (!p) /* never NULL (the caller's scratch slot); the verifier asks */
		return XW_REASON_PASS_RULE;
	slot = p->rule_slot;
	c = bpf_map_lookup_elem(&xw_rl_rules, &slot);
	if (!c || (!c->pps && !c->bps))
		return XW_REASON_PASS_RULE;
	now = xw_rl_now(c);
	if (c->per != XW_RL_PER_RULE) {
		b = xw_rl_source_bucket(p, c, rule_id, now);
		own = b != NULL;
	}
	if (!b)
		b = bpf_map_lookup_elem(&xw_rl_rule_buckets, &slot);
	if (!b)
		return XW_REASON_PASS_RULE;
	ok = xw_rl_admit(b, c, now, p->len);
	/* the rule's counters: the exit's (xw_slot_count) */
	if (own && ok) {
		__sync_fetch_and_add(&b->admitted, 1);
	} else if (own) {
		/* a plain add, not a locked one: see "rate limits" in the ABI */
		__u64 dropped = *(volatile __u64 *)&b->dropped + 1;

		*(volatile __u64 *)&b->dropped = dropped;
		xw_rl_ban_check(b, c, p, rule_id, now, dropped);
	}
	if (ok)
		return XW_REASON_PASS_RULE;
	return dry ? XW_REASON_WOULD_RATELIMIT : XW_REASON_RATELIMIT;
}

#endif /* XW_RATELIMIT_H */

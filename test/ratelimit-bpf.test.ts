// The rate limiter in the kernel, through BPF_PROG_TEST_RUN on the test
// build (its clock is the u64 in xw_test_clock, so simulated seconds take
// milliseconds and every count is exact). Each row also runs the
// TypeScript reference limiter on the same trace and expects the same count.
//
// Accuracy is measured the way a token bucket is specified: the burst is
// spent first (one instant of `burst` packets), then the offered load runs
// for 10 simulated seconds and the admitted rate must be within 5% of the
// configured one. The burst itself has its own row ("burst after idle").
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openRateLab, udpFrom, type RateLab } from './lib/ratelimit.js';
import { ReferenceLimiter, bucketKey, slotKeyV4 } from '../src/ratelimit/reference.js';
import { RL_PROBES, rlSlotFirst } from '../src/datapath/abi.js';
import { RateLimitTables, clearSourceBuckets, decodeBucket, rateLimitMapsOf } from '../src/ratelimit/tables.js';
import { PolicyTables, policyMapsOf } from '../src/policy/tables.js';
import { rateConf, type RateConf } from '../src/ratelimit/model.js';
import { PolicyEngine, kernelRuleId } from '../src/policy/engine.js';
import type { PolicyRule, RuleInput } from '../src/policy/model.js';
import { ipv4Bytes, ipv6Bytes } from './lib/packets.js';
import { prng } from './lib/prng.js';
import { numPossibleCpus } from '@xdpwall/addon';

const SECOND = 1_000_000_000n;
const XDP_DROP = 1;
const XDP_PASS = 2;

/** Packets arriving at one instant from one source. */
interface Arrival {
  t: bigint;
  src: string;
  len: number;
  count: number;
}

/**
 * `pps` packets per second for `seconds` from t0: one per arrival up to
 * 2,000 pps, else a 10 ms tick's worth at once (few BPF_PROG_TEST_RUN
 * calls: on a loaded machine each repeated run can wait for the scheduler).
 */
function steady(src: string, pps: number, seconds: number, t0: bigint, len = 64): Arrival[] {
  const out: Arrival[] = [];
  if (pps > 2000 && pps % 100 === 0) {
    for (let ms = 0; ms < seconds * 1000; ms += 10) out.push({ t: t0 + BigInt(ms) * 1_000_000n, src, len, count: pps / 100 });
    return out;
  }
  const n = Math.round(pps * seconds);
  for (let i = 0; i < n; i++) out.push({ t: t0 + (BigInt(i) * SECOND * 1000n) / BigInt(Math.round(pps * 1000)), src, len, count: 1 });
  return out;
}

/** On/off: every `period` ms, one instant with the period's share of `pps`. */
function bursty(src: string, pps: number, seconds: number, t0: bigint, periodMs: number, len = 64): Arrival[] {
  const out: Arrival[] = [];
  const perBurst = Math.round((pps * periodMs) / 1000);
  for (let ms = 0; ms < seconds * 1000; ms += periodMs) out.push({ t: t0 + BigInt(ms) * 1_000_000n, src, len, count: perBurst });
  return out;
}

const merge = (...traces: Arrival[][]): Arrival[] => traces.flat().sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));

const packetOf = (src: string, len: number) => ({
  family: (src.includes(':') ? 6 : 4) as 4 | 6,
  src: new Uint8Array(src.includes(':') ? ipv6Bytes(src) : ipv4Bytes(src)),
  len,
});

let lab: RateLab;
let epoch = 0n;

beforeAll(async () => {
  lab = await openRateLab();
}, 60_000);
afterAll(() => lab?.close());

/**
 * A clean slate: no buckets or counters (installing no rules frees every
 * rule slot; the next rule's slot is zeroed when given), the clock far
 * from the last test.
 */
async function reset(): Promise<void> {
  await lab.install([]);
  await clearSourceBuckets(lab.limits.maps);
  epoch += 10_000n * SECOND;
  lab.setClock(epoch);
}

/** Runs a trace through the kernel; with `perPacket`, returns each packet's verdict (count must be 1). */
async function play(trace: Arrival[]): Promise<void> {
  const frames = new Map<string, Buffer>();
  for (const a of trace) {
    const key = `${a.src}|${a.len}`;
    let frame = frames.get(key);
    if (!frame) frames.set(key, (frame = udpFrom(a.src, a.len)));
    lab.setClock(a.t);
    await lab.runRepeat(frame, a.count);
  }
}

/** The reference limiter's admitted count for one rule over a trace. */
function referenceAdmitted(limiter: ReferenceLimiter, ruleId: number, conf: RateConf, trace: Arrival[]): number {
  let admitted = 0;
  for (const a of trace) {
    const p = packetOf(a.src, a.len);
    for (let i = 0; i < a.count; i++) if (limiter.check(kernelRuleId(ruleId), conf, p, a.t).admitted) admitted++;
  }
  return admitted;
}

const confOf = (rule: PolicyRule): RateConf => rateConf(rule.rate!, rule.ban);

interface Row {
  name: string;
  rate: NonNullable<RuleInput['rate']>;
  /** The sources' offered load after the burst is spent. */
  load: (t0: bigint) => Arrival[];
  /** Sources whose burst is spent first (one instant of burst packets each, in rule buckets). */
  drain: string[];
  /** Admitted packets per second the rate allows for this load. */
  expectedPerSecond: number;
  len?: number;
}

const R = 1000;
const rows: Row[] = [
  ...[1.1, 2, 10, 100].map((m): Row => ({
    name: `pps ${R}, steady ${m}x`, rate: { pps: R, per: 'source' }, drain: ['198.18.1.1'],
    load: (t0) => steady('198.18.1.1', R * m, 10, t0), expectedPerSecond: R,
  })),
  ...[1.1, 2, 10, 100].map((m): Row => ({
    name: `pps ${R}, bursty ${m}x (every 250 ms)`, rate: { pps: R, per: 'source' }, drain: ['198.18.1.1'],
    load: (t0) => bursty('198.18.1.1', R * m, 10, t0, 250), expectedPerSecond: R,
  })),
  ...[1.1, 10, 100].map((m): Row => ({
    // 500-byte frames: 4,000 bits each, so 4 Mbit/s is 1,000 frames/s
    name: `bps 4,000,000 (500-byte frames), steady ${m}x`, rate: { bps: 4_000_000, per: 'source' }, drain: ['198.18.1.1'], len: 500,
    load: (t0) => steady('198.18.1.1', 1000 * m, 10, t0, 500), expectedPerSecond: 1000,
  })),
  {
    name: 'bps 4,000,000, bursty 10x (every 100 ms)', rate: { bps: 4_000_000, per: 'source' }, drain: ['198.18.1.1'], len: 500,
    load: (t0) => bursty('198.18.1.1', 10_000, 10, t0, 100, 500), expectedPerSecond: 1000,
  },
  {
    name: 'pps and bps, bps binds (pps 1000, 2 Mbit/s, 500-byte frames)', rate: { pps: 1000, bps: 2_000_000, per: 'source' }, drain: ['198.18.1.1'], len: 500,
    load: (t0) => steady('198.18.1.1', 5000, 10, t0, 500), expectedPerSecond: 500,
  },
  {
    name: 'pps and bps, pps binds (pps 1000, 2 Mbit/s, 100-byte frames)', rate: { pps: 1000, bps: 2_000_000, per: 'source' }, drain: ['198.18.1.1'], len: 100,
    load: (t0) => steady('198.18.1.1', 5000, 10, t0, 100), expectedPerSecond: 1000,
  },
  {
    name: 'per source: two sources at 3x get the rate each', rate: { pps: R, per: 'source' }, drain: ['198.18.1.1', '198.18.1.2'],
    load: (t0) => merge(steady('198.18.1.1', 3 * R, 10, t0), steady('198.18.1.2', 3 * R, 10, t0)), expectedPerSecond: 2 * R,
  },
  {
    name: 'per source-prefix /24: two sources of one /24 share the rate', rate: { pps: R, per: 'source-prefix' }, drain: ['198.18.1.1'],
    load: (t0) => merge(steady('198.18.1.1', 3 * R, 10, t0), steady('198.18.1.200', 3 * R, 10, t0)), expectedPerSecond: R,
  },
  {
    name: 'per source-prefix /24: sources of two /24s get the rate each', rate: { pps: R, per: 'source-prefix' }, drain: ['198.18.1.1', '198.18.2.1'],
    load: (t0) => merge(steady('198.18.1.1', 3 * R, 10, t0), steady('198.18.2.1', 3 * R, 10, t0)), expectedPerSecond: 2 * R,
  },
  {
    name: 'per source-prefix prefixV4 16: one /16 shares the rate', rate: { pps: R, per: 'source-prefix', prefixV4: 16 }, drain: ['198.18.1.1'],
    load: (t0) => merge(steady('198.18.1.1', 3 * R, 10, t0), steady('198.18.200.1', 3 * R, 10, t0)), expectedPerSecond: R,
  },
  {
    name: 'per source-prefix /64 (IPv6): two sources of one /64 share the rate', rate: { pps: R, per: 'source-prefix' }, drain: ['fd00:198::1'],
    load: (t0) => merge(steady('fd00:198::1', 3 * R, 10, t0), steady('fd00:198::2', 3 * R, 10, t0)), expectedPerSecond: R,
  },
  {
    name: 'per rule: every source shares one bucket', rate: { pps: R, per: 'rule' }, drain: ['198.18.1.1'],
    load: (t0) => merge(steady('198.18.1.1', 3 * R, 10, t0), steady('198.18.2.1', 3 * R, 10, t0), steady('fd00:198::1', 3 * R, 10, t0)),
    expectedPerSecond: R,
  },
];

describe('accuracy: admitted rate within 5% over 10 simulated seconds (burst spent first)', () => {
  beforeEach(reset);

  it.each(rows)('$name', async (row) => {
    const [rule] = await lab.install([{ action: 'ratelimit', proto: 'udp', rate: row.rate }]);
    const conf = confOf(rule!);
    const reference = new ReferenceLimiter(1 << 12);
    // every bucket here holds at most 1,000 packets: 5,000 at one instant empty it
    const drain = row.drain.map((src): Arrival => ({ t: epoch, src, len: row.len ?? 64, count: 5000 }));
    await play(drain);
    const spent = lab.counts(rule!.id);
    expect(spent.admitted).toBe(referenceAdmitted(reference, rule!.id, conf, drain));
    const load = row.load(epoch + 1n);
    await play(load);
    const kernel = lab.counts(rule!.id);
    // the kernel and the reference agree exactly
    expect(kernel.admitted - spent.admitted).toBe(referenceAdmitted(reference, rule!.id, conf, load));
    const perSecond = (kernel.admitted - spent.admitted) / 10;
    expect(Math.abs(perSecond - row.expectedPerSecond) / row.expectedPerSecond).toBeLessThanOrEqual(0.05);
    const offered = load.reduce((n, a) => n + a.count, 0) + 5000 * drain.length;
    expect(kernel.admitted + kernel.dropped).toBe(offered);
  }, 120_000);
});

describe('bursts and sources under the limit', () => {
  beforeEach(reset);

  it('burst after idle: exactly `burst` packets pass at once, then the rate', async () => {
    const [rule] = await lab.install([{ action: 'ratelimit', proto: 'udp', rate: { pps: 100, burst: 500, per: 'source' } }]);
    const frame = udpFrom('198.18.1.1');
    const verdicts: number[] = [];
    for (let i = 0; i < 600; i++) verdicts.push(lab.run(frame));
    expect(verdicts.filter((v) => v === XDP_PASS)).toHaveLength(500);
    expect(verdicts.slice(0, 500).every((v) => v === XDP_PASS)).toBe(true);
    // idle for 10 s (more than the 5 s it takes to fill): the full burst again, not more
    lab.setClock(epoch + 10n * SECOND);
    let passed = 0;
    for (let i = 0; i < 600; i++) if (lab.run(frame) === XDP_PASS) passed++;
    expect(passed).toBe(500);
    // idle for 1 s: 100 tokens back
    lab.setClock(epoch + 11n * SECOND);
    passed = 0;
    for (let i = 0; i < 600; i++) if (lab.run(frame) === XDP_PASS) passed++;
    expect(passed).toBe(100);
    expect(lab.counts(rule!.id)).toMatchObject({ admitted: 1100, dropped: 700 });
  });

  it('a source exactly at its rate never loses a packet in 10 s, even with its burst spent first', async () => {
    const [rule] = await lab.install([{ action: 'ratelimit', proto: 'udp', rate: { pps: 1000, per: 'source' } }]);
    await play([{ t: epoch, src: '198.18.1.1', len: 64, count: 1000 }]);
    expect(lab.counts(rule!.id)).toMatchObject({ admitted: 1000, dropped: 0 });
    await play(steady('198.18.1.1', 1000, 10, epoch + 1_000_000n));
    expect(lab.counts(rule!.id)).toMatchObject({ admitted: 11_000, dropped: 0 });
  });

  it.each([
    ['0.99x, each packet up to half an interval early or late', 990, 0.5, 1],
    ['0.9x, up to 5 intervals early or late, in clumps of up to 50 packets', 900, 5, 50],
  ] as const)('a source under its rate never loses a packet in 10 s (seeded: %s)', async (_name, pps, jitter, clump) => {
    const [rule] = await lab.install([{ action: 'ratelimit', proto: 'udp', rate: { pps: 1000, per: 'source' } }]);
    const random = prng(pps);
    const interval = Number(SECOND) / pps;
    const load: Arrival[] = [];
    for (let i = 0; i < pps * 10; ) {
      const count = Math.min(1 + Math.floor(random() * clump), pps * 10 - i);
      const t = epoch + BigInt(Math.max(0, Math.round(i * interval + (random() - 0.5) * 2 * jitter * interval)));
      load.push({ t, src: '198.18.1.1', len: 64, count });
      i += count;
    }
    load.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));
    await play(load);
    expect(lab.counts(rule!.id)).toMatchObject({ admitted: pps * 10, dropped: 0 });
  });

  it('fairness: sources at 0.5x, 2x, 10x and 50x each get min(offered, rate)', async () => {
    const [rule] = await lab.install([{ action: 'ratelimit', proto: 'udp', rate: { pps: R, per: 'source' } }]);
    const conf = confOf(rule!);
    const sources = [['198.18.3.1', 0.5], ['198.18.3.2', 2], ['198.18.3.3', 10], ['198.18.3.4', 50]] as const;
    const reference = new ReferenceLimiter(1 << 12);
    const drain = sources.map(([src]): Arrival => ({ t: epoch, src, len: 64, count: R }));
    const trace = merge(drain, ...sources.map(([src, m]) => steady(src, R * m, 10, epoch + 1n)));
    const perSource = new Map<string, number>();
    for (const a of trace) {
      const p = packetOf(a.src, a.len);
      for (let i = 0; i < a.count; i++) {
        if (reference.check(kernelRuleId(rule!.id), conf, p, a.t).admitted) perSource.set(a.src, (perSource.get(a.src) ?? 0) + 1);
      }
    }
    await play(trace);
    // per source in the kernel: admitted counts of each source's bucket
    const buckets = await lab.limits.readBuckets();
    for (const [src, m] of sources) {
      const bucket = buckets.find((b) => Buffer.from(b.key.addr).equals(Buffer.from(packetOf(src, 64).src)));
      expect(bucket, src).toBeDefined();
      expect(Number(bucket!.state.admitted), src).toBe(perSource.get(src));
      const rate = (Number(bucket!.state.admitted) - R) / 10;
      expect(Math.abs(rate - Math.min(m, 1) * R) / (Math.min(m, 1) * R), src).toBeLessThanOrEqual(0.05);
    }
  }, 120_000);
});

describe('a full bucket table (spoofing)', () => {
  let small: RateLab;
  const CAPACITY = 64;
  beforeAll(async () => {
    small = await openRateLab({ bucketCapacity: CAPACITY });
  }, 60_000);
  afterAll(() => small?.close());

  it('a flood of 1,000,000 packets from 2,998 spoofed sources: new sources share the overflow bucket; a heavy source keeps its bucket (not reset to full)', async () => {
    const [rule] = await small.install([{ action: 'ratelimit', proto: 'udp', rate: { pps: R, per: 'source' } }]);
    const conf = confOf(rule!);
    const reference = new ReferenceLimiter(CAPACITY);
    const id = kernelRuleId(rule!.id);
    const t0 = 5_000n * SECOND;
    small.setClock(t0);
    // The heavy source: its burst spent, then 3x for the whole test.
    const heavy = '198.18.1.1';
    const heavyFrame = udpFrom(heavy);
    const heavyPacket = packetOf(heavy, 64);
    let heavyAdmitted = 0;
    let heavyReference = 0;
    const heavySend = (count: number, t: bigint) => {
      small.setClock(t);
      for (let i = 0; i < count; i++) {
        if (small.run(heavyFrame) === XDP_PASS) heavyAdmitted++;
        if (reference.check(id, conf, heavyPacket, t).admitted) heavyReference++;
      }
    };
    heavySend(R, t0);
    expect(heavyAdmitted).toBe(R);
    // One second of flood, 1,000 packets per millisecond: 1,000 distinct
    // sources one packet each in each of the first 2 ms, then one new source
    // per ms sending 1,000 (once the table is full, every new source is
    // charged to the same overflow bucket, so distinct sources beyond the
    // table would change nothing but the test's run time).
    let spoofAdmitted = 0;
    let spoofReference = 0;
    let next = 0;
    const spoofSrc = () => {
      next++;
      return `10.${(next >> 16) & 255}.${(next >> 8) & 255}.${next & 255}`;
    };
    for (let ms = 1; ms <= 1000; ms++) {
      const t = t0 + BigInt(ms) * 1_000_000n;
      small.setClock(t);
      const distinct = ms <= 2 ? 1000 : 1;
      for (let s = 0; s < distinct; s++) {
        const src = spoofSrc();
        const frame = udpFrom(src);
        const repeat = ms <= 2 ? 1 : 1000;
        const before = small.counts(rule!.id).admitted;
        await small.runRepeat(frame, repeat);
        spoofAdmitted += small.counts(rule!.id).admitted - before;
        const p = packetOf(src, 64);
        for (let i = 0; i < repeat; i++) if (reference.check(id, conf, p, t).admitted) spoofReference++;
      }
      heavySend(3, t); // the heavy source keeps sending 3,000 pps
    }
    expect(spoofAdmitted).toBe(spoofReference);
    expect(heavyAdmitted).toBe(heavyReference);
    // The table filled with the first 63 spoofed sources (the heavy source holds one bucket);
    // each admitted its first packet. Every later source shares the overflow bucket:
    const buckets = await small.limits.readBuckets();
    expect(buckets).toHaveLength(CAPACITY);
    // its burst (1,000) plus 999 ms of its rate.
    expect(spoofAdmitted).toBe(CAPACITY - 1 + R + 999);
    // The heavy source: burst spent before the flood, then exactly its rate for 1 s (not a fresh burst).
    expect(heavyAdmitted - R).toBe(R);
    // The overflow bucket is the rule's, at its slot; it was refilled and charged during the flood.
    const overflow = small.limits.maps.ruleBuckets.lookup(Buffer.from(Uint32Array.of(small.limits.slotOf(id)!).buffer))!;
    expect(decodeBucket(overflow).lastNs).toBeGreaterThan(t0);
  });

  it('the sweeper frees only buckets idle for their fill time, after which a source starts full as before', async () => {
    small.setClock(6_000n * SECOND); // > 1 s after the flood: every bucket is full again
    const before = (await small.limits.readBuckets()).length;
    expect(before).toBe(CAPACITY);
    expect(await small.limits.sweep(0n)).toBe(CAPACITY);
    expect(await small.limits.readBuckets()).toHaveLength(0);
    const [rule] = await small.install([{ action: 'ratelimit', proto: 'udp', rate: { pps: R, per: 'source' } }]);
    const frame = udpFrom('198.18.1.1');
    await small.runRepeat(frame, 10);
    small.setClock(6_000n * SECOND + 500_000_000n); // 0.5 s later: not yet full
    expect(await small.limits.sweep(0n)).toBe(0);
    small.setClock(6_000n * SECOND + SECOND); // the fill time (burst / pps = 1 s) after the last packet
    expect(await small.limits.sweep(0n)).toBe(1);
    expect(rule).toBeDefined();
  });
});

describe('IPv4 slots (a key takes one of its RL_PROBES slots from its first)', () => {
  let slots: RateLab;
  const SLOTS = 64;
  beforeAll(async () => {
    slots = await openRateLab({ bucketCapacity: SLOTS });
  }, 60_000);
  afterAll(() => slots?.close());
  beforeEach(async () => {
    await slots.install([]);
    await clearSourceBuckets(slots.limits.maps);
  });

  /** `count` sources of 198.18.0.0/16 whose bucket keys under rule `kernelId` share their first slot, and that slot. */
  function sharingFirstSlot(kernelId: number, count: number): { first: number; sources: string[] } {
    const byFirst = new Map<number, string[]>();
    for (let i = 1; ; i++) {
      const src = `198.18.${i >> 8}.${i & 255}`;
      const first = rlSlotFirst(slotKeyV4(kernelId, Uint8Array.from(ipv4Bytes(src))), SLOTS);
      const group = byFirst.get(first) ?? [];
      byFirst.set(first, [...group, src]);
      if (group.length + 1 === count) return { first, sources: [...group, src] };
    }
  }

  const slotOf = async (src: string) => {
    const bytes = Buffer.from(ipv4Bytes(src));
    return (await slots.limits.readBuckets()).find((b) => Buffer.from(b.key.addr).equals(bytes))?.raw.readUInt32LE(0);
  };

  it('a source beyond RL_PROBES on one slot window is charged to the overflow bucket though the table has room, as the reference says; a freed slot is its own', async () => {
    const [rule] = await slots.install([{ action: 'ratelimit', proto: 'udp', rate: { pps: 10, burst: 2, per: 'source' } }]);
    const id = kernelRuleId(rule!.id);
    const reference = new ReferenceLimiter(SLOTS);
    const { first, sources } = sharingFirstSlot(id, RL_PROBES + 1);
    const t0 = 100n * SECOND;
    const send = (src: string, t: bigint) => {
      slots.setClock(t);
      const verdict = slots.run(udpFrom(src));
      const out = reference.check(id, confOf(rule!), packetOf(src, 64), t);
      expect(verdict, src).toBe(out.admitted ? XDP_PASS : XDP_DROP);
      return out.bucket;
    };
    for (const src of sources.slice(0, RL_PROBES)) expect(send(src, t0)).toBe('own');
    for (const [i, src] of sources.slice(0, RL_PROBES).entries()) expect(await slotOf(src)).toBe((first + i) % SLOTS);
    const last = sources[RL_PROBES]!;
    // Its own bucket would hold 2; the overflow bucket (burst 2) has them: the third packet drops.
    expect([send(last, t0), send(last, t0), send(last, t0)]).toEqual(['shared', 'shared', 'shared']);
    expect(slots.counts(rule!.id)).toMatchObject({ admitted: RL_PROBES + 2, dropped: 1 });
    expect(await slotOf(last)).toBeUndefined();
    expect(await slots.limits.readBuckets()).toHaveLength(RL_PROBES);
    // One second on, every source but the first sends again; the sweep frees the first's slot (idle for its fill time).
    for (const src of sources.slice(1, RL_PROBES)) send(src, t0 + SECOND);
    expect(await slots.limits.sweep(0n)).toBe(1);
    expect(await slotOf(sources[0]!)).toBeUndefined();
    // The reference knows no sweep: this packet is the kernel's alone. The freed slot is the fifth source's now.
    slots.setClock(t0 + SECOND);
    expect(slots.run(udpFrom(last))).toBe(XDP_PASS);
    expect(await slotOf(last)).toBe(first);
  });

  it('a drained source in a later slot keeps its bucket when an earlier slot is freed: found, not claimed again full', async () => {
    const [rule] = await slots.install([{ action: 'ratelimit', proto: 'udp', rate: { pps: 10, burst: 2, per: 'source' } }]);
    const id = kernelRuleId(rule!.id);
    const { first, sources } = sharingFirstSlot(id, 3);
    const [idle, middle, drained] = sources as [string, string, string];
    const t0 = 200n * SECOND;
    slots.setClock(t0);
    for (const src of [idle, middle]) expect(slots.run(udpFrom(src))).toBe(XDP_PASS);
    // The third source, in the third slot, drains its burst over a second (a packet every 100 ms keeps it at 0 or 1 token).
    for (let ms = 0; ms <= 1000; ms += 50) {
      slots.setClock(t0 + BigInt(ms) * 1_000_000n);
      slots.run(udpFrom(drained));
      if (ms % 500 === 0) slots.run(udpFrom(middle));
    }
    expect(await slotOf(drained)).toBe((first + 2) % SLOTS);
    expect(await slots.limits.sweep(0n)).toBe(1); // the first source's, idle for a second
    expect(await slotOf(idle)).toBeUndefined();
    // At the same instant the drained source's next packet drops: it found its bucket, empty, in the third slot.
    const before = slots.counts(rule!.id);
    expect(slots.run(udpFrom(drained))).toBe(XDP_DROP);
    expect(slots.counts(rule!.id).dropped).toBe(before.dropped + 1);
    expect(await slotOf(drained)).toBe((first + 2) % SLOTS);
    expect(await slots.limits.readBuckets()).toHaveLength(2);
  });
});

describe('multi-CPU', () => {
  beforeEach(reset);

  it('four concurrent runs (on both CPUs) draining one bucket admit exactly its tokens (no token taken twice or lost)', async () => {
    const burst = 20_000;
    const [rule] = await lab.install([{ action: 'ratelimit', proto: 'udp', rate: { pps: 1, burst, per: 'rule' } }]);
    const frame = udpFrom('198.18.1.1');
    const ingress = lab.object.program('xw_ingress');
    const { xdpCtx } = await import('./lib/policy.js');
    const run = () => ingress.testRun({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0, repeat: 50_000 });
    await Promise.all([run(), run(), run(), run()]);
    const counts = lab.counts(rule!.id);
    expect(counts.admitted + counts.dropped).toBe(200_000);
    expect(counts.admitted).toBe(burst);
    expect(numPossibleCpus()).toBeGreaterThanOrEqual(1);
  });
});

describe('the reference limiter agrees packet by packet on seeded traces', () => {
  let small: RateLab;
  beforeAll(async () => {
    small = await openRateLab({ bucketCapacity: 16 });
  }, 60_000);
  afterAll(() => small?.close());

  it.each([1, 2, 3, 4, 5])('seed %i: 5,000 packets, 24 sources, three rules, a 16-bucket table', async (seed) => {
    const random = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const rules = await small.install([
      { action: 'ratelimit', proto: 'udp', dstPort: 53, priority: 10, rate: { pps: 50 + Math.floor(random() * 200), burst: 1 + Math.floor(random() * 40), per: 'source' } },
      { action: 'ratelimit', proto: 'udp', dstPort: 53, priority: 5, src: '198.18.8.0/24', rate: { bps: 100_000 + Math.floor(random() * 400_000), per: 'source-prefix', prefixV4: 28 } },
      { action: 'ratelimit', proto: 'udp', dstPort: 53, priority: 1, src: 'fd00:198::/48', dryRun: true, rate: { pps: 100, bps: 500_000, burst: 20, per: 'rule' } },
    ]);
    const reference = new ReferenceLimiter(16);
    const sources = [
      ...Array.from({ length: 12 }, (_, i) => `198.18.${9 + (i % 3)}.${i + 1}`),
      ...Array.from({ length: 8 }, (_, i) => `198.18.8.${i * 7 + 1}`),
      ...Array.from({ length: 4 }, (_, i) => `fd00:198::${i + 1}`),
    ];
    const ruleFor = (src: string) => (src.includes(':') ? rules[2]! : src.startsWith('198.18.8.') ? rules[1]! : rules[0]!);
    // time from the far future so the previous seed's buckets are full again, then swept
    const t0 = (10_000n + BigInt(seed) * 1_000n) * SECOND;
    small.setClock(t0);
    await small.limits.sweep(0n);
    let t = t0;
    let mismatches = 0;
    let drops = 0;
    for (let i = 0; i < 5000; i++) {
      t += BigInt(Math.floor(random() * random() * 4_000_000)); // 0-4 ms, mostly short: about 1,000 pps in all
      const src = pick(sources);
      const len = 64 + Math.floor(random() * 1400);
      small.setClock(t);
      const verdict = small.run(udpFrom(src, len));
      const rule = ruleFor(src);
      const out = reference.check(kernelRuleId(rule.id), confOf(rule), packetOf(src, len), t);
      const expected = out.admitted || rule.dryRun ? XDP_PASS : XDP_DROP;
      if (verdict !== expected) mismatches++;
      if (!out.admitted) drops++;
    }
    expect(mismatches).toBe(0);
    expect(drops).toBeGreaterThan(100); // the trace does exercise the limits
  }, 120_000);
});

describe('ban reports', () => {
  beforeEach(reset);

  it('a source reaching afterDrops within the window is reported once through the ring buffer, as the reference says', async () => {
    const { BpfRingBuffer } = await import('@xdpwall/addon');
    const { decodeReport } = await import('../src/ratelimit/bans.js');
    const reader = new BpfRingBuffer(lab.limits.maps.reports.fd);
    try {
      reader.consume(); // whatever earlier tests left
      const [rule] = await lab.install([{ action: 'ratelimit', proto: 'udp', rate: { pps: 1, burst: 2, per: 'source' }, ban: { afterDrops: 5, within: 10, ttl: 60 } }]);
      const conf = confOf(rule!);
      const reference = new ReferenceLimiter(1 << 12);
      const frame = udpFrom('198.18.4.4');
      let reported = 0;
      for (let i = 0; i < 20; i++) {
        lab.run(frame);
        if (reference.check(kernelRuleId(rule!.id), conf, packetOf('198.18.4.4', 64), epoch).report) reported++;
      }
      const records = reader.consume();
      expect(reported).toBe(1);
      expect(records).toHaveLength(1);
      const report = decodeReport(records[0]!);
      expect(report.key.ruleId).toBe(kernelRuleId(rule!.id));
      expect([...report.key.addr]).toEqual([198, 18, 4, 4]);
      expect(report.drops).toBe(5);
      // a new window 10 s later reports again after 5 more drops
      lab.setClock(epoch + 11n * SECOND);
      for (let i = 0; i < 8; i++) lab.run(frame);
      expect(reader.consume()).toHaveLength(1);
    } finally {
      reader.close();
    }
  });
});

describe('bucket keys', () => {
  beforeEach(reset);

  // The kernel masks the source to the rule's prefix a 32-bit word at a time; these lengths cut
  // inside a word, inside a byte, and at the family's full length (no masking).
  it.each([
    { src: '198.18.77.201', per: 'source' as const, want: '198.18.77.201', prefixLen: 32 },
    { src: '198.18.77.201', per: 'source-prefix' as const, prefixV4: 28, want: '198.18.77.192', prefixLen: 28 },
    { src: '198.18.77.201', per: 'source-prefix' as const, prefixV4: 1, want: '128.0.0.0', prefixLen: 1 },
    { src: 'fd00:198:0:12ff:8::1', per: 'source' as const, want: 'fd00:198:0:12ff:8::1', prefixLen: 128 },
    { src: 'fd00:198:0:12ff:8::1', per: 'source-prefix' as const, prefixV6: 60, want: 'fd00:198:0:12f0::', prefixLen: 60 },
    { src: 'fd00:198:0:12ff:8::1', per: 'source-prefix' as const, prefixV6: 77, want: 'fd00:198:0:12ff:8::', prefixLen: 77 },
    { src: 'fd00:198:0:12ff:8::1', per: 'source-prefix' as const, prefixV6: 30, want: 'fd00:198::', prefixLen: 30 },
  ])('$src per $per /$prefixLen -> $want, as the reference builds it', async ({ src, per, prefixV4, prefixV6, want, prefixLen }) => {
    const [rule] = await lab.install([{ action: 'ratelimit', proto: 'udp', rate: { pps: 10, per, ...(prefixV4 && { prefixV4 }), ...(prefixV6 && { prefixV6 }) } }]);
    lab.run(udpFrom(src));
    const buckets = await lab.limits.readBuckets();
    expect(buckets).toHaveLength(1);
    const { key } = buckets[0]!;
    const family = src.includes(':') ? 6 : 4;
    const wantBytes = [...(family === 6 ? ipv6Bytes(want) : ipv4Bytes(want))];
    expect({ ruleId: key.ruleId, family: key.family, prefixLen: key.prefixLen, addr: [...key.addr] })
      .toEqual({ ruleId: kernelRuleId(rule!.id), family, prefixLen, addr: wantBytes });
    const reference = bucketKey(kernelRuleId(rule!.id), confOf(rule!), packetOf(src, 64));
    expect(reference.prefixLen).toBe(prefixLen);
    expect([...reference.addr.subarray(0, family === 6 ? 16 : 4)]).toEqual(wantBytes);
  });
});

describe('per-rule buckets at the rule slot (xw_rl_rule_buckets)', () => {
  beforeEach(reset);

  it('a restart (a new engine over the same pinned maps) keeps a drained per-rule bucket drained; a new rule on the freed slot starts full', async () => {
    const [rule] = await lab.install([{ action: 'ratelimit', proto: 'udp', rate: { pps: R, per: 'rule' } }]);
    const id = kernelRuleId(rule!.id);
    const slot = lab.limits.slotOf(id);
    const frame = udpFrom('198.18.1.1');
    await lab.runRepeat(frame, 2 * R);
    expect(lab.counts(rule!.id)).toMatchObject({ admitted: R, dropped: R });
    // The restart: new tables and engine over the same maps, the rule installed again from the store.
    const limits = new RateLimitTables(rateLimitMapsOf(lab.object), () => epoch);
    const engine = new PolicyEngine(await PolicyTables.open(policyMapsOf(lab.object)), {
      clock: { wallMs: () => Date.parse('2026-12-02T12:00:00Z'), monotonicNs: () => epoch },
      ifindexOf: () => undefined,
      rateLimits: limits,
    });
    await engine.install('ingress', [rule!]);
    expect(limits.slotOf(id)).toBe(slot);
    await lab.runRepeat(frame, 10); // the same instant: nothing refilled, nothing written full
    expect(limits.ruleStats(id).admitted.packets).toBe(BigInt(R));
    expect(limits.ruleStats(id).dropped.packets).toBe(BigInt(R + 10));
    // The rule leaves; another takes its slot, zeroed and written full.
    await engine.install('ingress', []);
    const other: PolicyRule = { ...rule!, id: rule!.id + 1 };
    await engine.install('ingress', [other]);
    expect(limits.slotOf(kernelRuleId(other.id))).toBe(slot);
    await lab.runRepeat(frame, 2 * R);
    expect(limits.ruleStats(kernelRuleId(other.id)).admitted.packets).toBe(BigInt(R));
    expect(limits.ruleStats(kernelRuleId(other.id)).dropped.packets).toBe(BigInt(R));
    await engine.install('ingress', []);
  });
});

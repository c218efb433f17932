// The rate limiter's kernel state from the control plane's side: rule
// parameters written before the rule tables flip (a packet classified by
// the new table always finds its rule's conf), shared buckets created with
// their rule, everything of a rule removed after it left both hooks;
// counters, active buckets and the most limited sources read back; idle
// buckets swept. See "rate limits" in xdp/include/xdpwall_abi.h.
import type { BpfMap } from '@xdpwall/addon';
import { BPF_NOEXIST } from '@xdpwall/addon';
import { Layout, RATELIMIT_MAPS, RlPer, cpusOf, encodeRuleId, sumCounters, type Counter } from '../datapath/abi.js';
import { encodeRateConf, type RateConf } from './model.js';
import type { Bucket } from './reference.js';
import { TimeSlicer, type Slicer } from '../event-loop.js';
import { TopK } from '../top-k.js';

/** Buckets decoded between two questions to the slicer. */
export const BUCKET_DECODE_STEP = 1024;

export interface RateLimitMaps {
  rules: BpfMap;
  shared: BpfMap;
  buckets: BpfMap;
  stats: BpfMap;
  reports: BpfMap;
  reportBudget: BpfMap;
}

export function rateLimitMapsOf(object: { map(name: string): BpfMap }): RateLimitMaps {
  return {
    rules: object.map(RATELIMIT_MAPS.rules),
    shared: object.map(RATELIMIT_MAPS.shared),
    buckets: object.map(RATELIMIT_MAPS.buckets),
    stats: object.map(RATELIMIT_MAPS.stats),
    reports: object.map(RATELIMIT_MAPS.reports),
    reportBudget: object.map(RATELIMIT_MAPS.reportBudget),
  };
}

export interface RateRule {
  kernelId: number;
  /** Its rule slot (src/policy/slots.ts): the index of its conf and counters. */
  slot: number;
  conf: RateConf;
}

/** A decoded struct xw_rl_key. */
export interface BucketKey {
  ruleId: number;
  family: 4 | 6;
  prefixLen: number;
  /** 4 or 16 bytes. */
  addr: Uint8Array;
}

/** A bucket as the kernel holds it: the same state the reference limiter keeps. */
export type BucketState = Bucket;

export function decodeBucketKey(buf: Buffer, offset = 0): BucketKey {
  const L = Layout.rlKey;
  const family = buf.readUInt8(offset + L.family) === 6 ? 6 : 4;
  return {
    ruleId: buf.readUInt32LE(offset + L.ruleId),
    family,
    prefixLen: buf.readUInt8(offset + L.prefixlen),
    addr: new Uint8Array(buf.subarray(offset + L.addr, offset + L.addr + (family === 4 ? 4 : 16))),
  };
}

export function encodeBucketKey(key: BucketKey): Buffer {
  const L = Layout.rlKey;
  const buf = Buffer.alloc(L.size);
  buf.writeUInt32LE(key.ruleId >>> 0, L.ruleId);
  buf.writeUInt8(key.family, L.family);
  buf.writeUInt8(key.prefixLen, L.prefixlen);
  buf.set(key.addr, L.addr);
  return buf;
}

export function decodeBucket(buf: Buffer, offset = 0): BucketState {
  const L = Layout.rlBucket;
  return {
    pktTokens: buf.readBigInt64LE(offset + L.pktTokens),
    bitTokens: buf.readBigInt64LE(offset + L.bitTokens),
    lastNs: buf.readBigUInt64LE(offset + L.lastNs),
    admitted: buf.readBigUInt64LE(offset + L.admitted),
    dropped: buf.readBigUInt64LE(offset + L.dropped),
    windowNs: buf.readBigUInt64LE(offset + L.windowNs),
    windowDrops: buf.readUInt32LE(offset + L.windowDrops),
  };
}

/** A full bucket as of nowNs: what a rule's shared bucket starts as. */
export function encodeFullBucket(conf: RateConf, nowNs: bigint): Buffer {
  const L = Layout.rlBucket;
  const buf = Buffer.alloc(L.size);
  buf.writeBigInt64LE(conf.pktCap, L.pktTokens);
  buf.writeBigInt64LE(conf.bitCap, L.bitTokens);
  buf.writeBigUInt64LE(nowNs, L.lastNs);
  buf.writeBigUInt64LE(nowNs, L.windowNs);
  return buf;
}

export interface RuleLimitStats {
  admitted: Counter;
  dropped: Counter;
}

export interface LimitedSource {
  ruleId: number;
  bucket: BucketKey;
  state: BucketState;
}

export class RateLimitTables {
  /** The ratelimit rules each hook's installed table holds, by kernel id. */
  private readonly installed = new Map<string, Map<number, RateRule>>();

  constructor(
    readonly maps: RateLimitMaps,
    private readonly monotonicNs: () => bigint,
  ) {}

  /** Before a hook's table flips: every ratelimit rule it will hold has its conf and shared bucket. */
  prepare(rules: readonly RateRule[]): void {
    for (const { kernelId, slot, conf } of rules) {
      const key = encodeRuleId(kernelId);
      this.maps.rules.update(encodeRuleId(slot), encodeRateConf(conf));
      if (!this.maps.shared.lookup(key)) this.maps.shared.update(key, encodeFullBucket(conf, this.monotonicNs()), BPF_NOEXIST);
    }
  }

  /**
   * After a hook's table flipped and no packet reads the old one: forgets
   * the shared bucket of rules that are in neither hook's table any more
   * (their source buckets go with the next sweep; their slot's conf and
   * counters are overwritten and zeroed when the slot is given again).
   */
  committed(hook: string, rules: readonly RateRule[]): void {
    const before = this.installed.get(hook) ?? new Map<number, RateRule>();
    this.installed.set(hook, new Map(rules.map((r) => [r.kernelId, r])));
    for (const id of before.keys()) {
      if (this.ruleOf(id)) continue;
      this.maps.shared.delete(encodeRuleId(id));
    }
  }

  private ruleOf(kernelId: number): RateRule | undefined {
    for (const rules of this.installed.values()) {
      const rule = rules.get(kernelId);
      if (rule) return rule;
    }
    return undefined;
  }

  confOf(kernelId: number): RateConf | undefined {
    return this.ruleOf(kernelId)?.conf;
  }

  /** An installed ratelimit rule's counters (zero for one not installed). */
  ruleStats(kernelId: number): RuleLimitStats {
    const rule = this.ruleOf(kernelId);
    const value = rule ? this.maps.stats.lookup(encodeRuleId(rule.slot)) : null;
    const cpus = cpusOf(this.maps.stats);
    if (!value) return { admitted: { packets: 0n, bytes: 0n }, dropped: { packets: 0n, bytes: 0n } };
    return {
      admitted: sumCounters(value, 0, this.maps.stats.valueStride, cpus, Layout.rlStats.admitted),
      dropped: sumCounters(value, 0, this.maps.stats.valueStride, cpus, Layout.rlStats.dropped),
    };
  }

  /**
   * Every source bucket (one batch read on a worker thread), decoded in steps
   * that give the event loop back when `slicer` says so: a table of
   * capacity.rateBuckets entries is tens of milliseconds of decoding.
   */
  async readBuckets(slicer: Slicer = new TimeSlicer()): Promise<Array<{ key: BucketKey; raw: Buffer; state: BucketState }>> {
    const all = await this.maps.buckets.lookupAll();
    const { keySize, valueStride } = this.maps.buckets;
    const out: Array<{ key: BucketKey; raw: Buffer; state: BucketState }> = [];
    for (let i = 0; i < all.count; i++) {
      if (i > 0 && i % BUCKET_DECODE_STEP === 0 && slicer.due) await slicer.next();
      const raw = Buffer.from(all.keys.subarray(i * keySize, (i + 1) * keySize));
      out.push({ key: decodeBucketKey(raw), raw, state: decodeBucket(all.values, i * valueStride) });
    }
    return out;
  }

  /** Source buckets per rule. */
  async activeBuckets(): Promise<Map<number, number>> {
    const counts = new Map<number, number>();
    for (const { key } of await this.readBuckets()) counts.set(key.ruleId, (counts.get(key.ruleId) ?? 0) + 1);
    return counts;
  }

  /**
   * Deletes source buckets that are idle for at least max(their rule's fill
   * time, idleNs) (full again: deleting them changes nothing a packet sees)
   * and those of rules no longer installed. Returns how many were deleted.
   */
  async sweep(idleNs: bigint): Promise<number> {
    const now = this.monotonicNs();
    const doomed: Buffer[] = [];
    for (const { key, raw, state } of await this.readBuckets()) {
      const conf = this.confOf(key.ruleId);
      if (!conf || conf.per === RlPer.rule) {
        doomed.push(raw);
        continue;
      }
      const fill = conf.pktFillNs > conf.bitFillNs ? conf.pktFillNs : conf.bitFillNs;
      const idleFor = fill > idleNs ? fill : idleNs;
      if (now > state.lastNs && now - state.lastNs >= idleFor) doomed.push(raw);
    }
    if (doomed.length === 0) return 0;
    return this.maps.buckets.deleteBatch(Buffer.concat(doomed), doomed.length);
  }

  /**
   * The sources (or prefixes) being limited now: buckets with drops in a
   * drop-count window that is still current, most such drops first (then
   * most drops in all, then table order). The table is read once and
   * scanned in steps that give the event loop back when `slicer` says so;
   * only the `limit` best are kept and decoded, so a table full of limited
   * sources (a spoofed flood) costs O(n log limit), not a sort of n objects.
   */
  async top(limit: number, slicer: Slicer = new TimeSlicer()): Promise<LimitedSource[]> {
    const now = this.monotonicNs();
    const all = await this.maps.buckets.lookupAll();
    const { keySize, valueStride } = this.maps.buckets;
    const K = Layout.rlKey;
    const V = Layout.rlBucket;
    const best = new TopK<{ index: number; windowDrops: number; dropped: bigint }>(limit, (a, b) =>
      a.windowDrops !== b.windowDrops ? a.windowDrops > b.windowDrops
        : a.dropped !== b.dropped ? a.dropped > b.dropped
          : a.index < b.index);
    for (let i = 0; i < all.count; i++) {
      if (i > 0 && i % BUCKET_DECODE_STEP === 0 && slicer.due) await slicer.next();
      const windowDrops = all.values.readUInt32LE(i * valueStride + V.windowDrops);
      if (windowDrops === 0) continue;
      const window = this.confOf(all.keys.readUInt32LE(i * keySize + K.ruleId))?.banWithinNs;
      if (window === undefined || now - all.values.readBigUInt64LE(i * valueStride + V.windowNs) >= window) continue;
      best.offer({ index: i, windowDrops, dropped: all.values.readBigUInt64LE(i * valueStride + V.dropped) });
    }
    return best.ranked().map(({ index }) => {
      const bucket = decodeBucketKey(all.keys, index * keySize);
      return { ruleId: bucket.ruleId, bucket, state: decodeBucket(all.values, index * valueStride) };
    });
  }
}

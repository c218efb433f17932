// The rate limiter's kernel state from the control plane's side: rule
// parameters written before the rule tables flip (a packet classified by
// the new table always finds its rule's conf), shared buckets written full
// with their rule (at its slot, zeroed with the slot), source buckets of a
// rule swept after it left both hooks;
// counters, active buckets and the most limited sources read back; idle
// buckets swept. See "rate limits" in xdp/include/xdpwall_abi.h.
import type { BpfMap } from '@xdpwall/addon';
import { Layout, MAPS, RATELIMIT_MAPS, RlPer, cpusOf, encodeRuleId, sumCounters, type Counter } from '../datapath/abi.js';
import { encodeRateConf, type RateConf } from './model.js';
import type { Bucket } from './reference.js';
import { TimeSlicer, type Slicer } from '../event-loop.js';
import { TopK } from '../top-k.js';

/** Buckets decoded between two questions to the slicer. */
export const BUCKET_DECODE_STEP = 1024;

export interface RateLimitMaps {
  rules: BpfMap;
  /** xw_rl_rule_buckets: by rule slot, a rule's shared (per rule, overflow) bucket. */
  ruleBuckets: BpfMap;
  /** xw_rl_buckets_v4: IPv4 source buckets, slots of a key (xw_rl_key_v4) and its bucket. */
  bucketsV4: BpfMap;
  /** xw_rl_buckets: IPv6 source buckets (xw_rl_key). */
  buckets: BpfMap;
  /** xw_rl_stats: by rule slot, over-limit packets. */
  stats: BpfMap;
  /** xw_slot_hits: by rule slot, the rules' hits; a ratelimit rule's admitted packets. */
  hits: BpfMap;
  reports: BpfMap;
  reportBudget: BpfMap;
}

export function rateLimitMapsOf(object: { map(name: string): BpfMap }): RateLimitMaps {
  return {
    rules: object.map(RATELIMIT_MAPS.rules),
    ruleBuckets: object.map(RATELIMIT_MAPS.ruleBuckets),
    bucketsV4: object.map(RATELIMIT_MAPS.bucketsV4),
    buckets: object.map(RATELIMIT_MAPS.buckets),
    stats: object.map(RATELIMIT_MAPS.stats),
    hits: object.map(MAPS.slotHits),
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

/** A struct xw_rl_key_v4 (a slot's key): its prefix length is its rule's (prefixV4 per source-prefix, else 32). */
export function decodeBucketKeyV4(buf: Buffer, offset: number, prefixLen: number): BucketKey {
  const L = Layout.rlKeyV4;
  return {
    ruleId: buf.readUInt32LE(offset + L.ruleId),
    family: 4,
    prefixLen,
    addr: new Uint8Array(buf.subarray(offset + L.addr, offset + L.addr + 4)),
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
  const dropped = buf.readBigUInt64LE(offset + L.dropped);
  return {
    pktTokens: buf.readBigInt64LE(offset + L.pktTokens),
    bitTokens: buf.readBigInt64LE(offset + L.bitTokens),
    lastNs: buf.readBigUInt64LE(offset + L.lastNs),
    admitted: buf.readBigUInt64LE(offset + L.admitted),
    dropped,
    windowNs: buf.readBigUInt64LE(offset + L.windowNs),
    windowDrops: windowDropsOf(dropped, buf.readBigUInt64LE(offset + L.windowBase)),
  };
}

/** The drops of a bucket's current window: dropped - window_base (0 if a racing reset left base ahead). */
function windowDropsOf(dropped: bigint, base: bigint): number {
  return dropped > base ? Number(dropped - base) : 0;
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

  /**
   * Before a hook's table flips: every ratelimit rule it will hold has its
   * conf and shared bucket. A slot given to a rule was zeroed (RuleSlots),
   * so an all-zero bucket is a new rule's and is written full; any other
   * is the rule's own, kept (across a restart too: the array is pinned).
   */
  prepare(rules: readonly RateRule[]): void {
    for (const { slot, conf } of rules) {
      const key = encodeRuleId(slot);
      this.maps.rules.update(key, encodeRateConf(conf, this.maps.bucketsV4.maxEntries));
      const bucket = this.maps.ruleBuckets.lookup(key);
      if (!bucket || bucket.every((byte) => byte === 0)) this.maps.ruleBuckets.update(key, encodeFullBucket(conf, this.monotonicNs()));
    }
  }

  /**
   * After a hook's table flipped and no packet reads the old one: the
   * rules it holds now. A rule in neither hook's table any more keeps
   * nothing: its source buckets go with the next sweep, its slot's conf,
   * counters and shared bucket are overwritten and zeroed when the slot is
   * given again.
   */
  committed(hook: string, rules: readonly RateRule[]): void {
    this.installed.set(hook, new Map(rules.map((r) => [r.kernelId, r])));
  }

  private ruleOf(kernelId: number): RateRule | undefined {
    for (const rules of this.installed.values()) {
      const rule = rules.get(kernelId);
      if (rule) return rule;
    }
    return undefined;
  }

  /** An installed ratelimit rule's slot: the index of its conf, counters and shared bucket. */
  slotOf(kernelId: number): number | undefined {
    return this.ruleOf(kernelId)?.slot;
  }

  confOf(kernelId: number): RateConf | undefined {
    return this.ruleOf(kernelId)?.conf;
  }

  /**
   * An installed ratelimit rule's counters (zero for one not installed):
   * the exit counts an admitted packet as the rule's hit (xw_slot_hits), an
   * over-limit one in xw_rl_stats, each once.
   */
  ruleStats(kernelId: number): RuleLimitStats {
    const rule = this.ruleOf(kernelId);
    const key = rule ? encodeRuleId(rule.slot) : null;
    const hits = key && this.maps.hits.lookup(key);
    const over = key && this.maps.stats.lookup(key);
    const zero = (): Counter => ({ packets: 0n, bytes: 0n });
    return {
      admitted: hits ? sumCounters(hits, 0, this.maps.hits.valueStride, cpusOf(this.maps.hits)) : zero(),
      dropped: over ? sumCounters(over, 0, this.maps.stats.valueStride, cpusOf(this.maps.stats), Layout.rlStats.dropped) : zero(),
    };
  }

  /** The prefix length of a rule's IPv4 source buckets (32 for a rule no longer installed: swept anyway). */
  private prefixV4Of(kernelId: number): number {
    const conf = this.confOf(kernelId);
    return conf?.per === RlPer.prefix ? conf.prefixV4 : 32;
  }

  /**
   * Every source bucket of both families (one batch read each, on a worker
   * thread), decoded in steps that give the event loop back when `slicer`
   * says so: a table of capacity.rateBuckets entries is tens of
   * milliseconds of decoding. raw: its key in its own table (`map`): an
   * IPv4 bucket's slot index, an IPv6 bucket's xw_rl_key.
   */
  async readBuckets(slicer: Slicer = new TimeSlicer()): Promise<SourceBucket[]> {
    const out: SourceBucket[] = [];
    const S = Layout.rlSlotV4;
    const slots = this.maps.bucketsV4;
    const v4 = await slots.lookupAll();
    for (let i = 0; i < v4.count; i++) {
      if (i > 0 && i % BUCKET_DECODE_STEP === 0 && slicer.due) await slicer.next();
      const at = i * slots.valueStride;
      const ruleId = v4.values.readUInt32LE(at + S.key + Layout.rlKeyV4.ruleId);
      if (ruleId === 0) continue; // a free slot (every key has a rule id)
      const key = decodeBucketKeyV4(v4.values, at + S.key, this.prefixV4Of(ruleId));
      const raw = Buffer.from(v4.keys.subarray(i * slots.keySize, (i + 1) * slots.keySize));
      out.push({ key, map: slots, raw, state: decodeBucket(v4.values, at + S.bucket) });
    }
    const map = this.maps.buckets;
    const v6 = await map.lookupAll();
    for (let i = 0; i < v6.count; i++) {
      if (i > 0 && i % BUCKET_DECODE_STEP === 0 && slicer.due) await slicer.next();
      const raw = Buffer.from(v6.keys.subarray(i * map.keySize, (i + 1) * map.keySize));
      out.push({ key: decodeBucketKey(raw), map, raw, state: decodeBucket(v6.values, i * map.valueStride) });
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
    const doomed = new Map<BpfMap, Buffer[]>();
    for (const { key, map, raw, state } of await this.readBuckets()) {
      const conf = this.confOf(key.ruleId);
      const fill = conf ? (conf.pktFillNs > conf.bitFillNs ? conf.pktFillNs : conf.bitFillNs) : 0n;
      const idleFor = fill > idleNs ? fill : idleNs;
      if (!conf || conf.per === RlPer.rule || (now > state.lastNs && now - state.lastNs >= idleFor)) {
        let keys = doomed.get(map);
        if (!keys) doomed.set(map, (keys = []));
        keys.push(raw);
      }
    }
    let deleted = 0;
    for (const [map, keys] of doomed) deleted += await freeBuckets(map, this.maps.bucketsV4, keys);
    return deleted;
  }

  /**
   * The sources (or prefixes) being limited now: buckets with drops in a
   * drop-count window that is still current, most such drops first (then
   * most drops in all, then table order, IPv4 first). Each table is read
   * once and scanned in steps that give the event loop back when `slicer`
   * says so; only the `limit` best are kept and decoded, so a table full of
   * limited sources (a spoofed flood) costs O(n log limit), not a sort of n
   * objects.
   */
  async top(limit: number, slicer: Slicer = new TimeSlicer()): Promise<LimitedSource[]> {
    const now = this.monotonicNs();
    const V = Layout.rlBucket;
    const S = Layout.rlSlotV4;
    const tables = [this.maps.bucketsV4, this.maps.buckets];
    const read = await Promise.all(tables.map((map) => map.lookupAll()));
    // Where a table's entry i has its key and its bucket: an IPv4 slot holds both.
    const keyAt = (t: number, i: number) => (t === 0 ? i * tables[0]!.valueStride + S.key : i * tables[1]!.keySize);
    const bucketAt = (t: number, i: number) => i * tables[t]!.valueStride + (t === 0 ? S.bucket : 0);
    const keysOf = (t: number) => (t === 0 ? read[0]!.values : read[1]!.keys);
    const best = new TopK<{ table: number; index: number; windowDrops: number; dropped: bigint }>(limit, (a, b) =>
      a.windowDrops !== b.windowDrops ? a.windowDrops > b.windowDrops
        : a.dropped !== b.dropped ? a.dropped > b.dropped
          : a.table !== b.table ? a.table < b.table
            : a.index < b.index);
    let scanned = 0;
    for (let t = 0; t < tables.length; t++) {
      const all = read[t]!;
      const keys = keysOf(t);
      for (let i = 0; i < all.count; i++, scanned++) {
        if (scanned > 0 && scanned % BUCKET_DECODE_STEP === 0 && slicer.due) await slicer.next();
        const ruleId = keys.readUInt32LE(keyAt(t, i)); // it leads both key layouts
        if (ruleId === 0) continue; // a free IPv4 slot
        const at = bucketAt(t, i);
        const dropped = all.values.readBigUInt64LE(at + V.dropped);
        const windowDrops = windowDropsOf(dropped, all.values.readBigUInt64LE(at + V.windowBase));
        if (windowDrops === 0) continue;
        const window = this.confOf(ruleId)?.banWithinNs;
        if (window === undefined || now - all.values.readBigUInt64LE(at + V.windowNs) >= window) continue;
        best.offer({ table: t, index: i, windowDrops, dropped });
      }
    }
    return best.ranked().map(({ table, index }) => {
      const keys = keysOf(table);
      const at = keyAt(table, index);
      const bucket = table === 0 ? decodeBucketKeyV4(keys, at, this.prefixV4Of(keys.readUInt32LE(at))) : decodeBucketKey(keys, at);
      return { ruleId: bucket.ruleId, bucket, state: decodeBucket(read[table]!.values, bucketAt(table, index)) };
    });
  }
}

/** A source bucket as read: its key, its table and key there (raw), its state. */
export interface SourceBucket {
  key: BucketKey;
  map: BpfMap;
  raw: Buffer;
  state: BucketState;
}

/**
 * Frees the buckets at `keys` of `map`: zeroes slots of the IPv4 slot
 * table `slotsV4` (a free slot is all zeros), deletes entries of a hash.
 * Returns how many.
 */
async function freeBuckets(map: BpfMap, slotsV4: BpfMap, keys: readonly Buffer[]): Promise<number> {
  if (keys.length === 0) return 0;
  if (map !== slotsV4) return map.deleteBatch(Buffer.concat(keys), keys.length);
  return map.updateBatch(Buffer.concat(keys), Buffer.alloc(keys.length * map.valueStride), keys.length);
}

/** Frees every source bucket of both families (tests and benchmarks start from none). */
export async function clearSourceBuckets(maps: Pick<RateLimitMaps, 'bucketsV4' | 'buckets'>): Promise<void> {
  const slots = maps.bucketsV4;
  const indexes = Uint32Array.from({ length: slots.maxEntries }, (_, i) => i);
  await slots.updateBatch(Buffer.from(indexes.buffer), Buffer.alloc(slots.maxEntries * slots.valueStride), slots.maxEntries);
  const all = await maps.buckets.lookupAll();
  if (all.count > 0) await maps.buckets.deleteBatch(all.keys.subarray(0, all.count * maps.buckets.keySize), all.count);
}

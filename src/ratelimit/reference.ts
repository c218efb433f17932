// The reference limiter: xdp/lib/ratelimit.h written plainly for one CPU
// (every compare-and-swap succeeds), for the packet-by-packet agreement
// test and for anyone who wants to know what a rate will admit. Pure: the
// caller says what time it is.
import { RL_PROBES, RL_SCALE, RlPer, rlSlotFirst } from '../datapath/abi.js';
import type { RateConf } from './model.js';

export interface Bucket {
  pktTokens: bigint;
  bitTokens: bigint;
  lastNs: bigint;
  admitted: bigint;
  dropped: bigint;
  windowNs: bigint;
  windowDrops: number;
}

export const newBucket = (conf: RateConf, nowNs: bigint): Bucket => ({
  pktTokens: conf.pktCap,
  bitTokens: conf.bitCap,
  lastNs: nowNs,
  admitted: 0n,
  dropped: 0n,
  windowNs: nowNs,
  windowDrops: 0,
});

const min = (a: bigint, b: bigint) => (a < b ? a : b);

/** xw_rl_take: refill (clamped), then take cost if it is there. */
function take(tokens: bigint, refill: bigint, cap: bigint, cost: bigint): { tokens: bigint; ok: boolean } {
  const avail = min(tokens + refill, cap);
  return avail >= cost ? { tokens: avail - cost, ok: true } : { tokens: avail, ok: false };
}

/** xw_rl_admit: whether a frame of `len` bytes fits the bucket at nowNs (updates it). */
export function admit(b: Bucket, conf: RateConf, nowNs: bigint, len: number): boolean {
  const elapsed = nowNs > b.lastNs ? nowNs - b.lastNs : 0n;
  if (nowNs > b.lastNs) b.lastNs = nowNs;
  let ok = true;
  if (conf.pps > 0n) {
    const r = take(b.pktTokens, min(elapsed, conf.pktFillNs) * conf.pps, conf.pktCap, RL_SCALE);
    b.pktTokens = r.tokens;
    ok = r.ok;
  }
  if (conf.bps > 0n) {
    const cost = ok ? BigInt(len) * 8n * RL_SCALE : 0n;
    const r = take(b.bitTokens, min(elapsed, conf.bitFillNs) * conf.bps, conf.bitCap, cost);
    b.bitTokens = r.tokens;
    if (!r.ok) {
      ok = false;
      if (conf.pps > 0n) b.pktTokens += RL_SCALE;
    }
  }
  return ok;
}

export interface SourcePacket {
  family: 4 | 6;
  /** 4 or 16 bytes. */
  src: Uint8Array;
  /** Frame bytes. */
  len: number;
}

/** The bucket key's text (rule, family, masked source, prefix length), as xw_rl_key_of builds it. */
export function bucketKey(ruleId: number, conf: RateConf, p: SourcePacket): { text: string; addr: Uint8Array; prefixLen: number } {
  const prefix = conf.per === RlPer.prefix;
  const prefixLen = p.family === 4 ? (prefix ? conf.prefixV4 : 32) : prefix ? conf.prefixV6 : 128;
  const addr = new Uint8Array(16);
  addr.set(p.src.subarray(0, p.family === 4 ? 4 : 16));
  for (let i = 0; i < 16; i++) {
    if (prefixLen <= i * 8) addr[i] = 0;
    else if (prefixLen < (i + 1) * 8) addr[i]! &= (0xff << ((i + 1) * 8 - prefixLen)) & 0xff;
  }
  return { text: `${ruleId}|${p.family}|${prefixLen}|${Buffer.from(addr).toString('hex')}`, addr, prefixLen };
}

/** An IPv4 bucket key as its slot holds it: xw_rl_key_v4's bytes (rule id, then the masked address) as a little-endian u64. */
export function slotKeyV4(ruleId: number, addr: Uint8Array): bigint {
  const bytes = Buffer.alloc(8);
  bytes.writeUInt32LE(ruleId >>> 0, 0);
  bytes.set(addr.subarray(0, 4), 4);
  return bytes.readBigUInt64LE(0);
}

export interface LimitOutcome {
  admitted: boolean;
  /** Which bucket was charged: the source's own, or the rule's shared one (per rule, or overflow). */
  bucket: 'own' | 'shared';
  /** The source just reached the rule's ban threshold in its window (the kernel reports it). */
  report: boolean;
}

interface SourceKey {
  text: string;
  family: 4 | 6;
  /** IPv4: the slot key and its first slot. */
  slotKey: bigint;
  first: number;
}

/**
 * The kernel's bucket tables: `capacity` IPv4 slots (a key takes the first
 * of its RL_PROBES slots that holds it, else the first free one, else none)
 * and a hash of `capacityV6` IPv6 buckets; one shared bucket per rule (whose
 * admitted and dropped the kernel leaves at 0: the rule's counters have them).
 */
export class ReferenceLimiter {
  /** Source buckets by key text. */
  readonly buckets = new Map<string, Bucket>();
  readonly shared = new Map<number, Bucket>();
  /** xw_rl_buckets_v4: the key each slot holds, 0n when free. */
  private readonly slotsV4: bigint[];
  private sizeV6 = 0;
  /** Bucket keys by source array and rule: a trace repeats packets, and key text is slow to build. */
  private readonly keys = new WeakMap<Uint8Array, Map<number, SourceKey>>();

  constructor(
    readonly capacity: number,
    readonly capacityV6 = capacity,
  ) {
    this.slotsV4 = new Array<bigint>(capacity).fill(0n);
  }

  private keyOf(ruleId: number, conf: RateConf, p: SourcePacket): SourceKey {
    let byRule = this.keys.get(p.src);
    if (!byRule) this.keys.set(p.src, (byRule = new Map()));
    let key = byRule.get(ruleId);
    if (key === undefined) {
      const { text, addr } = bucketKey(ruleId, conf, p);
      const slotKey = p.family === 4 ? slotKeyV4(ruleId, addr) : 0n;
      byRule.set(ruleId, (key = { text, family: p.family, slotKey, first: p.family === 4 ? rlSlotFirst(slotKey, this.capacity) : 0 }));
    }
    return key;
  }

  /** The source's own bucket, made full on its first packet; undefined when its table has no room for it. */
  private sourceBucket(key: SourceKey, conf: RateConf, nowNs: bigint): Bucket | undefined {
    const found = this.buckets.get(key.text);
    if (found) return found;
    if (key.family === 6) {
      if (this.sizeV6 >= this.capacityV6) return undefined;
      this.sizeV6++;
    } else {
      let free = -1;
      for (let i = 0; i < RL_PROBES && free < 0; i++) {
        const index = (key.first + i) % this.capacity;
        if (this.slotsV4[index] === 0n) free = index;
      }
      if (free < 0) return undefined;
      this.slotsV4[free] = key.slotKey;
    }
    const b = newBucket(conf, nowNs);
    this.buckets.set(key.text, b);
    return b;
  }

  check(ruleId: number, conf: RateConf, p: SourcePacket, nowNs: bigint): LimitOutcome {
    const b = conf.per === RlPer.rule ? undefined : this.sourceBucket(this.keyOf(ruleId, conf, p), conf, nowNs);
    const own = b !== undefined;
    let charged = b;
    if (!charged) {
      charged = this.shared.get(ruleId);
      if (!charged) this.shared.set(ruleId, (charged = newBucket(conf, nowNs)));
    }
    const admitted = admit(charged, conf, nowNs, p.len);
    let report = false;
    if (own && admitted) charged.admitted++;
    else if (own) {
      charged.dropped++;
      if (nowNs - charged.windowNs >= conf.banWithinNs) {
        charged.windowNs = nowNs;
        charged.windowDrops = 0;
      }
      charged.windowDrops++;
      report = conf.banAfter > 0 && charged.windowDrops === conf.banAfter;
    }
    return { admitted, bucket: own ? 'own' : 'shared', report };
  }
}

// The reference limiter: xdp/lib/ratelimit.h written plainly for one CPU
// (every compare-and-swap succeeds), for the packet-by-packet agreement
// test and for anyone who wants to know what a rate will admit. Pure: the
// caller says what time it is.
import { RL_SCALE, RlPer } from '../datapath/abi.js';
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

export interface LimitOutcome {
  admitted: boolean;
  /** Which bucket was charged: the source's own, or the rule's shared one (per rule, or overflow). */
  bucket: 'own' | 'shared';
  /** The source just reached the rule's ban threshold in its window (the kernel reports it). */
  report: boolean;
}

/**
 * The kernel's bucket tables: `capacity` source buckets per family, one
 * shared bucket per rule (whose admitted and dropped the kernel leaves at 0:
 * the rule's counters have them).
 */
export class ReferenceLimiter {
  readonly buckets = new Map<string, Bucket>();
  readonly shared = new Map<number, Bucket>();
  /** Source buckets per family (the kernel's two tables). */
  private readonly sizes = { 4: 0, 6: 0 };
  /** Bucket keys by source array and rule: a trace repeats packets, and key text is slow to build. */
  private readonly keys = new WeakMap<Uint8Array, Map<number, string>>();

  constructor(readonly capacity: number) {}

  private keyOf(ruleId: number, conf: RateConf, p: SourcePacket): string {
    let byRule = this.keys.get(p.src);
    if (!byRule) this.keys.set(p.src, (byRule = new Map()));
    let text = byRule.get(ruleId);
    if (text === undefined) byRule.set(ruleId, (text = bucketKey(ruleId, conf, p).text));
    return text;
  }

  check(ruleId: number, conf: RateConf, p: SourcePacket, nowNs: bigint): LimitOutcome {
    let b: Bucket | undefined;
    let own = false;
    if (conf.per !== RlPer.rule) {
      const text = this.keyOf(ruleId, conf, p);
      b = this.buckets.get(text);
      if (!b && this.sizes[p.family] < this.capacity) {
        this.buckets.set(text, (b = newBucket(conf, nowNs)));
        this.sizes[p.family]++;
      }
      own = b !== undefined;
    }
    if (!b) {
      b = this.shared.get(ruleId);
      if (!b) this.shared.set(ruleId, (b = newBucket(conf, nowNs)));
    }
    const admitted = admit(b, conf, nowNs, p.len);
    if (own && admitted) b.admitted++;
    else if (own) b.dropped++;
    let report = false;
    if (!admitted && own) {
      if (nowNs - b.windowNs >= conf.banWithinNs) {
        b.windowNs = nowNs;
        b.windowDrops = 0;
      }
      b.windowDrops++;
      report = conf.banAfter > 0 && b.windowDrops === conf.banAfter;
    }
    return { admitted, bucket: own ? 'own' : 'shared', report };
  }
}

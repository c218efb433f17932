// The `rate` and `ban` of a ratelimit rule: the request form, validation
// into the canonical form the store keeps, and the kernel's bucket
// parameters (struct xw_rl_conf) derived from it. See "rate limits" in
// xdp/include/xdpwall_abi.h for what the kernel does with them.
import { InvalidRuleError } from '../errors.js';
import { Layout, RL_SCALE, RlPer } from '../datapath/abi.js';

export const RATE_PER = ['source', 'source-prefix', 'rule'] as const;
export type RatePer = (typeof RATE_PER)[number];

export const DEFAULT_PREFIX_V4 = 24;
export const DEFAULT_PREFIX_V6 = 64;
export const MAX_PPS = 1_000_000_000;
/** Bits per second; with a one-second burst the bit bucket stays below 2^63 / XW_RL_SCALE. */
export const MAX_BPS = 9_000_000_000;
export const MAX_BURST = 1_000_000_000;
/** The bit bucket holds at least one full-size Ethernet frame (1518 bytes), so any frame can pass. */
export const MIN_BIT_DEPTH = 1518 * 8;
export const MAX_BAN_WITHIN = 86_400;
export const MAX_BAN_AFTER = 1_000_000_000;
const MAX_SCALED = (1n << 63n) - 1n;

export interface RateInput {
  pps?: number | null;
  bps?: number | null;
  burst?: number | null;
  per?: RatePer;
  prefixV4?: number | null;
  prefixV6?: number | null;
}

export interface BanInput {
  afterDrops: number;
  within: number;
  ttl: number;
}

/** Canonical: burst resolved (packets; null without pps), prefixes only for source-prefix. */
export interface RateSpec {
  pps: number | null;
  bps: number | null;
  burst: number | null;
  per: RatePer;
  prefixV4: number | null;
  prefixV6: number | null;
}

export type BanSpec = BanInput;

const invalid = (field: string, message: string): InvalidRuleError => new InvalidRuleError(field, `${field}: ${message}`);

const isInteger = (value: unknown, lo: number, hi: number): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= lo && value <= hi;

export function parseRate(input: RateInput | null | undefined): RateSpec {
  if (input == null || typeof input !== 'object') throw invalid('rate', 'a ratelimit rule needs rate: {pps and/or bps, burst, per}');
  const pps = input.pps ?? null;
  const bps = input.bps ?? null;
  if (pps === null && bps === null) throw invalid('rate', 'give pps, bps or both');
  if (pps !== null && !isInteger(pps, 1, MAX_PPS)) throw invalid('rate.pps', `packets per second, an integer 1..${MAX_PPS}`);
  if (bps !== null && !isInteger(bps, 1, MAX_BPS)) throw invalid('rate.bps', `bits per second, an integer 1..${MAX_BPS}`);
  let burst = input.burst ?? null;
  if (burst !== null) {
    if (pps === null) throw invalid('rate.burst', 'counts packets: give pps with it');
    if (!isInteger(burst, 1, MAX_BURST)) throw invalid('rate.burst', `packets, an integer 1..${MAX_BURST}`);
  } else if (pps !== null) {
    burst = pps; // one second's worth
  }
  const per = input.per ?? 'source';
  if (!(RATE_PER as readonly string[]).includes(per)) throw invalid('rate.per', 'source, source-prefix or rule');
  let prefixV4: number | null = null;
  let prefixV6: number | null = null;
  if (per === 'source-prefix') {
    prefixV4 = input.prefixV4 ?? DEFAULT_PREFIX_V4;
    prefixV6 = input.prefixV6 ?? DEFAULT_PREFIX_V6;
    if (!isInteger(prefixV4, 1, 32)) throw invalid('rate.prefixV4', 'a prefix length 1..32');
    if (!isInteger(prefixV6, 1, 128)) throw invalid('rate.prefixV6', 'a prefix length 1..128');
  } else if (input.prefixV4 != null || input.prefixV6 != null) {
    throw invalid(input.prefixV4 != null ? 'rate.prefixV4' : 'rate.prefixV6', 'only with per "source-prefix"');
  }
  const spec: RateSpec = { pps, bps, burst, per, prefixV4, prefixV6 };
  rateConf(spec, null); // refuses depths the kernel's integers cannot hold
  return spec;
}

export function parseBan(input: BanInput | null | undefined, per: RatePer, maxTtl: number): BanSpec | null {
  if (input == null) return null;
  if (typeof input !== 'object') throw invalid('ban', '{afterDrops, within, ttl}');
  if (per === 'rule') throw invalid('ban', 'bans name a source: needs per "source" or "source-prefix"');
  if (!isInteger(input.afterDrops, 1, MAX_BAN_AFTER)) throw invalid('ban.afterDrops', `an integer 1..${MAX_BAN_AFTER}`);
  if (!isInteger(input.within, 1, MAX_BAN_WITHIN)) throw invalid('ban.within', `seconds, an integer 1..${MAX_BAN_WITHIN}`);
  if (!isInteger(input.ttl, 1, maxTtl)) throw invalid('ban.ttl', `seconds, an integer 1..${maxTtl}`);
  return { afterDrops: input.afterDrops, within: input.within, ttl: input.ttl };
}

/** struct xw_rl_conf, as numbers the kernel uses (bigint: scaled tokens exceed 2^53). */
export interface RateConf {
  pps: bigint;
  bps: bigint;
  pktCap: bigint;
  bitCap: bigint;
  pktFillNs: bigint;
  bitFillNs: bigint;
  banWithinNs: bigint;
  banAfter: number;
  per: number;
  prefixV4: number;
  prefixV6: number;
}

const ceilDiv = (a: bigint, b: bigint): bigint => (a + b - 1n) / b;

/**
 * The kernel's parameters: packet bucket `burst` deep; bit bucket as many
 * seconds deep as the packet bucket (burst / pps), or one second without
 * pps, and at least MIN_BIT_DEPTH bits.
 */
export function rateConf(rate: RateSpec, ban: BanSpec | null): RateConf {
  const pps = BigInt(rate.pps ?? 0);
  const bps = BigInt(rate.bps ?? 0);
  const pktCap = pps > 0n ? BigInt(rate.burst ?? rate.pps!) * RL_SCALE : 0n;
  let bitDepth = 0n;
  if (bps > 0n) {
    bitDepth = pps > 0n ? (bps * BigInt(rate.burst ?? rate.pps!)) / pps : bps;
    if (bitDepth < BigInt(MIN_BIT_DEPTH)) bitDepth = BigInt(MIN_BIT_DEPTH);
  }
  const bitCap = bitDepth * RL_SCALE;
  if (bitCap > MAX_SCALED) throw invalid('rate.bps', 'the bit bucket (bps x burst / pps) is too deep: lower bps or burst');
  return {
    pps,
    bps,
    pktCap,
    bitCap,
    pktFillNs: pps > 0n ? ceilDiv(pktCap, pps) : 0n,
    bitFillNs: bps > 0n ? ceilDiv(bitCap, bps) : 0n,
    banWithinNs: BigInt(ban?.within ?? 1) * 1_000_000_000n, // without a ban: a 1 s window of drops, for top
    banAfter: ban?.afterDrops ?? 0,
    per: RlPer[rate.per === 'source-prefix' ? 'prefix' : rate.per],
    prefixV4: rate.prefixV4 ?? 32,
    prefixV6: rate.prefixV6 ?? 128,
  };
}

/** A rule's xw_rl_conf; slotsV4: xw_rl_buckets_v4's slots (its max entries). */
export function encodeRateConf(conf: RateConf, slotsV4: number): Buffer {
  const L = Layout.rlConf;
  const b = Buffer.alloc(L.size);
  b.writeBigUInt64LE(conf.pps, L.pps);
  b.writeBigUInt64LE(conf.bps, L.bps);
  b.writeBigUInt64LE(conf.pktCap, L.pktCap);
  b.writeBigUInt64LE(conf.bitCap, L.bitCap);
  b.writeBigUInt64LE(conf.pktFillNs, L.pktFillNs);
  b.writeBigUInt64LE(conf.bitFillNs, L.bitFillNs);
  b.writeBigUInt64LE(conf.banWithinNs, L.banWithinNs);
  b.writeUInt32LE(conf.banAfter, L.banAfter);
  b.writeUInt8(conf.per, L.per);
  b.writeUInt8(conf.prefixV4, L.prefixV4);
  b.writeUInt8(conf.prefixV6, L.prefixV6);
  b.writeUInt32LE(slotsV4, L.slotsV4);
  return b;
}

/** The rate as the API reports it. */
export function rateView(rate: RateSpec) {
  return {
    pps: rate.pps,
    bps: rate.bps,
    burst: rate.burst,
    per: rate.per,
    ...(rate.per === 'source-prefix' && { prefixV4: rate.prefixV4, prefixV6: rate.prefixV6 }),
  };
}

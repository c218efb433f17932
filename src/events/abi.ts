// TypeScript mirror of the "events" part of xdp/include/xdpwall_abi.h:
// map names, the layouts of struct xw_event and struct xw_event_cfg, and the
// event decoder. test/abi.test.ts checks it against the object's BTF.
import { Direction, Reason, STATS_REASONS, Verdict, type DirectionName, type ReasonName, type VerdictName } from '../datapath/abi.js';

export const EVENT_MAPS = {
  ring: 'xw_events',
  cfg: 'xw_event_cfg',
  stats: 'xw_event_stats',
} as const;

export const EVENT_SNAP_LEN = 128;
export const EVENTS_RING_BYTES = 1 << 20;

/** enum xw_event_stat: slots of xw_event_stats. */
export const EventStat = { sampled: 0, lostCap: 1, lostRing: 2 } as const;
export const EVENT_STATS = 3;
/** enum xw_event_flags */
export const EventFlags = { l4: 1 << 0, vlan: 1 << 1 } as const;

export const EventLayout = {
  event: {
    size: 200,
    tsNs: 0,
    ifindex: 8,
    ruleId: 12,
    len: 16,
    reason: 20,
    verdict: 22,
    direction: 23,
    family: 24,
    proto: 25,
    tcpFlags: 26,
    flags: 27,
    vlan: 28,
    sport: 30,
    dport: 32,
    snapLen: 34,
    saddr: 36,
    daddr: 52,
    data: 68,
    pad: 196,
  },
  // sample: __u32[STATS_REASONS]
  cfg: { size: 152, sample: 0, ratePerSec: 128, burst: 136, testNowNs: 144 },
} as const;

/** One sampled packet as the ring holds it, decoded (kernel ids, not yet API names). */
export interface RawEvent {
  tsNs: bigint;
  ifindex: number;
  /** Kernel rule id (xw_rule_stats key), 0 when none decided. */
  ruleId: number;
  len: number;
  reason: ReasonName | `reason_${number}`;
  verdict: VerdictName;
  direction: DirectionName;
  family: 0 | 4 | 6;
  proto: number;
  tcpFlags: number;
  /** Whether sport, dport and tcpFlags were parsed. */
  l4: boolean;
  vlan: number | null;
  sport: number;
  dport: number;
  /** 16 bytes each, IPv4 as IPv4-mapped IPv6. */
  saddr: Uint8Array;
  daddr: Uint8Array;
  /** The frame's first bytes (at most EVENT_SNAP_LEN). */
  data: Buffer;
}

const reasonNames = new Map<number, ReasonName>(Object.entries(Reason).map(([name, value]) => [value, name as ReasonName]));
const verdictNames = new Map<number, VerdictName>(Object.entries(Verdict).map(([name, value]) => [value, name as VerdictName]));
const directionNames = new Map<number, DirectionName>(Object.entries(Direction).map(([name, value]) => [value, name as DirectionName]));

/** Decodes one ring record; undefined when it is not an xw_event (wrong size). */
export function decodeEvent(record: Buffer): RawEvent | undefined {
  const L = EventLayout.event;
  if (record.length < L.size) return undefined;
  const reason = record.readUInt16LE(L.reason);
  const flags = record.readUInt8(L.flags);
  const family = record.readUInt8(L.family);
  const snapLen = Math.min(record.readUInt16LE(L.snapLen), EVENT_SNAP_LEN);
  return {
    tsNs: record.readBigUInt64LE(L.tsNs),
    ifindex: record.readUInt32LE(L.ifindex),
    ruleId: record.readUInt32LE(L.ruleId),
    len: record.readUInt32LE(L.len),
    reason: reasonNames.get(reason) ?? `reason_${reason}`,
    verdict: verdictNames.get(record.readUInt8(L.verdict)) ?? 'drop',
    direction: directionNames.get(record.readUInt8(L.direction)) ?? 'ingress',
    family: family === 4 || family === 6 ? family : 0,
    proto: record.readUInt8(L.proto),
    tcpFlags: record.readUInt8(L.tcpFlags),
    l4: (flags & EventFlags.l4) !== 0,
    vlan: flags & EventFlags.vlan ? record.readUInt16LE(L.vlan) : null,
    sport: record.readUInt16BE(L.sport),
    dport: record.readUInt16BE(L.dport),
    saddr: new Uint8Array(record.subarray(L.saddr, L.saddr + 16)),
    daddr: new Uint8Array(record.subarray(L.daddr, L.daddr + 16)),
    data: Buffer.from(record.subarray(L.data, L.data + snapLen)),
  };
}

export interface EventCfg {
  /** 1 in N per reason (by enum value), 0 = none. */
  sample: ReadonlyMap<number, number>;
  ratePerSecond: number;
  burst: number;
  /** Tests only: a fixed clock for the bucket. */
  testNowNs?: bigint;
}

export function encodeEventCfg(cfg: EventCfg): Buffer {
  const L = EventLayout.cfg;
  const out = Buffer.alloc(L.size);
  for (const [reason, every] of cfg.sample) {
    if (reason >= 0 && reason < STATS_REASONS) out.writeUInt32LE(every, L.sample + reason * 4);
  }
  out.writeBigUInt64LE(BigInt(cfg.ratePerSecond), L.ratePerSec);
  out.writeBigUInt64LE(BigInt(cfg.burst), L.burst);
  out.writeBigUInt64LE(cfg.testNowNs ?? 0n, L.testNowNs);
  return out;
}

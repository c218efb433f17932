// Sampled packet events as the API reports them, and the filters of
// GET /v1/events and GET /v1/capture.pcap (?reason=&rule=&src=CIDR&iface=).
import { POLICY_RULE_ID_BASE, Reason, type ReasonName } from '../datapath/abi.js';
import { fromMappedV6, parseCidr, toMappedV6 } from '../rules/cidr.js';
import { InvalidArgumentError } from '../errors.js';
import { tcpFlagNames } from '../flows/query.js';
import type { RawEvent } from './abi.js';

const PROTOCOL_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6' };

export interface DropEvent {
  /** When the data plane saw the packet (ISO 8601, microseconds dropped). */
  time: string;
  /** Kernel CLOCK_MONOTONIC stamp in ns, as a decimal string (for ordering and pcap). */
  monotonicNs: string;
  iface: string | null;
  ifindex: number;
  direction: 'ingress' | 'egress';
  verdict: 'pass' | 'drop';
  reason: string;
  /** The policy rule (/v1/rules id) that decided, or null. */
  rule: number | null;
  /** The block (/v1/blocks id) that decided, or null. */
  block: number | null;
  /** 0 when the frame did not parse as IP. */
  family: 0 | 4 | 6;
  src: string | null;
  dst: string | null;
  proto: string | null;
  srcPort: number | null;
  dstPort: number | null;
  vlan: number | null;
  tcpFlags: string[];
  /** Frame length in bytes. */
  length: number;
  /** The frame's first bytes (up to 128), base64. */
  snapshot: string;
}

/** A decoded event with its frame bytes kept for pcap. */
export interface SampledPacket {
  event: DropEvent;
  tsNs: bigint;
  /** Wall-clock time in microseconds since the epoch. */
  wallUs: bigint;
  frame: Buffer;
  /** For filters: the source as the kernel stored it (IPv4-mapped IPv6). */
  srcMapped: Uint8Array;
}

export interface EventContext {
  ifaceName(ifindex: number): string | undefined;
  /** CLOCK_MONOTONIC ns -> wall-clock microseconds. */
  wallUs(monotonicNs: bigint): bigint;
}

export function toSampledPacket(raw: RawEvent, ctx: EventContext): SampledPacket {
  const isPolicyRule = raw.ruleId >= POLICY_RULE_ID_BASE;
  const ip = raw.family !== 0;
  const wallUs = ctx.wallUs(raw.tsNs);
  const event: DropEvent = {
    time: new Date(Number(wallUs / 1000n)).toISOString(),
    monotonicNs: raw.tsNs.toString(),
    iface: ctx.ifaceName(raw.ifindex) ?? null,
    ifindex: raw.ifindex,
    direction: raw.direction,
    verdict: raw.verdict,
    reason: raw.reason,
    rule: raw.ruleId !== 0 && isPolicyRule ? raw.ruleId - POLICY_RULE_ID_BASE : null,
    block: raw.ruleId !== 0 && !isPolicyRule ? raw.ruleId : null,
    family: raw.family,
    src: ip ? fromMappedV6(raw.saddr).text : null,
    dst: ip ? fromMappedV6(raw.daddr).text : null,
    proto: ip ? (PROTOCOL_NAMES[raw.proto] ?? String(raw.proto)) : null,
    srcPort: ip && raw.l4 ? raw.sport : null,
    dstPort: ip && raw.l4 ? raw.dport : null,
    vlan: raw.vlan,
    tcpFlags: raw.proto === 6 && raw.l4 ? tcpFlagNames(raw.tcpFlags) : [],
    length: raw.len,
    snapshot: raw.data.toString('base64'),
  };
  return { event, tsNs: raw.tsNs, wallUs, frame: raw.data, srcMapped: raw.saddr };
}

/** The filter query parameters, as strings (reason may repeat or be comma-separated). */
export interface EventFilterQuery {
  reason?: string | string[];
  rule?: number;
  block?: number;
  src?: string;
  iface?: string;
}

export type EventFilter = (packet: SampledPacket) => boolean;

const REASON_NAMES = new Set(Object.keys(Reason));

/** Compiles the filters; throws InvalidArgumentError (400) on an unknown reason or a bad CIDR. */
export function compileEventFilter(query: EventFilterQuery): EventFilter {
  const reasons = [query.reason ?? []].flat().flatMap((r) => r.split(',')).map((r) => r.trim()).filter(Boolean);
  for (const reason of reasons) {
    if (!REASON_NAMES.has(reason)) {
      throw new InvalidArgumentError(`reason "${reason}" is not one of ${[...REASON_NAMES].join(', ')}`);
    }
  }
  const reasonSet = reasons.length > 0 ? new Set<string>(reasons as ReasonName[]) : undefined;
  const src = query.src === undefined ? undefined : parseCidr(query.src);
  const srcBytes = src && toMappedV6(src);
  const srcBits = src ? (src.family === 4 ? 96 + src.prefixLen : src.prefixLen) : 0;
  return (packet) => {
    const { event } = packet;
    if (reasonSet && !reasonSet.has(event.reason)) return false;
    if (query.rule !== undefined && event.rule !== query.rule) return false;
    if (query.block !== undefined && event.block !== query.block) return false;
    if (query.iface !== undefined && event.iface !== query.iface) return false;
    if (srcBytes && (event.family === 0 || !prefixMatches(packet.srcMapped, srcBytes, srcBits))) return false;
    return true;
  };
}

function prefixMatches(address: Uint8Array, prefix: Uint8Array, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (address[i] !== prefix[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((address[whole]! ^ prefix[whole]!) & mask) === 0;
}

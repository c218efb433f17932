// Flow queries over a snapshot of the flow table: filter, sort, limit.
// Pure functions of their inputs, so they are unit-tested without a kernel.
import { cidrContains, fromMappedV6, parseCidr, type Cidr } from '../rules/cidr.js';
import type { FlowEntry } from '../datapath/counters.js';
import { monotonicToIso, type Clock } from '../clock.js';
import { InvalidArgumentError } from '../errors.js';

export const FLOW_SORTS = ['bytes', 'packets', 'lastSeen'] as const;
export type FlowSort = (typeof FLOW_SORTS)[number];

export const DEFAULT_FLOW_LIMIT = 100;
export const MAX_FLOW_LIMIT = 10_000;

export interface FlowQuery {
  limit?: number;
  sort?: FlowSort;
  /** Remote peer inside this CIDR. */
  src?: string;
  /** Local address inside this CIDR. */
  dst?: string;
  /** Protocol name (tcp, udp, icmp, icmpv6) or number. */
  proto?: string;
  /** Either port equals this. */
  port?: number;
}

export interface CounterPair {
  packets: number;
  bytes: number;
}

/** One flow, both directions, oriented from the remote peer (src) to this host (dst). */
export interface FlowRecord {
  proto: string;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  iface: string | null;
  ingress: CounterPair;
  egress: CounterPair;
  firstSeen: string;
  lastSeen: string;
  tcpFlags: string[];
}

const PROTOCOL_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6' };
const PROTOCOL_NUMBERS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, 'ipv6-icmp': 58 };
const TCP_FLAG_NAMES = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'] as const;

export function protocolNumber(text: string): number {
  const byName = PROTOCOL_NUMBERS[text.toLowerCase()];
  if (byName !== undefined) return byName;
  const n = Number(text);
  if (!/^\d{1,3}$/.test(text) || n > 255) {
    throw new InvalidArgumentError(`proto "${text}" is not tcp, udp, icmp, icmpv6 or a number from 0 to 255`);
  }
  return n;
}

export function tcpFlagNames(flags: number): string[] {
  return TCP_FLAG_NAMES.filter((_, bit) => flags & (1 << bit));
}

interface CompiledQuery {
  limit: number;
  sort: FlowSort;
  src?: Cidr;
  dst?: Cidr;
  proto?: number;
  port?: number;
}

function compile(query: FlowQuery): CompiledQuery {
  const limit = query.limit ?? DEFAULT_FLOW_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_FLOW_LIMIT) {
    throw new InvalidArgumentError(`limit must be an integer from 1 to ${MAX_FLOW_LIMIT}`);
  }
  if (query.port !== undefined && (!Number.isInteger(query.port) || query.port < 0 || query.port > 65535)) {
    throw new InvalidArgumentError('port must be an integer from 0 to 65535');
  }
  return {
    limit,
    sort: query.sort ?? 'bytes',
    src: query.src === undefined ? undefined : parseCidr(query.src),
    dst: query.dst === undefined ? undefined : parseCidr(query.dst),
    proto: query.proto === undefined ? undefined : protocolNumber(query.proto),
    port: query.port,
  };
}

function sortValue(entry: FlowEntry, sort: FlowSort): bigint {
  const { ingress, egress, lastSeenNs } = entry.totals;
  if (sort === 'bytes') return ingress.bytes + egress.bytes;
  if (sort === 'packets') return ingress.packets + egress.packets;
  return lastSeenNs;
}

export function queryFlows(
  entries: readonly FlowEntry[],
  query: FlowQuery,
  clock: Clock,
  ifaceName: (ifindex: number) => string | undefined,
): FlowRecord[] {
  const q = compile(query);
  const matches = entries.filter(({ key }) => {
    if (q.proto !== undefined && key.proto !== q.proto) return false;
    if (q.port !== undefined && key.sport !== q.port && key.dport !== q.port) return false;
    if (q.src && !cidrContains(q.src, fromMappedV6(key.src))) return false;
    if (q.dst && !cidrContains(q.dst, fromMappedV6(key.dst))) return false;
    return true;
  });
  const ranked = matches
    .map((entry) => ({ entry, rank: sortValue(entry, q.sort) }))
    .sort((a, b) => (a.rank === b.rank ? 0 : a.rank > b.rank ? -1 : 1))
    .slice(0, q.limit);
  return ranked.map(({ entry: { key, totals } }) => ({
    proto: PROTOCOL_NAMES[key.proto] ?? String(key.proto),
    src: fromMappedV6(key.src).text,
    srcPort: key.sport,
    dst: fromMappedV6(key.dst).text,
    dstPort: key.dport,
    iface: ifaceName(key.ifindex) ?? null,
    ingress: { packets: Number(totals.ingress.packets), bytes: Number(totals.ingress.bytes) },
    egress: { packets: Number(totals.egress.packets), bytes: Number(totals.egress.bytes) },
    firstSeen: monotonicToIso(clock, totals.firstSeenNs),
    lastSeen: monotonicToIso(clock, totals.lastSeenNs),
    tcpFlags: tcpFlagNames(totals.tcpFlags),
  }));
}

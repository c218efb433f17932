// Flow queries over a snapshot of the flow table: filter, sort, limit.
// One pass over the kernel's packed bytes with a bounded heap for the top N;
// only the flows returned are decoded. Pure functions of their inputs, so
// they are unit-tested without a kernel.
import { fromMappedV6, parseCidr, toMappedV6 } from '../rules/cidr.js';
import { flowAt, type FlowTable } from '../datapath/counters.js';
import { Direction, Layout } from '../datapath/abi.js';
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

/** A CIDR as the flow key stores addresses: IPv4-mapped IPv6, prefix length over 128 bits. */
interface KeyPrefix {
  bytes: Uint8Array;
  bits: number;
}

interface CompiledQuery {
  limit: number;
  sort: FlowSort;
  src?: KeyPrefix;
  dst?: KeyPrefix;
  proto?: number;
  port?: number;
}

function keyPrefix(text: string): KeyPrefix {
  const cidr = parseCidr(text);
  return { bytes: toMappedV6(cidr), bits: cidr.family === 4 ? 96 + cidr.prefixLen : cidr.prefixLen };
}

function prefixMatches(key: Buffer, offset: number, prefix: KeyPrefix): boolean {
  const whole = prefix.bits >> 3;
  for (let i = 0; i < whole; i++) if (key[offset + i] !== prefix.bytes[i]) return false;
  const rest = prefix.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((key[offset + whole]! ^ prefix.bytes[whole]!) & mask) === 0;
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
    src: query.src === undefined ? undefined : keyPrefix(query.src),
    dst: query.dst === undefined ? undefined : keyPrefix(query.dst),
    proto: query.proto === undefined ? undefined : protocolNumber(query.proto),
    port: query.port,
  };
}

const u64 = (buf: Buffer, offset: number): number => buf.readUInt32LE(offset) + buf.readUInt32LE(offset + 4) * 2 ** 32;

/** The flow's sort key, read from its value (summed over CPU slots if the table had any; doubles: exact to 2^53, ample for ordering). */
function sortValue(table: FlowTable, index: number, sort: FlowSort): number {
  const slot = table.stride / table.cpus;
  const L = Layout.flowValue;
  const field = sort === 'bytes' ? Layout.counter.bytes : Layout.counter.packets;
  let value = 0;
  for (let cpu = 0; cpu < table.cpus; cpu++) {
    const base = index * table.stride + cpu * slot;
    if (sort === 'lastSeen') {
      value = Math.max(value, u64(table.values, base + L.lastSeenNs));
      continue;
    }
    for (const dir of [Direction.ingress, Direction.egress]) {
      value += u64(table.values, base + L.dir + dir * Layout.counter.size + field);
    }
  }
  return value;
}

function matches(table: FlowTable, index: number, q: CompiledQuery): boolean {
  const K = Layout.flowKey;
  const base = index * K.size;
  const { keys } = table;
  if (q.proto !== undefined && keys[base + K.proto] !== q.proto) return false;
  if (q.port !== undefined && keys.readUInt16BE(base + K.sport) !== q.port && keys.readUInt16BE(base + K.dport) !== q.port) {
    return false;
  }
  if (q.src && !prefixMatches(keys, base + K.src, q.src)) return false;
  if (q.dst && !prefixMatches(keys, base + K.dst, q.dst)) return false;
  return true;
}

/** Keeps the `limit` largest (value, earliest index) pairs seen: a min-heap on its root. */
class TopN {
  private readonly values: number[] = [];
  private readonly indexes: number[] = [];

  constructor(private readonly limit: number) {}

  /** a ranks below b: smaller value, or equal value and later in the table. */
  private below(a: number, b: number): boolean {
    const { values, indexes } = this;
    return values[a]! < values[b]! || (values[a] === values[b] && indexes[a]! > indexes[b]!);
  }

  private swap(a: number, b: number): void {
    const { values, indexes } = this;
    [values[a], values[b]] = [values[b]!, values[a]!];
    [indexes[a], indexes[b]] = [indexes[b]!, indexes[a]!];
  }

  offer(value: number, index: number): void {
    const { values, indexes } = this;
    if (values.length < this.limit) {
      values.push(value);
      indexes.push(index);
      for (let i = values.length - 1; i > 0; ) {
        const parent = (i - 1) >> 1;
        if (!this.below(i, parent)) break;
        this.swap(i, parent);
        i = parent;
      }
      return;
    }
    if (value < values[0]! || (value === values[0] && index > indexes[0]!)) return;
    values[0] = value;
    indexes[0] = index;
    for (let i = 0; ; ) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < values.length && this.below(left, least)) least = left;
      if (right < values.length && this.below(right, least)) least = right;
      if (least === i) break;
      this.swap(i, least);
      i = least;
    }
  }

  /** Table indexes, largest value first. */
  ranked(): number[] {
    const order = this.values.map((_, i) => i).sort((a, b) => (this.below(a, b) ? 1 : this.below(b, a) ? -1 : 0));
    return order.map((i) => this.indexes[i]!);
  }
}

export function queryFlows(
  table: FlowTable,
  query: FlowQuery,
  clock: Clock,
  ifaceName: (ifindex: number) => string | undefined,
): FlowRecord[] {
  const q = compile(query);
  const top = new TopN(q.limit);
  for (let i = 0; i < table.count; i++) {
    if (matches(table, i, q)) top.offer(sortValue(table, i, q.sort), i);
  }
  return top.ranked().map((index) => {
    const { key, totals } = flowAt(table, index);
    return {
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
    };
  });
}

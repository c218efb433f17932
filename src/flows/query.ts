// Flow queries over the flow table: filter, sort, limit. The query model
// (checks, the order: value descending, then table order) and the decoding of
// the flows returned. queryFlows is the reference, one pass over the kernel's
// packed bytes with a bounded heap for the top N; the daemon answers from a
// snapshot on a worker thread (src/flows/snapshot.ts) that must agree with
// it. Pure functions of their inputs, so they are unit-tested without a kernel.
import { fromMappedV6, parseCidr, toMappedV6 } from '../rules/cidr.js';
import type { FlowTable } from '../datapath/counters.js';
import { Layout, decodeFlowKey } from '../datapath/abi.js';
import { monotonicToIso, type Clock } from '../clock.js';
import { FLOW_SORTS, flowSortValue, mergeFlowValue, type FlowSlots, type FlowSort } from './merge.js';
import { InvalidArgumentError } from '../errors.js';
import type { Slicer } from '../event-loop.js';

export { FLOW_SORTS, type FlowSort } from './merge.js';

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

/** A query checked and in the key's terms: plain data, so it also crosses to the snapshot's worker. */
export interface CompiledQuery {
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

/** Checks a query (400s: INVALID_ARGUMENT, INVALID_CIDR) and puts it in the flow key's terms. */
export function compileFlowQuery(query: FlowQuery): CompiledQuery {
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

/** One flow's values in the table. */
const slotsOf = (table: FlowTable, index: number): FlowSlots => ({
  values: table.values, offset: index * table.stride, stride: table.stride, cpus: table.cpus,
});

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

/**
 * Keeps the `limit` largest (value, earliest index) pairs seen: a min-heap on
 * its root. Each kept pair owns a slot (0 .. limit-1) where its caller keeps
 * what belongs to it; an evicted pair's slot passes to the pair replacing it.
 */
class TopN {
  private readonly values: number[] = [];
  private readonly indexes: number[] = [];
  private readonly slots: number[] = [];

  constructor(private readonly limit: number) {}

  /** a ranks below b: smaller value, or equal value and later in the table. */
  private below(a: number, b: number): boolean {
    const { values, indexes } = this;
    return values[a]! < values[b]! || (values[a] === values[b] && indexes[a]! > indexes[b]!);
  }

  private swap(a: number, b: number): void {
    const { values, indexes, slots } = this;
    [values[a], values[b]] = [values[b]!, values[a]!];
    [indexes[a], indexes[b]] = [indexes[b]!, indexes[a]!];
    [slots[a], slots[b]] = [slots[b]!, slots[a]!];
  }

  /** The slot the pair now owns, or -1 when it ranks below all `limit` kept. */
  offer(value: number, index: number): number {
    const { values, indexes, slots } = this;
    if (values.length < this.limit) {
      const slot = values.length;
      values.push(value);
      indexes.push(index);
      slots.push(slot);
      for (let i = values.length - 1; i > 0; ) {
        const parent = (i - 1) >> 1;
        if (!this.below(i, parent)) break;
        this.swap(i, parent);
        i = parent;
      }
      return slot;
    }
    if (value < values[0]! || (value === values[0] && index > indexes[0]!)) return -1;
    values[0] = value;
    indexes[0] = index;
    const slot = slots[0]!;
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
    return slot;
  }

  /** Slots, largest value first. */
  ranked(): number[] {
    const order = this.values.map((_, i) => i).sort((a, b) => (this.below(a, b) ? 1 : this.below(b, a) ? -1 : 0));
    return order.map((i) => this.slots[i]!);
  }
}

/** Records decoded between two questions to the slicer. */
const RECORD_STEP = 1024;

/**
 * One query's selection over a table read in pages: offer each page's flows
 * (in table order, with the table index of the page's first flow), then take
 * the records. Compiling the query in the constructor throws its 400s before
 * any page is read.
 */
export class FlowSelection {
  private readonly query: CompiledQuery;
  private readonly top: TopN;
  /** The kept flows' key and value bytes, by slot; grown as slots are taken. */
  private kept: FlowTable | undefined;

  constructor(query: FlowQuery) {
    this.query = compileFlowQuery(query);
    this.top = new TopN(this.query.limit);
  }

  /** Offers flows [from, to) of `page`, whose flow 0 is the table's flow `base`. */
  offer(page: FlowTable, from: number, to: number, base: number): void {
    const q = this.query;
    for (let i = from; i < to; i++) {
      if (!matches(page, i, q)) continue;
      const slot = this.top.offer(flowSortValue(slotsOf(page, i), q.sort), base + i);
      if (slot >= 0) this.keep(page, i, slot);
    }
  }

  private keep(page: FlowTable, index: number, slot: number): void {
    const K = Layout.flowKey.size;
    let kept = this.kept;
    if (!kept || kept.stride !== page.stride || kept.cpus !== page.cpus) {
      if (kept) throw new RangeError('every page of one table has the same value layout');
      kept = this.kept = { keys: Buffer.alloc(0), values: Buffer.alloc(0), count: 0, stride: page.stride, cpus: page.cpus };
    }
    if (slot >= kept.count) {
      const count = Math.min(this.query.limit, Math.max(16, kept.count * 2, slot + 1));
      const keys = Buffer.alloc(count * K);
      const values = Buffer.alloc(count * kept.stride);
      kept.keys.copy(keys);
      kept.values.copy(values);
      Object.assign(kept, { keys, values, count });
    }
    page.keys.copy(kept.keys, slot * K, index * K, (index + 1) * K);
    page.values.copy(kept.values, slot * kept.stride, index * kept.stride, (index + 1) * kept.stride);
  }

  /** The selected flows, largest first, in one go. */
  records(clock: Clock, ifaceName: (ifindex: number) => string | undefined): FlowRecord[] {
    const toIso = monotonicToIso(clock);
    return this.top.ranked().map((slot) => flowRecord(this.kept!, slot, toIso, ifaceName));
  }
}

/** Decodes flows `indexes` of `table`, in that order, asking `slicer` between steps of RECORD_STEP records. */
export async function flowRecordsSliced(
  table: FlowTable,
  indexes: readonly number[],
  clock: Clock,
  ifaceName: (ifindex: number) => string | undefined,
  slicer: Slicer,
): Promise<FlowRecord[]> {
  const toIso = monotonicToIso(clock);
  const records: FlowRecord[] = [];
  for (let from = 0; from < indexes.length; from += RECORD_STEP) {
    if (from > 0 && slicer.due) await slicer.next();
    for (const index of indexes.slice(from, from + RECORD_STEP)) records.push(flowRecord(table, index, toIso, ifaceName));
  }
  return records;
}

function flowRecord(table: FlowTable, index: number, toIso: (ns: bigint) => string, ifaceName: (ifindex: number) => string | undefined): FlowRecord {
  const key = decodeFlowKey(table.keys, index * Layout.flowKey.size);
  const totals = mergeFlowValue(slotsOf(table, index));
  return {
    proto: PROTOCOL_NAMES[key.proto] ?? String(key.proto),
    src: fromMappedV6(key.src).text,
    srcPort: key.sport,
    dst: fromMappedV6(key.dst).text,
    dstPort: key.dport,
    iface: ifaceName(key.ifindex) ?? null,
    ingress: { packets: Number(totals.ingress.packets), bytes: Number(totals.ingress.bytes) },
    egress: { packets: Number(totals.egress.packets), bytes: Number(totals.egress.bytes) },
    firstSeen: toIso(totals.firstSeenNs),
    lastSeen: toIso(totals.lastSeenNs),
    tcpFlags: tcpFlagNames(totals.tcpFlags.ingress | totals.tcpFlags.egress),
  };
}

/** A query over a whole table in memory, in one go (the reference the paged scan agrees with). */
export function queryFlows(
  table: FlowTable,
  query: FlowQuery,
  clock: Clock,
  ifaceName: (ifindex: number) => string | undefined,
): FlowRecord[] {
  const selection = new FlowSelection(query);
  selection.offer(table, 0, table.count, 0);
  return selection.records(clock, ifaceName);
}

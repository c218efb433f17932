// Merges the values the kernel hands over for one flow into one record. The
// flow table may keep a value per CPU (each CPU writes only its own slot) or
// one shared value: `cpus` is the number of slots, 1 for a shared table, and
// every rule below holds for any number of them.
//   counters    summed per direction
//   firstSeen   the earliest non-zero stamp (0 in a slot: that CPU never saw the flow)
//   lastSeen    the latest stamp: a time, so never summed
//   TCP flags   ORed per direction, over every slot, whichever CPU saw them
import { Direction, Layout, type Counter } from '../datapath/abi.js';

/** The orders GET /v1/flows can sort by, each a value of a merged flow. */
export const FLOW_SORTS = ['bytes', 'packets', 'lastSeen'] as const;
export type FlowSort = (typeof FLOW_SORTS)[number];

export interface FlowTotals {
  ingress: Counter;
  egress: Counter;
  /** CLOCK_MONOTONIC nanoseconds; 0n = never. */
  firstSeenNs: bigint;
  lastSeenNs: bigint;
  /** OR of the TCP flag bytes seen, per direction. */
  tcpFlags: { ingress: number; egress: number };
}

/** Where one flow's values sit in a buffer: `stride` bytes from `offset`, split into `cpus` equal slots. */
export interface FlowSlots {
  values: Buffer;
  offset: number;
  stride: number;
  cpus: number;
}

const L = Layout.flowValue;
const C = Layout.counter;

function slotSize({ stride, cpus }: FlowSlots): number {
  if (!Number.isInteger(cpus) || cpus < 1 || stride % cpus !== 0 || stride / cpus < L.size) {
    throw new RangeError(`a flow value of ${stride} bytes does not split into ${cpus} slots of at least ${L.size} bytes`);
  }
  return stride / cpus;
}

const u64 = (values: Buffer, at: number): bigint => values.readBigUInt64LE(at);

/** Exact merge (bigints): what a flow listing shows. */
export function mergeFlowValue(flow: FlowSlots): FlowTotals {
  const slot = slotSize(flow);
  const { values, offset, cpus } = flow;
  const totals: FlowTotals = {
    ingress: { packets: 0n, bytes: 0n },
    egress: { packets: 0n, bytes: 0n },
    firstSeenNs: 0n,
    lastSeenNs: 0n,
    tcpFlags: { ingress: 0, egress: 0 },
  };
  for (let cpu = 0; cpu < cpus; cpu++) {
    const base = offset + cpu * slot;
    for (const dir of ['ingress', 'egress'] as const) {
      const at = base + L.dir + Direction[dir] * C.size;
      totals[dir].packets += u64(values, at + C.packets);
      totals[dir].bytes += u64(values, at + C.bytes);
      totals.tcpFlags[dir] |= values.readUInt8(base + L.tcpFlags + Direction[dir]);
    }
    const first = u64(values, base + L.firstSeenNs);
    if (first !== 0n && (totals.firstSeenNs === 0n || first < totals.firstSeenNs)) totals.firstSeenNs = first;
    const last = u64(values, base + L.lastSeenNs);
    if (last > totals.lastSeenNs) totals.lastSeenNs = last;
  }
  return totals;
}

const double = (values: Buffer, at: number): number => values.readUInt32LE(at) + values.readUInt32LE(at + 4) * 2 ** 32;

/**
 * The merged value a listing sorts by, as a double (exact to 2^53, ample for
 * ordering), read without building the record: queries call it for every
 * flow in the table. Agrees with mergeFlowValue: bytes and packets summed
 * over both directions and every slot, lastSeen the maximum.
 */
export function flowSortValue(flow: FlowSlots, field: FlowSort): number {
  const slot = slotSize(flow);
  const { values, offset, cpus } = flow;
  let value = 0;
  for (let cpu = 0; cpu < cpus; cpu++) {
    const base = offset + cpu * slot;
    if (field === 'lastSeen') {
      value = Math.max(value, double(values, base + L.lastSeenNs));
      continue;
    }
    const at = base + L.dir + (field === 'bytes' ? C.bytes : C.packets);
    value += double(values, at + Direction.ingress * C.size) + double(values, at + Direction.egress * C.size);
  }
  return value;
}

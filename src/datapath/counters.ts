// Reads the data plane's counters: batch lookups, per-CPU values summed.
import type { BpfMap } from '@xdpwall/addon';
import { cpusOf, statsIndexParts, sumCounters, type Counter, type StatsKey } from './abi.js';

export interface StatsEntry {
  key: StatsKey;
  counter: Counter;
}

/**
 * The counters that counted something, keyed as before the array: the
 * interface slot of an index is turned back into its ifindex (`ifindexOf`,
 * the control plane's copy of xw_ifslots). Counters of slots no interface
 * holds any more are left out.
 */
export async function readStats(map: BpfMap, ifindexOf: (slot: number) => number | undefined): Promise<StatsEntry[]> {
  const { keys, values, count } = await map.lookupAll();
  const cpus = cpusOf(map);
  const entries: StatsEntry[] = [];
  for (let i = 0; i < count; i++) {
    const counter = sumCounters(values, i * map.valueStride, map.valueStride, cpus);
    if (counter.packets === 0n) continue;
    const { ifslot, direction, verdict, reason } = statsIndexParts(keys.readUInt32LE(i * 4));
    const ifindex = ifindexOf(ifslot);
    if (ifindex === undefined) continue;
    entries.push({ key: { ifindex, direction, verdict, reason }, counter });
  }
  return entries;
}

/**
 * Flows as the kernel hands them over (the whole table, or one page of it):
 * packed keys and values (one per key: xw_flows is shared by all CPUs;
 * src/flows/merge.ts reads any number of per-CPU slots). Queries scan these
 * bytes directly and decode only the flows they return, so a million-entry
 * table costs one pass, not a million objects.
 */
export interface FlowTable {
  keys: Buffer;
  values: Buffer;
  count: number;
  /** Bytes of one element's values (all CPUs). */
  stride: number;
  cpus: number;
}

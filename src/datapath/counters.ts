// Reads the data plane's counters: batch lookups, per-CPU values summed.
import type { BpfMap } from '@xdpwall/addon';
import { Layout, cpusOf, decodeStatsKey, sumCounters, type Counter, type StatsKey } from './abi.js';

export interface StatsEntry {
  key: StatsKey;
  counter: Counter;
}

export async function readStats(map: BpfMap): Promise<StatsEntry[]> {
  const { keys, values, count } = await map.lookupAll();
  const cpus = cpusOf(map);
  const entries: StatsEntry[] = [];
  for (let i = 0; i < count; i++) {
    entries.push({
      key: decodeStatsKey(keys.subarray(i * Layout.statsKey.size, (i + 1) * Layout.statsKey.size)),
      counter: sumCounters(values, i * map.valueStride, map.valueStride, cpus),
    });
  }
  return entries;
}

/**
 * The flow table as the kernel handed it over: packed keys and per-CPU
 * values (src/flows/merge.ts merges them). Queries scan these bytes directly and decode only the flows they
 * return, so a million-entry table costs one pass, not a million objects.
 */
export interface FlowTable {
  keys: Buffer;
  values: Buffer;
  count: number;
  /** Bytes of one element's values (all CPUs). */
  stride: number;
  cpus: number;
}

export async function readFlows(map: BpfMap): Promise<FlowTable> {
  const { keys, values, count } = await map.lookupAll(65536);
  return { keys, values, count, stride: map.valueStride, cpus: cpusOf(map) };
}

// Reads the data plane's counters: batch lookups, per-CPU values summed.
import type { BpfMap } from '@xdpwall/addon';
import { Layout, cpusOf, decodeFlowKey, decodeStatsKey, sumCounters, sumFlowValue, type Counter, type FlowKey, type FlowTotals, type StatsKey } from './abi.js';

export interface StatsEntry {
  key: StatsKey;
  counter: Counter;
}

export interface FlowEntry {
  key: FlowKey;
  totals: FlowTotals;
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

export async function readFlows(map: BpfMap): Promise<FlowEntry[]> {
  const { keys, values, count } = await map.lookupAll();
  const cpus = cpusOf(map);
  const entries: FlowEntry[] = [];
  for (let i = 0; i < count; i++) {
    entries.push({
      key: decodeFlowKey(keys, i * Layout.flowKey.size),
      totals: sumFlowValue(values, i * map.valueStride, map.valueStride, cpus),
    });
  }
  return entries;
}

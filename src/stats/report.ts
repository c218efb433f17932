// Folds the xw_stats counters into the per-interface report of /v1/stats.
import { Direction, Reason, Verdict, type DirectionName, type ReasonName, type VerdictName } from '../datapath/abi.js';
import type { StatsEntry } from '../datapath/counters.js';
import type { CounterPair } from '../flows/query.js';

export interface DirectionStats {
  verdicts: Record<VerdictName, CounterPair>;
  /** Only reasons that counted something. */
  reasons: Partial<Record<ReasonName, CounterPair>>;
}

export interface InterfaceStats {
  iface: string | null;
  ifindex: number;
  ingress: DirectionStats;
  egress: DirectionStats;
}

/**
 * One xw_stats counter as the kernel keyed it: the verdict is the key's, not
 * a guess from the reason (on egress a malformed packet passes).
 */
export interface StatsSeries {
  iface: string | null;
  ifindex: number;
  direction: DirectionName;
  verdict: VerdictName;
  reason: ReasonName;
  packets: number;
  bytes: number;
}

export interface StatsReport {
  interfaces: InterfaceStats[];
  totals: Record<DirectionName, DirectionStats>;
  /** Every counter with a known reason, for /metrics. */
  series: StatsSeries[];
}

const nameOf = <K extends string>(table: Record<K, number>, value: number): K | undefined =>
  (Object.keys(table) as K[]).find((k) => table[k] === value);

const emptyDirection = (): DirectionStats => ({
  verdicts: { pass: { packets: 0, bytes: 0 }, drop: { packets: 0, bytes: 0 } },
  reasons: {},
});

function add(stats: DirectionStats, verdict: VerdictName, reason: ReasonName | undefined, packets: number, bytes: number): void {
  stats.verdicts[verdict].packets += packets;
  stats.verdicts[verdict].bytes += bytes;
  if (!reason) return;
  const counter = (stats.reasons[reason] ??= { packets: 0, bytes: 0 });
  counter.packets += packets;
  counter.bytes += bytes;
}

export function buildStatsReport(entries: readonly StatsEntry[], ifaceName: (ifindex: number) => string | undefined): StatsReport {
  const byIfindex = new Map<number, InterfaceStats>();
  const totals = { ingress: emptyDirection(), egress: emptyDirection() };
  const series: StatsSeries[] = [];
  for (const { key, counter } of entries) {
    const direction = nameOf(Direction, key.direction);
    const verdict = nameOf(Verdict, key.verdict);
    if (!direction || !verdict) continue; // not from this ABI version
    const reason = nameOf(Reason, key.reason);
    let iface = byIfindex.get(key.ifindex);
    if (!iface) {
      iface = { iface: ifaceName(key.ifindex) ?? null, ifindex: key.ifindex, ingress: emptyDirection(), egress: emptyDirection() };
      byIfindex.set(key.ifindex, iface);
    }
    const packets = Number(counter.packets);
    const bytes = Number(counter.bytes);
    add(iface[direction], verdict, reason, packets, bytes);
    add(totals[direction], verdict, reason, packets, bytes);
    if (reason) series.push({ iface: iface.iface, ifindex: key.ifindex, direction, verdict, reason, packets, bytes });
  }
  return { interfaces: [...byIfindex.values()].sort((a, b) => a.ifindex - b.ifindex), totals, series };
}

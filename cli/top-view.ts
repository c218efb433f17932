// What `xdpwall top` draws: one frame of text from two samples of the API a
// moment apart. Pure (no I/O, no clock), so tests can feed it samples.
// Every string that came over the wire goes through terminalSafe.
import type { StatsReport } from '../src/stats/report.js';
import type { FlowRecord } from '../src/flows/query.js';
import { humanBytes, terminalSafe } from './format.js';

/** A rule as /v1/rules lists it, as far as top needs: an id and its hit counters. */
export interface RuleSample {
  id: number | string;
  action?: string;
  src?: string | null;
  dst?: string | null;
  proto?: string | number | null;
  dstPort?: number | string | null;
  comment?: string | null;
  hits?: { packets: number; bytes: number };
}

/** "src 198.18.0.0/15 udp port 53", or "any". */
function ruleMatch(rule: RuleSample): string {
  const parts = [
    rule.src != null && `src ${rule.src}`,
    rule.dst != null && `dst ${rule.dst}`,
    rule.proto != null && String(rule.proto),
    rule.dstPort != null && `port ${rule.dstPort}`,
  ].filter((part): part is string => typeof part === 'string');
  return parts.length > 0 ? parts.join(' ') : 'any';
}

export interface TopSample {
  /** Milliseconds, from the caller's clock. */
  at: number;
  stats: StatsReport;
  flows: FlowRecord[];
  /** Absent while the daemon has no /v1/rules. */
  rules?: RuleSample[];
}

export interface TopFrameOptions {
  width: number;
  height: number;
  /** Shown in the title line, e.g. the API address. */
  source: string;
  /** The title's clock text, e.g. "14:02:11". */
  time: string;
}

interface Rate {
  packets: number;
  bytes: number;
}

const perSecond = (now: number, before: number | undefined, seconds: number): number =>
  // A counter that went down means the daemon restarted: count from zero.
  Math.max(0, before === undefined || now < before ? now : now - before) / seconds;

function reasonTotals(stats: StatsReport): Map<string, Rate> {
  const totals = new Map<string, Rate>();
  for (const iface of stats.interfaces) {
    for (const direction of ['ingress', 'egress'] as const) {
      for (const [reason, counter] of Object.entries(iface[direction].reasons)) {
        const key = `${direction} ${reason}`;
        const sum = totals.get(key) ?? { packets: 0, bytes: 0 };
        sum.packets += counter!.packets;
        sum.bytes += counter!.bytes;
        totals.set(key, sum);
      }
    }
  }
  return totals;
}

const flowKey = (f: FlowRecord): string => `${f.iface}|${f.proto}|${f.src}|${f.srcPort}|${f.dst}|${f.dstPort}`;
const endpoint = (ip: string, port: number): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
const rateText = (value: number): string => (value < 10 ? value.toFixed(1) : Math.round(value).toLocaleString('en'));
const bytesRate = (value: number): string => `${humanBytes(Math.round(value))}/s`;

function columns(rows: string[][], align: Array<'l' | 'r'>): string[] {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  return rows.map((row) => row.map((cell, col) => (align[col] === 'r' ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!))).join('  ').trimEnd());
}

/** One frame: lines no longer than width, at most height of them. */
export function renderTop(previous: TopSample, current: TopSample, options: TopFrameOptions): string[] {
  const seconds = Math.max((current.at - previous.at) / 1000, 0.001);
  const lines: string[] = [];
  const drops = current.stats.totals.ingress.verdicts.drop;
  const dropsBefore = previous.stats.totals.ingress.verdicts.drop;
  const passes = current.stats.totals.ingress.verdicts.pass;
  const passesBefore = previous.stats.totals.ingress.verdicts.pass;
  lines.push(
    `xdpwall top — ${terminalSafe(options.source)} — ${options.time}   ` +
      `in: pass ${rateText(perSecond(passes.packets, passesBefore.packets, seconds))} pkt/s, ` +
      `drop ${rateText(perSecond(drops.packets, dropsBefore.packets, seconds))} pkt/s   (q quits)`,
  );
  lines.push('');

  // Reasons: drops first, then by rate.
  const now = reasonTotals(current.stats);
  const before = reasonTotals(previous.stats);
  const reasons = [...now.entries()].map(([key, total]) => {
    const [direction, reason] = key.split(' ') as [string, string];
    const old = before.get(key);
    return {
      direction, reason, total,
      drop: !reason.startsWith('pass_'),
      packets: perSecond(total.packets, old?.packets, seconds),
      bytes: perSecond(total.bytes, old?.bytes, seconds),
    };
  }).sort((a, b) => Number(b.drop) - Number(a.drop) || b.packets - a.packets || a.reason.localeCompare(b.reason));
  lines.push(...columns([
    ['REASON', 'DIR', 'PKT/S', 'BYTES/S', 'PACKETS'],
    ...reasons.map((r) => [terminalSafe(r.reason), r.direction, rateText(r.packets), bytesRate(r.bytes), r.total.packets.toLocaleString('en')]),
  ], ['l', 'l', 'r', 'r', 'r']));
  if (reasons.length === 0) lines.push('(nothing counted yet)');
  lines.push('');

  // Busiest rules, when the API has them.
  if (current.rules) {
    const old = new Map((previous.rules ?? []).map((rule) => [String(rule.id), rule]));
    const busiest = current.rules
      .map((rule) => ({ rule, packets: perSecond(rule.hits?.packets ?? 0, old.get(String(rule.id))?.hits?.packets, seconds) }))
      .filter(({ rule, packets }) => packets > 0 || (rule.hits?.packets ?? 0) > 0)
      .sort((a, b) => b.packets - a.packets || (b.rule.hits?.packets ?? 0) - (a.rule.hits?.packets ?? 0))
      .slice(0, 5);
    lines.push(...columns([
      ['RULE', 'ACTION', 'MATCH', 'HITS/S', 'HITS', 'COMMENT'],
      ...busiest.map(({ rule, packets }) => [
        terminalSafe(String(rule.id)), terminalSafe(rule.action ?? ''), terminalSafe(ruleMatch(rule)), rateText(packets),
        (rule.hits?.packets ?? 0).toLocaleString('en'), terminalSafe(rule.comment ?? ''),
      ]),
    ], ['l', 'l', 'l', 'r', 'r', 'l']));
    if (busiest.length === 0) lines.push('(no rule has matched yet)');
    lines.push('');
  }

  // Flows by current byte rate (both directions), then by total bytes.
  const oldFlows = new Map(previous.flows.map((f) => [flowKey(f), f]));
  const flows = current.flows.map((f) => {
    const old = oldFlows.get(flowKey(f));
    const total = f.ingress.bytes + f.egress.bytes;
    return { f, total, rate: perSecond(total, old ? old.ingress.bytes + old.egress.bytes : undefined, seconds) };
  }).sort((a, b) => b.rate - a.rate || b.total - a.total);
  const room = Math.max(options.height - lines.length - 1, 0);
  lines.push(...columns([
    ['PROTO', 'REMOTE', 'LOCAL', 'IFACE', 'IN PKTS', 'IN BYTES', 'OUT PKTS', 'OUT BYTES', 'RATE'],
    ...flows.slice(0, room).map(({ f, rate }) => [
      terminalSafe(f.proto), terminalSafe(endpoint(f.src, f.srcPort)), terminalSafe(endpoint(f.dst, f.dstPort)), terminalSafe(f.iface ?? ''),
      f.ingress.packets.toLocaleString('en'), humanBytes(f.ingress.bytes), f.egress.packets.toLocaleString('en'), humanBytes(f.egress.bytes), bytesRate(rate),
    ]),
  ], ['l', 'l', 'l', 'l', 'r', 'r', 'r', 'r', 'r']));
  if (flows.length === 0) lines.push('(no flows)');

  return lines.slice(0, options.height).map((line) => (line.length > options.width ? line.slice(0, options.width) : line));
}

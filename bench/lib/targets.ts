// The targets, checked against the figures of one run. A miss is
// reported, never turned into a failing exit status.
import type { Result } from './results.js';

export interface TargetOutcome {
  name: string;
  /** The measured ratio or figure, or null when the run did not measure it. */
  measured: number | null;
  limit: number;
  /** "≤" targets pass at or below the limit, "≥" at or above, "<" strictly below. */
  op: '≤' | '≥' | '<';
  unit: string;
}

type Lookup = (suite: Result['suite'], caseName: string, metric: string) => number | null;

function lookupIn(rows: readonly Result[]): Lookup {
  return (suite, caseName, metric) => rows.find((r) => r.suite === suite && r.case === caseName && r.metric === metric)?.value ?? null;
}

const div = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : a / b);

export function evaluateTargets(rows: readonly Result[]): TargetOutcome[] {
  const get = lookupIn(rows);
  const ns = (c: string): number | null => get('ladder', c, 'time');
  const bare = ns('bare XDP_DROP');
  const pps = (c: string): number | null => get('veth', c, 'received');
  return [
    { name: 'denied v4 packet, 1M prefixes, vs bare XDP_DROP', measured: div(ns('xdpwall deny v4 (1M prefixes)'), bare), op: '≤', limit: 3, unit: '×' },
    { name: 'denied v6 packet, 256k prefixes, vs bare XDP_DROP', measured: div(ns('xdpwall deny v6 (256k prefixes)'), bare), op: '≤', limit: 3, unit: '×' },
    { name: 'denied v4 growth, 1 -> 1M prefixes', measured: div(ns('xdpwall deny v4 (1M prefixes)'), ns('xdpwall deny v4 (1 prefix)')), op: '≤', limit: 1.5, unit: '×' },
    { name: 'denied v6 growth, 1 -> 256k prefixes', measured: div(ns('xdpwall deny v6 (256k prefixes)'), ns('xdpwall deny v6 (1 prefix)')), op: '≤', limit: 1.5, unit: '×' },
    { name: 'established-flow v4 packet, 1M prefixes, vs bare', measured: div(ns('xdpwall established v4 (1M prefixes)'), bare), op: '≤', limit: 5, unit: '×' },
    { name: 'new-flow v4 packet (churn), 1M prefixes, vs bare', measured: div(ns('xdpwall new flow v4 (1M prefixes)'), bare), op: '≤', limit: 25, unit: '×' },
    { name: 'veth drop rate, xdpwall 1M prefixes vs xdp-filter', measured: div(pps('xdpwall deny src CIDR (1M prefixes)'), pps('xdp-filter deny src address')), op: '≥', limit: 1.5, unit: '×' },
    {
      name: 'import 1M IPv4 CIDRs via API vs raw map batch',
      measured: div(get('control', 'import 1M IPv4 CIDRs via POST /v1/blocks/bulk', 'time'), get('control', 'raw bpf_map_update_batch of the same 1M', 'time')),
      op: '≤', limit: 3, unit: '×',
    },
    { name: 'import 1M IPv4 CIDRs via API', measured: get('control', 'import 1M IPv4 CIDRs via POST /v1/blocks/bulk', 'time'), op: '<', limit: 10, unit: ' s' },
    { name: 'import 1M mixed IPv4/IPv6 over HTTP from another process', measured: get('control', 'import 1M mixed IPv4 /32 + IPv6 /128 over HTTP (NDJSON, another process)', 'time'), op: '<', limit: 15, unit: ' s' },
    { name: 'GET /healthz p99 during the 1M mixed import', measured: get('control', 'GET /healthz during the 1M mixed import', 'p99'), op: '<', limit: 50, unit: ' ms' },
    { name: 'daemon RSS during the 1M mixed import', measured: get('control', 'daemon RSS during the 1M mixed import', 'max'), op: '≤', limit: 600, unit: ' MB' },
    { name: 'restart to serving with 1M rules', measured: get('control', 'restart to serving with 1M rules (maps pinned)', 'time'), op: '≤', limit: 5, unit: ' s' },
    { name: 'daemon RSS with 1M rules stored', measured: get('control', 'daemon RSS serving 1M rules after restart', 'rss'), op: '≤', limit: 600, unit: ' MB' },
    { name: 'single-block POST /v1/blocks p99', measured: get('control', 'POST /v1/blocks (one CIDR), sequential', 'p99'), op: '≤', limit: 10, unit: ' ms' },
    { name: 'GET /v1/stats throughput', measured: get('control', 'GET /v1/stats under autocannon', 'throughput'), op: '≥', limit: 5000, unit: ' req/s' },
  ];
}

function passes(t: TargetOutcome): boolean {
  if (t.measured === null) return false;
  if (t.op === '≤') return t.measured <= t.limit;
  if (t.op === '<') return t.measured < t.limit;
  return t.measured >= t.limit;
}

const fmt = (v: number): string => (Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2));

export function formatTargets(targets: readonly TargetOutcome[]): string {
  return targets
    .map((t) => {
      const verdict = t.measured === null ? 'SKIP' : passes(t) ? 'PASS' : 'MISS';
      const measured = t.measured === null ? 'not measured' : `${fmt(t.measured)}${t.unit}`;
      return `${verdict} ${t.name}: ${measured} (target ${t.op} ${fmt(t.limit)}${t.unit})`;
    })
    .join('\n');
}

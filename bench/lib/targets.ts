// The targets, checked against the figures of one run. A miss is
// reported, never turned into a failing exit status.
import type { Result } from './results.js';
import { RULES_BARE, rulesCase, rulesFailsafeCase } from '../suites/rules-ladder.js';
import { VETH_RULES_1K, XDP_FILTER_SRC } from '../suites/veth-rules.js';
import { RL_BARE, RL_DROP_RULE, RL_DROP_SOURCE, rlLoadedCase } from '../suites/ratelimit-ladder.js';
import { VETH_RL_FLOOD, VETH_RL_LOADED } from '../suites/veth-ratelimit.js';

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
  const targets: TargetOutcome[] = [];
  const add = (name: string, measured: number | null, op: TargetOutcome['op'], limit: number, unit: string) =>
    targets.push({ name, measured, op, limit, unit });

  // IPv4 denies at 1M, every placement, both prefix sets: vs bare, and vs the placement's own smallest-table cost
  // (1 prefix for the plain case; the host route, /25../31 and clean /24 cases exist from 1k prefixes on).
  const placementsV4: Array<[kind: string, small: string]> = [
    ['deny v4', '1 prefix'], ['deny v4 host route', '1k prefixes'], ['deny v4 /25../31', '1k prefixes'], ['deny v4 clean /24', '1k prefixes'],
  ];
  for (const set of ['', 'realistic ']) {
    for (const [kind, small] of placementsV4) {
      const big = ns(`xdpwall ${kind} (1M ${set}prefixes)`);
      add(`${kind}, 1M ${set || 'uniform '}prefixes, vs bare XDP_DROP`, div(big, bare), '≤', 5, '×');
      add(`${kind}, 1M ${set || 'uniform '}prefixes, vs ${small}`, div(big, ns(`xdpwall ${kind} (${small})`)), '≤', 1.2, '×');
    }
    for (const [kind, small] of [['deny v6', '1 prefix'], ['deny v6 host route', '1k prefixes']] as const) {
      const big = ns(`xdpwall ${kind} (256k ${set}prefixes)`);
      add(`${kind}, 256k ${set || 'uniform '}prefixes, vs bare XDP_DROP`, div(big, bare), '≤', 8, '×');
      add(`${kind}, 256k ${set || 'uniform '}prefixes, vs ${small}`, div(big, ns(`xdpwall ${kind} (${small})`)), '≤', 1.2, '×');
    }
    add(`established v4, 1M ${set || 'uniform '}prefixes, vs bare`, div(ns(`xdpwall established v4 (1M ${set}prefixes)`), bare), '≤', 6, '×');
    add(`new flow v4 every packet, 1M ${set || 'uniform '}prefixes, vs bare`, div(ns(`xdpwall new flow v4 (1M ${set}prefixes)`), bare), '≤', 80, '×');
  }
  add(
    'new flow v4 every packet, 1M prefixes, vs the kernel LRU-insert floor',
    div(ns('xdpwall new flow v4 (1M prefixes)'), ns('churn driver + kernel LRU-insert floor (xw_flows type and size)')),
    '≤', 1.3, '×',
  );
  add('veth drop rate, xdpwall 1M prefixes vs xdp-filter', div(pps('xdpwall deny src CIDR (1M prefixes)'), pps('xdp-filter deny src address')), '≥', 1.0, '×');
  // Policy rules (issue 7): cost flat in the rule count, and the block fast path unchanged with rules loaded.
  for (const kind of ['no match', 'match last rule'] as const) {
    add(`rules, ${kind}: 1,000 vs 1 port rule`, div(ns(rulesCase(kind, 1000)), ns(rulesCase(kind, 1))), '≤', 1.5, '×');
  }
  add('deny v4 block with 1,000 port rules loaded (1M prefixes) vs bare', div(ns(rulesCase('deny v4 block', 1000)), ns(RULES_BARE)), '≤', 5, '×');
  add('deny v4 block with 1,000 port rules loaded vs with none', div(ns(rulesCase('deny v4 block', 1000)), ns(rulesCase('deny v4 block', 0))), '≤', 1.2, '×');
  // A daemon's default configuration has a failsafe list, which every packet about to drop is checked against.
  add('deny v4 block with 1,000 port rules and the default failsafe list vs bare', div(ns(rulesFailsafeCase('deny v4 block')), ns(RULES_BARE)), '≤', 5, '×');
  add('deny v4 block with the default failsafe list vs without', div(ns(rulesFailsafeCase('deny v4 block')), ns(rulesCase('deny v4 block', 1000))), '≤', 1.2, '×');
  add('veth drop rate, xdpwall 1,000 port rules + 1M blocks vs xdp-filter', div(pps(VETH_RULES_1K), pps(XDP_FILTER_SRC)), '≥', 0.8, '×');
  // Rate limits (issue 8): a drop whose bucket exists, and the earlier targets with rate-limit rules loaded.
  const rlBare = ns(RL_BARE);
  add('rate-limited drop, bucket exists, per source, vs bare XDP_DROP', div(ns(RL_DROP_SOURCE), rlBare), '≤', 10, '×');
  add('rate-limited drop, bucket exists, per rule, vs bare XDP_DROP', div(ns(RL_DROP_RULE), rlBare), '≤', 10, '×');
  add('deny v4 block, 1M prefixes, rate-limit rules loaded, vs bare', div(ns(rlLoadedCase('deny v4', 1_000_000)), rlBare), '≤', 5, '×');
  add('established v4, 1M prefixes, rate-limit rules loaded, vs bare', div(ns(rlLoadedCase('established v4', 1_000_000)), rlBare), '≤', 6, '×');
  add('new flow v4 every packet, 1M prefixes, rate-limit rules loaded, vs bare', div(ns(rlLoadedCase('new flow v4', 1_000_000)), rlBare), '≤', 80, '×');
  add('veth drop rate, rate-limited flood (every packet over the limit) vs xdp-filter', div(pps(VETH_RL_FLOOD), pps(XDP_FILTER_SRC)), '≥', 0.8, '×');
  add('veth drop rate, xdpwall 1M prefixes with rate-limit rules loaded vs xdp-filter', div(pps(VETH_RL_LOADED), pps(XDP_FILTER_SRC)), '≥', 1.0, '×');
  const imported = get('control', 'import 1M IPv4 CIDRs via POST /v1/blocks/bulk', 'time');
  add('import 1M IPv4 CIDRs via API vs raw map batch', div(imported, get('control', 'raw bpf_map_update_batch of the same 1M', 'time')), '≤', 3, '×');
  add('import 1M IPv4 CIDRs via API', imported, '<', 5, ' s');
  add('import 1M mixed IPv4/IPv6 over HTTP from another process', get('control', 'import 1M mixed IPv4 /32 + IPv6 /128 over HTTP (NDJSON, another process)', 'time'), '<', 15, ' s');
  add('GET /healthz p99 during the 1M mixed import', get('control', 'GET /healthz during the 1M mixed import', 'p99'), '<', 50, ' ms');
  add('daemon RSS during the 1M mixed import', get('control', 'daemon RSS during the 1M mixed import', 'max'), '≤', 600, ' MB');
  add('restart to serving with 1M rules', get('control', 'restart to serving with 1M rules (maps pinned)', 'time'), '≤', 5, ' s');
  add('daemon RSS with 1M rules stored', get('control', 'daemon RSS serving 1M rules after restart', 'rss'), '≤', 600, ' MB');
  add('GET /v1/flows?limit=100 with 1M flows (p50)', get('control', 'GET /v1/flows?limit=100, 1M flows', 'p50'), '≤', 250, ' ms');
  add('single-block POST /v1/blocks p99', get('control', 'POST /v1/blocks (one CIDR), sequential', 'p99'), '≤', 10, ' ms');
  add('GET /v1/stats throughput', get('control', 'GET /v1/stats under autocannon', 'throughput'), '≥', 5000, ' req/s');
  return targets;
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

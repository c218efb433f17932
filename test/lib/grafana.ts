// Offline checks of deploy/grafana/xdpwall.json against a /metrics scrape:
// every query names metrics the scrape has, and groups or matches only on
// labels those metrics carry (instance and job come from Prometheus).
import { readFileSync } from 'node:fs';

export interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets: Array<{ refId: string; expr: string }>;
}

export interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; definition?: string }> };
}

export const readDashboard = (): Dashboard =>
  JSON.parse(readFileSync(new URL('../../deploy/grafana/xdpwall.json', import.meta.url), 'utf8')) as Dashboard;

/** Sample name → the label names seen on it; `declared` also holds names that only have # TYPE lines. */
export function scrapeNames(text: string): { samples: Map<string, Set<string>>; declared: Set<string> } {
  const samples = new Map<string, Set<string>>();
  const declared = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      declared.add(type[1]!);
      if (type[2] === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) declared.add(`${type[1]}${suffix}`);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? /.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels = samples.get(match[1]!) ?? new Set<string>();
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(pair[1]!);
    samples.set(match[1]!, labels);
  }
  return { samples, declared };
}

/**
 * What in the dashboard does not fit the scrape. With `requireSamples`, every
 * metric must have samples (a daemon with attached interfaces and traffic);
 * otherwise a # TYPE line is enough and labels are checked where samples exist.
 */
export function dashboardProblems(dashboard: Dashboard, scrape: string, requireSamples: boolean): string[] {
  const { samples, declared } = scrapeNames(scrape);
  const problems: string[] = [];
  const queries = [
    ...dashboard.panels.flatMap((panel) => panel.targets.map((t) => ({ where: `${panel.title} ${t.refId}`, expr: t.expr }))),
    ...dashboard.templating.list.flatMap((v) => (v.definition ? [{ where: `variable ${v.name}`, expr: v.definition }] : [])),
  ];
  for (const { where, expr } of queries) {
    const metrics = [...expr.matchAll(/\bxdpwall_[a-z0-9_]+/g)].map((m) => m[0]);
    if (metrics.length === 0) problems.push(`${where}: names no xdpwall metric`);
    const used = [
      ...[...expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim())),
      ...[...expr.matchAll(/([a-z_]+)=~?"/g)].map((m) => m[1]!),
    ].filter((label) => label !== 'instance' && label !== 'job' && label !== 'le');
    for (const metric of metrics) {
      const labels = samples.get(metric);
      if (!labels) {
        if (requireSamples || !declared.has(metric)) problems.push(`${where}: ${metric} is not in the scrape`);
        continue;
      }
      for (const label of used) if (!labels.has(label)) problems.push(`${where}: ${metric} has no label ${label}`);
    }
  }
  return problems;
}

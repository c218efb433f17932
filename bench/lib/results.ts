// Benchmark figures: collected per suite, ratios resolved against a baseline
// case of the same suite and metric measured in the same run, printed as a
// markdown table and written to bench/results/latest.json.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const SUITES = ['ladder', 'veth', 'control'] as const;
export type SuiteName = (typeof SUITES)[number];

export function isSuiteName(value: string): value is SuiteName {
  return (SUITES as readonly string[]).includes(value);
}

export interface Result {
  suite: SuiteName;
  case: string;
  metric: string;
  value: number;
  unit: string;
  /** The case this one is compared with (same suite and metric), or null. */
  baseline: string | null;
  /** value / the baseline's value, or null without a baseline. */
  ratio: number | null;
}

export type Measurement = Omit<Result, 'ratio' | 'baseline'> & { baseline?: string };

export class Results {
  private readonly rows: Result[] = [];

  add(m: Measurement): void {
    this.rows.push({ ...m, baseline: m.baseline ?? null, ratio: null });
  }

  find(suite: SuiteName, caseName: string, metric: string): Result | undefined {
    return this.rows.find((r) => r.suite === suite && r.case === caseName && r.metric === metric);
  }

  /** Every row, with ratios resolved. */
  all(): Result[] {
    return this.rows.map((row) => {
      if (row.baseline === null) return row;
      const base = this.find(row.suite, row.baseline, row.metric);
      return { ...row, ratio: base && base.value !== 0 ? row.value / base.value : null };
    });
  }

  suites(): SuiteName[] {
    return SUITES.filter((s) => this.rows.some((r) => r.suite === s));
  }
}

export function formatValue(value: number, unit: string): string {
  if (unit === 'ns/packet' && value >= 10) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (Math.abs(value) >= 1e4) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

export function markdownTable(rows: readonly Result[]): string {
  const lines = ['| suite | case | metric | value | unit | vs | ratio |', '|---|---|---|---:|---|---|---:|'];
  for (const r of rows) {
    const ratio = r.ratio === null ? '' : `${r.ratio.toFixed(2)}×`;
    lines.push(`| ${r.suite} | ${r.case} | ${r.metric} | ${formatValue(r.value, r.unit)} | ${r.unit} | ${r.baseline ?? ''} | ${ratio} |`);
  }
  return lines.join('\n');
}

/**
 * Writes the rows to `path`, keeping rows of suites this run did not
 * measure (so `npm run bench -- ladder` refreshes only the ladder).
 */
export function writeResults(path: string, rows: readonly Result[], ranSuites: readonly SuiteName[], partial = false): Result[] {
  let kept: Result[] = [];
  const key = (r: Result) => `${r.suite}\0${r.case}\0${r.metric}`;
  const measured = new Set(rows.map(key));
  try {
    const previous = JSON.parse(readFileSync(path, 'utf8')) as Result[];
    // A partial run (--rows) replaces only the rows it measured; a whole suite's run all of that suite's.
    kept = previous.filter((r) => (partial ? !measured.has(key(r)) : !ranSuites.includes(r.suite)));
  } catch {
    // no previous results, or unreadable: start afresh
  }
  const merged = [...kept, ...rows].sort((a, b) => SUITES.indexOf(a.suite) - SUITES.indexOf(b.suite));
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(merged, null, 2)}\n`);
  renameSync(tmp, path);
  return merged;
}

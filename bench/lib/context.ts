// What every suite gets from bench/run.ts.
import type { Cleanup } from './cleanup.js';
import type { BuildReport } from './bpf.js';
import type { Results } from './results.js';

export interface SuiteContext {
  results: Results;
  cleanup: Cleanup;
  bpf: BuildReport;
  /** Unique per run: namespace names, instance names, temp dirs. */
  runId: string;
  seed: number;
  /** Short runs for checking the bench itself (--quick). */
  quick: boolean;
  /** --rows: only the veth rows whose name this matches (A/B work on a few rows). */
  rows?: RegExp;
  log(message: string): void;
  /** Findings printed under the table (how something was measured, what was left out). */
  note(message: string): void;
}

/** Human prefix counts used in case names: 1, 1k, 100k, 1M, 256k. */
export function sizeLabel(n: number): string {
  if (n >= 1_000_000 && n % 1_000_000 === 0) return `${n / 1_000_000}M`;
  if (n >= 1000 && n % 1000 === 0) return `${n / 1000}k`;
  return String(n);
}

export function parseSizeLabel(text: string): number | null {
  const m = /^(\d+)(k|M)?$/.exec(text);
  if (!m) return null;
  return Number(m[1]) * (m[2] === 'M' ? 1_000_000 : m[2] === 'k' ? 1000 : 1);
}

/** "1 prefix", "1k prefixes": how case names state a map's size. */
export const prefixCount = (n: number): string => `${sizeLabel(n)} prefix${n === 1 ? '' : 'es'}`;

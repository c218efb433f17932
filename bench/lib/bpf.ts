// Compiles the bench's own BPF programs (bench/bpf/*.bpf.c) into bench/build/.
// parse_drop includes xdpwall's parser headers, so it tracks the data plane.
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT, BPF_OBJECT_PATH } from '../../src/paths.js';
import { run } from '../../src/lab/run.js';

export const BENCH_BPF_DIR = join(PACKAGE_ROOT, 'bench', 'bpf');
export const BENCH_BUILD_DIR = join(PACKAGE_ROOT, 'bench', 'build');
export { BPF_OBJECT_PATH };

export type BenchProgram = 'xdp_drop' | 'xdp_pass' | 'parse_drop' | 'churn' | 'gen_tx' | 'textbook_lpm' | 'lru_floor';

export interface BuildReport {
  /** Object path per program that compiled. */
  objects: Partial<Record<BenchProgram, string>>;
  /** Compiler output per program that did not. */
  failures: Partial<Record<BenchProgram, string>>;
}

const CFLAGS = [
  '-O2', '-g', '-target', 'bpf', '-mcpu=v3', '-Wall', '-Werror',
  '-I/usr/include/x86_64-linux-gnu',
  `-I${join(PACKAGE_ROOT, 'xdp', 'include')}`,
  `-I${join(PACKAGE_ROOT, 'xdp', 'lib')}`,
];

export async function buildBenchPrograms(): Promise<BuildReport> {
  mkdirSync(BENCH_BUILD_DIR, { recursive: true });
  const report: BuildReport = { objects: {}, failures: {} };
  for (const file of readdirSync(BENCH_BPF_DIR).filter((f) => f.endsWith('.bpf.c')).sort()) {
    const name = file.slice(0, -'.bpf.c'.length) as BenchProgram;
    const out = join(BENCH_BUILD_DIR, `${name}.bpf.o`);
    const result = await run(['clang', ...CFLAGS, '-c', join(BENCH_BPF_DIR, file), '-o', out], { timeoutMs: 60_000 });
    if (result.code === 0) report.objects[name] = out;
    else report.failures[name] = result.stderr.trim() || `clang exited ${result.code}`;
  }
  return report;
}

export function requireObject(report: BuildReport, name: BenchProgram): string {
  const path = report.objects[name];
  if (!path) throw new Error(`bench/bpf/${name}.bpf.c did not compile: ${report.failures[name] ?? 'not found'}`);
  return path;
}

// npm run bench [-- ladder|veth|control ...] [--quick] [--seed N] [--rows REGEX]
//
// --rows keeps only the veth rows whose name matches (the others are not run;
// latest.json keeps their previous figures).
//
// Measures xdpwall against the bare XDP limit and against xdp-filter,
// nftables and iptables in one run, and prints figures and ratios. A
// benchmark never fails on a time: targets are reported as PASS/MISS lines.
// Needs root. Everything it creates (namespaces, programs, processes, temp
// state) is removed again on success, failure, Ctrl-C or SIGTERM.
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/paths.js';
import { buildBenchPrograms } from './lib/bpf.js';
import { Cleanup } from './lib/cleanup.js';
import type { SuiteContext } from './lib/context.js';
import { Results, SUITES, isSuiteName, markdownTable, writeResults, type SuiteName } from './lib/results.js';
import { writePlot } from './lib/svg.js';
import { evaluateTargets, formatTargets } from './lib/targets.js';
import { runLadder } from './suites/ladder.js';
import { runVeth } from './suites/veth.js';
import { runControl } from './suites/control.js';

const RESULTS_DIR = join(PACKAGE_ROOT, 'bench', 'results');
const SUITE_RUNNERS: Record<SuiteName, (ctx: SuiteContext) => Promise<void>> = {
  ladder: runLadder,
  veth: runVeth,
  control: runControl,
};
const DEFAULT_SEED = 20261125;

interface Args {
  suites: SuiteName[];
  quick: boolean;
  seed: number;
  rows?: RegExp;
}

function parseArgs(argv: readonly string[]): Args {
  const suites: SuiteName[] = [];
  let quick = false;
  let seed = DEFAULT_SEED;
  let rows: RegExp | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--quick') quick = true;
    else if (arg === '--seed') seed = Number(argv[++i]);
    else if (arg === '--rows') rows = new RegExp(argv[++i] ?? '');
    else if (isSuiteName(arg)) suites.push(arg);
    else throw new Error(`unknown argument "${arg}"; usage: npm run bench -- [${SUITES.join('|')} ...] [--quick] [--seed N] [--rows REGEX]`);
  }
  if (!Number.isInteger(seed)) throw new Error('--seed takes an integer');
  return { suites: suites.length > 0 ? suites : [...SUITES], quick, seed, rows };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('the benchmarks need root (BPF, namespaces, nftables)');
  const cleanup = new Cleanup();
  const stop = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\n${signal}: cleaning up\n`);
    void cleanup.runAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  const results = new Results();
  const notes: string[] = [];
  const started = Date.now();
  const log = (message: string): void => {
    process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);
  };
  const bpf = await buildBenchPrograms();
  const failed: string[] = [];
  try {
    for (const suite of args.suites) {
      const ctx: SuiteContext = {
        results, cleanup, bpf, quick: args.quick, seed: args.seed, rows: args.rows,
        runId: `xwb${process.pid}`,
        log, note: (message) => notes.push(message),
      };
      log(`suite ${suite}`);
      try {
        await SUITE_RUNNERS[suite](ctx);
      } catch (error) {
        failed.push(suite);
        log(`suite ${suite} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      } finally {
        await cleanup.runAll();
      }
    }
  } finally {
    await cleanup.runAll();
  }

  const rows = results.all();
  const ran = results.suites();
  const merged = writeResults(join(RESULTS_DIR, 'latest.json'), rows, ran, args.rows !== undefined);
  writePlot(join(RESULTS_DIR, 'latest.svg'), merged);
  process.stdout.write(`\n${markdownTable(rows)}\n\n`);
  process.stdout.write(`${formatTargets(evaluateTargets(merged))}\n\n`);
  for (const note of notes) process.stdout.write(`- ${note}\n`);
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s; results in bench/results/latest.json and latest.svg`);
  return failed.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(2);
  },
);

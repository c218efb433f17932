// CPU pinning and per-CPU time accounting from /proc.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { runChecked } from '../../src/lab/run.js';

/** The CPU benchmarks pin to: the last one (CPU 0 takes most housekeeping). */
export const BENCH_CPU = cpus().length - 1;

/** Pins every thread of `pid` (and threads it creates later) to `cpuList`, e.g. "1" or "0-1". */
export async function pinProcess(pid: number, cpuList: string): Promise<void> {
  await runChecked(['taskset', '--all-tasks', '--cpu-list', '--pid', cpuList, String(pid)]);
}

export function allCpus(): string {
  return `0-${cpus().length - 1}`;
}

const USER_HZ = 100; // /proc/stat ticks; fixed at 100 on Linux (USER_HZ)

/** Busy (non-idle, non-iowait) nanoseconds per CPU since boot, from /proc/stat. */
export function busyNsPerCpu(): number[] {
  const out: number[] = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [user, nice, system, , , irq, softirq, steal] = (m[2] as string).split(/\s+/).map(Number);
    const ticks = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
    out[Number(m[1])] = (ticks * 1e9) / USER_HZ;
  }
  return out;
}

/** NET_RX softirqs handled per CPU since boot (where receive processing ran). */
export function netRxSoftirqs(): number[] {
  const line = readFileSync('/proc/softirqs', 'utf8').split('\n').find((l) => l.trim().startsWith('NET_RX:'));
  return line ? line.trim().split(/\s+/).slice(1).map(Number) : [];
}

export function diff(after: readonly number[], before: readonly number[]): number[] {
  return after.map((v, i) => v - (before[i] ?? 0));
}

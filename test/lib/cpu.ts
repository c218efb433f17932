// Runs test code on one CPU. BPF_PROG_TEST_RUN executes the program on the
// calling thread's CPU, and per-CPU maps keep one slot per CPU: a test that
// expects a second run to see what the first left in its CPU's slot must not
// let the scheduler move it in between (on a busy machine it does).
import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';

/** The kernel's id of the calling thread ("PID/task/TID"). */
const threadId = (): string => readlinkSync('/proc/thread-self').split('/').pop()!;

/** The CPUs the thread may run on, as taskset prints them ("0,1" or "0-3"). */
const affinity = (tid: string): string => execFileSync('taskset', ['--cpu-list', '--pid', tid], { encoding: 'utf8' }).split(':').pop()!.trim();

const setAffinity = (tid: string, cpus: string): void => {
  execFileSync('taskset', ['--cpu-list', '--pid', cpus, tid], { stdio: 'ignore' });
};

/** Pins the calling thread to the first CPU it may use while `fn` runs, then restores its affinity. */
export async function onOneCpu<T>(fn: () => T | Promise<T>): Promise<T> {
  const tid = threadId();
  const allowed = affinity(tid);
  setAffinity(tid, allowed.split(/[,-]/)[0]!);
  try {
    return await fn();
  } finally {
    setAffinity(tid, allowed);
  }
}

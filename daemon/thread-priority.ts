// The event loop answers every request, so it gets the CPU first. On a
// small machine the loop's longest holds were mostly time it waited for a
// CPU while the daemon's own threads ran: the WAL checkpoint worker, the
// bulk SQLite writer, the flow snapshot worker, libuv's pool. Those work
// for a request or for later; none answers one. Linux keeps a nice value
// per thread (setpriority(PRIO_PROCESS, tid) acts on one thread), and
// raising it needs no privilege, so the daemon raises theirs.
//
// Not every thread: the ones node starts before any JavaScript runs (V8's
// platform workers, its delayed-task and signal threads, libuv's pool once
// the modules are loaded) are left as they are. The loop waits for V8's
// workers inside a garbage collection; reniced, they lost the CPU to other
// processes and the loop slept up to 350 ms in one turn. So the threads
// present at start are exempt, and every later one (workers, and libuv's
// pool if it starts later) is reniced: looked for whenever a worker comes
// online and every RESCAN_MS (a dozen getpriority calls). New threads
// inherit their creator's value, the loop's.
import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { ConfigError } from '../src/errors.js';

/**
 * How much nicer than the loop: at +10 a thread weighs 110 against the
 * loop's 1024, about a tenth of a CPU when both want it, all of it when the
 * loop is idle. Relative, so a service started with Nice=-5 keeps the order.
 */
export const BACKGROUND_NICE = 10;

/**
 * The offset from XDPWALL_BACKGROUND_NICE (0..19; 0 leaves every thread as
 * it started), BACKGROUND_NICE when unset. Not a number in range: an error.
 */
export function backgroundNice(value: string | undefined): number {
  if (value === undefined || value === '') return BACKGROUND_NICE;
  const nice = Number(value);
  if (!/^\d{1,2}$/.test(value) || nice > 19) {
    throw new ConfigError(`XDPWALL_BACKGROUND_NICE must be an integer from 0 (off) to 19, not ${JSON.stringify(value)}`);
  }
  return nice;
}

/** How often new threads are looked for; a libuv pool thread starts with the first request that uses it. */
const RESCAN_MS = 250;

export interface ThreadPriority {
  /** Looks at the threads now; returns how many it reniced. */
  scan(): number;
  stop(): void;
}

/**
 * Keeps every thread this process starts from now on at the loop's nice
 * value + `offset` (at most 19); the loop and the threads already running
 * keep theirs. Only on Linux and from the main thread; elsewhere it does
 * nothing. A thread that exits between listing and renicing is skipped.
 */
export function lowerBackgroundThreads(offset = BACKGROUND_NICE, onError: (error: Error) => void = () => undefined): ThreadPriority {
  /** Threads running at start, the loop's among them: never reniced. */
  let exempt = new Set<number>();
  let failed = false;
  const list = (): number[] | null => {
    try {
      return readdirSync('/proc/self/task').map(Number);
    } catch (error) {
      failed = true; // no /proc: not Linux, or a sandbox without it
      onError(error as Error);
      return null;
    }
  };
  const scan = (): number => {
    if (failed) return 0;
    const tids = list();
    if (!tids) return 0;
    const nice = Math.min(19, getPriority(process.pid) + offset);
    let count = 0;
    for (const tid of tids) {
      if (exempt.has(tid)) continue;
      try {
        // Never lower one (that needs CAP_SYS_NICE): a thread may have set its own.
        if (getPriority(tid) >= nice) continue;
        setPriority(tid, nice);
        count++;
      } catch (error) {
        if ((error as { info?: { code?: string } }).info?.code === 'ESRCH') continue; // exited meanwhile
        failed = true;
        onError(error as Error);
        return count;
      }
    }
    return count;
  };
  if (offset === 0 || process.platform !== 'linux' || !isMainThread) return { scan: () => 0, stop: () => undefined };
  exempt = new Set(list() ?? []);
  exempt.add(process.pid);
  const timer = setInterval(scan, RESCAN_MS);
  timer.unref();
  // A worker's thread, and the threads its own isolate starts, once it runs.
  const onWorker = (worker: import('node:worker_threads').Worker) => worker.once('online', scan);
  process.on('worker', onWorker);
  return {
    scan,
    stop: () => {
      clearInterval(timer);
      process.off('worker', onWorker);
    },
  };
}

// Preloaded into the daemon by scripts/stall.ts (node --import): a 5 ms timer
// that reports each gap longer than 20 ms between its ticks, i.e. each time
// the event loop was held, as "LOOP_GAP <from µs> <to µs> <on-CPU µs> <runnable µs>"
// on stderr. Times are CLOCK_MONOTONIC microseconds (process.hrtime), which
// the script shares; from /proc/thread-self/schedstat, on-CPU is how long the
// loop's thread ran during the gap and runnable how long it was ready but
// waited for a CPU (on a busy machine the wall-clock gap is mostly that); the
// rest of the gap it slept: blocked in a system call or on a lock.
import { readFileSync, writeSync } from 'node:fs';

/** [on-CPU µs, runnable µs] of this thread so far. */
const schedUs = () => {
  try {
    const [run, wait] = readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ');
    return [Number(run) / 1000, Number(wait) / 1000];
  } catch {
    return [0, 0];
  }
};
let last = process.hrtime.bigint();
let [lastCpu, lastWait] = schedUs();
setInterval(() => {
  const now = process.hrtime.bigint();
  const [cpu, wait] = schedUs();
  if (now - last > 20_000_000n) {
    writeSync(2, `LOOP_GAP ${last / 1000n} ${now / 1000n} ${Math.round(cpu - lastCpu)} ${Math.round(wait - lastWait)}\n`);
  }
  last = now;
  lastCpu = cpu;
  lastWait = wait;
}, 5).unref();

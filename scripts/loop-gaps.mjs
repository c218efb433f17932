// Preloaded into the daemon by scripts/stall.ts (node --import): a 5 ms timer
// that reports each gap longer than 20 ms between its ticks, i.e. each time
// the event loop was held, as "LOOP_GAP <from µs> <to µs> <on-CPU µs>" on
// stderr. Times are CLOCK_MONOTONIC microseconds (process.hrtime), which the
// script shares; on-CPU is how long the loop's thread ran during the gap
// (/proc/thread-self/schedstat), the rest it waited for a CPU: on a busy
// machine the wall-clock gap is mostly that wait.
import { readFileSync, writeSync } from 'node:fs';

const onCpuUs = () => {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]) / 1000;
  } catch {
    return 0;
  }
};
let last = process.hrtime.bigint();
let lastCpu = onCpuUs();
setInterval(() => {
  const now = process.hrtime.bigint();
  const cpu = onCpuUs();
  if (now - last > 20_000_000n) writeSync(2, `LOOP_GAP ${last / 1000n} ${now / 1000n} ${Math.round(cpu - lastCpu)}\n`);
  last = now;
  lastCpu = cpu;
}, 5).unref();

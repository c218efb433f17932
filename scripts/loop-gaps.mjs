// Preloaded into the daemon by scripts/stall.ts (node --import): a 5 ms timer
// that reports each gap longer than 20 ms between its ticks, i.e. each time
// the event loop was held, as "LOOP_GAP <from µs> <to µs>" on stderr, in
// CLOCK_MONOTONIC microseconds (process.hrtime), which the script shares.
import { writeSync } from 'node:fs';

let last = process.hrtime.bigint();
setInterval(() => {
  const now = process.hrtime.bigint();
  if (now - last > 20_000_000n) writeSync(2, `LOOP_GAP ${last / 1000n} ${now / 1000n}\n`);
  last = now;
}, 5).unref();

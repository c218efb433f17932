// A slicer for tests of sliced work: always due, and each turn records how
// often other work (a self-rearming immediate) had run by then.
import type { Slicer } from '../../src/event-loop.js';

/** An always-due slicer whose turns record how often other work (a self-rearming immediate) had run. */
export function countingSlicer(): { slicer: () => Slicer; ticksAtTurns: number[]; stop: () => void } {
  let ticks = 0;
  let ticking = true;
  const tick = () => {
    ticks++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const ticksAtTurns: number[] = [];
  return {
    ticksAtTurns,
    slicer: () => ({
      due: true,
      next: async () => {
        await new Promise((resolve) => setImmediate(resolve));
        ticksAtTurns.push(ticks);
      },
    }),
    stop: () => {
      ticking = false;
    },
  };
}

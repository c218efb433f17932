// Sliced work shares one slice per turn of the event loop (src/event-loop.ts):
// concurrent requests no longer each take a full slice in one check phase.
// Driven by a fake clock: each step of work advances it by STEP_MS.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { TimeSlicer } from '../src/event-loop.js';

const BUDGET_MS = 10;
const STEP_MS = 4;

/** Runs `workers` sliced loops of `steps` steps each, started together; returns the order their steps ran in, '|' marking each turn. */
async function interleave(workers: string[], steps: number): Promise<string[]> {
  let now = 1000;
  const clock = () => now;
  const log: string[] = [];
  let running = true;
  // One mark per check phase, queued ahead of the workers' first yields.
  void (async () => {
    while (running) {
      await nextTurn();
      log.push('|');
    }
  })();
  await Promise.all(
    workers.map(async (name) => {
      const slicer = new TimeSlicer(BUDGET_MS, clock);
      for (let step = 0; step < steps; step++) {
        now += STEP_MS;
        log.push(name);
        if (slicer.due) await slicer.next();
      }
    }),
  );
  running = false;
  await nextTurn(); // the marker's last turn, and the slice's end, before the next test
  await nextTurn();
  while (log.at(-1) === '|') log.pop();
  return log;
}

describe('TimeSlicer', () => {
  it('a lone worker runs a slice (budget / step, rounded up) per turn', async () => {
    const log = await interleave(['A'], 9);
    expect(log.join('')).toBe('AAA|AAA|AAA');
  });

  it('concurrent workers share the turn\'s slice: the first takes it, the others one step each', async () => {
    const log = await interleave(['A', 'B', 'C'], 6);
    // Each turn holds at most the budget plus one step per other worker (20 of 10 ms + 2 steps),
    // not a slice each: per-request slices ran AAABBBCCC (36 ms) in one turn. Once A is done,
    // B, first to resume, takes the slice.
    expect(log.join('')).toBe('AAABC|AAABC|BBBC|BCC|C');
    for (const turn of log.join('').split('|')) expect(turn.length * STEP_MS).toBeLessThanOrEqual(BUDGET_MS + STEP_MS * 3);
    // Every worker finishes: each makes progress every turn.
    for (const name of ['A', 'B', 'C']) expect(log.filter((entry) => entry === name)).toHaveLength(6);
  });
});

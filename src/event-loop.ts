// Long synchronous work (storing a million rules, validating a bulk body)
// runs in slices so that no request waits more than a few milliseconds for
// the event loop: health checks and reads keep being answered meanwhile.
import { setImmediate as nextTurn } from 'node:timers/promises';

/** A slice's share of the event loop; well under the 50 ms a request may wait. */
export const SLICE_MS = 10;

/** What long loops ask: is the slice used up, and give the loop back. Tests count the turns with their own. */
export interface Slicer {
  readonly due: boolean;
  next(): Promise<void>;
}

/**
 * Measures the current slice. Loops check `due` (cheap, synchronous) and
 * only then await `next()`, so a million iterations do not pay a million
 * promise turns.
 */
export class TimeSlicer implements Slicer {
  private sliceStart = performance.now();

  constructor(private readonly budgetMs = SLICE_MS) {}

  get due(): boolean {
    return performance.now() - this.sliceStart >= this.budgetMs;
  }

  /** Yields one turn of the event loop (I/O included) and starts a new slice. */
  async next(): Promise<void> {
    await nextTurn();
    this.sliceStart = performance.now();
  }
}

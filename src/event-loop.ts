// Long synchronous work (storing a million rules, validating a bulk body)
// runs in slices so that no request waits more than a few milliseconds for
// the event loop: health checks and reads keep being answered meanwhile.
//
// The slice belongs to the loop's turn, not to one request. Node runs every
// setImmediate queued before its check phase in that one phase, so seven
// concurrent flow queries, each yielding after its own 10 ms, held the loop
// 70 ms between two polls for I/O. All slicers share one slice: the first
// piece of sliced work in a turn starts it, and once it is used up every
// slicer yields after its current step. A request that arrives late in a
// used-up turn still makes one step of progress per turn.
import { setImmediate as nextTurn } from 'node:timers/promises';

/** A slice's share of the event loop; well under the 50 ms a request may wait. */
export const SLICE_MS = 10;

/** What long loops ask: is the slice used up, and give the loop back. Tests count the turns with their own. */
export interface Slicer {
  readonly due: boolean;
  next(): Promise<void>;
}

/** When this turn's slice started, and whether a turn has begun since (then the next work starts a new slice). */
const turn = { sliceStart: 0, open: false };

/**
 * Starts the turn's slice unless one is running. The immediate that ends it
 * runs at the next check phase: after this poll phase's callbacks when
 * claimed from I/O, after the loop polled again when claimed from a check
 * phase (immediates queued there wait for the next turn).
 */
function claimTurn(clock: () => number): void {
  if (turn.open) return;
  turn.open = true;
  turn.sliceStart = clock();
  setImmediate(() => (turn.open = false)).unref();
}

/**
 * Measures the turn's slice. Loops check `due` (cheap, synchronous) and
 * only then await `next()`, so a million iterations do not pay a million
 * promise turns.
 */
export class TimeSlicer implements Slicer {
  /** `clock` in milliseconds: tests drive their own (one clock for every slicer of a test). */
  constructor(
    private readonly budgetMs = SLICE_MS,
    private readonly clock: () => number = () => performance.now(),
  ) {
    claimTurn(clock);
  }

  get due(): boolean {
    return this.clock() - turn.sliceStart >= this.budgetMs;
  }

  /** Yields one turn of the event loop (I/O included); resumes in the turn's slice, starting it if it is the first. */
  async next(): Promise<void> {
    await nextTurn();
    claimTurn(this.clock);
  }
}

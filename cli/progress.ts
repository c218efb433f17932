// Progress of a long CLI operation on stderr: a bar redrawn in place on a
// terminal, plain lines (one per tenth, or per 16 MiB when the size is
// unknown) anywhere else, so logs and pipes stay readable.
import { humanBytes } from './format.js';

export interface ProgressSink {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** What is being done, e.g. "import". */
  label: string;
  /** Total bytes, when known (a file); unknown for a pipe. */
  totalBytes?: number;
  /** Milliseconds; injected by tests. */
  now?: () => number;
}

const REDRAW_MS = 100;
const PLAIN_STEP_BYTES = 16 << 20;

export class Progress {
  private lastDraw = -Infinity;
  private lastStep = 0;
  private drawn = false;
  private countPhase = '';
  private countStep = -1;
  private readonly now: () => number;

  constructor(
    private readonly sink: ProgressSink,
    private readonly options: ProgressOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  private describe(bytes: number, items: number): string {
    const { totalBytes } = this.options;
    const amount = totalBytes === undefined ? humanBytes(bytes) : `${humanBytes(bytes)} of ${humanBytes(totalBytes)}`;
    return `${amount}, ${items.toLocaleString('en')} items`;
  }

  /** bytes and items sent so far. */
  update(bytes: number, items: number): void {
    const { totalBytes, label } = this.options;
    if (this.sink.isTTY) {
      const at = this.now();
      if (at - this.lastDraw < REDRAW_MS) return;
      this.lastDraw = at;
      const detail = this.describe(bytes, items);
      if (totalBytes === undefined || totalBytes === 0) {
        this.sink.write(`\r\x1b[K${label}: ${detail}`);
      } else {
        const fraction = Math.min(bytes / totalBytes, 1);
        const width = Math.max(10, Math.min(40, (this.sink.columns ?? 80) - label.length - detail.length - 12));
        const filled = Math.round(fraction * width);
        this.sink.write(`\r\x1b[K${label} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${Math.floor(fraction * 100)}% ${detail}`);
      }
      this.drawn = true;
      return;
    }
    // Plain: a line at each tenth of a known size, else every 16 MiB.
    const step = totalBytes ? Math.floor((Math.min(bytes / totalBytes, 1) * 100) / 10) * 10 : Math.floor(bytes / PLAIN_STEP_BYTES);
    if (step <= this.lastStep || (totalBytes && step >= 100)) return;
    this.lastStep = step;
    this.sink.write(`${label}: ${totalBytes ? `${step}% (${this.describe(bytes, items)})` : `sent ${this.describe(bytes, items)}`}\n`);
  }

  /**
   * The daemon's own progress of a phase (e.g. "kernel", done of total
   * entries): redrawn in place on a terminal, a plain line at each tenth of
   * each phase elsewhere.
   */
  count(phase: string, done: number, total: number): void {
    const percent = total > 0 ? Math.floor((Math.min(done / total, 1) * 100)) : 100;
    const text = `${phase} ${done.toLocaleString('en')} of ${total.toLocaleString('en')} entries (${percent}%)`;
    if (this.sink.isTTY) {
      const at = this.now();
      if (at - this.lastDraw < REDRAW_MS) return;
      this.lastDraw = at;
      this.sink.write(`\r\x1b[K${this.options.label}: ${text}`);
      this.drawn = true;
      return;
    }
    const step = Math.floor(percent / 10) * 10;
    if (phase === this.countPhase && step <= this.countStep) return;
    this.countPhase = phase;
    this.countStep = step;
    this.sink.write(`${this.options.label}: ${text}\n`);
  }

  /** A new phase with no measurable progress, e.g. waiting for the daemon. */
  phase(text: string): void {
    this.sink.write(this.sink.isTTY ? `\r\x1b[K${this.options.label}: ${text}` : `${this.options.label}: ${text}\n`);
    this.drawn = Boolean(this.sink.isTTY);
  }

  /** Clears the bar (on a terminal); the caller prints the outcome. */
  done(): void {
    if (this.drawn) this.sink.write('\r\x1b[K');
    this.drawn = false;
  }
}

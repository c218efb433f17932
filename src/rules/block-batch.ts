// Validated blocks held column by column. A bulk import of a million CIDRs
// is kept this way between parsing and storing: a few typed arrays and one
// string per rule, instead of a million small objects and Buffers. Rows
// live in fixed segments, so growing never copies what is there (doubling
// one 16 MB array blocked the event loop for 40 ms at a million rows).
import type { Cidr, IpFamily } from './cidr.js';
import type { BlockDirection, BlockRule } from './model.js';
import { TimeSlicer } from '../event-loop.js';

export interface ValidBlock {
  cidr: Cidr;
  direction: BlockDirection;
  comment: string | null;
}

/** The batch flattened for another thread: typed arrays over shared memory, so handing them over copies nothing. */
export interface BlockBatchColumns {
  families: Uint8Array;
  prefixLens: Uint8Array;
  /** 1 for dst, 0 for src. */
  dsts: Uint8Array;
  /** 16 bytes per row. */
  networks: Uint8Array;
  /** CIDR texts (ASCII) back to back; row i is texts[textEnds[i - 1] .. textEnds[i]). */
  texts: Uint8Array;
  textEnds: Uint32Array;
  /** [row, comment] of the rows that have one. */
  comments: Array<[number, string]>;
}

const ADDRESS_BYTES = 16;
const SEGMENT_BITS = 16;
const SEGMENT_ROWS = 1 << SEGMENT_BITS;
const SEGMENT_MASK = SEGMENT_ROWS - 1;
/** Rows copied by columns() between two questions to the slicer. */
const COPY_ROWS = 1 << 13;

interface Segment {
  families: Uint8Array;
  prefixLens: Uint8Array;
  dsts: Uint8Array;
  networks: Buffer;
  /** CIDR texts as ASCII bytes back to back (a million live strings would cost the GC 50 ms pauses). */
  text: Buffer;
  textLength: number;
  /** End of each row's text in `text`. */
  textEnds: Uint32Array;
}

const newSegment = (): Segment => ({
  families: new Uint8Array(SEGMENT_ROWS),
  prefixLens: new Uint8Array(SEGMENT_ROWS),
  dsts: new Uint8Array(SEGMENT_ROWS),
  networks: Buffer.alloc(SEGMENT_ROWS * ADDRESS_BYTES),
  text: Buffer.alloc(SEGMENT_ROWS * 20),
  textLength: 0,
  textEnds: new Uint32Array(SEGMENT_ROWS),
});

export class BlockBatch {
  count = 0;
  /** Rows per address family (repeats included). */
  readonly perFamily: Record<4 | 6, number> = { 4: 0, 6: 0 };
  private readonly segments: Segment[] = [];
  /** Sparse: most imported rules have no comment. */
  private readonly comments = new Map<number, string>();

  push({ cidr, direction, comment }: ValidBlock): void {
    const i = this.count;
    const row = i & SEGMENT_MASK;
    if (row === 0) this.segments.push(newSegment());
    const segment = this.segments[i >>> SEGMENT_BITS]!;
    segment.families[row] = cidr.family;
    segment.prefixLens[row] = cidr.prefixLen;
    segment.dsts[row] = direction === 'dst' ? 1 : 0;
    segment.networks.set(cidr.bytes, row * ADDRESS_BYTES);
    if (segment.textLength + cidr.text.length > segment.text.length) {
      const grown = Buffer.alloc(segment.text.length * 2);
      segment.text.copy(grown, 0, 0, segment.textLength);
      segment.text = grown;
    }
    segment.textLength += segment.text.write(cidr.text, segment.textLength, 'latin1');
    segment.textEnds[row] = segment.textLength;
    if (comment !== null) this.comments.set(i, comment);
    this.perFamily[cidr.family]++;
    this.count++;
  }

  family(i: number): IpFamily {
    return this.segments[i >>> SEGMENT_BITS]!.families[i & SEGMENT_MASK] as IpFamily;
  }

  /** The i-th CIDR; its bytes are a view into the batch. */
  cidr(i: number): Cidr {
    const segment = this.segments[i >>> SEGMENT_BITS]!;
    const row = i & SEGMENT_MASK;
    const family = segment.families[row] as IpFamily;
    const start = row * ADDRESS_BYTES;
    return {
      family,
      prefixLen: segment.prefixLens[row]!,
      bytes: segment.networks.subarray(start, start + (family === 4 ? 4 : 16)),
      text: segment.text.toString('latin1', row === 0 ? 0 : segment.textEnds[row - 1]!, segment.textEnds[row]!),
    };
  }

  /** The i-th CIDR's canonical text. */
  text(i: number): string {
    const segment = this.segments[i >>> SEGMENT_BITS]!;
    const row = i & SEGMENT_MASK;
    return segment.text.toString('latin1', row === 0 ? 0 : segment.textEnds[row - 1]!, segment.textEnds[row]!);
  }

  /**
   * The i-th row as the rule `id`, for the kernel: its network a view into
   * the batch, its text made only if asked for (the installer of a plain
   * import never asks; a million texts and Cidr objects were a second of
   * garbage). Read its fields; a spread copies no `cidr`.
   */
  rule(i: number, id: number, createdAt: string): BlockRule {
    const segment = this.segments[i >>> SEGMENT_BITS]!;
    const row = i & SEGMENT_MASK;
    const family = segment.families[row] as IpFamily;
    const start = row * ADDRESS_BYTES;
    return new BatchRule(
      this, i, id, family, segment.prefixLens[row]!, segment.networks.subarray(start, start + (family === 4 ? 4 : 16)),
      segment.dsts[row] ? 'dst' : 'src', this.comments.get(i) ?? null, createdAt,
    );
  }

  direction(i: number): BlockDirection {
    return this.segments[i >>> SEGMENT_BITS]!.dsts[i & SEGMENT_MASK] ? 'dst' : 'src';
  }

  comment(i: number): string | null {
    return this.comments.get(i) ?? null;
  }

  /**
   * Rows `from` .. `to` (exclusive) as flat columns in fresh (transferable)
   * arrays, comments numbered within the part: what a streamed bulk insert
   * sends its worker a piece at a time.
   */
  part(from: number, to: number): BlockBatchColumns {
    const count = to - from;
    const families = new Uint8Array(count);
    const prefixLens = new Uint8Array(count);
    const dsts = new Uint8Array(count);
    const networks = new Uint8Array(count * ADDRESS_BYTES);
    const textEnds = new Uint32Array(count);
    const pieces: Array<[Segment, number, number]> = [];
    let textBytes = 0;
    for (let i = from; i < to; ) {
      const segment = this.segments[i >>> SEGMENT_BITS]!;
      const row = i & SEGMENT_MASK;
      const rows = Math.min(SEGMENT_ROWS - row, to - i);
      const at = i - from;
      families.set(segment.families.subarray(row, row + rows), at);
      prefixLens.set(segment.prefixLens.subarray(row, row + rows), at);
      dsts.set(segment.dsts.subarray(row, row + rows), at);
      networks.set(segment.networks.subarray(row * ADDRESS_BYTES, (row + rows) * ADDRESS_BYTES), at * ADDRESS_BYTES);
      const textFrom = row === 0 ? 0 : segment.textEnds[row - 1]!;
      for (let k = 0; k < rows; k++) textEnds[at + k] = textBytes + segment.textEnds[row + k]! - textFrom;
      const textTo = segment.textEnds[row + rows - 1]!;
      pieces.push([segment, textFrom, textTo]);
      textBytes += textTo - textFrom;
      i += rows;
    }
    const texts = new Uint8Array(textBytes);
    let textAt = 0;
    for (const [segment, a, b] of pieces) {
      texts.set(segment.text.subarray(a, b), textAt);
      textAt += b - a;
    }
    const comments: Array<[number, string]> = [];
    if (this.comments.size > 0) {
      for (let i = from; i < to; i++) {
        const comment = this.comments.get(i);
        if (comment !== undefined) comments.push([i - from, comment]);
      }
    }
    return { families, prefixLens, dsts, networks, texts, textEnds, comments };
  }

  /** The whole batch as flat columns in shared memory, built a segment per slice of the event loop. */
  async columns(): Promise<BlockBatchColumns> {
    const { count } = this;
    const shared = (bytes: number): Uint8Array => new Uint8Array(new SharedArrayBuffer(bytes));
    const families = shared(count);
    const prefixLens = shared(count);
    const dsts = shared(count);
    const networks = shared(count * ADDRESS_BYTES);
    const textEnds = new Uint32Array(new SharedArrayBuffer(count * 4));
    let textBytes = 0;
    for (const segment of this.segments) textBytes += segment.textLength;
    const texts = shared(textBytes);
    const slicer = new TimeSlicer();
    let textAt = 0;
    for (let s = 0; s < this.segments.length; s++) {
      const segment = this.segments[s]!;
      const rows = Math.min(SEGMENT_ROWS, count - s * SEGMENT_ROWS);
      const base = s * SEGMENT_ROWS;
      // A segment in COPY_ROWS steps: the copies fault in fresh shared pages, ~20 ms a whole segment on this VM.
      for (let from = 0; from < rows; from += COPY_ROWS) {
        const to = Math.min(rows, from + COPY_ROWS);
        const at = base + from;
        families.set(segment.families.subarray(from, to), at);
        prefixLens.set(segment.prefixLens.subarray(from, to), at);
        dsts.set(segment.dsts.subarray(from, to), at);
        networks.set(segment.networks.subarray(from * ADDRESS_BYTES, to * ADDRESS_BYTES), at * ADDRESS_BYTES);
        const textFrom = from === 0 ? 0 : segment.textEnds[from - 1]!;
        const textTo = segment.textEnds[to - 1]!;
        texts.set(segment.text.subarray(textFrom, textTo), textAt + textFrom);
        for (let row = from; row < to; row++) textEnds[base + row] = textAt + segment.textEnds[row]!;
        if (slicer.due) await slicer.next();
      }
      textAt += segment.textLength;
    }
    return { families, prefixLens, dsts, networks, texts, textEnds, comments: [...this.comments] };
  }
}

/** A batch row as a BlockRule whose text is read from the batch when asked for. */
class BatchRule implements BlockRule {
  constructor(
    private readonly batch: BlockBatch,
    private readonly row: number,
    readonly id: number,
    readonly family: IpFamily,
    readonly prefixLen: number,
    readonly network: Buffer,
    readonly direction: BlockDirection,
    readonly comment: string | null,
    readonly createdAt: string,
  ) {}

  get cidr(): string {
    return this.batch.text(this.row);
  }
}

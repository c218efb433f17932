// Validated blocks held column by column. A bulk import of a million CIDRs
// is kept this way between parsing and storing: a few typed arrays and one
// string per rule, instead of a million small objects and Buffers. Rows
// live in fixed segments, so growing never copies what is there (doubling
// one 16 MB array blocked the event loop for 40 ms at a million rows).
import type { Cidr, IpFamily } from './cidr.js';
import type { BlockDirection } from './model.js';
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
  /** CIDR texts (ASCII) joined by '\n'. */
  texts: Uint8Array;
  /** [row, comment] of the rows that have one. */
  comments: Array<[number, string]>;
}

const ADDRESS_BYTES = 16;
const SEGMENT_BITS = 16;
const SEGMENT_ROWS = 1 << SEGMENT_BITS;
const SEGMENT_MASK = SEGMENT_ROWS - 1;

interface Segment {
  families: Uint8Array;
  prefixLens: Uint8Array;
  dsts: Uint8Array;
  networks: Buffer;
  texts: string[];
}

const newSegment = (): Segment => ({
  families: new Uint8Array(SEGMENT_ROWS),
  prefixLens: new Uint8Array(SEGMENT_ROWS),
  dsts: new Uint8Array(SEGMENT_ROWS),
  networks: Buffer.alloc(SEGMENT_ROWS * ADDRESS_BYTES),
  texts: [],
});

export class BlockBatch {
  count = 0;
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
    segment.texts.push(cidr.text);
    if (comment !== null) this.comments.set(i, comment);
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
      text: segment.texts[row]!,
    };
  }

  direction(i: number): BlockDirection {
    return this.segments[i >>> SEGMENT_BITS]!.dsts[i & SEGMENT_MASK] ? 'dst' : 'src';
  }

  comment(i: number): string | null {
    return this.comments.get(i) ?? null;
  }

  /** The whole batch as flat columns in shared memory, built a segment per slice of the event loop. */
  async columns(): Promise<BlockBatchColumns> {
    const { count } = this;
    const shared = (bytes: number): Uint8Array => new Uint8Array(new SharedArrayBuffer(bytes));
    const families = shared(count);
    const prefixLens = shared(count);
    const dsts = shared(count);
    const networks = shared(count * ADDRESS_BYTES);
    const joined: string[] = [];
    const slicer = new TimeSlicer();
    for (let s = 0; s < this.segments.length; s++) {
      const segment = this.segments[s]!;
      const rows = Math.min(SEGMENT_ROWS, count - s * SEGMENT_ROWS);
      const at = s * SEGMENT_ROWS;
      families.set(segment.families.subarray(0, rows), at);
      prefixLens.set(segment.prefixLens.subarray(0, rows), at);
      dsts.set(segment.dsts.subarray(0, rows), at);
      networks.set(segment.networks.subarray(0, rows * ADDRESS_BYTES), at * ADDRESS_BYTES);
      joined.push(segment.texts.join('\n'));
      if (slicer.due) await slicer.next();
    }
    let length = Math.max(0, joined.length - 1);
    for (const text of joined) length += text.length;
    const texts = shared(length);
    const out = Buffer.from(texts.buffer, texts.byteOffset, texts.byteLength);
    let offset = 0;
    for (const [s, text] of joined.entries()) {
      if (s > 0) out[offset++] = 0x0a;
      offset += out.write(text, offset, 'latin1');
      if (slicer.due) await slicer.next();
    }
    return { families, prefixLens, dsts, networks, texts, comments: [...this.comments] };
  }
}

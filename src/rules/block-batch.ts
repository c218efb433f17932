// Validated blocks held column by column. A bulk import of a million CIDRs
// is kept this way between parsing and storing: a few typed arrays and one
// string per rule, instead of a million small objects and Buffers.
import type { Cidr, IpFamily } from './cidr.js';
import type { BlockDirection } from './model.js';

export interface ValidBlock {
  cidr: Cidr;
  direction: BlockDirection;
  comment: string | null;
}

const ADDRESS_BYTES = 16;

export class BlockBatch {
  count = 0;
  private families = new Uint8Array(0);
  private prefixLens = new Uint8Array(0);
  /** 1 for dst, 0 for src. */
  private dsts = new Uint8Array(0);
  private networks = Buffer.alloc(0);
  private readonly texts: string[] = [];
  /** Sparse: most imported rules have no comment. */
  private readonly comments = new Map<number, string>();

  push({ cidr, direction, comment }: ValidBlock): void {
    const i = this.count;
    if (i === this.families.length) this.grow(Math.max(1024, i * 2));
    this.families[i] = cidr.family;
    this.prefixLens[i] = cidr.prefixLen;
    this.dsts[i] = direction === 'dst' ? 1 : 0;
    this.networks.set(cidr.bytes, i * ADDRESS_BYTES);
    this.texts.push(cidr.text);
    if (comment !== null) this.comments.set(i, comment);
    this.count++;
  }

  family(i: number): IpFamily {
    return this.families[i] as IpFamily;
  }

  /** The i-th CIDR; its bytes are a view into the batch. */
  cidr(i: number): Cidr {
    const family = this.family(i);
    const start = i * ADDRESS_BYTES;
    return {
      family,
      prefixLen: this.prefixLens[i]!,
      bytes: this.networks.subarray(start, start + (family === 4 ? 4 : 16)),
      text: this.texts[i]!,
    };
  }

  direction(i: number): BlockDirection {
    return this.dsts[i] ? 'dst' : 'src';
  }

  comment(i: number): string | null {
    return this.comments.get(i) ?? null;
  }

  private grow(capacity: number): void {
    const widen = <T extends Uint8Array>(from: T, to: T): T => (to.set(from), to);
    this.families = widen(this.families, new Uint8Array(capacity));
    this.prefixLens = widen(this.prefixLens, new Uint8Array(capacity));
    this.dsts = widen(this.dsts, new Uint8Array(capacity));
    this.networks = widen(this.networks, Buffer.alloc(capacity * ADDRESS_BYTES));
  }
}

// Stored rules held column by column, as start-up reads them: what the
// kernel needs of each rule (id, family, prefix, address, direction) in a
// few typed arrays, instead of a million BlockRule objects and Buffers that
// the garbage collector would have to trace (a million objects cost about
// 10 s of GC and 1 GB of heap at start-up).
import type { IpFamily } from './cidr.js';
import type { BlockDirection, BlockRule } from './model.js';

/** Bytes a row's address takes: room for IPv6, IPv4 uses the first 4. */
export const ADDRESS_BYTES = 16;

export class RuleColumns {
  count = 0;
  /** Rules per address family. */
  readonly perFamily: Record<4 | 6, number> = { 4: 0, 6: 0 };
  ids = new Uint32Array(0);
  families = new Uint8Array(0);
  prefixLens = new Uint8Array(0);
  /** 1 for dst, 0 for src. */
  dsts = new Uint8Array(0);
  /** 1 for an allow entry (a named list's, src/lists), 0 for a deny. */
  allows = new Uint8Array(0);
  /** ADDRESS_BYTES per row, network order. */
  networks = Buffer.alloc(0);
  /** False once a row was pushed with a smaller id than the one before. */
  private idsAscending = true;

  constructor(capacity = 0) {
    if (capacity > 0) this.grow(capacity);
  }

  static fromRules(rules: readonly BlockRule[]): RuleColumns {
    const columns = new RuleColumns(rules.length);
    for (const rule of rules) columns.push(rule.id, rule.family, rule.prefixLen, rule.network, rule.direction === 'dst');
    return columns;
  }

  push(id: number, family: IpFamily, prefixLen: number, network: Uint8Array, dst: boolean, allow = false): void {
    const i = this.count;
    if (i === this.ids.length) this.grow(Math.max(1024, i * 2));
    if (i > 0 && id <= this.ids[i - 1]!) this.idsAscending = false;
    this.ids[i] = id;
    this.families[i] = family;
    this.prefixLens[i] = prefixLen;
    this.dsts[i] = dst ? 1 : 0;
    this.allows[i] = allow ? 1 : 0;
    this.networks.set(network, i * ADDRESS_BYTES);
    this.perFamily[family]++;
    this.count++;
  }

  direction(i: number): BlockDirection {
    return this.dsts[i] ? 'dst' : 'src';
  }

  /** Every id, ascending (the store reads rows in id order, so usually a view). */
  sortedIds(): Uint32Array {
    const ids = this.ids.subarray(0, this.count);
    return this.idsAscending ? ids : ids.slice().sort();
  }

  private grow(capacity: number): void {
    const widen = <T extends Uint8Array | Uint32Array>(from: T, to: T): T => (to.set(from), to);
    this.ids = widen(this.ids, new Uint32Array(capacity));
    this.families = widen(this.families, new Uint8Array(capacity));
    this.prefixLens = widen(this.prefixLens, new Uint8Array(capacity));
    this.dsts = widen(this.dsts, new Uint8Array(capacity));
    this.allows = widen(this.allows, new Uint8Array(capacity));
    this.networks = widen(this.networks, Buffer.alloc(capacity * ADDRESS_BYTES));
  }
}

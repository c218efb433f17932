// Start-up's side of the map sync, sized for a million rules: the stored
// rules arrive as columns (rule-columns.ts), each kernel table's wanted
// entries are packed straight from them, and the diff against what the
// kernel holds runs on the packed bytes with an open-addressing index of
// typed arrays. No string keys, no object or Buffer per rule: 1M entries
// diff in well under a second and leave nothing for the GC to trace.
import type { BpfMap } from '@xdpwall/addon';
import { Action, Layout, writeRuleValue } from './abi.js';
import { ADDRESS_BYTES, type RuleColumns } from '../rules/rule-columns.js';
import type { Slicer } from '../event-loop.js';

/** Rows between two questions to the slicer: a million rows in one go held the loop for hundreds of ms. */
const SLICE_ROWS = 4096;

/** Never due: for callers with nobody to yield to. */
const NO_SLICER: Slicer = { due: false, next: async () => undefined };

/** Keys and values of many rules, packed for one batch call. */
export interface PackedRules {
  keys: Buffer;
  values: Buffer;
  count: number;
}

export interface SyncReport {
  added: number;
  removed: number;
  kept: number;
}

/** How a rule of one family, prefix length and direction is stored in the kernel. */
export interface Placement {
  /** The hash or trie holding its entry, or null (the DIR-24 table alone holds it). */
  table: BpfMap | null;
  /** Host hashes are keyed by the bare address, tries by prefix length and address. */
  hostKey: boolean;
  /** The DIR-24 table holds or flags it. */
  dir24: boolean;
}

export type PlacementOf = (family: 4 | 6, prefixLen: number, dst: boolean) => Placement;

/** Rows of the columns grouped by the table that holds their entry, and the rows for DIR-24. */
export interface RowPlan {
  byTable: Map<BpfMap, { rows: Uint32Array; hostKey: boolean }>;
  dir24Rows: Uint32Array;
  /** Rows the DIR-24 table alone holds (no table entry). */
  dir24Only: number;
}

/**
 * Classifies every row once, through a table of the (at most 324)
 * family/length/direction cases, asking `slicer` every SLICE_ROWS rows
 * (a restart reconciles while the API serves).
 */
export async function planRows(rules: RuleColumns, placementOf: PlacementOf, slicer: Slicer = NO_SLICER): Promise<RowPlan> {
  const cases = new Map<number, Placement>();
  const caseOf = (i: number): Placement => {
    const code = rules.families[i]! * 512 + rules.prefixLens[i]! * 2 + rules.dsts[i]!;
    let placement = cases.get(code);
    if (!placement) cases.set(code, (placement = placementOf(rules.families[i] as 4 | 6, rules.prefixLens[i]!, rules.dsts[i] === 1)));
    return placement;
  };
  const counts = new Map<BpfMap, number>();
  let dir24Count = 0;
  let dir24Only = 0;
  for (let i = 0; i < rules.count; i++) {
    if ((i & (SLICE_ROWS - 1)) === 0 && slicer.due) await slicer.next();
    const { table, dir24 } = caseOf(i);
    if (table) counts.set(table, (counts.get(table) ?? 0) + 1);
    if (dir24) dir24Count++;
    if (dir24 && !table) dir24Only++;
  }
  const byTable = new Map<BpfMap, { rows: Uint32Array; hostKey: boolean; n: number }>();
  const dir24Rows = new Uint32Array(dir24Count);
  let d = 0;
  for (let i = 0; i < rules.count; i++) {
    if ((i & (SLICE_ROWS - 1)) === 0 && slicer.due) await slicer.next();
    const { table, hostKey, dir24 } = caseOf(i);
    if (table) {
      let group = byTable.get(table);
      if (!group) byTable.set(table, (group = { rows: new Uint32Array(counts.get(table)!), hostKey, n: 0 }));
      group.rows[group.n++] = i;
    }
    if (dir24) dir24Rows[d++] = i;
  }
  return { byTable, dir24Rows, dir24Only };
}

/** The given rows of one table as its packed keys and deny values. */
export async function packRows(rules: RuleColumns, rows: Uint32Array, hostKey: boolean, keySize: number, slicer: Slicer = NO_SLICER): Promise<PackedRules> {
  const valueSize = Layout.ruleValue.size;
  const keys = Buffer.alloc(rows.length * keySize);
  const values = Buffer.alloc(rows.length * valueSize);
  const addrAt = hostKey ? 0 : Layout.lpmV4Key.addr; // v4 and v6 LPM keys share offsets
  for (let k = 0; k < rows.length; k++) {
    if ((k & (SLICE_ROWS - 1)) === 0 && slicer.due) await slicer.next();
    const i = rows[k]!;
    const addrBytes = rules.families[i] === 4 ? 4 : 16;
    if (!hostKey) keys.writeUInt32LE(rules.prefixLens[i]!, k * keySize + Layout.lpmV4Key.prefixlen);
    rules.networks.copy(keys, k * keySize + addrAt, i * ADDRESS_BYTES, i * ADDRESS_BYTES + addrBytes);
    writeRuleValue(values, k * valueSize, { ruleId: rules.ids[i]!, action: rules.allows[i] ? Action.allow : Action.deny, flags: 0 });
  }
  return { keys, values, count: rows.length };
}

/**
 * A set of packed keys (count * keySize bytes), indexed for lookup by
 * other packed keys: open addressing over an Int32Array of row + 1.
 */
export class PackedKeyIndex {
  private readonly slots: Int32Array;
  private readonly mask: number;

  /** Sized for `count` keys; the first `filled` are indexed now. */
  constructor(
    private readonly keys: Buffer,
    private readonly keySize: number,
    count: number,
    filled = count,
  ) {
    let size = 16;
    while (size < count * 2) size *= 2;
    this.slots = new Int32Array(size);
    this.mask = size - 1;
    this.insertRows(0, filled);
  }

  /** The index of `count` keys, built SLICE_ROWS rows at a time between turns `slicer` allows. */
  static async build(keys: Buffer, keySize: number, count: number, slicer: Slicer): Promise<PackedKeyIndex> {
    const index = new PackedKeyIndex(keys, keySize, count, 0);
    // Smaller steps than SLICE_ROWS: the first ones run before the hash loop is optimised (50 ms for 4096 keys).
    const step = SLICE_ROWS / 4;
    for (let from = 0; from < count; from += step) {
      if (slicer.due) await slicer.next();
      index.insertRows(from, Math.min(count, from + step));
    }
    return index;
  }

  private insertRows(from: number, to: number): void {
    const { keys, keySize, slots, mask } = this;
    for (let row = from; row < to; row++) {
      let slot = hashKey(keys, row * keySize, keySize) & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = row + 1;
    }
  }

  /** The row holding the key at `other[offset..offset+keySize)`, or -1. Keys are assumed distinct. */
  find(other: Buffer, offset: number): number {
    const { keys, keySize, slots, mask } = this;
    let slot = hashKey(other, offset, keySize) & mask;
    for (;;) {
      const entry = slots[slot]!;
      if (entry === 0) return -1;
      if (bytesEqual(keys, (entry - 1) * keySize, other, offset, keySize)) return entry - 1;
      slot = (slot + 1) & mask;
    }
  }
}

function hashKey(buf: Buffer, offset: number, size: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < size; i++) h = Math.imul(h ^ buf[offset + i]!, 0x01000193);
  // Mix the high bits down: the index masks the low ones.
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  return (h ^ (h >>> 15)) >>> 0;
}

function bytesEqual(a: Buffer, aOffset: number, b: Buffer, bOffset: number, size: number): boolean {
  for (let i = 0; i < size; i++) if (a[aOffset + i] !== b[bOffset + i]) return false;
  return true;
}

/** Copies the `size`-byte records `picked` of `from` into one buffer. */
function pick(from: Buffer, size: number, picked: Uint32Array, count: number): Buffer {
  const out = Buffer.alloc(count * size);
  for (let k = 0; k < count; k++) from.copy(out, k * size, picked[k]! * size, (picked[k]! + 1) * size);
  return out;
}

/**
 * Brings a table to exactly the wanted entries with batch calls: entries
 * the kernel holds and nobody wants are deleted, wanted ones missing or
 * with another value are written, the rest are left alone.
 */
export async function syncPacked(table: BpfMap, wanted: PackedRules, report: SyncReport, slicer: Slicer = NO_SLICER): Promise<void> {
  const { keySize, valueSize } = table;
  const current = await table.lookupAll();
  const index = await PackedKeyIndex.build(wanted.keys, keySize, wanted.count, slicer);
  /** Per wanted row: 1 when the kernel already holds it with the same value. */
  const kept = new Uint8Array(wanted.count);
  const stale = new Uint32Array(current.count);
  let staleCount = 0;
  for (let c = 0; c < current.count; c++) {
    if ((c & (SLICE_ROWS - 1)) === 0 && slicer.due) await slicer.next();
    const w = index.find(current.keys, c * keySize);
    if (w < 0) stale[staleCount++] = c;
    else if (bytesEqual(current.values, c * table.valueStride, wanted.values, w * valueSize, valueSize)) kept[w] = 1;
  }
  if (staleCount > 0) {
    await table.deleteBatch(pick(current.keys, keySize, stale, staleCount), staleCount);
    report.removed += staleCount;
  }
  const toWrite = new Uint32Array(wanted.count);
  let writeCount = 0;
  for (let w = 0; w < wanted.count; w++) {
    if ((w & (SLICE_ROWS - 1)) === 0 && slicer.due) await slicer.next();
    if (!kept[w]) toWrite[writeCount++] = w;
  }
  report.kept += wanted.count - writeCount;
  if (writeCount === wanted.count && writeCount > 0) {
    await table.updateBatch(wanted.keys, wanted.values, writeCount);
  } else if (writeCount > 0) {
    await table.updateBatch(pick(wanted.keys, keySize, toWrite, writeCount), pick(wanted.values, valueSize, toWrite, writeCount), writeCount);
  }
  report.added += writeCount;
}

/** Deletes the entries of a map keyed by u32 rule id whose id is not in `ids` (ascending). */
export async function dropStaleIds(map: BpfMap, ids: Uint32Array, below = Infinity): Promise<number> {
  const { keys, count } = await map.lookupAll();
  const stale = new Uint32Array(count);
  let staleCount = 0;
  for (let c = 0; c < count; c++) {
    const id = keys.readUInt32LE(c * 4);
    if (id < below && !sortedHas(ids, id)) stale[staleCount++] = c;
  }
  if (staleCount > 0) await map.deleteBatch(pick(keys, 4, stale, staleCount), staleCount);
  return staleCount;
}

export function sortedHas(sorted: Uint32Array, value: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const at = sorted[mid]!;
    if (at === value) return true;
    if (at < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

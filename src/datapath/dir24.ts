// The control plane's side of the DIR-24-8 table (xw_src_dir24 and
// xw_src_dir24_l2, and their dst twins). First level: one u32 per /24 of
// IPv4 space holding the rule of the longest prefix of length <= 24 that
// covers it. A /24 that holds a /25../31 prefix gets a second-level block of
// 256 slots, one per address, and its first-level slot points there
// (DIR24_BLOCK | block); when the blocks run out it is flagged DIR24_DEEPER
// instead and the data plane asks the trie (where /25../31 prefixes are
// always kept). A /0 is not expanded: it is the default value (xw_config)
// of every slot no prefix covers. This class keeps the contents and says
// what a change touched; cidr-maps.ts writes them to the kernel. Pure and
// synchronous, so it is tested against a brute-force oracle. A change also
// comes as steps of at most DIR24_STEP_SLOTS slots (addSteps, removeSteps):
// a /1 covers 2^23 slots, and the caller gives the event loop back between
// steps.

/** Slot flag: a /25../31 prefix lies in this /24 and it has no block, so the trie must be asked. */
export const DIR24_DEEPER = 0x8000_0000;
/** Slot flag: the covering prefix is an allow rule. */
export const DIR24_ALLOW = 0x4000_0000;
/** Slot flag: the rule bits hold the /24's second-level block number. */
export const DIR24_BLOCK = 0x2000_0000;
/** Rule ids (and block numbers) a slot can carry. */
export const DIR24_MAX_RULE_ID = 0x1fff_ffff;
export const DIR24_SLOTS = 1 << 24;
/** Slots per second-level block, and array elements per block (two slots to an element). */
export const DIR24_BLOCK_SLOTS = 256;
export const DIR24_BLOCK_PAIRS = 128;
/** First-level slots per step of a change, and pairs per packed chunk: well under a millisecond of work each. */
export const DIR24_STEP_SLOTS = 1 << 16;

export interface Dir24Rule {
  /** IPv4 network address as an unsigned 32-bit number, host bits zero. */
  network: number;
  prefixLen: number;
  ruleId: number;
  allow?: boolean;
}

/** A prefix's network bits alone: a small integer (a Smi) for lengths up to 24, cheap as a Map key. */
const ownerKey = (network: number, len: number): number => network >>> (32 - len);
const ruleValue = (rule: Dir24Rule | null): number => (rule ? (rule.ruleId | (rule.allow ? DIR24_ALLOW : 0)) >>> 0 : 0);

export class Dir24Index {
  // Allocated on the first rule: 96 MiB a direction that a daemon without
  // IPv4 network prefixes never needs.
  /** Rule value of the longest prefix <= /24 covering each /24 (flags excluded). */
  private slots: Uint32Array | null = null;
  /** Length + 1 of the prefix that owns each slot; 0: none. */
  private depth: Uint8Array | null = null;
  /** How many /25../31 prefixes lie in each /24 (at most 254, so a byte). */
  private deeper: Uint8Array | null = null;
  /**
   * Prefixes of length 1..24, for the successor of a removed one: a map per
   * length, ownerKey -> ownerValue (small integers, no object per rule: a
   * million retained objects made every full GC longer).
   */
  private readonly owners: IntMap[] = Array.from({ length: 25 }, () => new IntMap());
  /** The /25../31 prefixes of each /24 that has any. */
  private readonly deep = new DeepRules();
  /** /24 -> its second-level block. */
  private readonly blockOf = new Map<number, number>();
  private readonly freeBlocks: number[] = [];
  /** Blocks released by the current change: reusable only once it is written (see takeBlockWrites). */
  private releasedBlocks: number[] = [];
  /** /24s whose block contents must be (re)written. */
  private readonly dirty = new Set<number>();
  private defaultRule: Dir24Rule | null = null;
  /** The slots a step changed, handed out as a view (reused: 2^23 slots of new arrays made the GC pause). */
  private stepChanged: Uint32Array | null = null;

  /** blocks: how many second-level blocks the kernel table holds (0: every /25../31 goes to the trie). */
  constructor(readonly blocks = 0) {
    for (let block = blocks - 1; block >= 0; block--) this.freeBlocks.push(block);
  }

  /** True for the prefixes this table holds itself; /25../31 also get a block or a flag. */
  static holds(prefixLen: number): boolean {
    return prefixLen <= 24;
  }

  /** The first-level slot value the kernel must hold (0: nothing but the /0, if any, covers it). */
  value(slot: number): number {
    const block = this.blockOf.size > 0 ? this.blockOf.get(slot) : undefined;
    if (block !== undefined) return (DIR24_BLOCK | block) >>> 0;
    const base = this.slots?.[slot] ?? 0;
    return this.deeper?.[slot] ? (base | DIR24_DEEPER) >>> 0 : base;
  }

  /** The value of the /0 rule, for xw_config.v4_default (0: none). */
  defaultValue(): number {
    return ruleValue(this.defaultRule);
  }

  /** Blocks in use. */
  get blocksUsed(): number {
    return this.blockOf.size;
  }

  /** The 256 slots of the block of /24 `slot`: the longest /25../31 covering each address, else the /24's own rule. */
  blockValues(slot: number): Uint32Array {
    const values = new Uint32Array(DIR24_BLOCK_SLOTS).fill(this.slots?.[slot] ?? 0);
    const depth = new Uint8Array(DIR24_BLOCK_SLOTS);
    const { deep } = this;
    for (let node = deep.first(slot); node >= 0; node = deep.next(node)) {
      const first = deep.low(node);
      const prefixLen = deep.len(node);
      const value = deep.value(node);
      for (let i = first; i < first + (1 << (32 - prefixLen)); i++) {
        if (depth[i]! >= prefixLen) continue;
        depth[i] = prefixLen;
        values[i] = value;
      }
    }
    return values;
  }

  /**
   * The blocks to write after a change, each with its 256 slots, and makes
   * blocks released by the change reusable (they are unreferenced once the
   * first-level slots are written, which happens after the blocks).
   */
  takeBlockWrites(): Array<{ block: number; values: Uint32Array }> {
    const writes: Array<{ block: number; values: Uint32Array }> = [];
    for (const slot of this.dirty) {
      const block = this.blockOf.get(slot);
      if (block !== undefined) writes.push({ block, values: this.blockValues(slot) });
    }
    this.dirty.clear();
    return writes;
  }

  /** Call once the first-level slots of a change are written: released blocks become reusable. */
  commitReleased(): void {
    this.freeBlocks.push(...this.releasedBlocks);
    this.releasedBlocks = [];
  }

  /** Adds a rule; returns the first-level slots whose value changed. */
  add(rule: Dir24Rule): Slots {
    return joinSteps(this.addSteps(rule));
  }

  /** Removes a rule added before; returns the first-level slots whose value changed. */
  remove(rule: Dir24Rule): Slots {
    return joinSteps(this.removeSteps(rule));
  }

  /**
   * add() in steps: each yields the changed slots of up to DIR24_STEP_SLOTS
   * slots, a view valid until the next step. The index holds the rule once
   * the last step has run; a change must be run to its end before the next
   * one starts.
   */
  *addSteps(rule: Dir24Rule): Generator<Slots, void, undefined> {
    if (rule.ruleId < 1 || rule.ruleId > DIR24_MAX_RULE_ID) throw new RangeError(`rule id ${rule.ruleId} does not fit a DIR-24 slot`);
    if (rule.prefixLen === 0) {
      this.defaultRule = rule;
      return;
    }
    if (rule.prefixLen > 24) {
      yield this.changeDeeper(rule, +1);
      return;
    }
    this.owners[rule.prefixLen]!.set(ownerKey(rule.network, rule.prefixLen), ownerValue(rule));
    yield* this.fill(rule, 0, rule.prefixLen, rule);
  }

  /** remove() in steps, as addSteps. */
  *removeSteps(rule: Dir24Rule): Generator<Slots, void, undefined> {
    if (rule.prefixLen === 0) {
      this.defaultRule = null;
      return;
    }
    if (rule.prefixLen > 24) {
      yield this.changeDeeper(rule, -1);
      return;
    }
    this.owners[rule.prefixLen]!.delete(ownerKey(rule.network, rule.prefixLen));
    yield* this.fill(rule, rule.prefixLen + 1, rule.prefixLen + 1, this.successor(rule));
  }

  /** The slots a removed prefix owned go to the longest shorter prefix covering it (the /0 is the default, not an owner). */
  private successor(rule: Dir24Rule): Dir24Rule | null {
    for (let len = rule.prefixLen - 1; len >= 1; len--) {
      const owner = this.owners[len]!.get(ownerKey(rule.network, len));
      if (owner !== undefined) {
        const found: Dir24Rule = { network: (rule.network & ((0xffff_ffff << (32 - len)) >>> 0)) >>> 0, prefixLen: len, ruleId: owner >>> 1 };
        if (owner & 1) found.allow = true;
        return found;
      }
    }
    return null;
  }

  /**
   * A change that is a single step (a /8 or longer, or a /25../31) applied
   * at once, its changed slots added to `into`: what a bulk import does a
   * million times, without a generator per rule. False (nothing done) for a
   * longer change, which goes through addSteps/removeSteps.
   */
  changeInto(rule: Dir24Rule, change: 'add' | 'remove', into: SlotSet): boolean {
    const len = rule.prefixLen;
    if (len === 0 || (len <= 24 && 1 << (24 - len) > DIR24_STEP_SLOTS)) return false;
    if (change === 'add' && (rule.ruleId < 1 || rule.ruleId > DIR24_MAX_RULE_ID)) throw new RangeError(`rule id ${rule.ruleId} does not fit a DIR-24 slot`);
    if (len > 24) {
      const changed = this.changeDeeper(rule, change === 'add' ? +1 : -1);
      if (changed.length > 0) into.add(changed[0]!);
      return true;
    }
    const first = rule.network >>> 8;
    const end = first + (1 << (24 - len));
    const out = (this.stepChanged ??= new Uint32Array(DIR24_STEP_SLOTS));
    let count: number;
    if (change === 'add') {
      this.owners[len]!.set(ownerKey(rule.network, len), ownerValue(rule));
      count = this.fillRange(first, end, 0, len, rule, out);
    } else {
      this.owners[len]!.delete(ownerKey(rule.network, len));
      count = this.fillRange(first, end, len + 1, len + 1, this.successor(rule), out);
    }
    into.addAll(out.subarray(0, count));
    return true;
  }

  /**
   * Gives `owner` the slots of `range` whose depth (the owning rule's prefix
   * length + 1, 0 for none) lies in [lowest, highest], a step of
   * DIR24_STEP_SLOTS slots at a time (each slot's change depends on that
   * slot alone). Runs over up to 2^23 slots for a /1: kept free of calls and
   * lookups per slot.
   */
  private *fill(range: Dir24Rule, lowest: number, highest: number, owner: Dir24Rule | null): Generator<Uint32Array, void, undefined> {
    const first = range.network >>> 8;
    const end = first + (1 << (24 - range.prefixLen));
    for (let from = first; from < end; from += DIR24_STEP_SLOTS) {
      // A typed array, not push(): pushing 2^23 numbers costs seconds.
      const changed = (this.stepChanged ??= new Uint32Array(DIR24_STEP_SLOTS));
      const count = this.fillRange(from, Math.min(end, from + DIR24_STEP_SLOTS), lowest, highest, owner, changed);
      yield changed.subarray(0, count);
    }
  }

  /** One step of fill(): slots [from, to) (at most DIR24_STEP_SLOTS), the changed ones written to `changed`; their count. */
  private fillRange(from: number, to: number, lowest: number, highest: number, owner: Dir24Rule | null, changed: Uint32Array): number {
    const slots = (this.slots ??= new Uint32Array(DIR24_SLOTS));
    const depth = (this.depth ??= new Uint8Array(DIR24_SLOTS));
    const value = ruleValue(owner);
    const ownerDepth = owner ? owner.prefixLen + 1 : 0;
    const withBlocks = this.blockOf.size > 0;
    let count = 0;
    for (let slot = from; slot < to; slot++) {
      const d = depth[slot]!;
      if (d < lowest || d > highest) continue;
      depth[slot] = ownerDepth;
      if (value === slots[slot]) continue;
      slots[slot] = value;
      // A /24 with a block keeps pointing at it: the block's fall-through slots change instead.
      if (withBlocks && this.blockOf.has(slot)) this.dirty.add(slot);
      else changed[count++] = slot;
    }
    return count;
  }

  private changeDeeper(rule: Dir24Rule, delta: 1 | -1): number[] {
    const slot = rule.network >>> 8;
    this.slots ??= new Uint32Array(DIR24_SLOTS);
    this.depth ??= new Uint8Array(DIR24_SLOTS);
    const deeper = (this.deeper ??= new Uint8Array(DIR24_SLOTS));
    const count = deeper[slot]! + delta;
    if (count < 0) throw new Error(`no /25../31 prefix to remove in slot ${slot}`);
    if (delta > 0) this.deep.add(slot, rule.network & 0xff, rule.prefixLen, ruleValue(rule));
    else this.deep.remove(slot, rule.network & 0xff, rule.prefixLen);
    const before = this.value(slot);
    deeper[slot] = count;
    const block = this.blockOf.size > 0 ? this.blockOf.get(slot) : undefined;
    if (count === 0 && block !== undefined) {
      this.blockOf.delete(slot);
      this.dirty.delete(slot);
      this.releasedBlocks.push(block);
    } else if (count > 0 && block === undefined && this.freeBlocks.length > 0) {
      this.blockOf.set(slot, this.freeBlocks.pop()!);
      this.dirty.add(slot);
    } else if (block !== undefined) {
      this.dirty.add(slot);
    }
    return this.value(slot) === before ? [] : [slot];
  }
}

/**
 * A map from non-negative integers below 2^31 - 1 to integers, in typed
 * arrays (open addressing, linear probing, at most half full). A Map of
 * half a million numbers held the event loop 200-330 ms each time it grew
 * (a rehash of heap entries), and on this kind of VM even touching a fresh
 * 8 MiB array at once takes ~0.1 s: so growing allocates without touching
 * (0 marks an empty slot, keys are stored plus one) and moves the old
 * entries over a few per write, the old table answering until it is empty.
 */
export class IntMap {
  private keys = new Int32Array(64);
  private values = new Int32Array(64);
  private mask = 63;
  /** The table before the last growth, until its entries have moved. */
  private old: { keys: Int32Array; values: Int32Array; mask: number; next: number } | null = null;
  size = 0;

  get(key: number): number | undefined {
    const found = IntMap.find(this.keys, this.mask, key);
    if (this.keys[found] === key + 1) return this.values[found];
    const old = this.old;
    if (old) {
      const at = IntMap.find(old.keys, old.mask, key);
      if (old.keys[at] === key + 1) return old.values[at];
    }
    return undefined;
  }

  set(key: number, value: number): void {
    this.migrate();
    if (!this.old && (this.size + 1) * 2 > this.keys.length) this.grow();
    // A key still in the old table moves now: it must not come back with its old value.
    if (this.old && IntMap.bury(this.old.keys, this.old.mask, key)) this.size--;
    const at = IntMap.find(this.keys, this.mask, key);
    if (this.keys[at] === 0) {
      this.keys[at] = key + 1;
      this.size++;
    }
    this.values[at] = value;
  }

  delete(key: number): void {
    if (IntMap.remove(this.keys, this.values, this.mask, key)) this.size--;
    else if (this.old && IntMap.bury(this.old.keys, this.old.mask, key)) this.size--;
  }

  /** Moves a few entries of the old table (each write moves more than it adds, so it empties before the next growth). */
  private migrate(): void {
    const old = this.old;
    if (!old) return;
    const end = Math.min(old.keys.length, old.next + 16);
    for (; old.next < end; old.next++) {
      const k = old.keys[old.next]!;
      if (k <= 0) continue; // empty, or a tombstone
      const at = IntMap.find(this.keys, this.mask, k - 1);
      this.keys[at] = k;
      this.values[at] = old.values[old.next]!;
      old.keys[old.next] = -1; // moved: a tombstone, so it is not found (and buried) there again
    }
    if (old.next === old.keys.length) this.old = null;
  }

  private grow(): void {
    this.old = { keys: this.keys, values: this.values, mask: this.mask, next: 0 };
    const length = this.keys.length * 2;
    this.keys = new Int32Array(length);
    this.values = new Int32Array(length);
    this.mask = length - 1;
  }

  /** The slot holding `key`, or the empty slot where it would go. */
  private static find(keys: Int32Array, mask: number, key: number): number {
    let i = IntMap.hash(key) & mask;
    while (keys[i] !== 0 && keys[i] !== key + 1) i = (i + 1) & mask;
    return i;
  }

  /**
   * Removes `key` from the old table with a tombstone (-1): a backward shift
   * could move an entry not yet migrated behind the migration's position.
   */
  private static bury(keys: Int32Array, mask: number, key: number): boolean {
    const at = IntMap.find(keys, mask, key);
    if (keys[at] === 0) return false;
    keys[at] = -1;
    return true;
  }

  /** Removes `key` from a table (backward-shift: no tombstones); whether it was there. */
  private static remove(keys: Int32Array, values: Int32Array, mask: number, key: number): boolean {
    let hole = IntMap.find(keys, mask, key);
    if (keys[hole] === 0) return false;
    for (let j = (hole + 1) & mask; keys[j] !== 0; j = (j + 1) & mask) {
      const home = IntMap.hash(keys[j]! - 1) & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        keys[hole] = keys[j]!;
        values[hole] = values[j]!;
        hole = j;
      }
    }
    keys[hole] = 0;
    return true;
  }

  private static hash(key: number): number {
    return Math.imul(key, 0x9e37_79b1) >>> 7;
  }
}

/** An owner's rule id and allow flag as one small integer (below 2^30: a Smi). */
const ownerValue = (rule: Dir24Rule): number => rule.ruleId * 2 + (rule.allow ? 1 : 0);

/**
 * The /25../31 prefixes of each /24 that has any, as a list per /24 in
 * typed arrays (a node per prefix: its network's last byte, its length and
 * its slot value), in the order they were added: a bulk import brings half
 * a million of them, which as arrays of objects kept the GC busy.
 */
class DeepRules {
  private readonly heads = new IntMap();
  /** Nodes in pages of 2^16 (a page more when full: growing one array would copy and touch megabytes at once). */
  private readonly pages: Array<{ next: Int32Array; low: Uint8Array; lens: Uint8Array; values: Uint32Array }> = [];
  private used = 0;
  private free = -1;

  /** The first node of the /24's list, -1 for none. */
  first(slot: number): number {
    return this.heads.get(slot) ?? -1;
  }

  next(node: number): number {
    return this.pages[node >>> 16]!.next[node & 0xffff]!;
  }

  /** The node's network's last byte, its prefix length and its slot value. */
  low(node: number): number {
    return this.pages[node >>> 16]!.low[node & 0xffff]!;
  }

  len(node: number): number {
    return this.pages[node >>> 16]!.lens[node & 0xffff]!;
  }

  value(node: number): number {
    return this.pages[node >>> 16]!.values[node & 0xffff]!;
  }

  private setNext(node: number, next: number): void {
    this.pages[node >>> 16]!.next[node & 0xffff] = next;
  }

  add(slot: number, low: number, prefixLen: number, value: number): void {
    const node = this.alloc();
    const page = this.pages[node >>> 16]!;
    const at = node & 0xffff;
    page.next[at] = -1;
    page.low[at] = low;
    page.lens[at] = prefixLen;
    page.values[at] = value;
    const head = this.heads.get(slot);
    if (head === undefined) {
      this.heads.set(slot, node);
      return;
    }
    let tail = head;
    while (this.next(tail) >= 0) tail = this.next(tail);
    this.setNext(tail, node);
  }

  /** Removes the first node of the /24 with this network byte and length, if any. */
  remove(slot: number, low: number, prefixLen: number): void {
    let previous = -1;
    for (let node = this.first(slot); node >= 0; previous = node, node = this.next(node)) {
      if (this.low(node) !== low || this.len(node) !== prefixLen) continue;
      const after = this.next(node);
      if (previous >= 0) this.setNext(previous, after);
      else if (after >= 0) this.heads.set(slot, after);
      else this.heads.delete(slot);
      this.setNext(node, this.free);
      this.free = node;
      return;
    }
  }

  private alloc(): number {
    if (this.free >= 0) {
      const node = this.free;
      this.free = this.next(node);
      return node;
    }
    if ((this.used & 0xffff) === 0) {
      const n = 1 << 16;
      this.pages.push({ next: new Int32Array(n), low: new Uint8Array(n), lens: new Uint8Array(n), values: new Uint32Array(n) });
    }
    return this.used++;
  }
}

/** All the steps of a change, run now, as one list of changed slots. */
function joinSteps(steps: Iterable<Slots>): Slots {
  const parts: Slots[] = [];
  for (const part of steps) parts.push(part instanceof Uint32Array ? part.slice() : part);
  if (parts.length <= 1) return parts[0] ?? [];
  let total = 0;
  for (const part of parts) total += part.length;
  const joined = new Uint32Array(total);
  let at = 0;
  for (const part of parts) {
    joined.set(part, at);
    at += part.length;
  }
  return joined;
}

/** The distinct first-level pairs (two slots to an array element) holding `slots`, ascending. */
function pairsOf(slots: ArrayLike<number>): Uint32Array {
  const pairs = new Uint32Array(slots.length);
  for (let i = 0; i < slots.length; i++) pairs[i] = slots[i]! >>> 1;
  // Slots come sorted from one rule's range; sort only when they are not.
  let ascending = true;
  for (let i = 1; i < pairs.length && ascending; i++) ascending = pairs[i - 1]! <= pairs[i]!;
  if (!ascending) pairs.sort();
  let count = 0;
  for (let i = 0; i < pairs.length; i++) if (count === 0 || pairs[count - 1] !== pairs[i]) pairs[count++] = pairs[i]!;
  return pairs.subarray(0, count);
}

/** Packed keys (pair indexes) and values (two u32 slots each) of the first-level pairs holding `slots`. */
export function packSlotPairs(index: Dir24Index, slots: ArrayLike<number>): { keys: Buffer; values: Buffer; count: number } {
  return packPairs(index, pairsOf(slots));
}

/**
 * Packed keys and values of the given distinct first-level pairs, written
 * into `into` when given (reused across the chunks of one change).
 */
export function packPairs(
  index: Dir24Index, pairs: Uint32Array,
  into = { keys: new Uint32Array(pairs.length), values: new Uint32Array(pairs.length * 2) },
): { keys: Buffer; values: Buffer; count: number } {
  const count = pairs.length;
  const { keys, values } = into;
  keys.set(pairs);
  for (let i = 0; i < count; i++) {
    values[i * 2] = index.value(pairs[i]! * 2);
    values[i * 2 + 1] = index.value(pairs[i]! * 2 + 1);
  }
  return { keys: Buffer.from(keys.buffer, keys.byteOffset, count * 4), values: Buffer.from(values.buffer, values.byteOffset, count * 8), count };
}

/** Packed keys and values of whole second-level blocks. */
export function packBlocks(writes: ReadonlyArray<{ block: number; values: Uint32Array }>): { keys: Buffer; values: Buffer; count: number } {
  const count = writes.length * DIR24_BLOCK_PAIRS;
  const keys = new Uint32Array(count);
  const values = new Uint32Array(count * 2);
  writes.forEach(({ block, values: slots }, i) => {
    for (let pair = 0; pair < DIR24_BLOCK_PAIRS; pair++) keys[i * DIR24_BLOCK_PAIRS + pair] = block * DIR24_BLOCK_PAIRS + pair;
    values.set(slots, i * DIR24_BLOCK_SLOTS);
  });
  return { keys: Buffer.from(keys.buffer), values: Buffer.from(values.buffer), count };
}

/**
 * A set of slots without duplicates, cheap at millions of members (a bulk
 * import of /20s touches 16 slots each): a plain Set while small, then a
 * bit per slot (2 MiB for the table) and a list, so single-rule changes
 * allocate nothing large, and a chunk of a bulk import (a few thousand
 * slots spread over the table) neither zeroes 16 MiB of marks nor scans
 * them: its list is sorted instead.
 */
/** Bitmap words (32 slots each) scanned before a partial chunk of pairs is handed out. */
const SCAN_WINDOW_MASK = (1 << 13) - 1;
/** An unordered list up to this long is sorted (a few ms at most) rather than its bitmap scanned. */
const SORT_MAX = 1 << 17;

/**
 * One list and one (zeroed) bitmap kept from the last large SlotSet
 * released: a /1 otherwise allocates 34 MiB per change, and the GC that the
 * allocation sets off held the event loop ~50 ms.
 */
const spare: { list: Uint32Array<ArrayBuffer> | null; bits: Uint32Array<ArrayBuffer> | null } = { list: null, bits: null };

export class SlotSet {
  private static readonly SMALL = 4096;
  private small: Set<number> | null = new Set();
  private bits: Uint32Array<ArrayBuffer> | null = null;
  private list = new Uint32Array(SlotSet.SMALL * 2);
  size = 0;
  /** The list is in ascending order (one rule's range, or rules in order): its pairs come without a scan or sort. */
  private ascending = true;
  private lowest = DIR24_SLOTS;
  private highest = -1;

  add(slot: number): void {
    if (this.small) {
      if (this.small.has(slot)) return;
      if (this.small.size < SlotSet.SMALL) {
        this.small.add(slot);
        this.append(slot);
        return;
      }
      this.toBits();
    }
    const bits = this.bits!;
    const bit = 1 << (slot & 31);
    if (bits[slot >>> 5]! & bit) return;
    bits[slot >>> 5]! |= bit;
    if (this.size === this.list.length) this.grow(this.size + 1);
    this.append(slot);
  }

  private append(slot: number): void {
    if (slot < this.highest) this.ascending = false;
    if (slot < this.lowest) this.lowest = slot;
    if (slot > this.highest) this.highest = slot;
    this.list[this.size++] = slot;
  }

  /** Makes room for `extra` more slots at once: a /1 would grow the list ten times (64 MiB of copies). */
  reserve(extra: number): void {
    if (this.small && this.small.size + extra <= SlotSet.SMALL) return;
    if (this.small) this.toBits();
    if (this.size + extra > this.list.length) this.grow(this.size + extra);
  }

  /** Adds many slots: a /1 touches 2^23 of them. */
  addAll(slots: ArrayLike<number>): void {
    if (this.small && this.small.size + slots.length <= SlotSet.SMALL) {
      for (let i = 0; i < slots.length; i++) this.add(slots[i]!);
      return;
    }
    if (this.small) this.toBits();
    if (this.size + slots.length > this.list.length) this.grow(this.size + slots.length);
    const bits = this.bits!;
    const list = this.list;
    let { size, ascending, lowest, highest } = this;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      const bit = 1 << (slot & 31);
      const word = slot >>> 5;
      if (bits[word]! & bit) continue;
      bits[word]! |= bit;
      list[size++] = slot;
      if (slot < highest) ascending = false;
      if (slot < lowest) lowest = slot;
      if (slot > highest) highest = slot;
    }
    this.size = size;
    this.ascending = ascending;
    this.lowest = lowest;
    this.highest = highest;
  }

  slots(): Uint32Array {
    return this.list.subarray(0, this.size);
  }

  /**
   * The distinct pairs holding the slots, ascending, in chunks of at most
   * `chunk` (each a view valid until the next): a /1 touches 2^22 pairs,
   * packed and written a chunk at a time. Work between two chunks stays
   * bounded: an ascending list is walked as it is; otherwise a list of up
   * to SORT_MAX is sorted, and the bitmap of a larger one is scanned in
   * order (no sort of millions) from its lowest slot to its highest, a
   * window at a time.
   */
  *ascendingPairs(chunk = DIR24_STEP_SLOTS): Generator<Uint32Array, void, undefined> {
    const pairs = new Uint32Array(chunk);
    let count = 0;
    let last = -1;
    if (this.ascending || this.small || this.size <= SORT_MAX) {
      const list = this.ascending ? this.slots() : pairsOf(this.slots());
      const shift = this.ascending ? 1 : 0; // pairsOf gives pairs already
      for (let i = 0; i < list.length; i++) {
        const pair = list[i]! >>> shift;
        if (pair === last) continue;
        last = pairs[count++] = pair;
        if (count === chunk) {
          yield pairs;
          count = 0;
        }
      }
    } else {
      // Sixteen pairs to a word; zero words skip 32 slots at once.
      const bits = this.bits!;
      const end = (this.highest >>> 5) + 1;
      for (let w = this.lowest >>> 5; w < end; w++) {
        const word = bits[w]!;
        if (word !== 0) {
          for (let k = 0; k < 16; k++) {
            if (((word >>> (k * 2)) & 3) === 0) continue;
            pairs[count++] = w * 16 + k;
            if (count === chunk) {
              yield pairs;
              count = 0;
            }
          }
        }
        // A window scanned: hand out what it found rather than scan on.
        if ((w & SCAN_WINDOW_MASK) === SCAN_WINDOW_MASK && count > 0) {
          yield pairs.subarray(0, count);
          count = 0;
        }
      }
    }
    if (count > 0) yield pairs.subarray(0, count);
  }

  /**
   * Call when done with the set (it is empty afterwards): its list and
   * bitmap serve the next large set instead of new allocations.
   */
  release(): void {
    if (this.bits) {
      this.bits.fill(0); // 2 MiB
      spare.bits = this.bits;
    }
    if (this.list.length > SlotSet.SMALL * 2 && (!spare.list || spare.list.length < this.list.length)) spare.list = this.list;
    this.bits = null;
    this.small = new Set();
    this.list = new Uint32Array(SlotSet.SMALL * 2);
    this.size = 0;
    this.ascending = true;
    this.lowest = DIR24_SLOTS;
    this.highest = -1;
  }

  /** A list with room for `needed` slots (at least double the old one, at most the whole table). */
  private grow(needed: number): void {
    const length = Math.min(DIR24_SLOTS, Math.max(this.list.length * 2, needed));
    let grown = spare.list;
    if (grown && grown.length >= length) spare.list = null;
    else grown = new Uint32Array(length);
    grown.set(this.list.subarray(0, this.size));
    this.list = grown;
  }

  /** From a small set to one bit per slot of the whole table. */
  private toBits(): void {
    const bits = (this.bits = spare.bits ?? new Uint32Array(DIR24_SLOTS >>> 5));
    spare.bits = null;
    for (const known of this.small!) bits[known >>> 5]! |= 1 << (known & 31);
    this.small = null;
  }
}

/** First-level slots a change touched. */
export type Slots = ArrayLike<number> & Iterable<number>;

/** A first-level slot as the kernel holds it (two slots to an array element). */
export function readDir24Slot(map: { lookup(key: Buffer): Buffer | null }, slot: number): number {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(slot >>> 1);
  return map.lookup(key)?.readUInt32LE((slot & 1) * 4) ?? 0;
}

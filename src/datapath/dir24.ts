// The control plane's side of the DIR-24 table (xw_src_dir24, xw_dst_dir24):
// one u32 per /24 of IPv4 space holding the rule of the longest prefix of
// length <= 24 that covers it, flagged when a /25../31 prefix lies inside
// (those stay in the LPM trie). This class keeps the table's contents and
// says which slots a change touched; cidr-maps.ts writes them to the kernel.
// Pure and synchronous, so it is tested against a brute-force oracle.

/** Slot flag: a /25../31 prefix lies in this /24, so the trie must be asked. */
export const DIR24_DEEPER = 0x8000_0000;
/** Slot flag: the covering prefix is an allow rule. */
export const DIR24_ALLOW = 0x4000_0000;
/** Rule ids a slot can carry. */
export const DIR24_MAX_RULE_ID = 0x3fff_ffff;
export const DIR24_SLOTS = 1 << 24;

export interface Dir24Rule {
  /** IPv4 network address as an unsigned 32-bit number, host bits zero. */
  network: number;
  prefixLen: number;
  ruleId: number;
  allow?: boolean;
}

const mask = (len: number): number => (len === 0 ? 0 : (0xffff_ffff << (32 - len)) >>> 0);
const prefixId = (network: number, len: number): number => network * 64 + len; // exact in a double

export class Dir24Index {
  // Allocated on the first rule: 96 MiB a direction that a daemon without
  // IPv4 network prefixes never needs.
  private slots: Uint32Array | null = null;
  /** Length + 1 of the prefix that owns each slot; 0: none. */
  private depth: Uint8Array | null = null;
  /** How many /25../31 prefixes lie in each /24 (at most 254, so a byte). */
  private deeper: Uint8Array | null = null;
  /** Prefixes of length <= 24 by prefixId, for the successor of a removed one. */
  private readonly owners = new Map<number, Dir24Rule>();

  /** True for the prefixes this table holds itself; /25../31 also mark it. */
  static holds(prefixLen: number): boolean {
    return prefixLen <= 24;
  }

  /** The slot value the kernel must hold (0: nothing covers it). */
  value(slot: number): number {
    return this.slots?.[slot] ?? 0;
  }

  /** Adds a rule; returns the slots whose value changed. */
  add(rule: Dir24Rule): number[] {
    if (rule.ruleId < 1 || rule.ruleId > DIR24_MAX_RULE_ID) throw new RangeError(`rule id ${rule.ruleId} does not fit a DIR-24 slot`);
    if (rule.prefixLen > 24) return this.countDeeper(rule.network >>> 8, +1);
    this.owners.set(prefixId(rule.network, rule.prefixLen), rule);
    return this.fill(rule, (depth) => depth <= rule.prefixLen, rule);
  }

  /** Removes a rule added before; returns the slots whose value changed. */
  remove(rule: Dir24Rule): number[] {
    if (rule.prefixLen > 24) return this.countDeeper(rule.network >>> 8, -1);
    this.owners.delete(prefixId(rule.network, rule.prefixLen));
    // The slots this prefix owned go to the longest shorter prefix covering it.
    let successor: Dir24Rule | null = null;
    for (let len = rule.prefixLen - 1; len >= 0 && !successor; len--) {
      successor = this.owners.get(prefixId((rule.network & mask(len)) >>> 0, len)) ?? null;
    }
    return this.fill(rule, (depth) => depth === rule.prefixLen + 1, successor);
  }

  /** Sets the slots of `range` whose depth passes `owns` to `owner` (null: none). */
  private fill(range: Dir24Rule, owns: (depth: number) => boolean, owner: Dir24Rule | null): number[] {
    const slots = (this.slots ??= new Uint32Array(DIR24_SLOTS));
    const depth = (this.depth ??= new Uint8Array(DIR24_SLOTS));
    const first = range.network >>> 8;
    const count = 1 << (24 - range.prefixLen);
    const value = owner ? owner.ruleId | (owner.allow ? DIR24_ALLOW : 0) : 0;
    const ownerDepth = owner ? owner.prefixLen + 1 : 0;
    const changed: number[] = [];
    for (let slot = first; slot < first + count; slot++) {
      if (!owns(depth[slot]!)) continue;
      depth[slot] = ownerDepth;
      const next = (value | (slots[slot]! & DIR24_DEEPER)) >>> 0;
      if (next !== slots[slot]) {
        slots[slot] = next;
        changed.push(slot);
      }
    }
    return changed;
  }

  private countDeeper(slot: number, delta: 1 | -1): number[] {
    const slots = (this.slots ??= new Uint32Array(DIR24_SLOTS));
    this.depth ??= new Uint8Array(DIR24_SLOTS);
    const deeper = (this.deeper ??= new Uint8Array(DIR24_SLOTS));
    const count = deeper[slot]! + delta;
    if (count < 0) throw new Error(`no /25../31 prefix to remove in slot ${slot}`);
    deeper[slot] = count;
    const next = (count > 0 ? slots[slot]! | DIR24_DEEPER : slots[slot]! & ~DIR24_DEEPER) >>> 0;
    if (next === slots[slot]) return [];
    slots[slot] = next;
    return [slot];
  }
}

/**
 * A set of slots without duplicates, cheap at millions of members (a bulk
 * import of /20s touches 16 slots each): a plain Set while small, then a
 * mark per slot and a list, so single-rule changes allocate nothing large.
 */
export class SlotSet {
  private static readonly SMALL = 4096;
  private small: Set<number> | null = new Set();
  private marks: Uint8Array | null = null;
  private list = new Uint32Array(SlotSet.SMALL * 2);
  size = 0;

  add(slot: number): void {
    if (this.small) {
      if (this.small.has(slot)) return;
      if (this.small.size < SlotSet.SMALL) {
        this.small.add(slot);
        this.list[this.size++] = slot;
        return;
      }
      this.marks = new Uint8Array(DIR24_SLOTS);
      for (const known of this.small) this.marks[known] = 1;
      this.small = null;
    }
    const marks = this.marks!;
    if (marks[slot]) return;
    marks[slot] = 1;
    if (this.size === this.list.length) {
      const grown = new Uint32Array(this.list.length * 2);
      grown.set(this.list);
      this.list = grown;
    }
    this.list[this.size++] = slot;
  }

  slots(): Uint32Array {
    return this.list.subarray(0, this.size);
  }
}

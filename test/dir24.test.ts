// The DIR-24 index against a brute-force longest-prefix oracle: seeded
// random prefixes, nested on purpose, added and removed in random order.
import { describe, expect, it } from 'vitest';
import { prng } from './lib/prng.js';
import {
  DIR24_ALLOW, DIR24_BLOCK, DIR24_DEEPER, DIR24_MAX_RULE_ID, DIR24_STEP_SLOTS, Dir24Index, IntMap, SlotSet, packBlocks, packSlotPairs, type Dir24Rule, type Slots,
} from '../src/datapath/dir24.js';

const mask = (len: number): number => (len === 0 ? 0 : (0xffff_ffff << (32 - len)) >>> 0);
const ip = (text: string) => text.split('.').reduce((a, b) => a * 256 + Number(b), 0);

/** What a slot must hold, by brute force over the live rules. */
function expected(rules: Iterable<Dir24Rule>, slot: number): number {
  let best: Dir24Rule | null = null;
  let deeper = false;
  for (const r of rules) {
    if (r.prefixLen > 24) {
      if (r.network >>> 8 === slot) deeper = true;
      continue;
    }
    if (((slot << 8) & mask(r.prefixLen)) >>> 0 === r.network && (!best || r.prefixLen > best.prefixLen)) best = r;
  }
  const value = best ? best.ruleId | (best.allow ? DIR24_ALLOW : 0) : 0;
  return (value | (deeper ? DIR24_DEEPER : 0)) >>> 0;
}

describe('Dir24Index', () => {
  it('keeps the longest covering prefix in every slot through nested adds and removes', () => {
    const index = new Dir24Index();
    const a = { network: ip('10.0.0.0'), prefixLen: 8, ruleId: 1 };
    const b = { network: ip('10.1.0.0'), prefixLen: 16, ruleId: 2 };
    const c = { network: ip('10.1.2.0'), prefixLen: 24, ruleId: 3, allow: true };
    const d = { network: ip('10.1.2.128'), prefixLen: 25, ruleId: 4 };
    const slot = ip('10.1.2.0') >>> 8;
    expect(index.add(b)).toHaveLength(256);
    expect(index.add(a)).toHaveLength(65536 - 256); // b's slots stay b's
    expect([...index.add(c)]).toEqual([slot]);
    expect(index.value(slot)).toBe(3 | DIR24_ALLOW);
    expect([...index.add(d)]).toEqual([slot]);
    expect(index.value(slot)).toBe((3 | DIR24_ALLOW | DIR24_DEEPER) >>> 0);
    expect([...index.remove(c)]).toEqual([slot]); // falls back to b, keeps the flag
    expect(index.value(slot)).toBe((2 | DIR24_DEEPER) >>> 0);
    expect(index.remove(b)).toHaveLength(256); // b's slots fall back to a
    expect(index.value(slot)).toBe((1 | DIR24_DEEPER) >>> 0);
    index.remove(d);
    index.remove(a);
    expect(index.value(slot)).toBe(0);
    expect(index.value(ip('10.200.0.0') >>> 8)).toBe(0);
  });

  it('matches a brute-force oracle over 400 seeded random operations', () => {
    const random = prng(424242);
    const index = new Dir24Index();
    const live = new Map<string, Dir24Rule>();
    const touched = new Set<number>();
    let nextId = 1;
    // Everything inside 10.0.0.0/14, lengths 12..31: plenty of nesting, small ranges.
    for (let op = 0; op < 400; op++) {
      if (live.size > 0 && random() < 0.35) {
        const keys = [...live.keys()];
        const key = keys[Math.floor(random() * keys.length)]!;
        const rule = live.get(key)!;
        live.delete(key);
        for (const s of index.remove(rule)) touched.add(s);
        touched.add(rule.network >>> 8);
        continue;
      }
      const prefixLen = 12 + Math.floor(random() * 20);
      const network = ((ip('10.0.0.0') | Math.floor(random() * 2 ** 18)) & mask(prefixLen)) >>> 0;
      const key = `${network}/${prefixLen}`;
      if (live.has(key)) continue;
      const rule: Dir24Rule = { network, prefixLen, ruleId: nextId++, allow: random() < 0.2 };
      live.set(key, rule);
      for (const s of index.add(rule)) touched.add(s);
      touched.add(network >>> 8);
    }
    // Every slot any operation touched, plus a sample of the range, against the oracle.
    for (let s = ip('10.0.0.0') >>> 8; s < (ip('10.4.0.0') >>> 8); s += 97) touched.add(s);
    for (const slot of touched) expect(index.value(slot), `slot ${slot}`).toBe(expected(live.values(), slot));
  });

  it('reports only slots whose value changed', () => {
    const index = new Dir24Index();
    index.add({ network: ip('10.0.0.0'), prefixLen: 24, ruleId: 5 });
    expect(index.add({ network: ip('10.0.0.0'), prefixLen: 22, ruleId: 6 })).toHaveLength(3); // the /24 keeps its own rule
    expect(index.add({ network: ip('10.0.0.64'), prefixLen: 26, ruleId: 7 })).toEqual([ip('10.0.0.0') >>> 8]);
    expect(index.add({ network: ip('10.0.0.128'), prefixLen: 26, ruleId: 8 })).toEqual([]); // already flagged
    expect(() => index.add({ network: 0, prefixLen: 8, ruleId: 2 ** 29 })).toThrow(RangeError);
  });
});

/** The rule value the longest live prefix covering `addr` gives (the /0 included), by brute force. */
function expectedAt(rules: Iterable<Dir24Rule>, addr: number): number {
  let best: Dir24Rule | null = null;
  for (const r of rules) {
    if (((addr & mask(r.prefixLen)) >>> 0) === r.network && (!best || r.prefixLen > best.prefixLen)) best = r;
  }
  return best ? (best.ruleId | (best.allow ? DIR24_ALLOW : 0)) >>> 0 : 0;
}

/**
 * The kernel's two levels as the control plane writes them (only what a
 * change reports), and the data plane's lookup over them.
 */
class KernelTables {
  first = new Map<number, number>();
  second = new Map<number, number>();
  v4Default = 0;

  apply(index: Dir24Index, slots: Slots): void {
    const blocks = packBlocks(index.takeBlockWrites());
    for (let i = 0; i < blocks.count; i++) {
      const pair = blocks.keys.readUInt32LE(i * 4);
      this.second.set(pair * 2, blocks.values.readUInt32LE(i * 8));
      this.second.set(pair * 2 + 1, blocks.values.readUInt32LE(i * 8 + 4));
    }
    const pairs = packSlotPairs(index, slots);
    for (let i = 0; i < pairs.count; i++) {
      const pair = pairs.keys.readUInt32LE(i * 4);
      this.first.set(pair * 2, pairs.values.readUInt32LE(i * 8));
      this.first.set(pair * 2 + 1, pairs.values.readUInt32LE(i * 8 + 4));
    }
    index.commitReleased();
    this.v4Default = index.defaultValue();
  }

  /** xw_deny_v4 without the host hash; null when it would ask the trie. */
  lookup(addr: number): number | null {
    let slot = this.first.get(addr >>> 8) ?? 0;
    if (slot & DIR24_BLOCK) slot = this.second.get((slot & DIR24_MAX_RULE_ID) * 256 + (addr & 0xff)) ?? 0;
    else if (slot & DIR24_DEEPER) return null;
    const value = slot & (DIR24_MAX_RULE_ID | DIR24_ALLOW);
    return (value & DIR24_MAX_RULE_ID ? value : this.v4Default) >>> 0;
  }
}

describe('Dir24Index with second-level blocks', () => {
  it('answers every address of a /24 through its block, then frees the block', () => {
    const index = new Dir24Index(2);
    const kernel = new KernelTables();
    const slot = ip('10.1.2.0') >>> 8;
    const rules = [
      { network: ip('10.0.0.0'), prefixLen: 8, ruleId: 1 },
      { network: ip('10.1.2.0'), prefixLen: 25, ruleId: 2 },
      { network: ip('10.1.2.64'), prefixLen: 26, ruleId: 3, allow: true },
      { network: ip('10.1.2.70'), prefixLen: 31, ruleId: 4 },
    ];
    for (const r of rules) kernel.apply(index, index.add(r));
    expect(index.value(slot)).toBe((DIR24_BLOCK | 0) >>> 0); // blocks are given out from 0
    const at = (last: number) => kernel.lookup(ip(`10.1.2.${last}`));
    expect([at(0), at(63), at(64), at(69), at(70), at(71), at(127), at(128), at(255)]).toEqual([2, 2, 3 | DIR24_ALLOW, 3 | DIR24_ALLOW, 4, 4, 3 | DIR24_ALLOW, 1, 1].map((v) => v >>> 0));
    for (const r of rules.slice(1)) kernel.apply(index, index.remove(r));
    expect(index.blocksUsed).toBe(0);
    expect(index.value(slot)).toBe(1);
    expect(at(70)).toBe(1);
  });

  it('falls back to the trie flag when the blocks run out, and reuses freed blocks', () => {
    const index = new Dir24Index(1);
    const a = { network: ip('10.0.0.128'), prefixLen: 25, ruleId: 1 };
    const b = { network: ip('10.0.1.128'), prefixLen: 25, ruleId: 2 };
    expect(index.add(a)).toEqual([ip('10.0.0.0') >>> 8]);
    expect(index.add(b)).toEqual([ip('10.0.1.0') >>> 8]);
    expect(index.value(ip('10.0.0.0') >>> 8)).toBe((DIR24_BLOCK | 0) >>> 0);
    expect(index.value(ip('10.0.1.0') >>> 8)).toBe(DIR24_DEEPER);
    index.remove(a);
    index.takeBlockWrites();
    index.commitReleased();
    const c = { network: ip('10.0.2.0'), prefixLen: 30, ruleId: 3 };
    index.add(c);
    expect(index.value(ip('10.0.2.0') >>> 8)).toBe((DIR24_BLOCK | 0) >>> 0);
  });

  it('does not hand out a block released by a change before that change is written', () => {
    const index = new Dir24Index(1);
    index.add({ network: ip('10.0.0.128'), prefixLen: 25, ruleId: 1 });
    index.remove({ network: ip('10.0.0.128'), prefixLen: 25, ruleId: 1 });
    index.add({ network: ip('10.0.1.128'), prefixLen: 25, ruleId: 2 });
    expect(index.value(ip('10.0.1.0') >>> 8)).toBe(DIR24_DEEPER);
  });

  it('keeps the /0 out of the slots: it is the default', () => {
    const index = new Dir24Index(4);
    expect(index.add({ network: 0, prefixLen: 0, ruleId: 9 })).toEqual([]);
    expect(index.defaultValue()).toBe(9);
    const eight = { network: ip('10.0.0.0'), prefixLen: 8, ruleId: 10 };
    expect(index.add(eight)).toHaveLength(65536);
    expect(index.remove(eight)).toHaveLength(65536); // back to 0: the default applies
    expect(index.value(ip('10.9.9.0') >>> 8)).toBe(0);
    expect(index.remove({ network: 0, prefixLen: 0, ruleId: 9 })).toEqual([]);
    expect(index.defaultValue()).toBe(0);
  });

  it('matches a brute-force oracle address by address over 600 seeded operations, with few blocks', () => {
    const random = prng(777);
    const index = new Dir24Index(3);
    const kernel = new KernelTables();
    const live = new Map<string, Dir24Rule>();
    let nextId = 1;
    // Inside 10.0.0.0/22 (four /24s), lengths 0 and 18..31, so blocks run out and come back.
    for (let op = 0; op < 600; op++) {
      if (live.size > 0 && random() < 0.4) {
        const keys = [...live.keys()];
        const key = keys[Math.floor(random() * keys.length)]!;
        kernel.apply(index, index.remove(live.get(key)!));
        live.delete(key);
      } else {
        const prefixLen = random() < 0.03 ? 0 : 18 + Math.floor(random() * 14);
        const network = ((ip('10.0.0.0') | Math.floor(random() * 1024)) & mask(prefixLen)) >>> 0;
        const key = `${network}/${prefixLen}`;
        if (live.has(key)) continue;
        const rule: Dir24Rule = { network, prefixLen, ruleId: nextId++, allow: random() < 0.2 };
        live.set(key, rule);
        kernel.apply(index, index.add(rule));
      }
      for (let addr = ip('10.0.0.0'); addr < ip('10.0.4.0'); addr += 1 + Math.floor(random() * 8)) {
        const got = kernel.lookup(addr);
        if (got === null) continue; // the trie answers: it holds every /25../31 and is checked elsewhere
        expect(got, `op ${op} addr ${addr}`).toBe(expectedAt(live.values(), addr));
      }
    }
  });
});

describe('SlotSet', () => {
  it('keeps each slot once, below and above the switch to marks', () => {
    const set = new SlotSet();
    for (let round = 0; round < 2; round++) for (let slot = 0; slot < 10_000; slot += 2) set.add(slot);
    set.add(5);
    expect(set.size).toBe(5001);
    expect([...set.slots()].slice(0, 3)).toEqual([0, 2, 4]);
    expect(set.slots()[5000]).toBe(5);
    expect(new Set(set.slots()).size).toBe(5001);
  });

  it('addAll keeps each slot once, in order, below and above the switch, mixed with add', () => {
    const set = new SlotSet();
    set.addAll([7, 3, 7]);
    set.add(3);
    set.addAll(Uint32Array.from({ length: 10_000 }, (_, i) => i * 2)); // crosses the switch; 0..19998 even
    set.addAll([3, 19_998, 20_001]);
    expect(set.size).toBe(2 + 10_000 + 1); // 7 and 3, the 10,000 evens, 20001
    expect([...set.slots()].slice(0, 4)).toEqual([7, 3, 0, 2]);
    expect(set.slots()[set.size - 1]).toBe(20_001);
    expect(new Set(set.slots()).size).toBe(set.size);
  });
});

describe('SlotSet.release', () => {
  it('hands its list and bitmap to the next large set, which starts empty', () => {
    const slots = Uint32Array.from({ length: 20_000 }, (_, i) => (i * 7919) % 2 ** 24);
    const first = new SlotSet();
    first.addAll(slots);
    expect(first.size).toBe(20_000);
    first.release();
    expect(first.size).toBe(0);
    const second = new SlotSet();
    second.addAll(slots); // with a bitmap left dirty, every slot would count as seen
    second.addAll(slots);
    expect(second.size).toBe(20_000);
    expect(new Set(second.slots()).size).toBe(20_000);
    first.add(3); // a released set is an empty one
    expect([...first.slots()]).toEqual([3]);
  });
});

describe('a change in steps', () => {
  it('adds and removes a /1 in 128 steps of 65,536 slots, each step already applied when it is handed out', () => {
    const index = new Dir24Index();
    const inner = { network: ip('10.0.0.0'), prefixLen: 8, ruleId: 7 };
    index.add(inner);
    const half = { network: 0, prefixLen: 1, ruleId: 9 };
    const steps: number[] = [];
    let changed = 0;
    for (const slots of index.addSteps(half)) {
      steps.push(steps.length);
      changed += slots.length;
      expect(slots.length).toBeLessThanOrEqual(DIR24_STEP_SLOTS);
      // The step's first slot (when it changed) holds the /1 already; later steps' slots do not yet.
      if (slots.length > 0) expect(index.value(slots[0]!)).toBe(9);
      const next = (steps.length * DIR24_STEP_SLOTS) % 2 ** 23;
      if (next !== 0 && next !== ip('10.0.0.0') >>> 8) expect(index.value(next)).toBe(0);
    }
    expect(steps).toHaveLength(2 ** 23 / DIR24_STEP_SLOTS);
    expect(changed).toBe(2 ** 23 - 2 ** 16); // the /8's slots stay its own
    expect(index.value(ip('10.1.2.0') >>> 8)).toBe(7);
    expect(index.value(ip('127.255.255.0') >>> 8)).toBe(9);
    expect(index.value(ip('128.0.0.0') >>> 8)).toBe(0);
    let removed = 0;
    let removeSteps = 0;
    for (const slots of index.removeSteps(half)) {
      removed += slots.length;
      removeSteps++;
    }
    expect([removeSteps, removed]).toEqual([128, 2 ** 23 - 2 ** 16]);
    expect(index.value(ip('1.0.0.0') >>> 8)).toBe(0);
    expect(index.value(ip('10.255.0.0') >>> 8)).toBe(7);
  });

  it('add() is the joined steps: the same slots as stepping through', () => {
    const a = new Dir24Index();
    const b = new Dir24Index();
    const rule = { network: ip('64.0.0.0'), prefixLen: 6, ruleId: 3 };
    const bytes = (slots: Slots) => Buffer.from(Uint32Array.from(slots).buffer);
    const joined = bytes(a.add(rule));
    const parts: Buffer[] = [];
    for (const slots of b.addSteps(rule)) parts.push(bytes(slots)); // each step's slots are a view until the next
    const stepped = Buffer.concat(parts);
    expect(joined.length).toBe(2 ** 18 * 4);
    expect(joined.equals(stepped)).toBe(true);
  });
});

describe('SlotSet.ascendingPairs', () => {
  /** The distinct pairs of `slots`, ascending, by brute force. */
  const pairsOf = (slots: Iterable<number>) => [...new Set([...slots].map((s) => s >>> 1))].sort((x, y) => x - y);

  it.each([
    ['below the switch to marks', 500],
    ['above it', 20_000],
  ])('gives each pair once, ascending, in chunks of at most the given size (%s)', (_, n) => {
    const random = prng(n);
    const slots = Array.from({ length: n }, () => Math.floor(random() * 2 ** 24));
    slots.push(0, 1, 2 ** 24 - 1, 2 ** 24 - 2);
    const set = new SlotSet();
    set.addAll(slots);
    const chunks: number[][] = [];
    for (const chunk of set.ascendingPairs(1000)) chunks.push([...chunk]); // each a view until the next
    expect(chunks.every((c) => c.length > 0 && c.length <= 1000)).toBe(true);
    expect(chunks.flat()).toEqual(pairsOf(slots));
  });

  it('walks an ascending list as it is: two slots of a pair split across chunks still give the pair once', () => {
    const set = new SlotSet();
    const slots = Array.from({ length: 10_001 }, (_, i) => 5 + i); // ascending, above the switch to marks
    set.addAll(slots);
    const chunks: number[][] = [];
    for (const chunk of set.ascendingPairs(7)) chunks.push([...chunk]);
    expect(chunks.flat()).toEqual(pairsOf(slots));
    expect(chunks.slice(0, -1).every((c) => c.length === 7)).toBe(true);
  });

  it('a /1 comes out as 64 chunks of 65,536 pairs', () => {
    const set = new SlotSet();
    const step = new Uint32Array(DIR24_STEP_SLOTS);
    for (let from = 0; from < 2 ** 23; from += DIR24_STEP_SLOTS) {
      for (let i = 0; i < step.length; i++) step[i] = from + i;
      set.addAll(step);
    }
    const chunks: Array<[number, number, number]> = [];
    for (const chunk of set.ascendingPairs()) chunks.push([chunk.length, chunk[0]!, chunk.at(-1)!]);
    expect(chunks.map(([length]) => length)).toEqual(new Array(64).fill(65_536));
    expect([chunks[0]![1], chunks[63]![2]]).toEqual([0, 2 ** 22 - 1]);
    expect(chunks.every(([, firstPair], i) => firstPair === i * 65_536)).toBe(true);
  });
});

describe('Dir24Index.changeInto', () => {
  it('applies one-step changes (/8 and longer, /25../31) exactly as addSteps/removeSteps do, and refuses longer ones', () => {
    const random = prng(90210);
    const stepped = new Dir24Index(8);
    const direct = new Dir24Index(8);
    const live: Dir24Rule[] = [];
    let nextId = 1;
    for (let op = 0; op < 500; op++) {
      const removing = live.length > 0 && random() < 0.35;
      const rule = removing
        ? live.splice(Math.floor(random() * live.length), 1)[0]!
        : (() => {
            const prefixLen = 8 + Math.floor(random() * 24); // 8..31
            const network = ((ip('10.0.0.0') | Math.floor(random() * 2 ** 22)) & mask(prefixLen)) >>> 0;
            return { network, prefixLen, ruleId: nextId++ };
          })();
      if (!removing) {
        if (live.some((r) => r.network === rule.network && r.prefixLen === rule.prefixLen)) continue;
        live.push(rule);
      }
      const want = new SlotSet();
      for (const slots of removing ? stepped.removeSteps(rule) : stepped.addSteps(rule)) want.addAll(slots);
      const got = new SlotSet();
      expect(direct.changeInto(rule, removing ? 'remove' : 'add', got)).toBe(true);
      expect([...got.slots()].sort((x, y) => x - y)).toEqual([...want.slots()].sort((x, y) => x - y));
      expect(direct.takeBlockWrites()).toEqual(stepped.takeBlockWrites());
      direct.commitReleased();
      stepped.commitReleased();
    }
    for (let slot = ip('10.0.0.0') >>> 8; slot < (ip('10.64.0.0') >>> 8); slot++) {
      if (direct.value(slot) !== stepped.value(slot)) expect([slot, direct.value(slot)]).toEqual([slot, stepped.value(slot)]);
    }
    expect(direct.changeInto({ network: 0, prefixLen: 7, ruleId: 1 }, 'add', new SlotSet())).toBe(false);
    expect(direct.changeInto({ network: 0, prefixLen: 0, ruleId: 1 }, 'add', new SlotSet())).toBe(false);
  });
});

describe('IntMap', () => {
  it('matches a Map through seeded sets and deletes, across growths and the moves after them', () => {
    const random = prng(777);
    const map = new IntMap();
    const oracle = new Map<number, number>();
    for (let op = 0; op < 200_000; op++) {
      const key = Math.floor(random() * 50_000) * 331; // collisions and clusters
      if (random() < 0.3) {
        map.delete(key);
        oracle.delete(key);
      } else {
        map.set(key, op);
        oracle.set(key, op);
      }
      if (op % 997 === 0) expect(map.size).toBe(oracle.size);
    }
    expect(map.size).toBe(oracle.size);
    for (const [key, value] of oracle) if (map.get(key) !== value) expect([key, map.get(key)]).toEqual([key, value]);
    for (let k = 1; k < 50_000; k += 7) if (!oracle.has(k * 331 + 1)) expect(map.get(k * 331 + 1)).toBeUndefined();
  });
});

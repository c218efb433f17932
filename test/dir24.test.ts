// The DIR-24 index against a brute-force longest-prefix oracle: seeded
// random prefixes, nested on purpose, added and removed in random order.
import { describe, expect, it } from 'vitest';
import { prng } from './lib/prng.js';
import { DIR24_ALLOW, DIR24_DEEPER, Dir24Index, SlotSet, type Dir24Rule } from '../src/datapath/dir24.js';

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
    expect(index.add(c)).toEqual([slot]);
    expect(index.value(slot)).toBe(3 | DIR24_ALLOW);
    expect(index.add(d)).toEqual([slot]);
    expect(index.value(slot)).toBe((3 | DIR24_ALLOW | DIR24_DEEPER) >>> 0);
    expect(index.remove(c)).toEqual([slot]); // falls back to b, keeps the flag
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
    expect(() => index.add({ network: 0, prefixLen: 8, ruleId: 2 ** 30 })).toThrow(RangeError);
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
});

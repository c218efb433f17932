// TopK against a full sort on seeded random streams, and its edges.
import { expect, it } from 'vitest';
import { TopK } from '../src/top-k.js';

/** Deterministic stream (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Item { value: number; index: number }
const better = (a: Item, b: Item): boolean => a.value > b.value || (a.value === b.value && a.index < b.index);

it.each([
  [1, 0, 1000], [2, 5, 1000], [3, 100, 1000], [4, 1000, 10], [5, 2000, 2000], [6, 0, 50],
])('seed %i: the %i best of %i items, best first, equal to a full sort', (seed, k, n) => {
  const next = random(seed);
  const items = Array.from({ length: n }, (_, index) => ({ value: Math.floor(next() * 50), index }));
  const top = new TopK<Item>(k, better);
  for (const item of items) top.offer(item);
  const expected = [...items].sort((a, b) => b.value - a.value || a.index - b.index).slice(0, k);
  expect(top.ranked()).toEqual(expected);
  expect(top.size).toBe(expected.length);
});

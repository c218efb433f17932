// api/sliced-json.ts: a large list answer is made and joined a step at a
// time, the event loop given back between steps when the slicer says so.
import { describe, expect, it } from 'vitest';
import { itemsJson } from '../api/sliced-json.js';
import type { Slicer } from '../src/event-loop.js';

/** Always due; counts the turns given back. */
class CountingSlicer implements Slicer {
  turns = 0;
  readonly due = true;
  async next(): Promise<void> {
    this.turns++;
  }
}

describe('itemsJson', () => {
  it('is the JSON of the items and fields, byte for byte, with a turn between steps of serializing and of joining', async () => {
    const items = Array.from({ length: 1300 }, (_, i) => ({ id: i, note: i % 5 === 0 ? `é ${i}` : null }));
    const slicer = new CountingSlicer();
    const json = await itemsJson(items, { asOf: '2026-12-03T10:00:00.000Z' }, slicer, 512);
    expect(json.toString('utf8')).toBe(JSON.stringify({ items, asOf: '2026-12-03T10:00:00.000Z' }));
    // Steps of 512: 3 to serialize (2 turns); 5 parts to join (head, 3 steps, tail: 4 turns).
    expect(slicer.turns).toBe(6);
  });

  it('an empty list', async () => {
    const json = await itemsJson([], {}, new CountingSlicer());
    expect(JSON.parse(json.toString('utf8'))).toEqual({ items: [] });
  });
});

// BlockBatch.columns() copies the batch into shared columns in steps across
// segments (src/rules/block-batch.ts): every row must come out as it went in.
import { describe, expect, it } from 'vitest';
import { BlockBatch } from '../src/rules/block-batch.js';
import { parseCidr } from '../src/rules/cidr.js';

describe('BlockBatch.columns', () => {
  it('holds every row of several segments, the last one partial, texts of varying length', async () => {
    const batch = new BlockBatch();
    const rows = 2 * 65536 + 12345;
    const texts: string[] = [];
    for (let i = 0; i < rows; i++) {
      const text = i % 7 === 0 ? `fd00:198::${(i % 65536).toString(16)}/128` : `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}/32`;
      const cidr = parseCidr(text);
      texts.push(cidr.text);
      batch.push({ cidr, direction: i % 3 === 0 ? 'dst' : 'src', comment: i % 1000 === 0 ? `row ${i}` : null });
    }
    const columns = await batch.columns();
    const decoder = new TextDecoder('latin1');
    expect(columns.textEnds).toHaveLength(rows);
    for (let i = 0; i < rows; i++) {
      const start = i === 0 ? 0 : columns.textEnds[i - 1]!;
      expect(decoder.decode(columns.texts.subarray(start, columns.textEnds[i]!))).toBe(texts[i]);
      const cidr = batch.cidr(i);
      expect(columns.families[i]).toBe(cidr.family);
      expect(columns.prefixLens[i]).toBe(cidr.prefixLen);
      expect(columns.dsts[i]).toBe(i % 3 === 0 ? 1 : 0);
      expect(Buffer.from(columns.networks.subarray(i * 16, i * 16 + cidr.bytes.length)).equals(Buffer.from(cidr.bytes))).toBe(true);
    }
    expect(columns.comments).toHaveLength(Math.ceil(rows / 1000));
    expect(columns.comments[3]).toEqual([3000, 'row 3000']);
  });
});

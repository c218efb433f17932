// The compiler with rules that reference lists: every entry goes into the
// address trie, prefixes with the same rules share one bitmap (a 100k-entry
// list costs one bitmap, not 100k), and a hook's distinct prefixes are
// capped at POL_MAX_ADDRS. Pure: no kernel.
import { describe, expect, it } from 'vitest';
import { compileTable } from '../src/policy/compile.js';
import { POL_MAX_ADDRS, POL_WILDCARD, PolField } from '../src/datapath/abi.js';
import type { Prefix, PrefixList } from '../src/policy/reference.js';
import { classRule, prefix } from './lib/policy.js';

const host = (i: number): Prefix => ({ family: 4, bytes: Uint8Array.from([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]), prefixLen: 32 });
const listOf = (prefixes: Prefix[]): PrefixList => ({ name: 'l', version: '1', prefixes });

describe('compileTable with lists', () => {
  it('a 100,000-entry list referenced by one rule: 100,000 trie entries, one bitmap', () => {
    const list = listOf(Array.from({ length: 100_000 }, (_, i) => host(i)));
    const c = compileTable([classRule({ kernelId: 1, proto: 17, srcList: list }), classRule({ kernelId: 2, proto: 6 })]);
    expect(c.addrs.length).toBe(100_000);
    const src = c.bitmaps.filter((b) => b.field === PolField.src);
    expect(src.map((b) => b.value).sort()).toEqual([1, POL_WILDCARD]);
    expect(new Set(c.addrs.map((a) => a.value))).toEqual(new Set([1]));
    const one = src.find((b) => b.value === 1)!.bits;
    expect(one[0]).toBe(0b11); // the list's rule and the rule without src
  });

  it('an entry inside another rule\'s prefix gets both rules; entries outside share the list\'s bitmap', () => {
    const list = listOf([prefix('198.18.1.0/24'), prefix('198.18.9.0/24'), prefix('198.19.0.0/16')]);
    const c = compileTable([classRule({ kernelId: 1, srcList: list }), classRule({ kernelId: 2, src: prefix('198.18.0.0/16') })]);
    const bitsOf = (text: string) => {
      const addr = c.addrs.find((a) => a.prefix.prefixLen === prefix(text).prefixLen && Buffer.from(a.prefix.bytes).equals(Buffer.from(prefix(text).bytes)))!;
      return c.bitmaps.find((b) => b.field === PolField.src && b.value === addr.value)!.bits[0];
    };
    expect(bitsOf('198.18.1.0/24')).toBe(0b11);
    expect(bitsOf('198.18.9.0/24')).toBe(0b11);
    expect(bitsOf('198.19.0.0/16')).toBe(0b01);
    expect(bitsOf('198.18.0.0/16')).toBe(0b10);
    expect(c.bitmaps.filter((b) => b.field === PolField.src && b.value !== POL_WILDCARD).length).toBe(3);
  });

  it(`refuses more than ${POL_MAX_ADDRS} distinct prefixes in one hook with CAPACITY_EXCEEDED; a list used twice counts once`, () => {
    const half = listOf(Array.from({ length: POL_MAX_ADDRS / 2 }, (_, i) => host(i)));
    const other = listOf(Array.from({ length: POL_MAX_ADDRS / 2 }, (_, i) => host(POL_MAX_ADDRS + i)));
    expect(compileTable([classRule({ kernelId: 1, srcList: half }), classRule({ kernelId: 2, dstList: other }), classRule({ kernelId: 3, srcList: half })]).addrs.length).toBe(POL_MAX_ADDRS);
    expect(() => compileTable([classRule({ kernelId: 1, srcList: half }), classRule({ kernelId: 2, dstList: other }), classRule({ kernelId: 3, dst: prefix('192.0.2.1') })]))
      .toThrow(expect.objectContaining({ code: 'CAPACITY_EXCEEDED' }));
  });
});

// Lists as sorted keys (src/lists/keys.ts): the fast IPv4 reader agrees with
// parseCidr, keys survive the store (and rows written as text still read),
// and a replace's diff goes to the kernel in chunks, every write before any
// removal, with the winner rules (block, deny, allow, older list) as before.
// Pure user space: a recording kernel, SQLite in memory.
import { describe, expect, it } from 'vitest';
import { LIST_RULE_ID_BASE } from '../src/datapath/abi.js';
import type { KernelDiff } from '../src/datapath/cidr-maps.js';
import { parseCidr } from '../src/rules/cidr.js';
import { RuleStore } from '../src/rules/store.js';
import { canonicalV4Key, decodeKeys, encodeKeys, keyOfCidr, keyTexts } from '../src/lists/keys.js';
import { EntrySet, parseEntryArray, parseEntryArraySliced, parseListText, parseListTextSliced } from '../src/lists/parse.js';
import { countingSlicer } from './lib/counting-slicer.js';
import { ListService, type ListKernel } from '../src/lists/service.js';
import { ListStore } from '../src/lists/store.js';

/** A seeded xorshift32, so the forms tried are the same every run. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

describe('list keys', () => {
  it('reads canonical IPv4 exactly as parseCidr does and leaves every other form to it', () => {
    const next = prng(20261203);
    const forms = [
      '0.0.0.0/8', '1.2.3.4', '1.2.3.4/32', '255.255.255.255', '10.0.0.0/8', '01.2.3.4', '1.2.3.04/32', '1.2.3.4/032', '1.2.3.4/05',
      '256.1.1.1', '1.2.3', '1.2.3.4.5', '1.2.3.4/', '1.2.3.4/33', '1.2.3.4/0', '0.0.0.0/0', '1.2.3.5/31', ' 1.2.3.4', '1.2.3.4 ',
      '::ffff:1.2.3.0/120', '1..2.3', '1.2.3.4/3a', '',
    ];
    for (let i = 0; i < 2000; i++) {
      const a = next();
      const len = next() % 34;
      const address = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
      forms.push(next() % 4 === 0 ? address : `${address}/${len}`);
      const network = len === 0 ? 0 : (a & (0xffff_ffff << (32 - Math.min(len, 32)))) >>> 0;
      forms.push(`${network >>> 24}.${(network >>> 16) & 255}.${(network >>> 8) & 255}.${network & 255}/${len}`);
    }
    let fast = 0;
    for (const form of forms) {
      const key = canonicalV4Key(form);
      if (key < 0) continue;
      fast++;
      const cidr = parseCidr(form);
      expect([form, keyOfCidr(cidr)]).toEqual([form, key]);
      expect(cidr.prefixLen).toBeGreaterThan(0);
    }
    expect(fast).toBeGreaterThan(1000);
    // The forms it leaves are the general parser's, including its errors.
    expect(canonicalV4Key('01.2.3.4')).toBe(-1);
    expect(canonicalV4Key('1.2.3.5/31')).toBe(-1);
    expect(canonicalV4Key('1.2.3.4/0')).toBe(-1);
  });

  it('sorts and deduplicates entries: IPv4 by address then length, then IPv6; texts in that order', () => {
    const parsed = parseListText('198.18.0.2\n# c\n198.18.0.0/24 ; x\n2001:db8::/32\n198.18.0.2/32\n\u00a0198.18.9.9 # nbsp\n10.0.0.0/8\n');
    expect(parsed.texts).toEqual(['10.0.0.0/8', '198.18.0.0/24', '198.18.0.2/32', '198.18.9.9/32', '2001:db8::/32']);
    expect(parsed.count).toBe(5);
    expect(keyTexts(parsed.keys, 1, 3)).toEqual(['198.18.0.0/24', '198.18.0.2/32']);
    expect(parseEntryArray([' 198.18.0.1 ', '::ffff:198.18.0.0/120']).texts).toEqual(['198.18.0.0/24', '198.18.0.1/32']);
    expect(() => parseListText('198.18.0.0/24\n198.18.0.1/24\n')).toThrow(/line 2: .*host bits/);
  });

  it('parses and sorts a large body in slices of the event loop, to the same keys', async () => {
    // Descending, so every sorted run and merge has work to do; 100,000 entries span four runs of 32,768.
    const text = hosts(100_000).split('\n').reverse().join('\n');
    const counting = countingSlicer();
    try {
      const sliced = await parseListTextSliced(text, counting.slicer());
      const whole = parseListText(text);
      expect([...sliced.keys.v4]).toEqual([...whole.keys.v4]);
      expect(sliced.count).toBe(100_000);
      // A look after each 2,048 lines but the last (48), each of 4 runs sorted, each of 3 merges (2 of width 32,768, 1 of 65,536).
      expect(counting.ticksAtTurns.length).toBe(48 + 4 + 3);
      const array = await parseEntryArraySliced(text.split('\n'), counting.slicer());
      expect([...array.keys.v4]).toEqual([...whole.keys.v4]);
    } finally {
      counting.stop();
    }
  });

  it('round-trips through the stored value, and a row stored as text still reads', async () => {
    const keys = parseListText('198.18.0.0/15\n198.18.5.5\nfd00:198::/48\nfd00:198::1\n').keys;
    const decoded = decodeKeys(encodeKeys(keys));
    expect([...decoded.v4]).toEqual([...keys.v4]);
    expect(decoded.v6).toEqual(keys.v6);
    expect(decodeKeys(encodeKeys(new EntrySet().finish().keys))).toEqual({ v4: new Float64Array(0), v6: [] });

    const rules = new RuleStore(':memory:');
    const store = new ListStore(rules);
    rules.sqlite.prepare(
      `INSERT INTO lists (name, action, direction, comment, revision, updated_at, origin, entries)
       VALUES ('old', 'deny', 'src', NULL, 3, '2026-01-01T00:00:00.000Z', 'api', '198.18.5.5/32\n198.18.0.0/15\nfd00:198::/48')`,
    ).run();
    await store.save({ name: 'new', action: 'allow', direction: 'dst', comment: null, revision: 1, updatedAt: '2026-01-02T00:00:00.000Z', origin: 'api', keys });
    const [old, saved] = store.all();
    expect(old!.texts).toEqual(['198.18.0.0/15', '198.18.5.5/32', 'fd00:198::/48']);
    expect(saved!.texts).toEqual(['198.18.0.0/15', '198.18.5.5/32', 'fd00:198::/48', 'fd00:198::1/128']);
    rules.close();
  });
});

/** Records what the service asks of the kernel. */
class RecordingKernel implements ListKernel {
  readonly calls: KernelDiff[] = [];
  /** Per call, whether it held the host filter's writes. */
  readonly held: boolean[] = [];
  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    return work();
  }
  async applyDiff(diff: KernelDiff, options: { holdFilter?: boolean } = {}): Promise<void> {
    this.calls.push(diff);
    this.held.push(options.holdFilter ?? false);
  }
  async resync(): Promise<void> {}
  hits() {
    return { packets: 0n, bytes: 0n };
  }
}

/** `count` /32s from 198.18.0.0 up, every `step`-th address. */
function hosts(count: number, step = 1, from = 0): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const a = (0xc612_0000 + from + i * step) >>> 0;
    lines.push(`${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`);
  }
  return lines.join('\n');
}

describe('list diffs', () => {
  it('sends a big replace in chunks, every install and replacement before any removal, and skips unchanged keys', async () => {
    const rules = new RuleStore(':memory:');
    const kernel = new RecordingKernel();
    const counting = countingSlicer();
    const lists = new ListService(new ListStore(rules), kernel, { slicer: counting.slicer });
    await lists.put('big', { entries: parseListText(hosts(100_000)) });
    expect(kernel.calls.map((c) => c.install.length)).toEqual([...Array<number>(6).fill(16_384), 100_000 - 6 * 16_384]);
    // The host filter is written once, by the last chunk.
    expect(kernel.held).toEqual([...Array<boolean>(6).fill(true), false]);
    kernel.calls.length = 0;
    kernel.held.length = 0;
    // Half the entries stay, half are new, half go: the same ones stay untouched.
    await lists.put('big', { entries: parseListText(hosts(100_000, 1, 50_000)) });
    const sizes = kernel.calls.map((c) => [c.install.length, c.replace.length, c.remove.length]);
    expect(sizes).toEqual([
      ...Array(3).fill([16_384, 0, 0]), [50_000 - 3 * 16_384, 0, 0],
      ...Array(3).fill([0, 0, 16_384]), [0, 0, 50_000 - 3 * 16_384],
    ]);
    // Once per pass: after the installs, after the removals.
    expect(kernel.held).toEqual([true, true, true, false, true, true, true, false]);
    const first = kernel.calls[0]!.install[0]!;
    expect([first.cidr, first.id, first.family, first.prefixLen, [...first.network], first.allow]).toEqual(
      [hostText(100_000), LIST_RULE_ID_BASE + 1, 4, 32, hostBytes(100_000), false],
    );
    kernel.calls.length = 0;
    await lists.put('big', { entries: parseListText(hosts(100_000, 1, 50_000)) });
    expect(kernel.calls).toEqual([]);
    // The diff looked at its slicer every 4,096 keys: 100k, then 150k (the union), then 100k keys.
    expect(counting.ticksAtTurns.length).toBe(Math.floor(100_000 / 4096) + Math.floor(150_000 / 4096) + Math.floor(100_000 / 4096));
    expect(counting.ticksAtTurns.every((ticks, i) => i === 0 || ticks > counting.ticksAtTurns[i - 1]!)).toBe(true);
    counting.stop();
    rules.close();
  });

  it('reports how far a change has got while its chunks go to the kernel, and nothing once it is done', async () => {
    const rules = new RuleStore(':memory:');
    const seen: unknown[] = [];
    let lists: ListService | undefined;
    const kernel = new (class extends RecordingKernel {
      override async applyDiff(diff: KernelDiff): Promise<void> {
        seen.push(lists!.progress('big'));
        await super.applyDiff(diff);
      }
    })();
    lists = new ListService(new ListStore(rules), kernel);
    await lists.put('big', { entries: parseListText(hosts(40_000)) });
    expect(seen).toEqual([0, 16_384, 32_768].map((done) => ({ phase: 'kernel', done, total: 40_000 })));
    seen.length = 0;
    // 20k stay, 20k new, 20k go: 40k changes, installs first.
    await lists.put('big', { entries: parseListText(hosts(40_000, 1, 20_000)) });
    expect(seen).toEqual([0, 16_384, 20_000, 36_384].map((done) => ({ phase: 'kernel', done, total: 40_000 })));
    expect(lists.progress('big')).toBeUndefined();
    seen.length = 0;
    await lists.delete('big');
    expect(seen).toEqual([0, 16_384, 32_768].map((done) => ({ phase: 'kernel', done, total: 40_000 })));
    expect(lists.progress('big')).toBeUndefined();
    rules.close();
  });

  it('gives each key to a block, else a deny list, else the older list; a change moves only the keys whose winner changes', async () => {
    const rules = new RuleStore(':memory:');
    const kernel = new RecordingKernel();
    const store = new ListStore(rules);
    const lists = new ListService(store, kernel);
    rules.sqlite.prepare(`INSERT INTO blocks (cidr, family, prefix_len, network, direction, comment, created_at) VALUES ('198.18.0.4/32', 4, 32, x'c6120004', 'src', NULL, '')`).run();
    await lists.put('open', { entries: parseEntryArray(['198.18.0.1', '198.18.0.2', '198.18.0.4']), action: 'allow' });
    await lists.put('older-open', { entries: parseEntryArray(['198.18.0.3']), action: 'allow' });
    kernel.calls.length = 0;
    await lists.put('shut', { entries: parseEntryArray(['198.18.0.2', '198.18.0.3', '198.18.0.4', '198.18.0.5']), action: 'deny' });
    const summary = (diff: KernelDiff) => ({
      install: diff.install.map((r) => `${r.cidr} ${r.id - LIST_RULE_ID_BASE}${r.allow ? ' allow' : ''}`),
      replace: diff.replace.map((r) => `${r.from.cidr} ${r.from.id - LIST_RULE_ID_BASE}->${r.to.id - LIST_RULE_ID_BASE}`),
      remove: diff.remove.map((r) => `${r.cidr} ${r.id - LIST_RULE_ID_BASE}`),
    });
    // .2 and .3 change from allow to deny, .5 is new, .4 is the block's.
    expect(kernel.calls.map(summary)).toEqual([{ install: ['198.18.0.5/32 3'], replace: ['198.18.0.2/32 1->3', '198.18.0.3/32 2->3'], remove: [] }]);
    expect(lists.claim('src', '198.18.0.4/32')).toMatchObject({ id: LIST_RULE_ID_BASE + 3, cidr: '198.18.0.4/32' });
    expect(lists.claim('src', '198.18.0.1/32')).toMatchObject({ id: LIST_RULE_ID_BASE + 1, allow: true });
    expect(lists.claim('dst', '198.18.0.1/32')).toBeUndefined();
    kernel.calls.length = 0;
    await lists.delete('shut');
    expect(kernel.calls.map(summary)).toEqual([
      { install: [], replace: ['198.18.0.2/32 3->1', '198.18.0.3/32 3->2'], remove: [] },
      { install: [], replace: [], remove: ['198.18.0.5/32 3'] },
    ]);
    rules.close();
  });
});

const hostText = (i: number): string => {
  const a = (0xc612_0000 + i) >>> 0;
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/32`;
};
const hostBytes = (i: number): number[] => {
  const a = (0xc612_0000 + i) >>> 0;
  return [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255];
};

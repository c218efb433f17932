// A large chunked bulk import is stored on the worker while its body is
// still being read (BlockService.addMany with staging). Nothing is committed
// or enforced before every item passed; a late failure leaves no row and no
// entry; a stalled body or an item with extras gives the lock back and the
// import continues unstaged. Real file store, real maps. Staging is off by
// default (BlockMetaService.stageBulkImports); these tests turn it on.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Firewall } from '../src/firewall.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { STAGE_WAIT_MS, WORKER_BATCH } from '../src/rules/blocks.js';
import { RuleStore } from '../src/rules/store.js';
import { quietLog } from './lib/firewall.js';

type Item = { cidr: string; direction?: 'src' | 'dst'; ttl?: number; origin?: string };
const hosts = (from: number, count: number, prefix: string): Item[] =>
  Array.from({ length: count }, (_, k) => {
    const n = from + k;
    return { cidr: `${prefix}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/32` };
  });

/** The items in chunks of `size`, as a body is read; `pause(i)` may wait before chunk i. */
async function* chunks(items: Item[], size: number, pause?: (i: number) => Promise<void>): AsyncGenerator<Item[]> {
  for (let at = 0, i = 0; at < items.length; at += size, i++) {
    await pause?.(i);
    yield items.slice(at, at + size);
  }
}

describe('bulk import stored while its body is read', () => {
  const state = mkdtempSync(join(tmpdir(), 'xdpwall-bulk-staged-'));
  let firewall: Firewall;
  const size = 2 * WORKER_BATCH + 500;
  const hostEntries = async () => (await firewall.datapath.maps.srcHostV4.lookupAll()).count;
  beforeAll(async () => {
    ({ firewall } = await Firewall.open(
      { objectPath: BPF_OBJECT_PATH, stageBulkImports: true, storePath: join(state, 'rules.sqlite'), pin: null, capacity: { cidrV4: 4 * size, cidrV6: 100, flows: 1024 }, countersCacheMs: 1 },
      quietLog,
    ));
  });
  /** Which way the store was written: staged (while the body is read) or whole (once it is). */
  const staged = vi.spyOn(RuleStore.prototype, 'beginBulkInsert');
  const whole = vi.spyOn(RuleStore.prototype, 'insertBatch');
  afterEach(() => {
    staged.mockClear();
    whole.mockClear();
  });
  afterAll(() => {
    vi.restoreAllMocks();
    firewall?.close();
    rmSync(state, { recursive: true, force: true });
  });

  it('an invalid last item: 400 naming it, no row stored, no entry, and the write lock is free again', async () => {
    const items = [...hosts(0, size, '10'), { cidr: '10.300.0.0/16' }];
    await expect(firewall.addBlocks(chunks(items, 2000))).rejects.toMatchObject({ code: 'INVALID_CIDR', message: expect.stringContaining(`items[${size}]`) });
    expect(staged).toHaveBeenCalledTimes(1);
    expect(firewall.blocks.list({ limit: 1 }).total).toBe(0);
    expect(await hostEntries()).toBe(0);
    expect(await firewall.addBlock({ cidr: '192.0.2.1/32' })).toMatchObject({ created: true });
  });

  it('stores and enforces every item once the body ends; repeats count as existing', async () => {
    const items = [...hosts(0, size, '11'), { cidr: '11.0.0.3/32' }];
    const outcome = firewall.addBlocks(chunks(items, 2000));
    expect(await outcome).toEqual({ created: size, existing: 1 });
    expect([staged.mock.calls.length, whole.mock.calls.length]).toEqual([1, 0]);
    expect(await hostEntries()).toBe(size + 1);
    expect(firewall.blocks.list({ contains: '11.0.0.3' }).items).toEqual([expect.objectContaining({ cidr: '11.0.0.3/32', direction: 'src' })]);
    // The ids the worker gave are the ones listed and the ones in the kernel's rule counters' keys.
    const ids = firewall.blocks.all().map((rule) => rule.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('a body that stalls gives the lock back: a single block goes through meanwhile, and the import still completes', async () => {
    let single: Promise<unknown> | undefined;
    const items = hosts(0, size, '12');
    const pause = async (i: number) => {
      if (i !== 12) return; // past WORKER_BATCH items: staged by now
      single = firewall.addBlock({ cidr: '192.0.2.2/32' });
      await new Promise((resolve) => setTimeout(resolve, 3 * STAGE_WAIT_MS));
      // The single block was stored while the body stalled.
      expect(firewall.blocks.list({ contains: '192.0.2.2' }).total).toBe(1);
    };
    expect(await firewall.addBlocks(chunks(items, 2000, pause))).toEqual({ created: size, existing: 0 });
    expect([staged.mock.calls.length, whole.mock.calls.length]).toEqual([1, 1]);
    await expect(single).resolves.toMatchObject({ created: true });
    expect(firewall.blocks.list({ contains: '12.0.0.9' }).total).toBe(1);
  });

  it('an item with a ttl after staging began: the import continues unstaged and stores the ttl', async () => {
    const items = [...hosts(0, size, '13'), { cidr: '13.255.0.1/32', ttl: 3600 }];
    expect(await firewall.addBlocks(chunks(items, 2000))).toEqual({ created: size + 1, existing: 0 });
    expect([staged.mock.calls.length, whole.mock.calls.length]).toEqual([1, 1]);
    expect(firewall.blockMeta.meta({ cidr: '13.255.0.1/32', direction: 'src' }).expiresAt).not.toBeNull();
    expect(firewall.blocks.list({ contains: '13.0.1.1' }).total).toBe(1);
  });
});

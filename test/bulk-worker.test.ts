// Large bulk imports are stored on a worker thread (bulk-writer.ts): the
// same outcome as the in-loop path, on a real file store and real maps.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Firewall } from '../src/firewall.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { BpfError, type BpfMap } from '@xdpwall/addon';
import { BlockService, WORKER_BATCH } from '../src/rules/blocks.js';
import { CidrMaps } from '../src/datapath/cidr-maps.js';
import { RuleStore } from '../src/rules/store.js';
import { quietLog } from './lib/firewall.js';

const XDP_DROP = 1;
const hosts = (from: number, count: number, prefix = '10'): Array<{ cidr: string }> =>
  Array.from({ length: count }, (_, k) => {
    const n = from + k;
    return { cidr: `${prefix}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/32` };
  });

describe('bulk import on the worker thread', () => {
  const state = mkdtempSync(join(tmpdir(), 'xdpwall-bulk-worker-'));
  const storePath = join(state, 'rules.sqlite');
  let firewall: Firewall;
  const size = WORKER_BATCH + 1000;
  beforeAll(async () => {
    ({ firewall } = await Firewall.open(
      { objectPath: BPF_OBJECT_PATH, storePath, pin: null, capacity: { cidrV4: 2 * size + 10, cidrV6: 100, flows: 1024 }, countersCacheMs: 1 },
      quietLog,
    ));
  });
  afterAll(() => {
    firewall?.close();
    rmSync(state, { recursive: true, force: true });
  });

  it('stores and enforces every rule, and counts repeats as existing', async () => {
    const items = [...hosts(0, size), { cidr: '10.0.0.1/32' }, { cidr: 'fd00:198::7/128', direction: 'dst' as const, comment: 'six' }];
    expect(await firewall.blocks.addMany(items)).toEqual({ created: size + 1, existing: 1 });
    const { items: first, total } = firewall.blocks.list({ limit: 2 });
    expect(total).toBe(size + 1);
    expect(first.map((r) => r.cidr)).toEqual(['10.0.0.0/32', '10.0.0.1/32']);
    const six = firewall.blocks.list({ contains: 'fd00:198::7' }).items;
    expect(six).toEqual([expect.objectContaining({ cidr: 'fd00:198::7/128', direction: 'dst', comment: 'six' })]);
    expect((await firewall.datapath.maps.srcHostV4.lookupAll()).count).toBe(size);
    // The ids are the store's and the kernel's alike.
    const store = new RuleStore(storePath);
    const columns = await store.readColumns();
    store.close();
    expect(columns.count).toBe(size + 1);
    expect(Array.from(columns.sortedIds())).toEqual(firewall.blocks.all().map((r) => r.id));
    // Half new, half existing.
    expect(await firewall.blocks.addMany(hosts(size / 2, size))).toEqual({ created: size / 2, existing: size / 2 });
  });

  it('refuses a batch over capacity and stores none of it', async () => {
    const before = firewall.blocks.list({ limit: 1 }).total;
    await expect(firewall.blocks.addMany(hosts(0, size, '11'))).rejects.toMatchObject({ code: 'CAPACITY_EXCEEDED' });
    expect(firewall.blocks.list({ limit: 1 }).total).toBe(before);
    expect(firewall.blocks.list({ contains: '11.0.0.5' }).total).toBe(0);
  });

  it('a restart restores what the worker stored', async () => {
    const total = firewall.blocks.list({ limit: 1 }).total;
    firewall.close();
    const reopened = await Firewall.open(
      { objectPath: BPF_OBJECT_PATH, storePath, pin: null, capacity: { cidrV4: 2 * size + 10, cidrV6: 100, flows: 1024 }, countersCacheMs: 1 },
      quietLog,
    );
    firewall = reopened.firewall;
    expect(reopened.restored).toEqual({ added: total, removed: 0, kept: 0 });
    const { ingress } = firewall.datapath;
    const frame = Buffer.alloc(64);
    frame.writeUInt16BE(0x0800, 12);
    frame[14] = 0x45;
    frame.writeUInt16BE(50, 16);
    frame[22] = 64;
    frame[23] = 17;
    Buffer.from([10, 0, 1, 2]).copy(frame, 26); // src 10.0.1.2, stored
    Buffer.from([198, 18, 0, 2]).copy(frame, 30);
    expect(ingress.testRunSync({ data: frame }).retval).toBe(XDP_DROP);
  });
});

describe('a large batch enforced while the worker stores it: failures leave neither rows nor entries', () => {
  const state = mkdtempSync(join(tmpdir(), 'xdpwall-bulk-pipe-'));
  const storePath = join(state, 'rules.sqlite');
  let firewall: Firewall;
  const size = 3 * WORKER_BATCH;
  beforeAll(async () => {
    ({ firewall } = await Firewall.open(
      { objectPath: BPF_OBJECT_PATH, storePath, pin: null, capacity: { cidrV4: 2 * size, cidrV6: 100, flows: 1024 }, countersCacheMs: 1 },
      quietLog,
    ));
  });
  afterAll(() => {
    firewall?.close();
    rmSync(state, { recursive: true, force: true });
  });

  /** The host hash, refusing (EIO) its `nth` updateBatch call and every one after. */
  const failingFrom = (nth: number) => {
    const map = firewall.datapath.maps.srcHostV4;
    let calls = 0;
    return new Proxy(map, {
      get(target, property) {
        if (property === 'updateBatch') {
          return (...args: Parameters<BpfMap['updateBatch']>) =>
            ++calls >= nth ? Promise.reject(new BpfError('injected EIO', 5, 'EIO', 'bpf_map_update_batch')) : target.updateBatch(...args);
        }
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  };

  it('the kernel refuses a chunk halfway: nothing is stored, the chunks already installed come out', async () => {
    const before = (await firewall.datapath.maps.srcHostV4.lookupAll()).count;
    const store = new RuleStore(storePath);
    const blocks = new BlockService(store, new CidrMaps({ ...firewall.datapath.maps, srcHostV4: failingFrom(5) }));
    try {
      await expect(blocks.addMany(hosts(0, size, '12'))).rejects.toMatchObject({ code: 'DATAPATH_ERROR' });
      expect(blocks.list({ limit: 1 }).total).toBe(0);
      expect(blocks.list({ contains: '12.0.0.5' }).total).toBe(0);
    } finally {
      store.close();
    }
    expect((await firewall.datapath.maps.srcHostV4.lookupAll()).count).toBe(before);
    // The service of the firewall itself still imports the same batch whole.
    expect(await firewall.blocks.addMany(hosts(0, size, '12'))).toEqual({ created: size, existing: 0 });
    expect((await firewall.datapath.maps.srcHostV4.lookupAll()).count).toBe(before + size);
  });
});

// The native addon against the real kernel: objects, maps, test runs, pins,
// and XDP/TC attach inside network namespaces this suite creates. Needs root.
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BPF_EXIST,
  BPF_NOEXIST,
  BpfError,
  BpfObject,
  ensureBpffs,
  flockExclusive,
  ifindex,
  linkCreate,
  linkDetach,
  linkFdById,
  linkInfo,
  linkList,
  linkUpdate,
  numPossibleCpus,
  objGet,
  objPin,
  progInfo,
  tcAttach,
  tcDetach,
  tcQuery,
  xdpAttach,
  xdpDetach,
  xdpQuery,
} from '../addon/index.js';

const XDP_DROP = 1;
const XDP_PASS = 2;

const fixtureSource = join(import.meta.dirname, 'fixtures', 'addon-test.bpf.c');
let workDir = '';
let objectPath = '';
let bpffs = '';

const compileBpf = (source: string, output: string): void => {
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', '-c', source, '-o', output]);
};

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), 'xwa-addon-'));
  objectPath = join(workDir, 'addon-test.bpf.o');
  compileBpf(fixtureSource, objectPath);
  bpffs = join(workDir, 'bpffs');
});

afterAll(() => {
  if (bpffs && existsSync(bpffs)) spawnSync('umount', [bpffs]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const u64 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};
/** LPM key: host-order prefix length, then the address in network order. */
const lpmKey = (prefixlen: number, address: string): Buffer =>
  Buffer.concat([u32(prefixlen), Buffer.from(address.split('.').map(Number))]);
/** A per-CPU value of the fixture's 4-byte maps: one 8-byte slot per CPU. */
const perCpuValue = (perCpu: (cpu: number) => number): Buffer =>
  Buffer.concat(Array.from({ length: numPossibleCpus() }, (_, cpu) => Buffer.concat([u32(perCpu(cpu)), u32(0)])));
const frame = (firstByte: number, length = 64): Buffer => {
  const b = Buffer.alloc(length, 0xab);
  b[0] = firstByte;
  return b;
};

function expectBpfError(fn: () => unknown, code: string, op: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(BpfError);
  expect(caught).toMatchObject({ name: 'BpfError', code, op });
}

async function loaded(options?: { pinRoot?: string; maxEntries?: Record<string, number> }): Promise<BpfObject> {
  const object = BpfObject.open(objectPath, options?.pinRoot ? { pinRoot: options.pinRoot } : undefined);
  for (const [name, entries] of Object.entries(options?.maxEntries ?? {})) object.setMapMaxEntries(name, entries);
  await object.load();
  return object;
}

describe('BpfObject', () => {
  it('opens without loading and lists programs and maps', () => {
    const object = BpfObject.open(objectPath);
    try {
      expect(object.loaded).toBe(false);
      expect(object.programNames()).toEqual(['xdp_test', 'tc_test']);
      expect(object.mapNames()).toEqual(expect.arrayContaining(['hash', 'percpu', 'lpm', 'counters']));
      const xdp = object.program('xdp_test');
      expect({ name: xdp.name, type: xdp.type, fd: xdp.fd, id: xdp.id }).toEqual({
        name: 'xdp_test', type: 'xdp', fd: -1, id: 0,
      });
      expect(object.program('tc_test').type).toBe('sched_cls');
      const lpm = object.map('lpm');
      expect(lpm).toMatchObject({ type: 'lpm_trie', keySize: 8, valueSize: 4, maxEntries: 1024, perCpu: false, fd: -1 });
      expectBpfError(() => lpm.lookup(lpmKey(32, '198.18.0.1')), 'EBADF', 'bpf_map_lookup_elem');
    } finally {
      object.close();
    }
  });

  it('reads global variables and map flags before load', () => {
    const object = BpfObject.open(objectPath);
    try {
      const info = object.variable('fixture_info');
      expect([info.length, info.readUInt32LE(0), info.readUInt32LE(4)]).toEqual([8, 7, 0x58575746]);
      expectBpfError(() => object.variable('no_such_variable'), 'ENOENT', 'btf__find_by_name_kind');
      expect(object.map('lpm').mapFlags).toBe(1); // BPF_F_NO_PREALLOC
      expect(object.map('hash').mapFlags).toBe(0);
    } finally {
      object.close();
    }
  });

  it('throws ENOENT for unknown programs and maps', () => {
    const object = BpfObject.open(objectPath);
    try {
      expectBpfError(() => object.program('nope'), 'ENOENT', 'bpf_object__find_program_by_name');
      expectBpfError(() => object.map('nope'), 'ENOENT', 'bpf_object__find_map_by_name');
      expectBpfError(() => object.setMapMaxEntries('nope', 1), 'ENOENT', 'bpf_map__set_max_entries');
    } finally {
      object.close();
    }
  });

  it('reports a missing file as a BpfError with the libbpf log', () => {
    expectBpfError(() => BpfObject.open(join(workDir, 'missing.o')), 'ENOENT', 'bpf_object__open_file');
  });

  it('loads once, and close() is idempotent', async () => {
    const object = await loaded();
    const program = object.program('xdp_test');
    const map = object.map('hash');
    expect(object.loaded).toBe(true);
    expect(program.fd).toBeGreaterThan(0);
    expect(program.id).toBeGreaterThan(0);
    expect(map.fd).toBeGreaterThan(0);
    expect(map.id).toBeGreaterThan(0);
    await expect(object.load()).rejects.toMatchObject({ code: 'EALREADY', op: 'bpf_object__load' });
    expectBpfError(() => object.setMapMaxEntries('hash', 8), 'EBUSY', 'bpf_map__set_max_entries');

    object.close();
    object.close();
    expect(object.loaded).toBe(false);
    expect(program.fd).toBe(-1);
    expect(map.name).toBe('hash');
    expectBpfError(() => object.program('xdp_test'), 'EBADF', 'bpf_object__find_program_by_name');
    expectBpfError(() => map.lookup(u32(1)), 'EBADF', 'bpf_map_lookup_elem');
    await expect(map.lookupAll()).rejects.toBeInstanceOf(BpfError);
  });

  it("puts the verifier log into a failed load's error", async () => {
    const source = join(workDir, 'rejected.bpf.c');
    const rejected = join(workDir, 'rejected.bpf.o');
    writeFileSync(source, [
      '#include <linux/bpf.h>',
      '#include <bpf/bpf_helpers.h>',
      '/* Reads packet data without a bounds check. */',
      'SEC("xdp") int unchecked(struct xdp_md *ctx) { return *(int *)(long)ctx->data; }',
      'char LICENSE[] SEC("license") = "GPL";',
    ].join('\n'));
    compileBpf(source, rejected);
    const object = BpfObject.open(rejected);
    try {
      const error: unknown = await object.load().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BpfError);
      expect(error).toMatchObject({
        code: 'EACCES', op: 'bpf_object__load', message: expect.stringMatching(/PROG LOAD LOG/),
      });
      expect(object.loaded).toBe(false);
    } finally {
      object.close();
    }
  });

  it('defers close() requested during load()', async () => {
    const object = BpfObject.open(objectPath);
    const loading = object.load();
    object.close();
    await loading;
    expect(object.loaded).toBe(false);
    expectBpfError(() => object.map('hash'), 'EBADF', 'bpf_object__find_map_by_name');
  });
});

describe('BpfMap', () => {
  let object: BpfObject;
  beforeAll(async () => {
    object = await loaded();
  });
  afterAll(() => object?.close());

  it('looks up, updates, iterates and deletes single elements', () => {
    const hash = object.map('hash');
    expect(hash).toMatchObject({ type: 'hash', keySize: 4, valueSize: 8, valueStride: 8, perCpu: false });
    expect(hash.lookup(u32(1))).toBeNull();
    expect(hash.nextKey(null)).toBeNull();
    hash.update(u32(1), u64(100));
    hash.update(u32(2), u64(200), BPF_NOEXIST);
    expect(hash.lookup(u32(1))).toEqual(u64(100));
    expectBpfError(() => hash.update(u32(1), u64(1), BPF_NOEXIST), 'EEXIST', 'bpf_map_update_elem');
    expectBpfError(() => hash.update(u32(3), u64(1), BPF_EXIST), 'ENOENT', 'bpf_map_update_elem');
    expectBpfError(() => hash.update(Buffer.alloc(3), u64(1)), 'EINVAL', 'bpf_map_update_elem');

    const first = hash.nextKey(null);
    const second = first && hash.nextKey(first);
    expect([first, second].map((k) => k?.readUInt32LE()).sort()).toEqual([1, 2]);
    expect(second && hash.nextKey(second)).toBeNull();

    expect(hash.delete(u32(1))).toBe(true);
    expect(hash.delete(u32(1))).toBe(false);
    expect(hash.delete(u32(2))).toBe(true);
  });

  it('updates, reads and deletes a hash map in batches', async () => {
    const hash = object.map('hash');
    const count = 300;
    const keys = Buffer.concat(Array.from({ length: count }, (_, i) => u32(i + 1)));
    const values = Buffer.concat(Array.from({ length: count }, (_, i) => u64((i + 1) * 10)));
    await expect(hash.updateBatch(keys, values, count)).resolves.toBe(count);

    const all = await hash.lookupAll(7);
    expect(all.count).toBe(count);
    expect(all.keys.length).toBe(count * 4);
    expect(all.values.length).toBe(count * 8);
    for (let i = 0; i < all.count; i++) {
      expect(Number(all.values.readBigUInt64LE(i * 8))).toBe(all.keys.readUInt32LE(i * 4) * 10);
    }

    // Half the keys, plus absent ones that must not stop the batch.
    const doomed = Buffer.concat([u32(9999), keys.subarray(0, 150 * 4), u32(8888)]);
    await expect(hash.deleteBatch(doomed, 152)).resolves.toBe(150);
    expect((await hash.lookupAll()).count).toBe(150);
    await expect(hash.deleteBatch(keys, count)).resolves.toBe(150);
    expect(await hash.lookupAll()).toMatchObject({ count: 0 });
  });

  it('rejects batch buffers shorter than count elements', async () => {
    await expect(object.map('hash').updateBatch(u32(1), u64(1), 2)).rejects.toMatchObject({
      code: 'EINVAL', op: 'bpf_map_update_batch',
    });
  });

  it('handles per-CPU values one 8-byte slot per possible CPU', async () => {
    const percpu = object.map('percpu');
    const cpus = numPossibleCpus();
    expect(percpu).toMatchObject({ type: 'percpu_hash', perCpu: true, valueSize: 4, valueStride: 8 * cpus });

    const value = perCpuValue((cpu) => cpu + 1);
    percpu.update(u32(7), value);
    expect(percpu.lookup(u32(7))).toEqual(value);

    const keys = Buffer.concat([u32(10), u32(11)]);
    const values = Buffer.concat([perCpuValue(() => 10), perCpuValue((cpu) => 11 + cpu)]);
    await expect(percpu.updateBatch(keys, values, 2)).resolves.toBe(2);
    const all = await percpu.lookupAll();
    expect(all.count).toBe(3);
    expect(all.values.length).toBe(3 * percpu.valueStride);
    const byKey = new Map(
      Array.from({ length: all.count }, (_, i) => [
        all.keys.readUInt32LE(i * 4),
        all.values.subarray(i * percpu.valueStride, (i + 1) * percpu.valueStride),
      ]),
    );
    expect(byKey.get(7)).toEqual(value);
    expect(byKey.get(11)).toEqual(perCpuValue((cpu) => 11 + cpu));
  });

  it('updates and reads an LPM trie in batches', async () => {
    const lpm = object.map('lpm');
    const prefixes: Array<[number, string, number]> = [
      [15, '198.18.0.0', 1], [24, '198.18.5.0', 2], [32, '198.19.255.1', 3],
    ];
    const keys = Buffer.concat(prefixes.map(([len, addr]) => lpmKey(len, addr)));
    const values = Buffer.concat(prefixes.map(([, , id]) => u32(id)));
    await expect(lpm.updateBatch(keys, values, prefixes.length)).resolves.toBe(3);
    // A lookup with a full-length key finds the longest matching prefix.
    expect(lpm.lookup(lpmKey(32, '198.18.5.9'))?.readUInt32LE()).toBe(2);
    expect(lpm.lookup(lpmKey(32, '198.18.6.9'))?.readUInt32LE()).toBe(1);
    expectBpfError(() => lpm.update(lpmKey(33, '198.18.0.0'), u32(9)), 'EINVAL', 'bpf_map_update_elem');

    const all = await lpm.lookupAll(2);
    expect(all.count).toBe(3);
    const entries = Array.from({ length: all.count }, (_, i) => [
      all.keys.subarray(i * 8, i * 8 + 8).toString('hex'),
      all.values.readUInt32LE(i * 4),
    ]);
    expect(entries.sort()).toEqual(prefixes.map(([len, addr, id]) => [lpmKey(len, addr).toString('hex'), id]).sort());
    await expect(lpm.deleteBatch(keys, 3)).resolves.toBe(3);
  });

  it('reads an array map with lookupAll', async () => {
    const counters = object.map('counters');
    counters.update(u32(3), u64(33));
    const all = await counters.lookupAll();
    expect(all.count).toBe(4);
    expect(all.values.subarray(24, 32)).toEqual(u64(33));
  });

  it('falls back to get_next_key for maps without batch lookup', async () => {
    const devmap = object.map('devmap');
    expect(devmap.type).toBe('devmap');
    devmap.update(u32(2), u32(1)); // slot 2 -> loopback: a map entry only, nothing is attached
    const all = await devmap.lookupAll();
    expect(all).toMatchObject({ count: 1 });
    expect(all.keys).toEqual(u32(2));
    expect(all.values).toEqual(u32(1));
  });

  it('reports a full hash map as E2BIG', async () => {
    const small = await loaded({ maxEntries: { hash: 4 } });
    try {
      const hash = small.map('hash');
      expect(hash.maxEntries).toBe(4);
      for (let key = 0; key < 4; key++) hash.update(u32(key), u64(key));
      expectBpfError(() => hash.update(u32(4), u64(4)), 'E2BIG', 'bpf_map_update_elem');
      const keys = Buffer.concat([4, 5].map(u32));
      await expect(hash.updateBatch(keys, Buffer.concat([u64(4), u64(5)]), 2)).rejects.toMatchObject({
        name: 'BpfError', code: 'E2BIG', op: 'bpf_map_update_batch',
      });
    } finally {
      small.close();
    }
  });
});

describe('BpfProgram.testRun', () => {
  let object: BpfObject;
  beforeAll(async () => {
    object = await loaded();
  });
  afterAll(() => object?.close());

  const runs = (): number => Number(object.map('counters').lookup(u32(0))?.readBigUInt64LE() ?? -1);

  it('returns the verdict and the packet, async and sync', async () => {
    const xdp = object.program('xdp_test');
    const drop = await xdp.testRun({ data: frame(0xff) });
    expect(drop.retval).toBe(XDP_DROP);
    expect(drop.dataOut).toEqual(frame(0xff));
    expect(typeof drop.durationNs).toBe('number');
    const pass = xdp.testRunSync({ data: frame(0x00) });
    expect(pass.retval).toBe(XDP_PASS);
    expect(pass.dataOut).toEqual(frame(0x00));
    expect(xdp.testRunSync({ data: frame(0x00), dataSizeOut: 0 }).dataOut.length).toBe(0);
  });

  it('runs the program `repeat` times', async () => {
    const xdp = object.program('xdp_test');
    const before = runs();
    await xdp.testRun({ data: frame(0x01), repeat: 100 });
    xdp.testRunSync({ data: frame(0x01), repeat: 50 });
    expect(runs() - before).toBe(150);
  });

  it('rejects a frame shorter than an Ethernet header with EINVAL', async () => {
    const xdp = object.program('xdp_test');
    await expect(xdp.testRun({ data: Buffer.alloc(10) })).rejects.toMatchObject({
      name: 'BpfError', code: 'EINVAL', op: 'bpf_prog_test_run_opts',
    });
    expectBpfError(() => xdp.testRunSync({ data: Buffer.alloc(10) }), 'EINVAL', 'bpf_prog_test_run_opts');
  });
});

describe('bpffs and pins', () => {
  it('flockExclusive: one holder per directory, released with the fd', () => {
    const first = openSync(workDir, 'r');
    const second = openSync(workDir, 'r');
    try {
      expect(flockExclusive(first)).toBe(true);
      expect(flockExclusive(second)).toBe(false);
      closeSync(first);
      expect(flockExclusive(second)).toBe(true);
    } finally {
      closeSync(second);
      try {
        closeSync(first);
      } catch {
        // closed above
      }
    }
  });

  it('mounts bpffs once', () => {
    expect(ensureBpffs(bpffs)).toBe(true);
    expect(ensureBpffs(bpffs)).toBe(false);
    // A directory inside bpffs is already on bpffs: created, not mounted over.
    expect(ensureBpffs(join(bpffs, 'sub', 'dir'))).toBe(false);
    expect(existsSync(join(bpffs, 'sub', 'dir'))).toBe(true);
  });

  it('pins and unpins programs and maps', async () => {
    const object = await loaded();
    try {
      const programPin = join(bpffs, 'prog');
      const mapPin = join(bpffs, 'map');
      object.program('xdp_test').pin(programPin);
      object.map('hash').pin(mapPin);
      expect(existsSync(programPin) && existsSync(mapPin)).toBe(true);
      object.program('xdp_test').unpin(programPin);
      object.map('hash').unpin(mapPin);
      expect(existsSync(programPin) || existsSync(mapPin)).toBe(false);
    } finally {
      object.close();
    }
  });

  it('pins nothing without pinRoot, not even LIBBPF_PIN_BY_NAME maps', async () => {
    const a = await loaded();
    const b = await loaded();
    try {
      expect(a.map('counters').id).not.toBe(b.map('counters').id);
    } finally {
      a.close();
      b.close();
    }
  });

  it('pins the marked maps under pinRoot and reuses the pins on the next load', async () => {
    const pinRoot = join(bpffs, 'xdpwall');
    ensureBpffs(pinRoot);
    const first = await loaded({ pinRoot });
    const pinned = ['hash', 'lpm', 'counters', 'devmap'];
    const firstIds = pinned.map((name) => first.map(name).id);
    for (const name of pinned) expect(existsSync(join(pinRoot, name))).toBe(true);
    expect(existsSync(join(pinRoot, 'percpu'))).toBe(false); // not marked LIBBPF_PIN_BY_NAME
    first.map('hash').update(u32(42), u64(4242));
    first.map('lpm').update(lpmKey(16, '198.18.0.0'), u32(7));
    first.close();

    // A restarted daemon: new object, same pins, same kernel maps.
    const second = await loaded({ pinRoot });
    try {
      expect(pinned.map((name) => second.map(name).id)).toEqual(firstIds);
      expect(second.map('hash').lookup(u32(42))).toEqual(u64(4242));
      expect(second.map('lpm').lookup(lpmKey(32, '198.18.1.1'))?.readUInt32LE()).toBe(7);
    } finally {
      second.close();
    }
    expect(existsSync(join(pinRoot, 'hash'))).toBe(true);

    // A pin whose definition differs is not silently replaced.
    const resized = BpfObject.open(objectPath, { pinRoot });
    try {
      resized.setMapMaxEntries('hash', 2048);
      await expect(resized.load()).rejects.toMatchObject({
        code: 'EINVAL', op: 'bpf_object__load', message: expect.stringMatching(/couldn't reuse pinned map/),
      });
    } finally {
      resized.close();
    }
  });
});

describe('XDP and TC attach in network namespaces', () => {
  const prefix = `xwa-${process.pid}`;
  const nsA = `${prefix}-a`;
  const nsB = `${prefix}-b`;
  let object: BpfObject;
  let ownNetns = '';

  const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });
  /** Whether B answers a ping from A; `attempts` echo requests within `seconds`. */
  const pingB = (attempts: number, seconds: number): boolean =>
    spawnSync('ip', ['netns', 'exec', nsA, 'ping', '-c', `${attempts}`, '-i', '0.2', '-w', `${seconds}`, '198.18.0.2'], {
      stdio: 'ignore',
    }).status === 0;

  beforeAll(async () => {
    ownNetns = readlinkSync('/proc/thread-self/ns/net');
    ip('netns', 'add', nsA);
    ip('netns', 'add', nsB);
    // The pair is created inside A and its peer moved straight into B.
    ip('-n', nsA, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1', 'netns', nsB);
    ip('-n', nsA, 'addr', 'add', '198.18.0.1/30', 'dev', 'veth0');
    ip('-n', nsB, 'addr', 'add', '198.18.0.2/30', 'dev', 'veth1');
    ip('-n', nsA, 'link', 'set', 'veth0', 'up');
    ip('-n', nsB, 'link', 'set', 'veth1', 'up');
    object = await loaded();
  });

  afterAll(() => {
    object?.close();
    for (const ns of [nsA, nsB]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  });

  it('resolves interfaces inside a namespace and returns to the original one', () => {
    expect(ifindex(`${nsB}/veth1`)).toBeGreaterThan(1);
    expect(ifindex(`${nsB}/lo`)).toBe(1);
    expectBpfError(() => ifindex(`${nsB}/veth0`), 'ENODEV', 'if_nametoindex');
    expectBpfError(() => ifindex(`${prefix}-missing/lo`), 'ENOENT', 'open');
    expect(() => ifindex('a/b/c')).toThrow(TypeError);
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(ownNetns);
  });

  it('attaches, replaces, queries and detaches XDP in native and generic mode', () => {
    const xdp = object.program('xdp_test');
    const iface = `${nsB}/veth1`;
    const index = ifindex(iface);
    expect(xdpQuery(iface)).toEqual({ ifindex: index, progId: 0, mode: 'none' });

    expect(xdpAttach(iface, xdp.fd, 'native')).toEqual({ ifindex: index, mode: 'native' });
    expect(xdpAttach(iface, xdp.fd, 'native')).toEqual({ ifindex: index, mode: 'native' });
    expect(xdpQuery(iface)).toEqual({ ifindex: index, progId: xdp.id, mode: 'native' });
    xdpDetach(iface, 'native');
    expect(xdpQuery(iface).mode).toBe('none');
    xdpDetach(iface, 'native');

    xdpAttach(iface, xdp.fd, 'generic');
    expect(xdpQuery(iface)).toEqual({ ifindex: index, progId: xdp.id, mode: 'generic' });
    xdpDetach(iface);
    expect(xdpQuery(iface)).toEqual({ ifindex: index, progId: 0, mode: 'none' });
    xdpDetach(iface);
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(ownNetns);
  });

  it('refuses the fd of a program that is not loaded (it would mean "detach")', () => {
    const unloaded = BpfObject.open(objectPath);
    try {
      expectBpfError(() => xdpAttach(`${nsB}/veth1`, unloaded.program('xdp_test').fd, 'native'), 'EBADF', 'bpf_xdp_attach');
      expectBpfError(() => tcAttach(`${nsB}/veth1`, unloaded.program('tc_test').fd, 'ingress'), 'EBADF', 'bpf_tc_attach');
    } finally {
      unloaded.close();
    }
  });

  it('filters real traffic: broadcast ARP (first byte 0xff) is dropped while attached', () => {
    const iface = `${nsB}/veth1`;
    const counters = object.map('counters');
    const before = Number(counters.lookup(u32(0))?.readBigUInt64LE());
    ip('-n', nsA, 'neigh', 'flush', 'dev', 'veth0');
    xdpAttach(iface, object.program('xdp_test').fd, 'native');
    try {
      expect(pingB(1, 1)).toBe(false);
      expect(Number(counters.lookup(u32(0))?.readBigUInt64LE())).toBeGreaterThan(before);
    } finally {
      xdpDetach(iface);
    }
    expect(pingB(1, 5)).toBe(true);
  });

  it('attaches, replaces, queries and detaches TC filters', () => {
    const tc = object.program('tc_test');
    const iface = `${nsA}/veth0`;
    const index = ifindex(iface);
    expect(tcQuery(iface, 'ingress')).toEqual({ ifindex: index, progId: 0 });

    expect(tcAttach(iface, tc.fd, 'ingress')).toEqual({ ifindex: index, progId: tc.id });
    expect(tcAttach(iface, tc.fd, 'ingress')).toEqual({ ifindex: index, progId: tc.id });
    expect(tcQuery(iface, 'ingress')).toEqual({ ifindex: index, progId: tc.id });

    const custom = { handle: 2, priority: 3 };
    tcAttach(iface, tc.fd, 'egress', custom);
    expect(tcQuery(iface, 'egress', custom).progId).toBe(tc.id);
    expect(tcQuery(iface, 'egress').progId).toBe(0);

    tcDetach(iface, 'ingress');
    tcDetach(iface, 'egress', custom);
    expect(tcQuery(iface, 'ingress').progId).toBe(0);
    expect(tcQuery(iface, 'egress', custom).progId).toBe(0);
    tcDetach(iface, 'ingress');
    // No clsact qdisc at all on B's side.
    tcDetach(`${nsB}/veth1`, 'egress');
    expect(tcQuery(`${nsB}/veth1`, 'egress').progId).toBe(0);
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(ownNetns);
  });
  describe('bpf_links', () => {
    let other: BpfObject;
    const linkPin = () => join(bpffs, 'link-xdp');
    beforeAll(async () => {
      ensureBpffs(bpffs);
      other = await loaded();
    });
    afterAll(() => {
      other?.close();
      rmSync(linkPin(), { force: true });
    });

    it('attaches XDP through a pinned link that outlives its fd, and swaps programs atomically', () => {
      const iface = `${nsB}/veth1`;
      const first = object.program('xdp_test');
      const second = other.program('xdp_test');
      const { fd, ifindex: index } = linkCreate(iface, first.fd, 'xdp', { xdpMode: 'native' });
      try {
        expect(index).toBe(ifindex(iface));
        expect(xdpQuery(iface)).toEqual({ ifindex: index, progId: first.id, mode: 'native' });
        const info = linkInfo(fd);
        expect(info).toEqual({ id: info.id, type: 'xdp', progId: first.id, ifindex: index, attachType: 37 });
        expect(linkList()).toContainEqual(info);
        // The hook is taken: neither a second link nor a netlink attach may replace it.
        expectBpfError(() => linkCreate(iface, second.fd, 'xdp', { xdpMode: 'native' }), 'EBUSY', 'bpf_link_create');
        expectBpfError(() => xdpAttach(iface, second.fd, 'native'), 'EBUSY', 'bpf_xdp_attach');
        objPin(fd, linkPin());
      } finally {
        closeSync(fd);
      }
      // Only the pin holds the link now, and it still filters.
      expect(xdpQuery(iface).progId).toBe(first.id);
      const pinned = objGet(linkPin());
      try {
        expectBpfError(() => linkUpdate(pinned, second.fd, { expectedProgId: second.id }), 'EPERM', 'bpf_link_update');
        linkUpdate(pinned, second.fd, { expectedProgId: first.id });
        expect(xdpQuery(iface).progId).toBe(second.id);
        expect(progInfo(second.id)).toEqual({ id: second.id, name: 'xdp_test', type: 'xdp' });
        const byId = linkFdById(linkInfo(pinned).id);
        try {
          expect(linkInfo(byId).progId).toBe(second.id);
        } finally {
          closeSync(byId);
        }
        linkDetach(pinned);
        expect(xdpQuery(iface)).toEqual({ ifindex: index, progId: 0, mode: 'none' });
        expect(linkInfo(pinned)).toMatchObject({ type: 'xdp', ifindex: 0 });
      } finally {
        closeSync(pinned);
        rmSync(linkPin());
      }
      expectBpfError(() => objGet(linkPin()), 'ENOENT', 'bpf_obj_get');
    });

    it('attaches TC egress through a tcx link, next to other programs', () => {
      const iface = `${nsA}/veth0`;
      const index = ifindex(iface);
      const a = linkCreate(iface, object.program('tc_test').fd, 'tcx_egress');
      const b = linkCreate(iface, other.program('tc_test').fd, 'tcx_egress');
      try {
        expect(linkInfo(a.fd)).toMatchObject({ type: 'tcx', progId: object.program('tc_test').id, ifindex: index, attachType: 47 });
        expect(linkInfo(b.fd)).toMatchObject({ type: 'tcx', ifindex: index, attachType: 47 });
        linkDetach(a.fd);
        expect(linkInfo(a.fd).ifindex).toBe(0);
        expect(linkInfo(b.fd).ifindex).toBe(index);
      } finally {
        closeSync(a.fd);
        closeSync(b.fd);
      }
      expect(() => linkCreate(iface, object.program('tc_test').fd, 'tc' as 'xdp')).toThrow(TypeError);
    });

    it('reports a link whose device was deleted as defunct (ifindex 0)', () => {
      ip('-n', nsA, 'link', 'add', 'gone0', 'type', 'veth', 'peer', 'name', 'gone1');
      const { fd } = linkCreate(`${nsA}/gone0`, object.program('xdp_test').fd, 'xdp', { xdpMode: 'generic' });
      try {
        expect(linkInfo(fd).ifindex).toBe(ifindex(`${nsA}/gone0`));
        ip('-n', nsA, 'link', 'del', 'gone0');
        expect(linkInfo(fd).ifindex).toBe(0);
      } finally {
        closeSync(fd);
      }
    });

    it('detaches a netlink-attached XDP program only if it is the expected one', () => {
      const iface = `${nsB}/veth1`;
      xdpAttach(iface, object.program('xdp_test').fd, 'generic');
      expectBpfError(() => xdpDetach(iface, 'generic', { expectedProgId: other.program('xdp_test').id }), 'EEXIST', 'bpf_xdp_detach');
      expect(xdpQuery(iface).progId).toBe(object.program('xdp_test').id);
      xdpDetach(iface, 'generic', { expectedProgId: object.program('xdp_test').id });
      expect(xdpQuery(iface).progId).toBe(0);
    });
  });
});

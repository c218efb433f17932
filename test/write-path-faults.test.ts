// Failures of the write path injected for real: kernel batches that fail
// halfway (real maps, one call made to fail), a disk that fills up (a small
// tmpfs mounted for this run), and damaged or unwritable rule stores.
import { readDir24Slot } from '../src/datapath/dir24.js';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BpfError, type BpfMap } from '@xdpwall/addon';
import { buildApp } from '../api/app.js';
import { Firewall } from '../src/firewall.js';
import { CidrMaps } from '../src/datapath/cidr-maps.js';
import type { DatapathMaps } from '../src/datapath/datapath.js';
import { RuleStore } from '../src/rules/store.js';
import { WORKER_BATCH } from '../src/rules/blocks.js';
import { parseCidr } from '../src/rules/cidr.js';
import type { BlockRule } from '../src/rules/model.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { undoFailuresOf } from '../src/errors.js';
import { openTestFirewall, quietLog } from './lib/firewall.js';

const rule = (id: number, cidr: string): BlockRule => {
  const c = parseCidr(cidr);
  return { id, cidr: c.text, family: c.family, prefixLen: c.prefixLen, network: c.bytes, direction: 'src', comment: null, createdAt: '' };
};

/** One map whose named method fails (once armed) with the errno given, as the kernel would. */
function faulty(map: BpfMap, method: 'updateBatch' | 'deleteBatch', code = 'EIO') {
  const state = { armed: false };
  const proxy = new Proxy(map, {
    get(target, property) {
      if (property === method && state.armed) return () => Promise.reject(new BpfError(`injected ${code}`, 5, code, `bpf_map_${method}`));
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { proxy, state };
}

describe('CidrMaps on real maps: a batch failing halfway leaves the kernel as it was', () => {
  let firewall: Firewall;
  beforeAll(async () => {
    firewall = await openTestFirewall();
  });
  afterAll(() => firewall?.close());

  // A /25 (IPv4 trie, written first), a /32 (host hash, second), a /24 (DIR-24 table, last).
  const rules = [rule(101, '198.18.1.0/25'), rule(102, '198.18.2.2/32'), rule(103, '198.18.3.0/24')];
  const counts = async (maps: DatapathMaps) => {
    return {
      trie: (await maps.srcV4.lookupAll()).count,
      hosts: (await maps.srcHostV4.lookupAll()).count,
      dir24: readDir24Slot(maps.srcDir24, (198 << 16) | (18 << 8) | 3),
    };
  };

  it('installMany: the host hash refuses, the trie entries already written are taken out again', async () => {
    const hosts = faulty(firewall.datapath.maps.srcHostV4, 'updateBatch');
    const maps = new CidrMaps({ ...firewall.datapath.maps, srcHostV4: hosts.proxy });
    hosts.state.armed = true;
    await expect(maps.installMany(rules)).rejects.toThrow(expect.objectContaining({ code: 'DATAPATH_ERROR', message: expect.stringMatching(/injected EIO/) }));
    expect(await counts(firewall.datapath.maps)).toEqual({ trie: 0, hosts: 0, dir24: 0 });
  });

  it('installMany: an undo that fails too is reported, not swallowed', async () => {
    const hosts = faulty(firewall.datapath.maps.srcHostV4, 'updateBatch');
    const trie = faulty(firewall.datapath.maps.srcV4, 'deleteBatch');
    const maps = new CidrMaps({ ...firewall.datapath.maps, srcHostV4: hosts.proxy, srcV4: trie.proxy });
    hosts.state.armed = true;
    trie.state.armed = true;
    const error = await maps.installMany(rules).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'DATAPATH_ERROR', message: expect.stringMatching(/undoing it failed too \(injected EIO\)/) });
    expect(undoFailuresOf(error)).toHaveLength(1);
    // The trie entry the undo could not delete is still there.
    expect(await counts(firewall.datapath.maps)).toEqual({ trie: 1, hosts: 0, dir24: 0 });
    await new CidrMaps(firewall.datapath.maps).reconcile([]);
    expect(await counts(firewall.datapath.maps)).toEqual({ trie: 0, hosts: 0, dir24: 0 });
  });

  it('removeMany: the host hash refuses, the trie entries already deleted are put back', async () => {
    const hosts = faulty(firewall.datapath.maps.srcHostV4, 'deleteBatch');
    const maps = new CidrMaps({ ...firewall.datapath.maps, srcHostV4: hosts.proxy });
    await maps.installMany(rules);
    const before = await counts(firewall.datapath.maps);
    expect(before).toEqual({ trie: 1, hosts: 1, dir24: 103 });
    hosts.state.armed = true;
    await expect(maps.removeMany(rules)).rejects.toThrow(/cannot remove 3 rules.*injected EIO/);
    expect(await counts(firewall.datapath.maps)).toEqual(before);
    hosts.state.armed = false;
    await maps.removeMany(rules);
    expect(await counts(firewall.datapath.maps)).toEqual({ trie: 0, hosts: 0, dir24: 0 });
  });
});

/** A tmpfs of `size` mounted on a fresh directory; unmounted and removed by the returned function. */
function mountTmpfs(size: string, options = ''): { dir: string; unmount: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'xwt-fs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}${options ? `,${options}` : ''}`, 'xwt-tmpfs', dir]);
  return {
    dir,
    unmount: () => {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Writes zeros into `path` until the file system is full, down to its last free byte. */
function fillDisk(path: string): void {
  const fd = openSync(path, 'w');
  try {
    for (const size of [64 << 10, 4096, 512, 1]) {
      const chunk = Buffer.alloc(size);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      }
    }
  } finally {
    closeSync(fd);
  }
}

describe('a full disk', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  });

  it('answers 507 STORE_FULL and applies nothing; a delete stays consistent; works again once space is freed', async () => {
    const fs = mountTmpfs('1m');
    cleanups.push(fs.unmount);
    const { firewall } = await Firewall.open(
      { objectPath: BPF_OBJECT_PATH, storePath: join(fs.dir, 'rules.sqlite'), pin: null, capacity: { cidrV4: 8192, cidrV6: 64, flows: 64 }, countersCacheMs: 1 },
      quietLog,
    );
    cleanups.push(() => firewall.close());
    const app = await buildApp({ firewall });
    cleanups.push(() => void app.close());
    const hostEntries = async () => (await firewall.datapath.maps.srcHostV4.lookupAll()).count;
    const listed = async () => (await app.inject('/v1/blocks?limit=1000')).json().items.map((b: { cidr: string }) => b.cidr);

    expect((await app.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.0.1' } })).statusCode).toBe(201);
    fillDisk(join(fs.dir, 'filler'));

    const items = Array.from({ length: 3000 }, (_, i) => ({ cidr: `10.1.${i >> 8}.${i & 255}`, comment: 'x'.repeat(64) }));
    const bulk = await app.inject({ method: 'POST', url: '/v1/blocks/bulk', payload: { items } });
    expect(bulk.statusCode).toBe(507);
    expect(bulk.json().error).toMatchObject({ code: 'STORE_FULL', message: expect.stringMatching(/disk holding the rule store is full/) });
    expect(await hostEntries()).toBe(1);
    expect(await listed()).toEqual(['198.18.0.1/32']);

    // A delete on a full disk either succeeds or changes nothing: listed if and only if enforced.
    const del = await app.inject({ method: 'DELETE', url: '/v1/blocks?cidr=198.18.0.1/32' });
    expect([204, 507]).toContain(del.statusCode);
    expect(await hostEntries()).toBe((await listed()).length);

    rmSync(join(fs.dir, 'filler'));
    const retry = await app.inject({ method: 'POST', url: '/v1/blocks/bulk', payload: { items } });
    expect(retry.json()).toEqual({ created: 3000, existing: 0 });
    expect((await app.inject('/v1/blocks?limit=1')).json().total).toBe(await hostEntries());
  });
  it('a bulk import large enough to be enforced while the worker stores it: 507, and the rules it installed come out', async () => {
    const fs = mountTmpfs('16m');
    cleanups.push(fs.unmount);
    const { firewall } = await Firewall.open(
      { objectPath: BPF_OBJECT_PATH, storePath: join(fs.dir, 'rules.sqlite'), pin: null, capacity: { cidrV4: 65536, cidrV6: 64, flows: 64 }, countersCacheMs: 1 },
      quietLog,
    );
    cleanups.push(() => firewall.close());
    const app = await buildApp({ firewall });
    cleanups.push(() => void app.close());
    const hostEntries = async () => (await firewall.datapath.maps.srcHostV4.lookupAll()).count;
    fillDisk(join(fs.dir, 'filler'));
    const items = Array.from({ length: 2 * WORKER_BATCH }, (_, i) => ({ cidr: `10.2.${i >> 8}.${i & 255}` }));
    const bulk = await app.inject({ method: 'POST', url: '/v1/blocks/bulk', payload: { items } });
    expect(bulk.statusCode).toBe(507);
    expect(bulk.json().error).toMatchObject({ code: 'STORE_FULL' });
    expect(await hostEntries()).toBe(0);
    expect((await app.inject('/v1/blocks?limit=1')).json().total).toBe(0);
    rmSync(join(fs.dir, 'filler'));
    const retry = await app.inject({ method: 'POST', url: '/v1/blocks/bulk', payload: { items } });
    expect(retry.json()).toEqual({ created: items.length, existing: 0 });
    expect(await hostEntries()).toBe(items.length);
  });
});

describe('a damaged or unwritable store is a clear error at start-up', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  });
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'xwt-store-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };
  const oneLine = (error: unknown) => {
    expect((error as Error).message).not.toContain('\n');
    return error;
  };

  it('a file that is not a database', () => {
    const path = join(tempDir(), 'rules.sqlite');
    writeFileSync(path, Buffer.alloc(8192, 0x5a));
    expect(oneLine(captureError(() => new RuleStore(path)))).toMatchObject({
      code: 'STORE_ERROR',
      message: expect.stringMatching(/^cannot open the rule store .*rules\.sqlite: the file is corrupt or truncated \(SQLITE_NOTADB\); restore it from a backup/),
    });
  });

  it('a truncated database', async () => {
    const path = join(tempDir(), 'rules.sqlite');
    const store = new RuleStore(path);
    await store.transaction('fill', () => {
      for (let i = 0; i < 5000; i++) {
        store.insertIfAbsent({ cidr: parseCidr(`10.2.${i >> 8}.${i & 255}`), direction: 'src', comment: 'a comment to fill pages', createdAt: '2026-12-01T00:00:00.000Z' });
      }
    });
    store.close();
    truncateSync(path, 64 << 10);
    const error = captureError(() => new RuleStore(path).all());
    expect(oneLine(error)).toMatchObject({ code: 'STORE_ERROR', message: expect.stringMatching(/corrupt or truncated \(SQLITE_CORRUPT/) });
  });

  it('a read-only state directory, with and without a store in it', () => {
    const fs = mountTmpfs('1m');
    cleanups.push(fs.unmount);
    new RuleStore(join(fs.dir, 'existing.sqlite')).close();
    execFileSync('mount', ['-o', 'remount,ro', fs.dir]);
    for (const name of ['rules.sqlite', 'existing.sqlite']) {
      expect(oneLine(captureError(() => new RuleStore(join(fs.dir, name))))).toMatchObject({
        code: 'STORE_ERROR',
        message: expect.stringMatching(/the state directory is not writable by the daemon \(SQLITE_(CANTOPEN|READONLY)/),
      });
    }
  });

  it('a full disk when the store is created', () => {
    const fs = mountTmpfs('256k');
    cleanups.push(fs.unmount);
    fillDisk(join(fs.dir, 'filler'));
    expect(oneLine(captureError(() => new RuleStore(join(fs.dir, 'rules.sqlite'))))).toMatchObject({ code: 'STORE_FULL' });
  });
});

function captureError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

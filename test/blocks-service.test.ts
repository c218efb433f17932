// BlockService over a real SQLite store; the kernel side is a recording fake
// here (the real maps are exercised in api.test.ts and netns-tests/).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockService, KERNEL_CHUNK, type RuleEnforcer } from '../src/rules/blocks.js';
import { RuleStore } from '../src/rules/store.js';
import type { BlockRule } from '../src/rules/model.js';
import { CapacityError, DatapathError, undoFailuresOf, withUndoFailures } from '../src/errors.js';

/** The kernel side as a map of rule ids; calls can be made to fail (all or nothing, as the real one). */
class RecordingEnforcer implements RuleEnforcer {
  readonly installed = new Map<number, BlockRule>();
  /** Fail the n-th installMany / removeMany call from now (1 = the next one). */
  failInstallAt: { call: number; error: Error } | undefined;
  failRemoveAt: { call: number; error: Error } | undefined;
  installCalls = 0;
  removeCalls = 0;

  async installMany(rules: readonly BlockRule[]): Promise<void> {
    this.installCalls++;
    if (this.failInstallAt && --this.failInstallAt.call === 0) throw this.failInstallAt.error;
    for (const rule of rules) this.installed.set(rule.id, rule);
  }
  async removeMany(rules: readonly BlockRule[]): Promise<void> {
    this.removeCalls++;
    if (this.failRemoveAt && --this.failRemoveAt.call === 0) throw this.failRemoveAt.error;
    for (const rule of rules) this.installed.delete(rule.id);
  }
}

/** A real store whose next COMMIT fails the way SQLite reports it. */
class FailingCommitStore extends RuleStore {
  failNextCommit: string | undefined;
  protected override commit(): void {
    const code = this.failNextCommit;
    this.failNextCommit = undefined;
    if (code) throw new Database.SqliteError(`injected COMMIT failure (${code})`, code);
    super.commit();
  }
}

class ErrorLog {
  readonly lines: Array<{ details: object; message: string }> = [];
  error(details: object, message: string): void {
    this.lines.push({ details, message });
  }
}

const fixedNow = () => new Date('2026-11-25T12:00:00.000Z');

describe('BlockService', () => {
  let dir: string;
  let dbPath: string;
  let store: FailingCommitStore;
  let enforcer: RecordingEnforcer;
  let log: ErrorLog;
  let blocks: BlockService;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xw-store-'));
    dbPath = join(dir, 'rules.sqlite');
    store = new FailingCommitStore(dbPath);
    enforcer = new RecordingEnforcer();
    log = new ErrorLog();
    blocks = new BlockService(store, enforcer, { now: fixedNow, log });
  });

  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Store and kernel hold exactly these CIDRs (by id). */
  const expectStoreAndKernel = (cidrs: string[]) => {
    const stored = blocks.all();
    expect(stored.map((r) => r.cidr)).toEqual(cidrs);
    expect([...enforcer.installed.keys()].sort((a, b) => a - b)).toEqual(stored.map((r) => r.id));
  };

  it('stores canonical rules, enforces them, and is idempotent per CIDR and direction', async () => {
    const first = await blocks.add({ cidr: 'FD00:198:0::/48', comment: 'scanner' });
    expect(first).toMatchObject({ created: true, rule: { cidr: 'fd00:198::/48', direction: 'src', comment: 'scanner', createdAt: '2026-11-25T12:00:00.000Z' } });
    expect(enforcer.installed.get(first.rule.id)).toMatchObject({ family: 6, prefixLen: 48 });

    const again = await blocks.add({ cidr: 'fd00:198::/48' });
    expect(again).toEqual({ created: false, rule: first.rule });

    const dst = await blocks.add({ cidr: 'fd00:198::/48', direction: 'dst' });
    expect(dst.created).toBe(true);
    expect(enforcer.installed.size).toBe(2);
  });

  it('survives a reopen of the store (durable)', async () => {
    const { rule } = await blocks.add({ cidr: '198.18.7.0/24' });
    const reopened = new BlockService(new RuleStore(dbPath), enforcer, { now: fixedNow });
    expect(reopened.all()).toEqual([rule]);
    expect(reopened.all()[0]!.network).toEqual(Buffer.from([198, 18, 7, 0]));
  });

  it('commits nothing when the kernel refuses the rule', async () => {
    enforcer.failInstallAt = { call: 1, error: new CapacityError('the kernel map is full') };
    await expect(blocks.add({ cidr: '198.18.7.0/24' })).rejects.toThrow(CapacityError);
    expect(blocks.all()).toEqual([]);
    expect((await blocks.add({ cidr: '198.18.7.0/24' })).created).toBe(true);
  });

  it('rejects bad input without storing anything', async () => {
    await expect(blocks.add({ cidr: '198.18.7.1/24' })).rejects.toThrow(expect.objectContaining({ code: 'INVALID_CIDR' }));
    await expect(blocks.add({ cidr: '198.18.7.0/24', comment: 'x'.repeat(1025) })).rejects.toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(blocks.all()).toEqual([]);
    expect(enforcer.installed.size).toBe(0);
  });

  it('pages, and filters by an address the prefix contains', async () => {
    for (const cidr of ['198.18.0.0/15', '198.18.7.0/24', '198.19.0.0/16', 'fd00:198::/48']) await blocks.add({ cidr });
    expect(blocks.list({ limit: 2 })).toMatchObject({ total: 4, items: [{ cidr: '198.18.0.0/15' }, { cidr: '198.18.7.0/24' }] });
    expect(blocks.list({ limit: 2, offset: 2 }).items.map((r) => r.cidr)).toEqual(['198.19.0.0/16', 'fd00:198::/48']);
    expect(blocks.list({ contains: '198.18.7.7' }).items.map((r) => r.cidr)).toEqual(['198.18.0.0/15', '198.18.7.0/24']);
    expect(blocks.list({ contains: 'fd00:198::9' }).total).toBe(1);
    expect(blocks.list({ contains: '198.20.0.1' }).total).toBe(0);
    expect(() => blocks.list({ contains: '198.18.0.0/15' })).toThrow(expect.objectContaining({ code: 'INVALID_CIDR' }));
    expect(() => blocks.list({ limit: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('imports many rules at once, counting existing and repeated ones', async () => {
    await blocks.add({ cidr: '198.18.1.0/24' });
    const result = await blocks.addMany([
      { cidr: '198.18.1.0/24' },
      { cidr: '198.18.2.0/24', comment: 'feed' },
      { cidr: '198.18.2.0/24' },
      { cidr: 'fd00:198::/48', direction: 'dst' },
    ]);
    expect(result).toEqual({ created: 2, existing: 2 });
    expect(blocks.all().map((r) => `${r.cidr} ${r.direction}`)).toEqual(['198.18.1.0/24 src', '198.18.2.0/24 src', 'fd00:198::/48 dst']);
    expect(enforcer.installed.size).toBe(3);
  });

  it('imports all or nothing: an invalid item or a kernel refusal leaves no trace', async () => {
    await expect(blocks.addMany([{ cidr: '198.18.1.0/24' }, { cidr: '198.18.2.1/24' }])).rejects.toThrow(
      expect.objectContaining({ code: 'INVALID_CIDR', message: expect.stringMatching(/^items\[1\]: .*host bits/) }),
    );
    await expect(blocks.addMany([{ cidr: '198.18.1.0/24', comment: 'x'.repeat(2000) }])).rejects.toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^items\[0\]: comment/) }),
    );
    enforcer.failInstallAt = { call: 1, error: new CapacityError('the kernel map is full') };
    await expect(blocks.addMany([{ cidr: '198.18.1.0/24' }, { cidr: '198.18.2.0/24' }])).rejects.toThrow(CapacityError);
    expect(blocks.all()).toEqual([]);
    expect(enforcer.installed.size).toBe(0);
  });

  it('serialises changes: a bulk import and a single add of the same CIDR create it once', async () => {
    const bulk = blocks.addMany([{ cidr: '198.18.1.0/24' }]);
    const single = blocks.add({ cidr: '198.18.1.0/24' });
    const [{ created }, { created: singleCreated }] = await Promise.all([bulk, single]);
    expect(created + (singleCreated ? 1 : 0)).toBe(1);
    expect(blocks.all()).toHaveLength(1);
    expect(enforcer.installed.size).toBe(1);
  });

  it('removes by id and by CIDR (one direction or both), with NOT_FOUND when absent', async () => {
    const src = (await blocks.add({ cidr: '198.18.7.0/24' })).rule;
    await blocks.add({ cidr: '198.18.7.0/24', direction: 'dst' });
    await blocks.add({ cidr: '198.18.9.0/24' });
    expect(await blocks.removeById(src.id)).toEqual(src);
    await expect(blocks.removeById(src.id)).rejects.toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect((await blocks.removeByCidr('198.18.7.0/24')).map((r) => r.direction)).toEqual(['dst']);
    await expect(blocks.removeByCidr('198.18.7.0/24')).rejects.toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    await expect(blocks.removeByCidr('198.18.9.0/24', 'dst')).rejects.toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(await blocks.removeByCidr('198.18.9.0/24', 'src')).toHaveLength(1);
    expect(enforcer.installed.size).toBe(0);
    expect(blocks.all()).toEqual([]);
  });

  describe('failures at every step leave store and kernel equal', () => {
    const many = (count: number, from = 0) =>
      Array.from({ length: count }, (_, i) => ({ cidr: `10.${(from + i) >> 16}.${((from + i) >> 8) & 255}.${(from + i) & 255}/32` }));

    it('a COMMIT that fails (I/O error) stores nothing and enforces nothing', async () => {
      await blocks.add({ cidr: '198.18.1.0/24' });
      store.failNextCommit = 'SQLITE_IOERR_WRITE';
      await expect(blocks.add({ cidr: '198.18.2.0/24' })).rejects.toThrow(expect.objectContaining({ code: 'STORE_ERROR' }));
      store.failNextCommit = 'SQLITE_IOERR_WRITE';
      await expect(blocks.addMany(many(100))).rejects.toThrow(expect.objectContaining({ code: 'STORE_ERROR' }));
      expect(enforcer.installCalls).toBe(1); // the kernel was never asked
      expectStoreAndKernel(['198.18.1.0/24']);
    });

    it('a full disk at COMMIT is STORE_FULL, with nothing applied', async () => {
      store.failNextCommit = 'SQLITE_FULL';
      await expect(blocks.addMany(many(10))).rejects.toThrow(
        expect.objectContaining({ code: 'STORE_FULL', message: expect.stringMatching(/disk .* is full/) }),
      );
      expectStoreAndKernel([]);
    });

    it('another process holding the write lock is STORE_BUSY, with nothing applied', async () => {
      const other = new Database(dbPath);
      try {
        other.exec('BEGIN IMMEDIATE');
        await expect(blocks.add({ cidr: '198.18.1.0/24' })).rejects.toThrow(expect.objectContaining({ code: 'STORE_BUSY' }));
        other.exec('ROLLBACK');
      } finally {
        other.close();
      }
      expectStoreAndKernel([]);
      expect((await blocks.add({ cidr: '198.18.1.0/24' })).created).toBe(true);
    });

    it('a kernel batch failing halfway through a bulk takes the earlier batches out and deletes the rows', async () => {
      await blocks.add({ cidr: '198.18.1.0/24' });
      enforcer.failInstallAt = { call: 3, error: new DatapathError('injected: batch 3 refused') };
      await expect(blocks.addMany(many(KERNEL_CHUNK * 3))).rejects.toThrow('injected: batch 3 refused');
      expect(enforcer.installCalls).toBe(1 + 3);
      expect(enforcer.removeCalls).toBe(2);
      expectStoreAndKernel(['198.18.1.0/24']);
      expect(log.lines).toEqual([]);
      // Nothing of the failed import lingers: the same items import cleanly now.
      expect(await blocks.addMany(many(10))).toEqual({ created: 10, existing: 0 });
    });

    it('a failing undo keeps the original error, logs both, and leaves the rules stored and enforced', async () => {
      enforcer.failInstallAt = { call: 2, error: new CapacityError('injected: kernel map full') };
      enforcer.failRemoveAt = { call: 1, error: new DatapathError('injected: undo refused') };
      const failure = await blocks.addMany(many(KERNEL_CHUNK * 2)).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(CapacityError);
      expect(failure).toMatchObject({ code: 'CAPACITY_EXCEEDED', message: expect.stringMatching(/kernel map full; undoing it failed too \(injected: undo refused\)/) });
      expect(undoFailuresOf(failure)).toHaveLength(1);
      expect(log.lines).toHaveLength(1);
      expect(log.lines[0]!.details).toMatchObject({ err: failure, undoFailures: [expect.objectContaining({ message: 'injected: undo refused' })] });
      // The first batch could not be taken out: its rows stay, listed and deletable, never enforced-but-unlisted;
      // the refused batch's rows are gone.
      expect(blocks.all()).toHaveLength(KERNEL_CHUNK);
      expect([...enforcer.installed.keys()]).toEqual(blocks.all().map((r) => r.id));
    });

    it('a kernel batch that failed and could not undo itself is taken out by the service too', async () => {
      await blocks.add({ cidr: '198.18.1.0/24' });
      const install = enforcer.installMany.bind(enforcer);
      let calls = 0;
      // The second batch lands in the kernel, fails, and its own undo fails: it is left in.
      enforcer.installMany = async (rules) => {
        if (++calls !== 2) return install(rules);
        for (const rule of rules) enforcer.installed.set(rule.id, rule);
        throw withUndoFailures(new DatapathError('injected: batch 2 refused'), [new DatapathError('injected: its undo refused')]);
      };
      await expect(blocks.addMany(many(KERNEL_CHUNK * 2))).rejects.toThrow(/injected: batch 2 refused; undoing it failed too \(injected: its undo refused\)/);
      expectStoreAndKernel(['198.18.1.0/24']);
      expect(log.lines).toHaveLength(1);
    });

    it('a remove the kernel refuses changes nothing', async () => {
      const { rule } = await blocks.add({ cidr: '198.18.1.0/24' });
      enforcer.failRemoveAt = { call: 1, error: new DatapathError('injected: delete refused') };
      await expect(blocks.removeById(rule.id)).rejects.toThrow('injected: delete refused');
      expectStoreAndKernel(['198.18.1.0/24']);
    });

    it('a remove whose COMMIT fails puts the rules back into the kernel', async () => {
      await blocks.add({ cidr: '198.18.1.0/24' });
      await blocks.add({ cidr: '198.18.1.0/24', direction: 'dst' });
      store.failNextCommit = 'SQLITE_FULL';
      await expect(blocks.removeByCidr('198.18.1.0/24')).rejects.toThrow(expect.objectContaining({ code: 'STORE_FULL' }));
      expectStoreAndKernel(['198.18.1.0/24', '198.18.1.0/24']);
      expect(log.lines).toEqual([]);
    });

    it('a remove whose COMMIT and undo both fail reports the COMMIT failure and logs both', async () => {
      const { rule } = await blocks.add({ cidr: '198.18.1.0/24' });
      store.failNextCommit = 'SQLITE_IOERR_WRITE';
      enforcer.failInstallAt = { call: 1, error: new DatapathError('injected: reinstall refused') };
      await expect(blocks.removeById(rule.id)).rejects.toThrow(
        expect.objectContaining({ code: 'STORE_ERROR', message: expect.stringMatching(/undoing it failed too \(injected: reinstall refused\)/) }),
      );
      expect(log.lines).toHaveLength(1);
      expect(blocks.all()).toEqual([rule]); // still listed, so it can be deleted again
    });
  });

  describe('capacity bounds every stored form', () => {
    const limited = () => new BlockService(store, enforcer, { now: fixedNow, limits: { 4: 3, 6: 2 } });

    it.each([
      ['/32 (host hash)', '198.18.9.9/32'],
      ['/24 (DIR-24 table)', '198.18.9.0/24'],
      ['/16 (DIR-24 table)', '198.20.0.0/16'],
      ['/25 (trie)', '198.18.9.128/25'],
    ])('an IPv4 %s past capacity.cidrV4 is CAPACITY_EXCEEDED, and nothing is stored', async (_form, cidr) => {
      const service = limited();
      for (const c of ['198.18.1.0/24', '198.18.2.2/32', '198.18.3.0/26']) await service.add({ cidr: c });
      await expect(service.add({ cidr })).rejects.toThrow(expect.objectContaining({ code: 'CAPACITY_EXCEEDED', message: expect.stringMatching(/capacity\.cidrV4/) }));
      await expect(service.add({ cidr, direction: 'dst' })).rejects.toThrow(CapacityError);
      expect(service.all()).toHaveLength(3);
      expect(enforcer.installed.size).toBe(3);
      // IPv6 has its own limit.
      expect((await service.add({ cidr: 'fd00:198::/48' })).created).toBe(true);
    });

    it('IPv6 /128 and prefixes count against capacity.cidrV6; a bulk past it stores none of its items', async () => {
      const service = limited();
      await service.add({ cidr: 'fd00:198::1/128' });
      await expect(service.addMany([{ cidr: 'fd00:198::/48' }, { cidr: 'fd00:198:1::/48' }])).rejects.toThrow(
        expect.objectContaining({ code: 'CAPACITY_EXCEEDED', message: expect.stringMatching(/^3 IPv6 rules would exceed the capacity of 2/) }),
      );
      expect(service.all().map((r) => r.cidr)).toEqual(['fd00:198::1/128']);
      // Existing and repeated items do not count; a removal makes room.
      expect(await service.addMany([{ cidr: 'fd00:198::1/128' }, { cidr: 'fd00:198::/48' }, { cidr: 'fd00:198::/48' }])).toEqual({ created: 1, existing: 2 });
      await service.removeByCidr('fd00:198::1/128');
      expect((await service.add({ cidr: 'fd00:198:1::/48' })).created).toBe(true);
    });

    it('counts rules stored before the service started', async () => {
      for (const cidr of ['198.18.1.0/24', '198.18.2.0/24', '198.18.3.0/24']) await blocks.add({ cidr });
      await expect(limited().add({ cidr: '198.18.4.0/24' })).rejects.toThrow(CapacityError);
    });
  });

  it('runs one bulk import at a time: a second gets BUSY before its items are read', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let secondRead = false;
    async function* slow() {
      yield [{ cidr: '198.18.1.0/24' }];
      await gate;
      yield [{ cidr: '198.18.2.0/24' }];
    }
    async function* second() {
      secondRead = true;
      yield [{ cidr: '198.18.3.0/24' }];
    }
    const first = blocks.addMany(slow());
    await expect(blocks.addMany(second())).rejects.toThrow(expect.objectContaining({ code: 'BUSY' }));
    expect(secondRead).toBe(false);
    // Single changes are not bulk imports.
    expect((await blocks.add({ cidr: '198.18.9.0/24' })).created).toBe(true);
    release();
    expect(await first).toEqual({ created: 2, existing: 0 });
    expect(await blocks.addMany(second())).toEqual({ created: 1, existing: 0 });
  });
});

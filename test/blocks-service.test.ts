// BlockService over a real SQLite store; the kernel side is a recording fake
// here (the real maps are exercised in api.test.ts and netns-tests/).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { BlockService, type RuleEnforcer } from '../src/rules/blocks.js';
import { RuleStore } from '../src/rules/store.js';
import type { BlockRule } from '../src/rules/model.js';
import { CapacityError } from '../src/errors.js';

class RecordingEnforcer implements RuleEnforcer {
  readonly installed = new Map<number, BlockRule>();
  failNextInstall: Error | undefined;
  async installMany(rules: readonly BlockRule[]): Promise<void> {
    if (this.failNextInstall) {
      const error = this.failNextInstall;
      this.failNextInstall = undefined;
      throw error; // all or nothing: none of them installed
    }
    for (const rule of rules) this.installed.set(rule.id, rule);
  }
  async removeMany(rules: readonly BlockRule[]): Promise<void> {
    for (const rule of rules) this.installed.delete(rule.id);
  }
}

const fixedNow = () => new Date('2026-11-25T12:00:00.000Z');

describe('BlockService', () => {
  let dbPath: string;
  let enforcer: RecordingEnforcer;
  let blocks: BlockService;

  beforeEach(() => {
    dbPath = join(mkdtempSync(join(tmpdir(), 'xw-store-')), 'rules.sqlite');
    enforcer = new RecordingEnforcer();
    blocks = new BlockService(new RuleStore(dbPath), enforcer, { now: fixedNow });
  });

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
    enforcer.failNextInstall = new CapacityError('the kernel map is full');
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
    enforcer.failNextInstall = new CapacityError('the kernel map is full');
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
});

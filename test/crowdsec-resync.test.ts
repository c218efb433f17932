// The CrowdSec bouncer's periodic resync against the LAPI double (real HTTP
// on 127.0.0.1) and an in-memory firewall that records what it is asked:
// every `resync` a pull asks startup=true and reconciles the blocks of origin
// crowdsec with the full answer, adding before removing, writing only the
// drift, and counting it. The clock is injected; counts are exact.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CROWDSEC_ORIGIN, CrowdsecBouncer, DEFAULT_RESYNC_MS, type CrowdsecTarget, type TargetBlock } from '../src/integrations/crowdsec.js';
import type { BlockWithExtras } from '../src/policy/block-meta.js';
import { LapiDouble } from './lib/lapi-double.js';

const T0 = Date.parse('2026-12-02T12:00:00Z');
const KEY = 'bouncer-key-resync';
const MINUTE = 60_000;
let wallMs = T0;
const now = () => wallMs;
const iso = (ms: number) => new Date(ms).toISOString();

interface FakeBlock {
  expiresAt: string | null;
  origin: string;
}

/** The firewall as the bouncer sees it: source blocks by CIDR, a later expiry wins (as BlockMetaService merges). */
class FakeFirewall implements CrowdsecTarget {
  readonly blocks = new Map<string, FakeBlock>();
  /** Each call, in order, with its size. */
  readonly calls: string[] = [];
  /** For each removeMany: the banned CIDRs that were blocked at that moment (no gap). */
  readonly atRemove: Array<Set<string>> = [];

  check(cidr: string): void {
    if (cidr.endsWith('/0')) throw new Error(`${cidr} blocks everything`);
  }

  async addMany(items: BlockWithExtras[]): Promise<void> {
    this.calls.push(`add ${items.length}`);
    for (const { cidr, ttl, origin } of items) {
      const expiresAt = iso(wallMs + ttl! * 1000);
      const current = this.blocks.get(cidr);
      if (!current || (current.expiresAt !== null && Date.parse(expiresAt) > Date.parse(current.expiresAt))) {
        this.blocks.set(cidr, { expiresAt, origin: origin! });
      }
    }
  }

  owned(): TargetBlock[] {
    return [...this.blocks].filter(([, b]) => b.origin === CROWDSEC_ORIGIN).map(([cidr, b]) => ({ cidr, direction: 'src', expiresAt: b.expiresAt }));
  }

  block(cidr: string): TargetBlock | undefined {
    const b = this.blocks.get(cidr);
    return b && { cidr, direction: 'src', expiresAt: b.expiresAt };
  }

  async removeMany(keys: Array<{ cidr: string }>): Promise<void> {
    this.calls.push(`remove ${keys.length}`);
    this.atRemove.push(new Set(this.blocks.keys()));
    for (const { cidr } of keys) if (this.blocks.get(cidr)?.origin === CROWDSEC_ORIGIN) this.blocks.delete(cidr);
  }

  cidrs(): string[] {
    return [...this.blocks.keys()].sort();
  }
}

describe('periodic resync', () => {
  let lapi: LapiDouble;
  let target: FakeFirewall;
  let logged: Array<{ level: string; message: string; details: object }>;
  const log = {
    info: (details: object, message: string) => logged.push({ level: 'info', message, details }),
    warn: (details: object, message: string) => logged.push({ level: 'warn', message, details }),
  };
  const bouncerWith = (resyncMs?: number) =>
    new CrowdsecBouncer({ url: lapi.url, apiKey: KEY, refreshMs: 10_000, ...(resyncMs !== undefined && { resyncMs }) }, target, { now, log, timeoutMs: 5_000 });
  const urls = () => lapi.requests.map((r) => r.url.replace('/v1/decisions/stream', ''));

  beforeEach(async () => {
    wallMs = T0;
    lapi = await new LapiDouble(KEY, now).start();
    target = new FakeFirewall();
    logged = [];
  });
  afterEach(() => lapi.close());

  it('the default is 10 minutes', () => expect(DEFAULT_RESYNC_MS).toBe(600_000));

  it('a decision no delta carries (LAPI 1.4\'s import race) is blocked by the next resync, which counts it as drift and writes only it', async () => {
    const bouncer = bouncerWith(10 * MINUTE);
    for (let i = 0; i < 100; i++) lapi.add(`198.18.1.${i}`, { durationMs: 60 * MINUTE });
    await bouncer.pull(); // startup
    expect(target.calls).toEqual(['add 100']);
    wallMs += 10_000;
    lapi.add('198.18.2.1', { durationMs: 60 * MINUTE });
    lapi.add('198.18.2.2', { durationMs: 60 * MINUTE, late: true });
    lapi.add('198.18.6.0/24', { durationMs: 60 * MINUTE, late: true });
    await bouncer.pull(); // delta: carries 198.18.2.1 only
    expect(target.blocks.has('198.18.2.1/32')).toBe(true);
    expect(target.blocks.has('198.18.2.2/32')).toBe(false);
    for (let t = 2; t <= 59; t++) {
      wallMs = T0 + t * 10_000;
      await bouncer.pull(); // deltas: nothing new
    }
    expect(target.blocks.size).toBe(101);
    expect(bouncer.status().resync).toEqual({ runs: 0, added: 0, extended: 0, removed: 0, lastAt: null });

    wallMs = T0 + 10 * MINUTE; // 10 min after the startup pull was asked
    await bouncer.pull();
    expect(urls()).toEqual(['?startup=true', ...Array(59).fill(''), '?startup=true']);
    expect(target.calls).toEqual(['add 100', 'add 1', 'add 2']);
    expect(target.blocks.get('198.18.2.2/32')).toEqual({ expiresAt: iso(T0 + 10_000 + 60 * MINUTE), origin: 'crowdsec' });
    expect(target.blocks.get('198.18.6.0/24')).toEqual({ expiresAt: iso(T0 + 10_000 + 60 * MINUTE), origin: 'crowdsec' });
    expect(target.blocks.size).toBe(103);
    expect(bouncer.status()).toMatchObject({ state: 'ok', entries: 103, resync: { runs: 1, added: 2, extended: 0, removed: 0, lastAt: iso(T0 + 10 * MINUTE) } });
    expect(logged.filter((l) => l.level === 'warn')).toEqual([
      { level: 'warn', message: 'crowdsec: resync fixed drift the decision deltas had missed', details: { integration: 'crowdsec', added: 2, extended: 0, removed: 0, active: 103 } },
    ]);

    // Deltas again, the next resync 10 min after this one; in sync, it writes nothing.
    wallMs += 10_000;
    await bouncer.pull();
    expect(urls().at(-1)).toBe('');
    wallMs = T0 + 20 * MINUTE;
    await bouncer.pull();
    expect(urls().at(-1)).toBe('?startup=true');
    expect(target.calls).toEqual(['add 100', 'add 1', 'add 2']);
    expect(bouncer.status().resync).toEqual({ runs: 2, added: 2, extended: 0, removed: 0, lastAt: iso(T0 + 20 * MINUTE) });
    expect(logged.at(-1)).toEqual({ level: 'info', message: 'crowdsec: resync found no drift', details: { integration: 'crowdsec', added: 0, extended: 0, removed: 0, active: 103 } });
  });

  it('repairs every kind of drift, adding before removing, so blocks wanted on both sides never go', async () => {
    const bouncer = bouncerWith(10 * MINUTE);
    const ids = Array.from({ length: 1000 }, (_, i) => lapi.add(`198.18.${10 + (i >> 8)}.${i & 255}`, { durationMs: 60 * MINUTE }));
    lapi.add('fd00:198:1::/64', { durationMs: 60 * MINUTE });
    await bouncer.pull();
    expect(target.blocks.size).toBe(1001);
    // Behind the bouncer's back: two of its blocks removed, one cut short, one
    // left over that no decision bans, and an operator's permanent block on an
    // address a decision bans too (not drift: it covers the decision).
    target.blocks.delete('198.18.10.0/32');
    target.blocks.delete('fd00:198:1::/64');
    target.blocks.set('198.18.10.1/32', { expiresAt: iso(T0 + 5 * MINUTE), origin: 'crowdsec' });
    target.blocks.set('198.18.99.9/32', { expiresAt: iso(T0 + 60 * MINUTE), origin: 'crowdsec' });
    target.blocks.set('198.18.50.1/32', { expiresAt: null, origin: 'api' });
    lapi.add('198.18.50.1', { durationMs: 60 * MINUTE, late: true });
    // A decision deleted is a delta like any other (not drift).
    lapi.delete(ids[999]!);
    wallMs += 10_000;
    await bouncer.pull();
    expect(target.calls).toEqual(['add 1001', 'remove 1']);

    wallMs = T0 + 10 * MINUTE;
    await bouncer.pull();
    // One add of the drift (2 missing, 1 cut short), then one removal.
    expect(target.calls.slice(2)).toEqual(['add 3', 'remove 1']);
    const wanted = [...Array(999).keys()].map((i) => `198.18.${10 + (i >> 8)}.${i & 255}/32`).concat('fd00:198:1::/64');
    const atRemove = target.atRemove.at(-1)!;
    expect(wanted.filter((cidr) => !atRemove.has(cidr))).toEqual([]);
    expect(target.cidrs()).toEqual([...wanted, '198.18.50.1/32'].sort());
    expect(target.blocks.get('198.18.10.1/32')!.expiresAt).toBe(iso(T0 + 60 * MINUTE));
    expect(target.blocks.get('198.18.50.1/32')).toEqual({ expiresAt: null, origin: 'api' });
    expect(bouncer.status()).toMatchObject({ entries: 1001, resync: { runs: 1, added: 2, extended: 1, removed: 1 } });
  });

  it('a burst (a delta with a batch of 50 or more) is followed by a resync once a delta carries nothing new: an import\'s lost batch is back in two refreshes, not ten minutes', async () => {
    const bouncer = bouncerWith(10 * MINUTE);
    await bouncer.pull();
    // A delta of 49 is no burst.
    for (let i = 0; i < 49; i++) lapi.add(`198.18.1.${i}`);
    wallMs += 10_000;
    await bouncer.pull();
    wallMs += 10_000;
    await bouncer.pull();
    wallMs += 10_000;
    await bouncer.pull();
    expect(urls()).toEqual(['?startup=true', '', '', '']);
    // An import: 150 in two pulls, a batch of 50 of it lost.
    for (let i = 0; i < 100; i++) lapi.add(`198.18.2.${i}`);
    for (let i = 100; i < 150; i++) lapi.add(`198.18.2.${i}`, { late: true });
    wallMs += 10_000;
    await bouncer.pull(); // 100 new: a burst
    for (let i = 0; i < 20; i++) lapi.add(`198.18.3.${i}`);
    wallMs += 10_000;
    await bouncer.pull(); // 20 new: still under way
    wallMs += 10_000;
    await bouncer.pull(); // nothing new: settled
    expect(target.blocks.size).toBe(49 + 100 + 20);
    wallMs += 10_000;
    await bouncer.pull(); // the resync
    expect(urls()).toEqual(['?startup=true', '', '', '', '', '', '', '?startup=true']);
    expect(target.blocks.size).toBe(49 + 150 + 20);
    expect(bouncer.status().resync).toEqual({ runs: 1, added: 50, extended: 0, removed: 0, lastAt: iso(T0 + 70_000) });
    // Then deltas again until the next burst or 10 min.
    wallMs += 10_000;
    await bouncer.pull();
    wallMs += 10_000;
    await bouncer.pull();
    expect(urls().slice(-2)).toEqual(['', '']);
  });

  it('with resync 0 a burst does not resync either', async () => {
    const bouncer = bouncerWith(0);
    await bouncer.pull();
    for (let i = 0; i < 60; i++) lapi.add(`198.18.2.${i}`);
    for (let t = 1; t <= 3; t++) {
      wallMs += 10_000;
      await bouncer.pull();
    }
    expect(urls()).toEqual(['?startup=true', '', '', '']);
  });

  it('resync 0: only the first pull and recovery after a failure ask startup=true, and neither counts as a resync', async () => {
    const bouncer = bouncerWith(0);
    await bouncer.pull();
    lapi.add('198.18.2.2', { durationMs: 24 * 60 * MINUTE, late: true });
    for (let t = 1; t <= 6; t++) {
      wallMs = T0 + t * 20 * MINUTE;
      await bouncer.pull();
    }
    expect(urls()).toEqual(['?startup=true', '', '', '', '', '', '']);
    expect(target.blocks.size).toBe(0);
    lapi.fault({ kind: 'status', status: 500 });
    await bouncer.pull();
    await bouncer.pull();
    expect(urls().slice(-2)).toEqual(['', '?startup=true']);
    expect(target.cidrs()).toEqual(['198.18.2.2/32']);
    expect(bouncer.status()).toMatchObject({ state: 'ok', updates: { ok: 8, error: 1 }, resync: { runs: 0, added: 0, extended: 0, removed: 0, lastAt: null } });
  });

  it('the resync interval counts from the last full pull: a recovery pull restarts it', async () => {
    const bouncer = bouncerWith(10 * MINUTE);
    await bouncer.pull();
    wallMs = T0 + 8 * MINUTE;
    lapi.fault({ kind: 'body', body: 'not json' });
    await bouncer.pull();
    wallMs = T0 + 9 * MINUTE;
    await bouncer.pull(); // recovery: startup=true
    wallMs = T0 + 18 * MINUTE;
    await bouncer.pull(); // 9 min after the recovery: a delta
    wallMs = T0 + 19 * MINUTE;
    await bouncer.pull(); // 10 min after: the resync
    expect(urls()).toEqual(['?startup=true', '', '?startup=true', '', '?startup=true']);
    expect(bouncer.status().resync).toMatchObject({ runs: 1, lastAt: iso(T0 + 19 * MINUTE) });
  });

  it('a failed resync is a failure like any other: the blocks stay, and the next pull asks startup=true again', async () => {
    const bouncer = bouncerWith(10 * MINUTE);
    lapi.add('198.18.5.5');
    await bouncer.pull();
    wallMs = T0 + 10 * MINUTE;
    lapi.fault({ kind: 'status', status: 500 });
    await bouncer.pull();
    expect(bouncer.status()).toMatchObject({ state: 'degraded', resync: { runs: 0 } });
    expect(target.cidrs()).toEqual(['198.18.5.5/32']);
    wallMs += 10_000;
    await bouncer.pull();
    expect(urls()).toEqual(['?startup=true', '?startup=true', '?startup=true']);
    // The pull after a failure recovers (startup), it is not counted as a periodic resync.
    expect(bouncer.status()).toMatchObject({ state: 'ok', resync: { runs: 0 } });
  });
});

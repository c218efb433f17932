// ttl/expiresAt and dryRun on blocks: the kernel carries them (xw_block_meta),
// re-blocking keeps the later expiry, a dry-run block passes under would_drop,
// and the sweeper removes expired blocks. The wall clock is injected; the
// monotonic one is the kernel's. Needs root.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { openTestFirewall } from './lib/firewall.js';
import { ether, ipv4, udp } from './lib/packets.js';
import { xdpCtx } from './lib/policy.js';
import { Feature, Layout } from '../src/datapath/abi.js';

const T0 = Date.parse('2026-12-02T12:00:00Z');
let wallMs = T0;
let firewall: Firewall;
let app: FastifyInstance;

beforeAll(async () => {
  firewall = await openTestFirewall(undefined, { wallMs: () => wallMs, monotonicNs: () => process.hrtime.bigint() });
  app = await buildApp({ firewall });
});
afterAll(async () => {
  await app?.close();
  firewall?.close();
});

const from = (src: string) => ether(ipv4({ src, dst: '198.18.7.9' }, udp({ sport: 1, dport: 7000 })));
const ingress = (frame: Buffer) => firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval;
const post = (payload: object) => app.inject({ method: 'POST', url: '/v1/blocks', payload });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('blocks with ttl', () => {
  it('concurrent blocks with and without ttl each get their own transaction (no nesting on the one connection)', async () => {
    const responses = await Promise.all(
      Array.from({ length: 16 }, (_, i) => post({ cidr: `198.18.${100 + i}.0/24`, ...(i % 2 === 0 && { ttl: 600 }), ...(i % 4 === 1 && { dryRun: true }) })),
    );
    expect(responses.map((r) => r.statusCode)).toEqual(new Array(16).fill(201));
    const stored = await Promise.all(responses.map((r) => app.inject(`/v1/blocks/${r.json().id}`)));
    expect(stored.map((r) => r.json().expiresAt !== null)).toEqual(Array.from({ length: 16 }, (_, i) => i % 2 === 0));
    expect(stored.map((r) => r.json().dryRun)).toEqual(Array.from({ length: 16 }, (_, i) => i % 4 === 1));
    await Promise.all(responses.map((r) => app.inject({ method: 'DELETE', url: `/v1/blocks/${r.json().id}` })));
  });

  it('re-blocking keeps the later expiry with 200, and a permanent block stays permanent', async () => {
    const first = await post({ cidr: '198.18.30.0/24', ttl: 60 });
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({ expiresAt: '2026-12-02T12:01:00.000Z', dryRun: false });
    expect(ingress(from('198.18.30.1'))).toBe(1);
    const longer = await post({ cidr: '198.18.30.0/24', ttl: 120 });
    expect(longer.statusCode).toBe(200);
    expect(longer.json()).toMatchObject({ id: first.json().id, expiresAt: '2026-12-02T12:02:00.000Z' });
    expect((await post({ cidr: '198.18.30.0/24', ttl: 30 })).json().expiresAt).toBe('2026-12-02T12:02:00.000Z');
    expect((await post({ cidr: '198.18.30.0/24' })).json().expiresAt).toBeNull();
    expect((await post({ cidr: '198.18.30.0/24', ttl: 30 })).json().expiresAt).toBeNull();
    await app.inject({ method: 'DELETE', url: `/v1/blocks/${first.json().id}` });
    // Its extras went with it: blocking again starts afresh.
    expect((await post({ cidr: '198.18.30.0/24' })).json()).toMatchObject({ expiresAt: null, dryRun: false });
    await app.inject({ method: 'DELETE', url: '/v1/blocks?cidr=198.18.30.0/24' });
  });

  it('the kernel stops matching an expired block by itself; the sweeper then removes it', async () => {
    wallMs = T0;
    const block = (await post({ cidr: '198.18.31.0/24', ttl: 1 })).json();
    expect(ingress(from('198.18.31.1'))).toBe(1);
    await sleep(1_100);
    expect(ingress(from('198.18.31.1'))).toBe(2);
    expect(firewall.blocks.get(block.id).id).toBe(block.id); // not swept yet: the wall clock stands still
    wallMs = T0 + 1_000;
    expect(await firewall.sweepExpired()).toEqual({ rules: [], blocks: 1 });
    expect((await app.inject({ method: 'GET', url: `/v1/blocks/${block.id}` })).statusCode).toBe(404);
  });

  it('refuses ttl with expiresAt, and an expiry in the past', async () => {
    expect((await post({ cidr: '198.18.32.0/24', ttl: 5, expiresAt: '2099-01-01T00:00:00Z' })).json().error.code).toBe('INVALID_ARGUMENT');
    expect((await post({ cidr: '198.18.32.0/24', expiresAt: '2020-01-01T00:00:00Z' })).json().error.code).toBe('INVALID_ARGUMENT');
    expect(firewall.blocks.list({ contains: '198.18.32.1' }).total).toBe(0);
  });
});

describe('dry-run blocks', () => {
  it('pass the packet, count it under would_drop and in the block\'s wouldDrop; blocking again without dryRun enforces', async () => {
    const block = await post({ cidr: '198.18.33.0/24', dryRun: true });
    expect(block.statusCode).toBe(201);
    expect(block.json().dryRun).toBe(true);
    const frame = from('198.18.33.5');
    expect(ingress(frame)).toBe(2);
    expect(ingress(frame)).toBe(2); // every packet, not only a flow's first
    const got = (await app.inject({ method: 'GET', url: `/v1/blocks/${block.json().id}` })).json();
    expect(got.wouldDrop).toEqual({ packets: 2, bytes: 2 * frame.length });
    const stats = (await app.inject({ method: 'GET', url: '/v1/stats' })).json();
    expect(stats.totals.ingress.reasons.would_drop.packets).toBe(2);
    const enforced = await post({ cidr: '198.18.33.0/24' });
    expect(enforced.statusCode).toBe(200);
    expect(enforced.json().dryRun).toBe(false);
    expect(ingress(frame)).toBe(1);
  });
});

describe('the block-meta gate (XW_FEATURE_BLOCK_META)', () => {
  const gate = () => (firewall.datapath.maps.config.lookup(Buffer.alloc(4))!.readUInt32LE(Layout.config.features) & Feature.blockMeta) !== 0;
  const metaEntries = async () => (await firewall.datapath.maps.policy.blockMeta.lookupAll()).count;

  it('is open exactly while xw_block_meta holds entries, and a dry run behind it still passes', async () => {
    expect(await metaEntries()).toBe(0);
    expect(gate()).toBe(false);
    const plain = (await post({ cidr: '198.18.40.0/24' })).json();
    expect(gate()).toBe(false); // a plain block has no metadata: denied packets skip the lookup
    expect(ingress(from('198.18.40.1'))).toBe(1);
    const dry = (await post({ cidr: '198.18.41.0/24', dryRun: true })).json();
    const timed = (await post({ cidr: '198.18.42.0/24', ttl: 600 })).json();
    expect(gate()).toBe(true);
    expect(await metaEntries()).toBe(2);
    expect(ingress(from('198.18.41.1'))).toBe(2);
    expect(ingress(from('198.18.42.1'))).toBe(1);
    await app.inject({ method: 'DELETE', url: `/v1/blocks/${dry.id}` });
    expect(gate()).toBe(true);
    await app.inject({ method: 'DELETE', url: `/v1/blocks/${timed.id}` });
    expect(await metaEntries()).toBe(0);
    expect(gate()).toBe(false);
    // Re-blocking as a dry run opens it again; making it permanent and enforced closes it.
    expect((await post({ cidr: '198.18.40.0/24', dryRun: true })).statusCode).toBe(200);
    expect(gate()).toBe(true);
    expect(ingress(from('198.18.40.1'))).toBe(2);
    expect((await post({ cidr: '198.18.40.0/24', dryRun: false })).statusCode).toBe(200);
    expect(gate()).toBe(false);
    expect(ingress(from('198.18.40.1'))).toBe(1);
    await app.inject({ method: 'DELETE', url: `/v1/blocks/${plain.id}` });
  });
});

describe('a restart', () => {
  it('restores the kernel side of dry-run and ttl blocks from the store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xw-block-meta-'));
    const storePath = join(dir, 'rules.sqlite');
    try {
      const before = await openTestFirewall(undefined, undefined, { storePath });
      const api = await buildApp({ firewall: before });
      expect((await api.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.62.0/24' } })).statusCode).toBe(201);
      expect((await api.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.60.0/24', dryRun: true } })).statusCode).toBe(201);
      expect((await api.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.61.0/24', ttl: 3600 } })).statusCode).toBe(201);
      await api.close();
      before.close();

      const after = await openTestFirewall(undefined, undefined, { storePath });
      try {
        const run = (frame: Buffer) => after.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval;
        expect(run(from('198.18.60.7'))).toBe(2); // dry run: passes, as before the restart
        expect(run(from('198.18.61.7'))).toBe(1); // ttl block, not expired: drops
        expect((await after.datapath.maps.policy.blockMeta.lookupAll()).count).toBe(2);
      } finally {
        after.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

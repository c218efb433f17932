// ttl/expiresAt, dryRun and origin in bulk imports (POST /v1/blocks/bulk,
// JSON and NDJSON): validated, merged and stored exactly as POST /v1/blocks
// does, bounded by capacity.timedBlocks (507 past it, nothing stored), and
// enforced by the kernel: a dry-run item passes under would_drop, a ttl item
// stops matching when it expires. The wall clock is injected; the monotonic
// one is the kernel's. Needs root.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { openTestFirewall } from './lib/firewall.js';
import { ether, ipv4, udp } from './lib/packets.js';
import { xdpCtx } from './lib/policy.js';

const T0 = Date.parse('2026-12-02T12:00:00Z');
const TIMED_BLOCKS = 16;
let wallMs = T0;
let firewall: Firewall;
let app: FastifyInstance;

beforeAll(async () => {
  firewall = await openTestFirewall(
    { cidrV4: 1024, cidrV6: 1024, flows: 1024, timedBlocks: TIMED_BLOCKS },
    { wallMs: () => wallMs, monotonicNs: () => process.hrtime.bigint() },
  );
  app = await buildApp({ firewall });
});
afterAll(async () => {
  await app?.close();
  firewall?.close();
});

const from = (src: string) => ether(ipv4({ src, dst: '198.18.7.9' }, udp({ sport: 1, dport: 7000 })));
const ingress = (frame: Buffer) => firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval;
const XDP_DROP = 1;
const XDP_PASS = 2;
const post = (payload: object) => app.inject({ method: 'POST', url: '/v1/blocks', payload });
const bulk = (items: object[]) => app.inject({ method: 'POST', url: '/v1/blocks/bulk', payload: { items } });
const ndjson = (items: object[]) => app.inject({
  method: 'POST', url: '/v1/blocks/bulk', headers: { 'content-type': 'application/x-ndjson' }, payload: items.map((item) => JSON.stringify(item)).join('\n'),
});
const view = async (cidr: string) => {
  const { items } = (await app.inject(`/v1/blocks?contains=${cidr.split('/')[0]}`)).json() as { items: Array<Record<string, unknown>> };
  return items.find((item) => item.cidr === cidr);
};
/** A block as the API shows it, without what differs between two blocks made alike. */
const stored = async (cidr: string) => {
  const { id: _id, cidr: _cidr, createdAt: _c, hits: _h, wouldDrop: _w, ...rest } = (await view(cidr))!;
  return rest;
};
const clear = async () => {
  for (const block of firewall.blocks.all()) await firewall.blocks.removeById(block.id);
};

describe('bulk items with ttl, expiresAt, dryRun and origin', () => {
  it('are stored as POST /v1/blocks stores them, from JSON and NDJSON bodies', async () => {
    const extras = [
      { ttl: 60 },
      { expiresAt: '2026-12-02T13:30:00+01:00' },
      { dryRun: true },
      { ttl: 90, dryRun: true, origin: 'fail2ban' },
      { comment: 'plain', direction: 'dst' },
    ];
    for (const [i, extra] of extras.entries()) expect((await post({ cidr: `198.18.60.${i}/32`, ...extra })).statusCode).toBe(201);
    expect((await bulk(extras.map((extra, i) => ({ cidr: `198.18.61.${i}/32`, ...extra })))).json()).toEqual({ created: 5, existing: 0 });
    expect((await ndjson(extras.map((extra, i) => ({ cidr: `198.18.62.${i}/32`, ...extra })))).json()).toEqual({ created: 5, existing: 0 });
    for (let i = 0; i < extras.length; i++) {
      const single = await stored(`198.18.60.${i}/32`);
      expect(await stored(`198.18.61.${i}/32`)).toEqual(single);
      expect(await stored(`198.18.62.${i}/32`)).toEqual(single);
    }
    expect(await stored('198.18.61.1/32')).toMatchObject({ expiresAt: '2026-12-02T12:30:00.000Z' });
    expect(await stored('198.18.61.3/32')).toMatchObject({ expiresAt: '2026-12-02T12:01:30.000Z', dryRun: true, origin: 'fail2ban' });
    await clear();
  });

  it('refuse what POST /v1/blocks refuses, with the same codes, naming the item; nothing is stored', async () => {
    const cases: Array<[object, string, RegExp]> = [
      [{ ttl: 5, expiresAt: '2099-01-01T00:00:00Z' }, 'INVALID_ARGUMENT', /ttl: give ttl or expiresAt, not both/],
      [{ expiresAt: '2020-01-01T00:00:00Z' }, 'INVALID_ARGUMENT', /expiresAt: is not in the future/],
      [{ expiresAt: 'tomorrow' }, 'INVALID_ARGUMENT', /expiresAt: an ISO 8601 date and time/],
      [{ ttl: 0 }, 'INVALID_REQUEST', /ttl/],
      [{ ttl: 1.5 }, 'INVALID_REQUEST', /ttl/],
      [{ dryRun: 'yes' }, 'INVALID_REQUEST', /dryRun/],
      [{ origin: 'Not An Origin' }, 'INVALID_REQUEST', /origin/],
    ];
    for (const [extra, code, message] of cases) {
      const single = await post({ cidr: '198.18.63.0/24', ...extra });
      expect(single.json().error.code).toBe(code);
      expect(single.json().error.message).toMatch(message);
      for (const send of [bulk, ndjson]) {
        const response = await send([{ cidr: '198.18.63.1/32', ttl: 60 }, { cidr: '198.18.63.2/32', ...extra }]);
        expect(response.statusCode).toBe(single.statusCode);
        expect(response.json().error.code).toBe(code);
        expect(response.json().error.message).toMatch(/items\/1|items\[1\]/);
        expect(response.json().error.message).toMatch(message);
      }
    }
    expect(firewall.blocks.list({ contains: '198.18.63.1' }).total).toBe(0);
    expect(firewall.blockMeta.meta({ cidr: '198.18.63.1/32', direction: 'src' })).toEqual({ expiresAt: null, dryRun: false, origin: null });
  });

  it('names the first invalid item when an earlier one has a bad CIDR and a later one a bad ttl', async () => {
    const response = await bulk([{ cidr: '198.18.64.0/24' }, { cidr: '198.18.64.1/24' }, { cidr: '198.18.64.2/32', ttl: 5, expiresAt: '2099-01-01T00:00:00Z' }]);
    expect(response.json().error).toMatchObject({ code: 'INVALID_CIDR', message: expect.stringMatching(/^items\[1\]: /) });
    expect(firewall.blocks.all()).toEqual([]);
  });

  it('merge with existing blocks and with each other as repeated single POSTs do', async () => {
    await post({ cidr: '198.18.65.1/32', ttl: 60 });
    await post({ cidr: '198.18.65.2/32' });
    await post({ cidr: '198.18.65.3/32', dryRun: true });
    await post({ cidr: '198.18.65.4/32', ttl: 60, origin: 'crowdsec' });
    const result = await bulk([
      { cidr: '198.18.65.1/32', ttl: 120 }, // a later expiry wins
      { cidr: '198.18.65.2/32', ttl: 120 }, // a permanent block stays permanent
      { cidr: '198.18.65.3/32' }, // blocking again without dryRun enforces
      { cidr: '198.18.65.4/32' }, // a plain item: permanent, the API's
      { cidr: '198.18.65.5/32', ttl: 30 },
      { cidr: '198.18.65.5/32', ttl: 90, dryRun: true }, // repeats: later expiry, the last dryRun
      { cidr: '198.18.65.6/32' },
      { cidr: '198.18.65.6/32', ttl: 90 }, // permanent first: stays permanent
    ]);
    expect(result.json()).toEqual({ created: 2, existing: 6 });
    const meta = (cidr: string) => firewall.blockMeta.meta({ cidr, direction: 'src' });
    expect(meta('198.18.65.1/32')).toEqual({ expiresAt: '2026-12-02T12:02:00.000Z', dryRun: false, origin: null });
    expect(meta('198.18.65.2/32')).toEqual({ expiresAt: null, dryRun: false, origin: null });
    expect(meta('198.18.65.3/32')).toEqual({ expiresAt: null, dryRun: false, origin: null });
    expect(meta('198.18.65.4/32')).toEqual({ expiresAt: null, dryRun: false, origin: null });
    expect(meta('198.18.65.5/32')).toEqual({ expiresAt: '2026-12-02T12:01:30.000Z', dryRun: true, origin: null });
    expect(meta('198.18.65.6/32')).toEqual({ expiresAt: null, dryRun: false, origin: null });
    // The kernel follows: .3 is enforced now, .5 is a dry run.
    expect(ingress(from('198.18.65.3'))).toBe(XDP_DROP);
    expect(ingress(from('198.18.65.5'))).toBe(XDP_PASS);
    await clear();
  });

  it('an integration\'s bulk add (no dryRun) keeps an operator\'s dry run', async () => {
    await post({ cidr: '198.18.66.1/32', dryRun: true, ttl: 30 });
    await firewall.originBlocks('crowdsec').addMany([{ cidr: '198.18.66.1/32', ttl: 60 }]);
    expect(firewall.blockMeta.meta({ cidr: '198.18.66.1/32', direction: 'src' })).toEqual({ expiresAt: '2026-12-02T12:01:00.000Z', dryRun: true, origin: 'crowdsec' });
    await clear();
  });
});

describe('capacity.timedBlocks', () => {
  it('bounds the blocks with a ttl or dry run: 507 CAPACITY_EXCEEDED past it, nothing stored; plain items do not count', async () => {
    const timed = (n: number, third: number) => Array.from({ length: n }, (_, i) => ({ cidr: `198.18.${third}.${i}/32`, ttl: 60 }));
    expect((await bulk([...timed(TIMED_BLOCKS - 2, 67), { cidr: '198.18.67.200/32' }])).json()).toEqual({ created: TIMED_BLOCKS - 1, existing: 0 });
    const over = await bulk([...timed(3, 68), { cidr: '198.18.68.200/32' }]);
    expect(over.statusCode).toBe(507);
    expect(over.json().error).toMatchObject({ code: 'CAPACITY_EXCEEDED', message: expect.stringContaining('capacity.timedBlocks') });
    expect(firewall.blocks.list({ contains: '198.18.68.0' }).total).toBe(0);
    expect(firewall.blocks.list({ contains: '198.18.68.200' }).total).toBe(0);
    expect(firewall.blockMeta.meta({ cidr: '198.18.68.0/32', direction: 'src' }).expiresAt).toBeNull();
    // Re-blocking a timed block, or making one permanent, needs no new entry.
    expect((await bulk([...timed(2, 67), { cidr: '198.18.67.0/32' }])).json()).toEqual({ created: 0, existing: 3 });
    expect((await bulk(timed(3, 68))).json()).toEqual({ created: 3, existing: 0 });
    // The single route says the same.
    const single = await post({ cidr: '198.18.69.0/32', dryRun: true });
    expect(single.statusCode).toBe(507);
    expect(single.json().error.code).toBe('CAPACITY_EXCEEDED');
    expect((await post({ cidr: '198.18.69.0/32' })).statusCode).toBe(201);
    await clear();
    expect((await bulk(timed(TIMED_BLOCKS, 70))).json()).toEqual({ created: TIMED_BLOCKS, existing: 0 });
    await clear();
  });
});

describe('in the kernel', () => {
  it('a dry-run item passes and counts would_drop; a ttl item stops matching once expired, and the sweeper removes it', async () => {
    wallMs = T0;
    const before = (await app.inject('/v1/stats')).json().totals.ingress.reasons.would_drop?.packets ?? 0;
    expect((await ndjson([{ cidr: '198.18.71.0/24', dryRun: true }, { cidr: '198.18.72.0/24', ttl: 1 }, { cidr: '198.18.73.0/24' }])).json())
      .toEqual({ created: 3, existing: 0 });
    const dry = from('198.18.71.9');
    expect(ingress(dry)).toBe(XDP_PASS);
    expect(ingress(dry)).toBe(XDP_PASS);
    expect((await view('198.18.71.0/24'))!.wouldDrop).toEqual({ packets: 2, bytes: 2 * dry.length });
    expect((await app.inject('/v1/stats')).json().totals.ingress.reasons.would_drop.packets).toBe(before + 2);
    expect(ingress(from('198.18.72.9'))).toBe(XDP_DROP);
    expect(ingress(from('198.18.73.9'))).toBe(XDP_DROP);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(ingress(from('198.18.72.9'))).toBe(XDP_PASS); // the kernel's own clock: no sweep yet
    expect(ingress(from('198.18.73.9'))).toBe(XDP_DROP);
    wallMs = T0 + 1_000;
    expect((await firewall.sweepExpired()).blocks).toBe(1);
    expect(firewall.blocks.list({ contains: '198.18.72.9' }).total).toBe(0);
    await clear();
  });
});

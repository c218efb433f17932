// Rate-limit rules through the API: validation with stable codes, the
// stored form, and the counters GET /v1/rules/{id} adds.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { openTestFirewall } from './lib/firewall.js';
import { ether, ipv4, udp } from './lib/packets.js';
import { xdpCtx } from './lib/policy.js';

let firewall: Firewall;
let app: FastifyInstance;

beforeAll(async () => {
  firewall = await openTestFirewall();
  app = await buildApp({ firewall });
}, 60_000);
afterAll(async () => {
  await app?.close();
  firewall?.close();
});

const post = (payload: object) => app.inject({ method: 'POST', url: '/v1/rules', payload });

it.each([
  [{ action: 'ratelimit', proto: 'udp' }, 'INVALID_RULE', 'rate'],
  [{ action: 'ratelimit', rate: {} }, 'INVALID_RULE', 'rate'],
  [{ action: 'ratelimit', rate: { bps: 8000, burst: 10 } }, 'INVALID_RULE', 'rate.burst'],
  [{ action: 'ratelimit', rate: { pps: 10, prefixV4: 16 } }, 'INVALID_RULE', 'rate.prefixV4'],
  [{ action: 'ratelimit', hook: 'egress', rate: { pps: 10 } }, 'INVALID_RULE', 'hook'],
  [{ action: 'ratelimit', rate: { pps: 10, per: 'rule' }, ban: { afterDrops: 5, within: 10, ttl: 60 } }, 'INVALID_RULE', 'ban'],
  [{ action: 'drop', rate: { pps: 10 } }, 'INVALID_RULE', 'rate'],
  [{ action: 'ratelimit', rate: { pps: 0 } }, 'INVALID_REQUEST', undefined],
  [{ action: 'ratelimit', rate: { pps: 10, per: 'flow' } }, 'INVALID_REQUEST', undefined],
])('%j -> 400 %s', async (payload, code, field) => {
  const res = await post(payload);
  expect(res.statusCode).toBe(400);
  expect(res.json().error.code).toBe(code);
  if (field) expect(res.json().error.message.startsWith(`${field}:`)).toBe(true);
});

it('stores the canonical rate (default burst and prefixes), and reports admitted/dropped, active buckets and the limited sources', async () => {
  const res = await post({ action: 'ratelimit', proto: 'udp', dstPort: 53, rate: { pps: 2, per: 'source-prefix' } });
  expect(res.statusCode).toBe(201);
  const rule = res.json();
  expect(rule.rate).toEqual({ pps: 2, bps: null, burst: 2, per: 'source-prefix', prefixV4: 24, prefixV6: 64 });
  const frame = ether(ipv4({ src: '198.18.5.9', dst: '198.18.7.9' }, udp({ sport: 1, dport: 53 })));
  const verdicts = Array.from({ length: 5 }, () => firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval);
  expect(verdicts).toEqual([2, 2, 1, 1, 1]);
  await new Promise((resolve) => setTimeout(resolve, 5)); // the counters' snapshot cache
  const got = (await app.inject({ method: 'GET', url: `/v1/rules/${rule.id}` })).json();
  expect(got.rateLimit).toEqual({ admitted: { packets: 2, bytes: 2 * frame.length }, dropped: { packets: 3, bytes: 3 * frame.length }, activeBuckets: 1, bans: 0 });
  const top = (await app.inject({ method: 'GET', url: '/v1/ratelimits/top?limit=5' })).json();
  expect(top.items).toEqual([{ ruleId: rule.id, source: '198.18.5.0/24', windowDrops: 3, dropped: 3, admitted: 2 }]);
  expect((await app.inject({ method: 'DELETE', url: `/v1/rules/${rule.id}` })).statusCode).toBe(204);
});

it('ratelimits/top keeps the most limited sources, most drops first, however many are limited', async () => {
  const res = await post({ action: 'ratelimit', proto: 'udp', dstPort: 54, rate: { pps: 2, per: 'source' } });
  expect(res.statusCode).toBe(201);
  const rule = res.json();
  // Source i sends the burst (2) and i more: i drops. Sent in an order unlike the ranking.
  for (const i of [3, 0, 6, 1, 5, 2, 4]) {
    const frame = ether(ipv4({ src: `198.18.6.${10 + i}`, dst: '198.18.7.9' }, udp({ sport: 1, dport: 54 })));
    for (let n = 0; n < 2 + i; n++) firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 });
  }
  const top = (await app.inject({ method: 'GET', url: '/v1/ratelimits/top?limit=3' })).json();
  expect(top.items.map((item: { source: string; windowDrops: number }) => [item.source, item.windowDrops])).toEqual([
    ['198.18.6.16', 6], ['198.18.6.15', 5], ['198.18.6.14', 4],
  ]);
  const all = (await app.inject({ method: 'GET', url: '/v1/ratelimits/top?limit=100' })).json();
  expect(all.items.map((item: { windowDrops: number }) => item.windowDrops)).toEqual([6, 5, 4, 3, 2, 1]);
  expect((await app.inject({ method: 'DELETE', url: `/v1/rules/${rule.id}` })).statusCode).toBe(204);
});

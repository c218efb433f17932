// Rule expiry: the kernel value carries it (checked against the coarse
// monotonic clock), and the sweeper removes expired rules from the store and
// the kernel. The wall clock is injected; the monotonic one is the kernel's.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { openTestFirewall } from './lib/firewall.js';
import { ether, ipv4, udp } from './lib/packets.js';
import { xdpCtx } from './lib/policy.js';
import { Layout, POL_MAX_RULES } from '../src/datapath/abi.js';

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

const frame = ether(ipv4({ src: '198.18.1.2', dst: '198.18.7.9' }, udp({ sport: 1, dport: 7000 })));
const ingress = () => firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval;

it('ttl sets expiresAt, the kernel value carries the expiry, and the sweeper removes the rule once it passed', async () => {
  const res = await app.inject({ method: 'POST', url: '/v1/rules', payload: { action: 'drop', proto: 'udp', dstPort: 7000, ttl: 60 } });
  expect(res.statusCode).toBe(201);
  expect(res.json().expiresAt).toBe('2026-12-02T12:01:00.000Z');
  expect(ingress()).toBe(1);

  // The kernel's copy: about 60 s ahead of CLOCK_MONOTONIC.
  const maps = firewall.datapath.maps.policy;
  const table = 0;
  const buf = maps.active.lookup(Buffer.alloc(4))!.readUInt32LE(0);
  const key = Buffer.alloc(4);
  key.writeUInt32LE((table * 2 + buf) * POL_MAX_RULES);
  const expiresNs = maps.rules.lookup(key)!.readBigUInt64LE(Layout.polRule.expiresNs);
  const ahead = Number(expiresNs - process.hrtime.bigint()) / 1e9;
  expect(ahead).toBeGreaterThan(55);
  expect(ahead).toBeLessThanOrEqual(60);

  expect(await firewall.sweepExpired()).toEqual({ rules: [] });
  wallMs = T0 + 60_000;
  expect(await firewall.sweepExpired()).toEqual({ rules: [res.json().id] });
  expect(ingress()).toBe(2);
  expect((await app.inject({ method: 'GET', url: `/v1/rules/${res.json().id}` })).statusCode).toBe(404);
});

it('a rule stored with an expiry already past is installed as expired (it never matches) until swept', async () => {
  wallMs = T0;
  const rule = await firewall.rules.add({ action: 'drop', proto: 'udp', dstPort: 7000, expiresAt: '2026-12-02T12:00:01Z' });
  expect(ingress()).toBe(1);
  wallMs = T0 + 5_000;
  await firewall.refreshPolicy(); // what a restart after the expiry does
  expect(ingress()).toBe(2);
  expect(firewall.rules.get(rule.id).id).toBe(rule.id);
  await firewall.sweepExpired();
  expect(firewall.rules.all()).toEqual([]);
});

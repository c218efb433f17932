// The default policy, replies to this host's own flows, and the failsafe
// list, through the API on a real Firewall with packets through the real
// programs (BPF_PROG_TEST_RUN). Needs root.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { parseFailsafe, DEFAULT_FAILSAFE } from '../src/policy/failsafe.js';
import { loadConfig } from '../src/config.js';
import { openTestFirewall } from './lib/firewall.js';
import { ether, icmpv6, ipv4, ipv6, tcp, udp, TCP } from './lib/packets.js';
import { xdpCtx } from './lib/policy.js';

const XDP_DROP = 1;
const XDP_PASS = 2;
const TC_ACT_OK = 0;
const FAILSAFE = parseFailsafe([{ proto: 'tcp', port: 22 }, { cidr: '198.18.9.0/24' }, { proto: 'icmpv6', port: '133-137' }]);

let dir: string;
let firewall: Firewall;
let app: FastifyInstance;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xw-policy-api-'));
  firewall = await openTestFirewall(undefined, undefined, { failsafe: FAILSAFE, storePath: join(dir, 'rules.sqlite') });
  app = await buildApp({ firewall });
});

afterAll(async () => {
  await app?.close();
  firewall?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const ingress = (frame: Buffer) => firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval;
const egress = (frame: Buffer) => firewall.datapath.egress.testRunSync({ data: frame, dataSizeOut: 0 }).retval;
const reasons = async (hook: 'ingress' | 'egress') => (await app.inject({ method: 'GET', url: '/v1/stats' })).json().totals[hook].reasons;
const LOCAL = '198.18.7.9';

describe('default policy', () => {
  it('starts as the configuration says (accept here) and PUT /v1/policy changes and stores it', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/policy' })).json()).toEqual({ ingress: 'accept', egress: 'accept' });
    const stray = ether(ipv4({ src: '198.18.1.2', dst: LOCAL }, udp({ sport: 1234, dport: 9999 })));
    expect(ingress(stray)).toBe(XDP_PASS);
    const res = await app.inject({ method: 'PUT', url: '/v1/policy', payload: { ingress: 'drop' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ingress: 'drop', egress: 'accept' });
    const before = (await reasons('ingress')).drop_policy?.packets ?? 0;
    expect(ingress(stray)).toBe(XDP_DROP);
    expect((await reasons('ingress')).drop_policy.packets).toBe(before + 1);
    expect((await app.inject({ method: 'PUT', url: '/v1/policy', payload: { ingress: 'block' } })).statusCode).toBe(400);
  });

  it('passes replies to flows this host opened (pass_reply), and nothing else', async () => {
    // This host connects out to 198.18.1.2:443 ...
    expect(egress(ether(ipv4({ src: LOCAL, dst: '198.18.1.2' }, tcp({ sport: 40000, dport: 443, flags: TCP.syn }))))).toBe(TC_ACT_OK);
    // ... so the SYN-ACK comes back in; a packet from the same peer to another port does not.
    expect(ingress(ether(ipv4({ src: '198.18.1.2', dst: LOCAL }, tcp({ sport: 443, dport: 40000, flags: TCP.syn | TCP.ack }))))).toBe(XDP_PASS);
    expect(ingress(ether(ipv4({ src: '198.18.1.2', dst: LOCAL }, tcp({ sport: 443, dport: 40001, flags: TCP.syn | TCP.ack }))))).toBe(XDP_DROP);
    expect((await reasons('ingress')).pass_reply.packets).toBe(1);
    // DNS over IPv6 likewise.
    expect(egress(ether(ipv6({ src: 'fd00:198::9', dst: 'fd00:198::53' }, udp({ sport: 5353, dport: 53 }))))).toBe(TC_ACT_OK);
    expect(ingress(ether(ipv6({ src: 'fd00:198::53', dst: 'fd00:198::9' }, udp({ sport: 53, dport: 5353 }))))).toBe(XDP_PASS);
  });

  it('the failsafe list passes under default drop and overrides drop rules', async () => {
    const ssh = ether(ipv4({ src: '198.18.1.2', dst: LOCAL }, tcp({ sport: 50000, dport: 22, flags: TCP.syn })));
    expect(ingress(ssh)).toBe(XDP_PASS);
    const rule = await app.inject({ method: 'POST', url: '/v1/rules', payload: { action: 'drop', proto: 'tcp' } });
    expect(rule.statusCode).toBe(201);
    expect(ingress(ssh)).toBe(XDP_PASS);
    expect(ingress(ether(ipv4({ src: '198.18.1.2', dst: LOCAL }, tcp({ sport: 50000, dport: 23, flags: TCP.syn }))))).toBe(XDP_DROP);
    // The management network, whatever the port; neighbour discovery.
    expect(ingress(ether(ipv4({ src: '198.18.9.200', dst: LOCAL }, tcp({ sport: 50000, dport: 8443, flags: TCP.syn }))))).toBe(XDP_PASS);
    expect(ingress(ether(ipv6({ src: 'fe80::1', dst: 'ff02::1' }, icmpv6({ type: 135 }))))).toBe(XDP_PASS);
    expect(ingress(ether(ipv6({ src: 'fe80::1', dst: 'ff02::1' }, icmpv6({ type: 138 }))))).toBe(XDP_DROP);
    expect((await reasons('ingress')).pass_failsafe.packets).toBe(4);
    await app.inject({ method: 'DELETE', url: `/v1/rules/${rule.json().id}` });
  });

  it('GET /v1/failsafe lists the configured entries', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/failsafe' })).json()).toEqual({
      items: [
        { cidr: null, proto: 'tcp', port: 22 },
        { cidr: '198.18.9.0/24', proto: null, port: null },
        { cidr: null, proto: 'icmpv6', port: '133-137' },
      ],
    });
  });

  it('egress default drop drops in TC (drop_policy), counted', async () => {
    await app.inject({ method: 'PUT', url: '/v1/policy', payload: { egress: 'drop' } });
    expect(egress(ether(ipv4({ src: LOCAL, dst: '198.18.1.2' }, udp({ sport: 1, dport: 2 }))))).toBe(2);
    expect((await reasons('egress')).drop_policy.packets).toBe(1);
    await app.inject({ method: 'PUT', url: '/v1/policy', payload: { egress: 'accept', ingress: 'accept' } });
  });
});

describe('durability', () => {
  it('a reopened store brings back the stored default policy and the rules, over the configuration', async () => {
    await app.inject({ method: 'PUT', url: '/v1/policy', payload: { ingress: 'drop' } });
    const rule = (await app.inject({ method: 'POST', url: '/v1/rules', payload: { action: 'drop', proto: 'udp', dstPort: 7777 } })).json();
    const again = await openTestFirewall(undefined, undefined, { failsafe: FAILSAFE, policy: { ingress: 'accept', egress: 'accept' }, storePath: join(dir, 'rules.sqlite') });
    try {
      expect(again.policy.defaultPolicy).toEqual({ ingress: 'drop', egress: 'accept' });
      expect(again.rules.get(rule.id)).toMatchObject({ action: 'drop', proto: 17, dstPort: { lo: 7777, hi: 7777 } });
      const frame = ether(ipv4({ src: '198.18.1.2', dst: LOCAL }, udp({ sport: 1, dport: 7777 })));
      expect(again.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval).toBe(XDP_DROP);
    } finally {
      again.close();
    }
    await app.inject({ method: 'DELETE', url: `/v1/rules/${rule.id}` });
    await app.inject({ method: 'PUT', url: '/v1/policy', payload: { ingress: 'accept' } });
  });
});

describe('conflicts', () => {
  it('a block containing a failsafe CIDR is 409 FAILSAFE_CONFLICT; inside it too', async () => {
    for (const cidr of ['198.18.0.0/16', '198.18.9.0/24']) {
      const res = await app.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr } });
      expect(res.statusCode, cidr).toBe(409);
      expect(res.json().error.code).toBe('FAILSAFE_CONFLICT');
    }
    expect((await app.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.9.128/25' } })).statusCode).toBe(201);
    const bulk = await app.inject({ method: 'POST', url: '/v1/blocks/bulk', payload: { items: [{ cidr: '198.18.100.0/24' }, { cidr: '198.0.0.0/8' }] } });
    expect(bulk.json().error.code).toBe('FAILSAFE_CONFLICT');
    expect(firewall.blocks.list({ contains: '198.18.100.1' }).total).toBe(0);
  });

  it('a drop rule whose source contains a failsafe CIDR is 409 FAILSAFE_CONFLICT', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/rules', payload: { action: 'drop', src: '198.18.0.0/15' } });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe('FAILSAFE_CONFLICT');
    expect((await app.inject({ method: 'POST', url: '/v1/rules', payload: { action: 'log', src: '198.18.0.0/15' } })).statusCode).toBe(201);
  });

  it('a /0 block is 400 TOO_BROAD', async () => {
    for (const cidr of ['0.0.0.0/0', '::/0']) {
      const res = await app.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr } });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('TOO_BROAD');
    }
  });
});

describe('configuration', () => {
  it('failsafe defaults to TCP 22, UDP 68, UDP 546 and ICMPv6 133-137; [] empties it', () => {
    expect(parseFailsafe(undefined)).toEqual(DEFAULT_FAILSAFE);
    expect(parseFailsafe([])).toEqual([]);
    expect(loadConfig(undefined).failsafe).toEqual(DEFAULT_FAILSAFE);
    expect(loadConfig(undefined).policy).toEqual({ ingress: 'accept', egress: 'accept' });
  });

  it.each([
    [[{ port: 22 }], /port needs proto/],
    [[{ proto: 'tcp', port: '30-20' }], /lo > hi/],
    [[{ cidr: '198.18.1.2/15' }], /host bits/],
    [[{ proto: 'icmpv6', port: 300 }], /ICMP type/],
    [[{ color: 'red' }], /unknown key color/],
    [['tcp/22'], /must be a mapping/],
  ])('refuses failsafe %j', (value, message) => {
    expect(() => parseFailsafe(value)).toThrow(message);
  });
});

// /v1/rules through inject() on a real Firewall: rules are stored, compiled
// into the kernel's tables, and packets run through the real programs
// (BPF_PROG_TEST_RUN) meet them. Needs root.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { openTestFirewall } from './lib/firewall.js';
import { ether, ipv4, ipv6, tcp, udp, TCP } from './lib/packets.js';
import { xdpCtx } from './lib/policy.js';

let firewall: Firewall;
let app: FastifyInstance;

beforeAll(async () => {
  firewall = await openTestFirewall();
  app = await buildApp({ firewall });
});

afterAll(async () => {
  await app?.close();
  firewall?.close();
});

beforeEach(async () => {
  for (const rule of firewall.rules.all()) await firewall.rules.remove(rule.id);
});

const post = (payload: object) => app.inject({ method: 'POST', url: '/v1/rules', payload });
const XDP_DROP = 1;
const XDP_PASS = 2;
const ingress = (frame: Buffer) =>
  firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval;
const syn = (dport: number, src = '198.18.1.2') => ether(ipv4({ src, dst: '198.18.7.9' }, tcp({ sport: 40000, dport, flags: TCP.syn })));

describe('POST /v1/rules', () => {
  it('stores the rule with the issue\'s field names, enforces it, and counts it', async () => {
    const res = await post({ action: 'drop', dstPort: '8000-8080', proto: 'tcp', src: '198.18.0.0/16', comment: 'no dev ports' });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toEqual({
      id: body.id, action: 'drop', priority: 1000, hook: 'ingress', iface: null, src: '198.18.0.0/16', dst: null,
      proto: 'tcp', srcPort: null, dstPort: '8000-8080', tcpFlags: null, icmpType: null, icmpCode: null, vlan: null,
      dryRun: false, comment: 'no dev ports', createdAt: body.createdAt, expiresAt: null, hits: { packets: 0, bytes: 0 },
    });
    const frame = syn(8080);
    expect(ingress(frame)).toBe(XDP_DROP);
    expect(ingress(syn(8081))).toBe(XDP_PASS);
    expect(ingress(syn(8000, '198.17.255.255'))).toBe(XDP_PASS);
    const again = await app.inject({ method: 'GET', url: `/v1/rules/${body.id}` });
    expect(again.json().hits).toEqual({ packets: 1, bytes: frame.length });
  });

  it('evaluates by priority: a pass at 10 beats a drop at 100', async () => {
    await post({ action: 'drop', proto: 'tcp', dstPort: 22, priority: 100 });
    const office = (await post({ action: 'pass', proto: 'tcp', dstPort: 22, src: '198.18.9.0/24', priority: 10 })).json();
    expect(ingress(syn(22, '198.18.9.7'))).toBe(XDP_PASS);
    expect(ingress(syn(22, '198.18.8.7'))).toBe(XDP_DROP);
    expect((await app.inject({ method: 'GET', url: `/v1/rules/${office.id}` })).json().hits.packets).toBe(1);
  });

  it('a dry-run drop rule passes the packet and counts it as wouldDrop', async () => {
    const rule = (await post({ action: 'drop', proto: 'udp', dstPort: 53, dryRun: true })).json();
    const frame = ether(ipv4({ src: '198.18.1.2', dst: '198.18.7.9' }, udp({ sport: 5353, dport: 53 })));
    expect(ingress(frame)).toBe(XDP_PASS);
    const body = (await app.inject({ method: 'GET', url: `/v1/rules/${rule.id}` })).json();
    expect(body.wouldDrop).toEqual({ packets: 1, bytes: frame.length });
    const stats = (await app.inject({ method: 'GET', url: '/v1/stats' })).json();
    expect(stats.totals.ingress.reasons.would_drop.packets).toBeGreaterThanOrEqual(1);
  });

  it.each([
    [{ action: 'drop', dstPort: 80 }, 'dstPort'],
    [{ action: 'drop', proto: 'icmp', srcPort: 80 }, 'srcPort'],
    [{ action: 'drop', proto: 'udp', tcpFlags: 'syn' }, 'tcpFlags'],
    [{ action: 'drop', src: '198.18.0.0/16', dst: 'fd00:198::/48' }, 'dst'],
    [{ action: 'drop', proto: 'tcp', dstPort: '90-80' }, 'dstPort'],
    [{ action: 'drop', proto: 'tcp', tcpFlags: 'syn,bogus' }, 'tcpFlags'],
    [{ action: 'drop', proto: 'udp', icmpType: 8 }, 'icmpType'],
    [{ action: 'drop', proto: 'icmp', dst: 'fd00:198::1' }, 'proto'],
    [{ action: 'drop', src: '198.18.1.2/15' }, 'src'],
    [{ action: 'drop', ttl: 60, expiresAt: '2099-01-01T00:00:00Z' }, 'ttl'],
    [{ action: 'drop', expiresAt: '2001-01-01T00:00:00Z' }, 'expiresAt'],
    [{ action: 'drop', proto: 'sctp' }, 'proto'],
  ])('refuses %j with 400 INVALID_RULE naming %s, storing nothing', async (payload, field) => {
    const res = await post(payload);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('INVALID_RULE');
    expect(res.json().error.message.startsWith(`${field}: `)).toBe(true);
    expect(firewall.rules.all()).toEqual([]);
  });

  it('refuses unknown fields and wrong types with 400 INVALID_REQUEST', async () => {
    expect((await post({ action: 'drop', port: 80 })).json().error.code).toBe('INVALID_REQUEST');
    expect((await post({ action: 'reject' })).json().error.code).toBe('INVALID_REQUEST');
    expect((await post({ action: 'drop', priority: 0 })).json().error.code).toBe('INVALID_REQUEST');
  });

  it('IPv6 rules match IPv6 packets only', async () => {
    await post({ action: 'drop', src: 'fd00:198::/48', proto: 'udp' });
    expect(ingress(ether(ipv6({ src: 'fd00:198::7', dst: 'fd00:198:1::1' }, udp({ sport: 1, dport: 2 }))))).toBe(XDP_DROP);
    expect(ingress(ether(ipv4({ src: '198.18.1.1', dst: '198.18.1.2' }, udp({ sport: 1, dport: 2 }))))).toBe(XDP_PASS);
  });
});

describe('GET, PUT and DELETE /v1/rules', () => {
  it('lists in evaluation order, paginated, filtered by hook and iface', async () => {
    await post({ action: 'drop', proto: 'tcp', dstPort: 1, priority: 300 });
    await post({ action: 'drop', proto: 'tcp', dstPort: 2, priority: 100, hook: 'egress' });
    await post({ action: 'log', proto: 'tcp', dstPort: 3, priority: 200, iface: 'eth9' });
    const all = (await app.inject({ method: 'GET', url: '/v1/rules' })).json();
    expect(all.total).toBe(3);
    expect(all.items.map((r: { dstPort: number }) => r.dstPort)).toEqual([3, 1, 2]); // ingress by priority, then egress
    const page = (await app.inject({ method: 'GET', url: '/v1/rules?limit=1&offset=1' })).json();
    expect(page).toMatchObject({ total: 3, limit: 1, offset: 1, items: [{ dstPort: 1 }] });
    expect((await app.inject({ method: 'GET', url: '/v1/rules?hook=egress' })).json().items.map((r: { dstPort: number }) => r.dstPort)).toEqual([2]);
    expect((await app.inject({ method: 'GET', url: '/v1/rules?iface=eth9' })).json().total).toBe(1);
  });

  it('PUT replaces a rule in place and the kernel follows', async () => {
    const rule = (await post({ action: 'drop', proto: 'tcp', dstPort: 8080 })).json();
    expect(ingress(syn(8080))).toBe(XDP_DROP);
    const res = await app.inject({ method: 'PUT', url: `/v1/rules/${rule.id}`, payload: { action: 'drop', proto: 'tcp', dstPort: 9090 } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: rule.id, dstPort: 9090, createdAt: rule.createdAt });
    expect(ingress(syn(8080))).toBe(XDP_PASS);
    expect(ingress(syn(9090))).toBe(XDP_DROP);
    expect((await app.inject({ method: 'PUT', url: '/v1/rules/999999', payload: { action: 'drop' } })).statusCode).toBe(404);
    expect((await app.inject({ method: 'PUT', url: `/v1/rules/${rule.id}`, payload: { action: 'drop', dstPort: 1 } })).json().error.code).toBe('INVALID_RULE');
  });

  it('DELETE removes the rule from store and kernel; 404 after', async () => {
    const rule = (await post({ action: 'drop', proto: 'tcp', dstPort: 8080 })).json();
    expect((await app.inject({ method: 'DELETE', url: `/v1/rules/${rule.id}` })).statusCode).toBe(204);
    expect(ingress(syn(8080))).toBe(XDP_PASS);
    expect((await app.inject({ method: 'GET', url: `/v1/rules/${rule.id}` })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: `/v1/rules/${rule.id}` })).statusCode).toBe(404);
  });

  it('egress rules drop in the TC program (TC_ACT_SHOT), counted', async () => {
    await post({ action: 'drop', hook: 'egress', proto: 'udp', dstPort: 53 });
    const out = ether(ipv4({ src: '198.18.7.9', dst: '198.18.1.2' }, udp({ sport: 5353, dport: 53 })));
    expect(firewall.datapath.egress.testRunSync({ data: out, dataSizeOut: 0 }).retval).toBe(2);
    const stats = (await app.inject({ method: 'GET', url: '/v1/stats' })).json();
    expect(stats.totals.egress.reasons.drop_rule.packets).toBeGreaterThanOrEqual(1);
    expect(stats.totals.egress.verdicts.drop.packets).toBeGreaterThanOrEqual(1);
  });
});

// Every route and error path of the REST API, through inject(), on a real
// Firewall: rules land in real kernel tries and packets run through the real
// ingress program (BPF_PROG_TEST_RUN), so what the API reports is what the
// kernel did.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { encodeLpmKey } from '../src/datapath/abi.js';
import { parseCidr } from '../src/rules/cidr.js';
import { openTestFirewall, quietLog } from './lib/firewall.js';
import { DIR24_MAX_RULE_ID, readDir24Slot } from '../src/datapath/dir24.js';
import { assignIfslot } from '../src/datapath/datapath.js';
import { ether, ipv4, ipv6, tcp, udp, TCP } from './lib/packets.js';

let firewall: Firewall;
let app: FastifyInstance;

beforeAll(async () => {
  firewall = await openTestFirewall();
  app = await buildApp({ firewall, bodyLimitBytes: 4096 });
});

afterAll(async () => {
  await app?.close();
  firewall?.close();
});

const post = (payload: unknown) => app.inject({ method: 'POST', url: '/v1/blocks', payload: payload as object });

/** The rule the kernel holds for a CIDR, wherever the control plane put it; null when absent. */
function kernelEntry(cidrText: string, direction: 'src' | 'dst' = 'src') {
  const cidr = parseCidr(cidrText);
  const { maps } = firewall.datapath;
  const src = direction === 'src';
  const host = cidr.prefixLen === (cidr.family === 4 ? 32 : 128);
  if (cidr.family === 4 && !host && cidr.prefixLen <= 24) {
    // The DIR-24 slot of the prefix's first /24 carries its rule id.
    const value = readDir24Slot(src ? maps.srcDir24 : maps.dstDir24, cidr.bytes.readUInt32BE(0) >>> 8) & DIR24_MAX_RULE_ID;
    return value === 0 ? null : { ruleId: value, action: 1 };
  }
  // Host routes live in exact-match hashes keyed by the address, other prefixes in tries.
  const map = host
    ? cidr.family === 4 ? (src ? maps.srcHostV4 : maps.dstHostV4) : src ? maps.srcHostV6 : maps.dstHostV6
    : cidr.family === 4 ? (src ? maps.srcV4 : maps.dstV4) : src ? maps.srcV6 : maps.dstV6;
  const value = map.lookup(host ? cidr.bytes : encodeLpmKey(cidr.family, cidr.bytes, cidr.prefixLen));
  return value && { ruleId: value.readUInt32LE(0), action: value.readUInt8(4) };
}

describe('POST /v1/blocks', () => {
  it('creates a rule on disk and in the kernel, and returns it with 201', async () => {
    const res = await post({ cidr: '198.18.7.0/24', comment: 'abuse ticket 42' });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({ cidr: '198.18.7.0/24', direction: 'src', comment: 'abuse ticket 42', hits: { packets: 0, bytes: 0 } });
    expect(body.id).toBeTypeOf('number');
    expect(Date.parse(body.createdAt)).not.toBeNaN();
    expect(kernelEntry('198.18.7.0/24')).toEqual({ ruleId: body.id, action: 1 });
  });

  it('returns 200 with the existing rule when the CIDR is already blocked', async () => {
    const first = (await post({ cidr: '198.18.8.0/24' })).json();
    const again = await post({ cidr: '198.18.8.0/24', comment: 'ignored' });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(first);
  });

  it('canonicalises IPv6 and blocks by destination', async () => {
    const res = await post({ cidr: 'FD00:0198:0000:0001::/64', direction: 'dst' });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ cidr: 'fd00:198:0:1::/64', direction: 'dst', comment: null });
    expect(kernelEntry('fd00:198:0:1::/64', 'dst')).toMatchObject({ action: 1 });
    expect(kernelEntry('fd00:198:0:1::/64', 'src')).toBeNull();
  });

  it.each([
    [{ cidr: '198.18.1.2/15' }, 400, 'INVALID_CIDR', /host bits set; did you mean 198\.18\.0\.0\/15/],
    [{ cidr: 'not-an-ip' }, 400, 'INVALID_CIDR', /not an IPv4 or IPv6 CIDR/],
    [{ cidr: '198.18.0.0/24', direction: 'both' }, 400, 'INVALID_REQUEST', /direction/],
    [{ cidr: '198.18.0.0/24', action: 'allow' }, 400, 'INVALID_REQUEST', /additional properties/],
    [{ comment: 'no cidr' }, 400, 'INVALID_REQUEST', /cidr/],
    [{ cidr: 42 }, 400, 'INVALID_REQUEST', /body\/cidr must be string/], // bodies are not coerced
    [{ cidr: '198.18.0.0/24', comment: 'x'.repeat(1025) }, 400, 'INVALID_REQUEST', /comment/],
  ])('%j → %i %s', async (payload, status, code, message) => {
    const res = await post(payload);
    expect(res.statusCode).toBe(status);
    expect(res.json()).toEqual({ error: { code, message: expect.stringMatching(message) } });
  });

  it('rejects malformed JSON, other media types and oversized bodies', async () => {
    const badJson = await app.inject({ method: 'POST', url: '/v1/blocks', headers: { 'content-type': 'application/json' }, payload: '{"cidr":' });
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json().error.code).toBe('INVALID_JSON');

    const text = await app.inject({ method: 'POST', url: '/v1/blocks', headers: { 'content-type': 'text/plain' }, payload: '198.18.0.0/24' });
    expect(text.statusCode).toBe(415);
    expect(text.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');

    const huge = await post({ cidr: '198.18.0.0/24', comment: 'x'.repeat(5000) });
    expect(huge.statusCode).toBe(413);
    expect(huge.json().error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('answers 507 CAPACITY_EXCEEDED when the IPv4 capacity is used up, and keeps nothing of the refused rule', async () => {
    const small = await openTestFirewall({ cidrV4: 2, cidrV6: 2, flows: 16 });
    const smallApp = await buildApp({ firewall: small });
    try {
      // Every form counts: a /25 (IPv4 trie) and a /24 (DIR-24 table, which itself cannot fill up).
      for (const cidr of ['198.18.1.0/25', '198.18.2.0/24']) {
        expect((await smallApp.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr } })).statusCode).toBe(201);
      }
      const full = await smallApp.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.3.0/25' } });
      expect(full.statusCode).toBe(507);
      expect(full.json().error).toMatchObject({ code: 'CAPACITY_EXCEEDED', message: expect.stringMatching(/capacity of 2 \(capacity.cidrV4\)/) });
      const listed = (await smallApp.inject('/v1/blocks')).json();
      expect(listed.items.map((b: { cidr: string }) => b.cidr)).toEqual(['198.18.1.0/25', '198.18.2.0/24']);
      // IPv6 has its own trie with room left.
      expect((await smallApp.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr: 'fd00:198::/48' } })).statusCode).toBe(201);
    } finally {
      await smallApp.close();
      small.close();
    }
  });
});

describe('POST /v1/blocks/bulk', () => {
  const bulk = (target: FastifyInstance, items: unknown[]) =>
    target.inject({ method: 'POST', url: '/v1/blocks/bulk', payload: { items } });

  it('imports many rules in one request: all in the store and the kernel', async () => {
    const items = Array.from({ length: 300 }, (_, i) => ({ cidr: `198.19.${i >> 2}.${(i & 3) * 64}/26` }));
    const res = await bulk(app, [...items, { cidr: '198.18.7.0/24' }, { cidr: 'fd00:198:0:3::/64', direction: 'dst' }]);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ created: 301, existing: 1 });
    expect(kernelEntry('198.19.74.192/26')).toMatchObject({ action: 1 });
    expect(kernelEntry('fd00:198:0:3::/64', 'dst')).toMatchObject({ action: 1 });
    expect((await app.inject('/v1/blocks?contains=198.19.74.200')).json().items).toEqual([
      expect.objectContaining({ cidr: '198.19.74.192/26', hits: { packets: 0, bytes: 0 } }),
    ]);
  });

  it('names the first invalid item and changes nothing', async () => {
    const before = (await app.inject('/v1/blocks?limit=1')).json().total;
    const res = await bulk(app, [{ cidr: '198.20.0.0/16' }, { cidr: '198.20.1.1/16' }]);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toEqual({ code: 'INVALID_CIDR', message: expect.stringMatching(/^items\[1\]: .*did you mean 198\.20\.0\.0\/16/) });
    expect(kernelEntry('198.20.0.0/16')).toBeNull();
    expect((await app.inject('/v1/blocks?limit=1')).json().total).toBe(before);
    expect((await bulk(app, [{ cidr: '198.20.0.0/16', colour: 'red' }])).statusCode).toBe(400);
    expect((await app.inject({ method: 'POST', url: '/v1/blocks/bulk', payload: { items: 'all' } })).statusCode).toBe(400);
  });

  it('refuses a batch the kernel has no room for with 507, leaving store and kernel as they were', async () => {
    const small = await openTestFirewall({ cidrV4: 4, cidrV6: 4, flows: 16 });
    const smallApp = await buildApp({ firewall: small });
    try {
      expect((await bulk(smallApp, [{ cidr: '198.18.1.0/25' }, { cidr: '198.18.9.0/24' }])).statusCode).toBe(200);
      const items = ['198.18.2.0/25', '198.18.3.0/25', '198.18.4.0/25', '198.18.5.0/25', '198.18.10.0/24'].map((cidr) => ({ cidr }));
      const res = await bulk(smallApp, items);
      expect(res.statusCode).toBe(507);
      expect(res.json().error.code).toBe('CAPACITY_EXCEEDED');
      expect((await smallApp.inject('/v1/blocks')).json().items.map((b: { cidr: string }) => b.cidr)).toEqual(['198.18.1.0/25', '198.18.9.0/24']);
      const trie = await small.datapath.maps.srcV4.lookupAll();
      expect(trie.count).toBe(1);
      const slotOf = (a: number, b: number, c: number) => readDir24Slot(small.datapath.maps.srcDir24, (a << 16) | (b << 8) | c);
      expect(slotOf(198, 18, 9) & DIR24_MAX_RULE_ID).not.toBe(0);
      expect(slotOf(198, 18, 10)).toBe(0);
      expect((await small.datapath.maps.ruleStats.lookupAll()).count).toBe(0); // created on a rule's first hit
    } finally {
      await smallApp.close();
      small.close();
    }
  });
});

describe('GET /v1/blocks', () => {
  it('pages and filters by contained address', async () => {
    const all = (await app.inject('/v1/blocks?limit=1000')).json();
    expect(all.total).toBe(all.items.length);
    expect(all.total).toBeGreaterThanOrEqual(3);

    const page = (await app.inject('/v1/blocks?limit=1&offset=1')).json();
    expect(page).toMatchObject({ limit: 1, offset: 1, total: all.total, items: [all.items[1]] });

    const containing = (await app.inject('/v1/blocks?contains=198.18.7.200')).json();
    expect(containing.items.map((b: { cidr: string }) => b.cidr)).toEqual(['198.18.7.0/24']);
  });

  it.each([
    ['/v1/blocks?limit=0', 'INVALID_REQUEST'],
    ['/v1/blocks?limit=1001', 'INVALID_REQUEST'],
    ['/v1/blocks?offset=-1', 'INVALID_REQUEST'],
    ['/v1/blocks?contains=198.18.0.0/24', 'INVALID_CIDR'],
    ['/v1/blocks?colour=red', 'INVALID_REQUEST'],
    ['/v1/blocks/abc', 'INVALID_REQUEST'],
  ])('%s → 400 %s', async (url, code) => {
    const res = await app.inject(url);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe(code);
  });

  it('returns one block by id, 404 NOT_FOUND for an unknown id', async () => {
    const { id } = (await post({ cidr: '198.18.9.0/24' })).json();
    expect((await app.inject(`/v1/blocks/${id}`)).json()).toMatchObject({ id, cidr: '198.18.9.0/24' });
    const missing = await app.inject('/v1/blocks/999999');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('NOT_FOUND');
  });
});

describe('DELETE /v1/blocks', () => {
  it('unblocks by id: 204, gone from the kernel, then 404', async () => {
    const { id } = (await post({ cidr: '198.18.10.0/24' })).json();
    const res = await app.inject({ method: 'DELETE', url: `/v1/blocks/${id}` });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expect(kernelEntry('198.18.10.0/24')).toBeNull();
    const again = await app.inject({ method: 'DELETE', url: `/v1/blocks/${id}` });
    expect(again.statusCode).toBe(404);
    expect(again.json().error.code).toBe('NOT_FOUND');
  });

  it('unblocks by CIDR in canonical or loose form, both directions unless one is named', async () => {
    await post({ cidr: 'fd00:198:0:2::/64' });
    await post({ cidr: 'fd00:198:0:2::/64', direction: 'dst' });
    const dstOnly = await app.inject({ method: 'DELETE', url: '/v1/blocks?cidr=fd00:198:0:2::/64&direction=dst' });
    expect(dstOnly.statusCode).toBe(204);
    expect(kernelEntry('fd00:198:0:2::/64', 'dst')).toBeNull();
    expect(kernelEntry('fd00:198:0:2::/64', 'src')).not.toBeNull();
    const loose = await app.inject({ method: 'DELETE', url: `/v1/blocks?cidr=${encodeURIComponent('FD00:198:0:2:0::/64')}` });
    expect(loose.statusCode).toBe(204);
    expect(kernelEntry('fd00:198:0:2::/64', 'src')).toBeNull();
  });

  it.each([
    ['/v1/blocks?cidr=198.18.99.0/24', 404, 'NOT_FOUND'],
    ['/v1/blocks?cidr=198.18.99.1/24', 400, 'INVALID_CIDR'],
    ['/v1/blocks', 400, 'INVALID_REQUEST'],
    ['/v1/blocks?cidr=198.18.99.0/24&direction=up', 400, 'INVALID_REQUEST'],
  ])('DELETE %s → %i %s', async (url, status, code) => {
    const res = await app.inject({ method: 'DELETE', url });
    expect(res.statusCode).toBe(status);
    expect(res.json().error.code).toBe(code);
  });
});

describe('observability routes', () => {
  it('lists no interfaces when attached to none', async () => {
    expect((await app.inject('/v1/interfaces')).json()).toEqual({ items: [] });
  });

  it('reports health, with a warning while no interface is attached', async () => {
    const res = await app.inject('/healthz');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok', interfaces: 0, blocks: expect.any(Number), warnings: ['no interface is attached: nothing is filtered'] });
  });

  it('serves the OpenAPI document and its UI', async () => {
    const doc = (await app.inject('/docs/json')).json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/blocks', '/v1/blocks/{id}', '/v1/flows', '/v1/stats', '/v1/interfaces', '/healthz']),
    );
    const ui = await app.inject('/docs/');
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toMatch(/text\/html/);
  });

  it('answers URLs the router refuses in the same error shape', async () => {
    const long = await app.inject(`/v1/blocks/${'9'.repeat(200)}`);
    expect(long.statusCode).toBe(414);
    expect(long.json()).toEqual({ error: { code: 'URI_TOO_LONG', message: expect.any(String) } });
    const bad = await app.inject('/v1/blocks/%E0%A4%A');
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({ error: { code: 'BAD_URL', message: expect.any(String) } });
  });

  it('answers unknown routes with 404 ROUTE_NOT_FOUND', async () => {
    const res = await app.inject('/v2/blocks');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: { code: 'ROUTE_NOT_FOUND', message: 'no route GET /v2/blocks' } });
  });

  it.each([
    ['/v1/flows?sort=size', 'INVALID_REQUEST'],
    ['/v1/flows?limit=0', 'INVALID_REQUEST'],
    ['/v1/flows?port=70000', 'INVALID_REQUEST'],
    ['/v1/flows?proto=sctp', 'INVALID_ARGUMENT'],
    ['/v1/flows?src=198.18.0.1/8', 'INVALID_CIDR'],
  ])('%s → 400 %s', async (url, code) => {
    const res = await app.inject(url);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe(code);
  });
});

describe('traffic through the real programs (BPF_PROG_TEST_RUN)', () => {
  const XDP_DROP = 1;
  const XDP_PASS = 2;
  const TC_ACT_OK = 0;
  const payload = Buffer.alloc(100, 0xab);
  const query = ether(ipv4({ src: '198.18.0.1', dst: '198.18.0.2' }, udp({ sport: 40000, dport: 53, payload })));
  const answer = ether(ipv4({ src: '198.18.0.2', dst: '198.18.0.1' }, udp({ sport: 53, dport: 40000, payload })));
  const syn = ether(ipv6({ src: 'fd00:198::1', dst: 'fd00:198::2' }, tcp({ sport: 50000, dport: 443, flags: TCP.syn })));
  const spoofed = ether(ipv4({ src: '198.18.66.5', dst: '198.18.0.2' }, udp({ sport: 1, dport: 53 })));

  beforeAll(async () => {
    const { ingress, egress } = firewall.datapath;
    // Test runs arrive on lo (ifindex 1), which nothing attached to: give it its counter slot as attach does.
    assignIfslot(firewall.datapath.maps, firewall.datapath.ifslots, 1, quietLog);
    for (let i = 0; i < 3; i++) expect(ingress.testRunSync({ data: query }).retval).toBe(XDP_PASS);
    expect(egress.testRunSync({ data: answer }).retval).toBe(TC_ACT_OK);
    expect(ingress.testRunSync({ data: syn }).retval).toBe(XDP_PASS);
  });

  it('reports one flow with both directions, bytes as frame lengths', async () => {
    const res = await app.inject('/v1/flows?proto=udp');
    expect(res.statusCode).toBe(200);
    const { items } = res.json();
    expect(items).toEqual([
      {
        proto: 'udp', src: '198.18.0.1', srcPort: 40000, dst: '198.18.0.2', dstPort: 53, iface: null,
        ingress: { packets: 3, bytes: 3 * query.length }, egress: { packets: 1, bytes: answer.length },
        firstSeen: expect.any(String), lastSeen: expect.any(String), tcpFlags: [],
      },
    ]);
    expect(Date.parse(items[0].lastSeen)).toBeGreaterThanOrEqual(Date.parse(items[0].firstSeen));
    expect(Math.abs(Date.parse(items[0].lastSeen) - Date.now())).toBeLessThan(60_000);
  });

  it('sorts and filters flows', async () => {
    const bytes = (await app.inject('/v1/flows?sort=bytes')).json().items;
    expect(bytes.map((f: { proto: string }) => f.proto)).toEqual(['udp', 'tcp']);
    const v6 = (await app.inject(`/v1/flows?src=${encodeURIComponent('fd00:198::/48')}`)).json().items;
    expect(v6).toEqual([expect.objectContaining({ proto: 'tcp', src: 'fd00:198::1', dstPort: 443, tcpFlags: ['SYN'] })]);
    expect((await app.inject('/v1/flows?port=443&proto=udp')).json().items).toEqual([]);
    expect((await app.inject('/v1/flows?limit=1&sort=packets')).json().items).toHaveLength(1);
  });

  it('drops a blocked source, counts it per rule and per reason, and keeps no flow for it', async () => {
    const { id } = (await post({ cidr: '198.18.66.0/24' })).json();
    expect(firewall.datapath.ingress.testRunSync({ data: spoofed }).retval).toBe(XDP_DROP);

    expect((await app.inject(`/v1/blocks/${id}`)).json().hits).toEqual({ packets: 1, bytes: spoofed.length });
    const stats = (await app.inject('/v1/stats')).json();
    expect(stats.totals.ingress.reasons.deny_src_cidr).toEqual({ packets: 1, bytes: spoofed.length });
    expect(stats.totals.ingress.verdicts.drop.packets).toBeGreaterThanOrEqual(1);
    expect(stats.totals.ingress.reasons.pass_no_match.packets).toBeGreaterThanOrEqual(4);
    expect(stats.totals.egress.reasons.pass_no_match).toEqual({ packets: 1, bytes: answer.length });
    expect(stats.interfaces).toEqual([expect.objectContaining({ iface: null, ifindex: 1 })]);
    expect((await app.inject('/v1/flows?src=198.18.66.0/24')).json().items).toEqual([]);
  });

  it('drops an established flow as soon as its source is blocked (cached verdicts retired)', async () => {
    const established = ether(ipv4({ src: '198.18.0.77', dst: '198.18.0.2' }, udp({ sport: 5000, dport: 53 })));
    for (let i = 0; i < 2; i++) expect(firewall.datapath.ingress.testRunSync({ data: established }).retval).toBe(XDP_PASS);
    const { id } = (await post({ cidr: '198.18.0.77/32' })).json();
    expect(kernelEntry('198.18.0.77/32')).toEqual({ ruleId: id, action: 1 });
    expect(firewall.datapath.ingress.testRunSync({ data: established }).retval).toBe(XDP_DROP);
    await app.inject({ method: 'DELETE', url: `/v1/blocks/${id}` });
    expect(kernelEntry('198.18.0.77/32')).toBeNull();
    expect(firewall.datapath.ingress.testRunSync({ data: established }).retval).toBe(XDP_PASS);
  });

  it('exposes the same counters to Prometheus, in a format promtool accepts', async () => {
    const res = await app.inject('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const denied = (await app.inject('/v1/stats')).json().totals.ingress.reasons.deny_src_cidr.packets;
    expect(denied).toBeGreaterThanOrEqual(1);
    expect(res.body).toContain(`xdpwall_packets_total{iface="ifindex:1",direction="ingress",verdict="drop",reason="deny_src_cidr"} ${denied}`);
    expect(res.body).toContain(`xdpwall_bytes_total{iface="ifindex:1",direction="egress",verdict="pass",reason="pass_no_match"} ${answer.length}`);
    expect(res.body).toMatch(/^xdpwall_flows 3$/m);
    expect(res.body).toMatch(/^xdpwall_blocks \d+$/m);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: res.body, encoding: 'utf8' });
    if (check.error) throw new Error(`promtool is needed for this test (apt-get install prometheus): ${check.error.message}`);
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });
});

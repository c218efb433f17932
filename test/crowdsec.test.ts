// The CrowdSec bouncer against a double of the Local API's decision stream
// (test/lib/lapi-double.ts, real HTTP on 127.0.0.1) and a real firewall:
// ban decisions become blocks of origin "crowdsec" with the decision's
// remaining time as ttl, enforced in the kernel (BPF_PROG_TEST_RUN), ranges
// whole; deletions unblock; failures keep the last state and show in
// /healthz and /metrics. The wall clock is injected. Needs root.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { CROWDSEC_ORIGIN, CrowdsecBouncer } from '../src/integrations/crowdsec.js';
import { decisionBlock, parseDecisionStream, parseGoDuration, type StreamDecision } from '../src/integrations/crowdsec-decisions.js';
import { openTestFirewall } from './lib/firewall.js';
import { parseFailsafe } from '../src/policy/failsafe.js';
import { LapiDouble, formatGoDuration } from './lib/lapi-double.js';
import { ether, ipv4, ipv6, udp } from './lib/packets.js';
import { xdpCtx } from './lib/policy.js';

const T0 = Date.parse('2026-12-02T12:00:00Z');
const KEY = 'bouncer-key-0123456789';
let wallMs = T0;
const now = () => wallMs;

describe('Go durations as LAPI writes them', () => {
  it.each([
    ['3h59m58.1s', 14_398_100],
    ['59m54.652651816s', 3_594_652.651816],
    ['1h0m0s', 3_600_000],
    ['-1.947069495s', -1947.069495],
    ['-440.679594ms', -440.679594],
    ['0s', 0],
    ['1.5h', 5_400_000],
    ['250us', 0.25],
    ['12ns', 0.000012],
  ])('%s is %d ms', (text, ms) => expect(parseGoDuration(text)).toBeCloseTo(ms, 9));

  it.each(['', 'h', '1', '1x', '5 m', '1h-2m', 'abc', '--1s', '1e3s'])('%j is not a duration', (text) => expect(parseGoDuration(text)).toBeUndefined());

  it.each([0, 440.679594, 1947.069495, 3_594_652.651816, 14_398_100, 86_400_000])('formats %d ms as Go does, and reads it back', (ms) => {
    expect(parseGoDuration(formatGoDuration(ms))).toBeCloseTo(ms, 6);
    expect(parseGoDuration(formatGoDuration(-ms))).toBeCloseTo(-ms, 6);
  });
});

describe('decisions as blocks', () => {
  const d = (over: Partial<StreamDecision>): StreamDecision => ({ id: 1, type: 'ban', scope: 'Ip', value: '198.18.5.5', duration: '1h', ...over });
  it.each([
    ['IPv4 address', d({}), { cidr: '198.18.5.5/32', ttl: 3600 }],
    ['IPv6 address', d({ value: 'fd00:198::5' }), { cidr: 'fd00:198::5/128', ttl: 3600 }],
    ['IPv4 range', d({ scope: 'Range', value: '198.18.6.0/24' }), { cidr: '198.18.6.0/24', ttl: 3600 }],
    ['IPv4 range with host bits: the whole range', d({ scope: 'Range', value: '198.18.6.77/24' }), { cidr: '198.18.6.0/24', ttl: 3600 }],
    ['IPv6 range', d({ scope: 'Range', value: 'fd00:198:1::/64' }), { cidr: 'fd00:198:1::/64', ttl: 3600 }],
    ['lower-case scope (cscli decisions import)', d({ scope: 'ip' }), { cidr: '198.18.5.5/32', ttl: 3600 }],
    ['remaining time rounded up', d({ duration: '59m54.652651816s' }), { cidr: '198.18.5.5/32', ttl: 3595 }],
    ['a ten-year cap', d({ duration: '876000h' }), { cidr: '198.18.5.5/32', ttl: 315_360_000 }],
    ['captcha', d({ type: 'captcha' }), { skip: 'unsupported_type' }],
    ['country scope', d({ scope: 'Country', value: 'FR' }), { skip: 'unsupported_scope' }],
    ['Ip scope with a prefix', d({ value: '198.18.5.0/24' }), { skip: 'invalid_value' }],
    ['Range without a prefix', d({ scope: 'Range', value: '198.18.5.0' }), { skip: 'invalid_value' }],
    ['Range with a prefix too long', d({ scope: 'Range', value: '198.18.5.0/33' }), { skip: 'invalid_value' }],
    ['not an address', d({ value: '198.18.5' }), { skip: 'invalid_value' }],
    ['expired', d({ duration: '-1.2s' }), { skip: 'expired' }],
    ['no duration', d({ duration: 'forever' }), { skip: 'invalid_duration' }],
  ])('%s', (_name, decision, expected) => expect(decisionBlock(decision)).toEqual(expected));

  it('a stream that is not the documented shape is an error; entries that are not decisions are counted', () => {
    expect(() => parseDecisionStream('<html>')).toThrow(/not JSON/);
    expect(() => parseDecisionStream('[]')).toThrow(/not a JSON object/);
    expect(() => parseDecisionStream('{"new": {"id": 1}}')).toThrow(/"new" .* neither a list nor null/);
    expect(parseDecisionStream('{"new": null, "deleted": null}')).toEqual({ new: [], deleted: [], malformed: 0 });
    const stream = parseDecisionStream(JSON.stringify({ new: [d({}), { id: 'x' }, null, 7], deleted: [{ ...d({}), id: 1.5 }] }));
    expect(stream).toEqual({ new: [d({})], deleted: [], malformed: 4 });
  });
});

describe('the bouncer on a firewall', () => {
  let firewall: Firewall;
  let app: FastifyInstance;
  let lapi: LapiDouble;
  let bouncer: CrowdsecBouncer;
  let unregister: () => void;

  beforeAll(async () => {
    firewall = await openTestFirewall({ cidrV4: 32_768, cidrV6: 1024, flows: 1024 }, { wallMs: now, monotonicNs: () => process.hrtime.bigint() }, {
      failsafe: parseFailsafe([{ cidr: '198.18.9.0/24' }]),
    });
    app = await buildApp({ firewall });
  });
  afterAll(async () => {
    await app?.close();
    firewall?.close();
  });
  beforeEach(async () => {
    wallMs = T0;
    lapi = await new LapiDouble(KEY, now).start();
    bouncer = new CrowdsecBouncer({ url: lapi.url, apiKey: KEY, refreshMs: 10_000 }, firewall.originBlocks(CROWDSEC_ORIGIN), { now, timeoutMs: 2_000 });
    unregister = firewall.integrations.register(CROWDSEC_ORIGIN, () => bouncer.status());
  });
  afterEach(async () => {
    await bouncer.stop();
    unregister();
    await lapi.close();
    // Leave no block for the next test.
    await firewall.blocks.removeMany(firewall.blocks.all().map(({ cidr, direction }) => ({ cidr, direction })));
  });

  const v4 = (src: string) => ether(ipv4({ src, dst: '198.18.7.9' }, udp({ sport: 1, dport: 7000 })));
  const v6 = (src: string) => ether(ipv6({ src, dst: 'fd00:198::9' }, udp({ sport: 1, dport: 7000 })));
  /** XDP_DROP (1) or XDP_PASS (2) for a packet from this address. */
  const verdict = (src: string) => {
    const frame = src.includes(':') ? v6(src) : v4(src);
    return firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval;
  };
  const DROP = 1;
  const PASS = 2;
  const crowdsecBlocks = () => firewall.blocks.list({ origin: CROWDSEC_ORIGIN, limit: 1000 }).items.map((b) => ({ cidr: b.cidr, ...firewall.blockMeta.meta(b) }));
  const health = async () => (await app.inject('/healthz')).json();

  it('follows the stream from startup=true with the key; bans of addresses and whole ranges, IPv4 and IPv6, are enforced with their ttl', async () => {
    lapi.add('198.18.5.5', { durationMs: 3_600_000 });
    lapi.add('198.18.6.0/24', { durationMs: 7_200_000 });
    lapi.add('fd00:198::5', { durationMs: 60_000 });
    lapi.add('fd00:198:1::/64', { durationMs: 14_398_100 }); // "3h59m58.1s"
    await bouncer.pull();
    expect(bouncer.status()).toMatchObject({ state: 'ok', entries: 4, lastSuccessAt: new Date(T0).toISOString(), updates: { ok: 1, error: 0 } });
    expect(lapi.requests).toEqual([{ url: '/v1/decisions/stream?startup=true', apiKey: KEY }]);
    expect(crowdsecBlocks().sort((a, b) => a.cidr.localeCompare(b.cidr))).toEqual([
      { cidr: '198.18.5.5/32', expiresAt: '2026-12-02T13:00:00.000Z', dryRun: false, origin: 'crowdsec' },
      { cidr: '198.18.6.0/24', expiresAt: '2026-12-02T14:00:00.000Z', dryRun: false, origin: 'crowdsec' },
      { cidr: 'fd00:198::5/128', expiresAt: '2026-12-02T12:01:00.000Z', dryRun: false, origin: 'crowdsec' },
      { cidr: 'fd00:198:1::/64', expiresAt: '2026-12-02T15:59:59.000Z', dryRun: false, origin: 'crowdsec' },
    ]);
    // Whole ranges: the first, a middle and the last address, not only the first.
    for (const src of ['198.18.5.5', '198.18.6.0', '198.18.6.77', '198.18.6.255', 'fd00:198::5', 'fd00:198:1::', 'fd00:198:1::abcd', 'fd00:198:1:0:ffff:ffff:ffff:ffff']) {
      expect([src, verdict(src)]).toEqual([src, DROP]);
    }
    for (const src of ['198.18.5.6', '198.18.7.1', 'fd00:198::6', 'fd00:198:2::1']) expect([src, verdict(src)]).toEqual([src, PASS]);

    // The API lists and filters them by origin.
    const listed = (await app.inject('/v1/blocks?origin=crowdsec')).json();
    expect(listed.total).toBe(4);
    expect(listed.items.every((b: { origin: string }) => b.origin === 'crowdsec')).toBe(true);
    expect((await app.inject('/v1/blocks?origin=api')).json().total).toBe(0);
    expect((await app.inject('/v1/blocks?origin=Not%20A%20Name')).statusCode).toBe(400);
  });

  it('then pulls deltas: a new decision blocks, a deleted one unblocks; an address two decisions ban stays blocked until both are gone', async () => {
    await bouncer.pull();
    const first = lapi.add('198.18.5.5');
    const second = lapi.add('198.18.5.5', { durationMs: 7_200_000 });
    const range = lapi.add('198.18.6.0/24');
    await bouncer.pull();
    expect(lapi.requests.map((r) => r.url)).toEqual(['/v1/decisions/stream?startup=true', '/v1/decisions/stream']);
    expect(verdict('198.18.5.5')).toBe(DROP);
    expect(firewall.blockMeta.meta({ cidr: '198.18.5.5/32', direction: 'src' }).expiresAt).toBe('2026-12-02T14:00:00.000Z');
    expect(verdict('198.18.6.200')).toBe(DROP);
    lapi.delete(first);
    lapi.delete(range);
    await bouncer.pull();
    expect(verdict('198.18.5.5')).toBe(DROP);
    expect(verdict('198.18.6.200')).toBe(PASS);
    lapi.delete(second);
    await bouncer.pull();
    expect(verdict('198.18.5.5')).toBe(PASS);
    expect(crowdsecBlocks()).toEqual([]);
    expect(bouncer.status()).toMatchObject({ state: 'ok', entries: 0, updates: { ok: 4, error: 0 } });
  });

  it('never removes a block it does not own: an operator\'s permanent block of the same address stays after the decision goes', async () => {
    expect((await app.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.5.5' } })).statusCode).toBe(201);
    const id = lapi.add('198.18.5.5');
    await bouncer.pull();
    expect(firewall.blockMeta.meta({ cidr: '198.18.5.5/32', direction: 'src' })).toEqual({ expiresAt: null, dryRun: false, origin: null });
    lapi.delete(id);
    await bouncer.pull();
    expect(verdict('198.18.5.5')).toBe(DROP);
    expect((await app.inject('/v1/blocks?origin=api')).json().items.map((b: { cidr: string }) => b.cidr)).toEqual(['198.18.5.5/32']);
  });

  it('skips what it cannot block (other types and scopes, the failsafe list, 0.0.0.0/0) and applies the rest', async () => {
    lapi.add('198.18.5.5', { type: 'captcha' });
    lapi.add('FR', { scope: 'Country' });
    lapi.add('198.18.9.0/24'); // the failsafe list
    lapi.add('0.0.0.0/0');
    lapi.add('198.18.5.6');
    await bouncer.pull();
    expect(bouncer.status()).toMatchObject({ state: 'ok', entries: 1, skipped: { unsupported_type: 1, unsupported_scope: 1, refused: 2 } });
    expect(crowdsecBlocks().map((b) => b.cidr)).toEqual(['198.18.5.6/32']);
  });

  it.each([
    ['an HTTP 500', { kind: 'status', status: 500 } as const, /crowdsec: the Local API answered HTTP 500/],
    ['a body that is not JSON', { kind: 'body', body: '<html>oops</html>' } as const, /crowdsec: the decision stream is not JSON/],
    ['JSON of another shape', { kind: 'body', body: '{"new": "198.18.5.7"}' } as const, /"new" in the decision stream is neither a list nor null/],
    ['no answer in time', { kind: 'hang' } as const, /no answer from http:\/\/127\.0\.0\.1:\d+\/v1\/decisions\/stream within 2000 ms/],
  ])('%s keeps the last state, says degraded in /healthz and /metrics and the log, then resyncs from startup=true', async (_name, fault, reason) => {
    const warn = vi.fn();
    bouncer = new CrowdsecBouncer({ url: lapi.url, apiKey: KEY, refreshMs: 10_000 }, firewall.originBlocks(CROWDSEC_ORIGIN), { now, timeoutMs: 2_000, log: { info: () => {}, warn } });
    const gone = lapi.add('198.18.5.5');
    lapi.add('198.18.6.0/24');
    await bouncer.pull();
    lapi.fault(fault);
    lapi.delete(gone); // while the bouncer cannot see it
    lapi.add('198.18.5.7');
    await bouncer.pull();
    expect(bouncer.status()).toMatchObject({ state: 'degraded', reason: expect.stringMatching(reason), updates: { ok: 1, error: 1 } });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![1]).toMatch(reason);
    expect(verdict('198.18.5.5')).toBe(DROP); // the last state stays
    expect(verdict('198.18.6.1')).toBe(DROP);
    const healthz = await health();
    expect(healthz).toMatchObject({ status: 'degraded', integrations: [{ name: 'crowdsec', state: 'degraded', lastSuccessAt: '2026-12-02T12:00:00.000Z', entries: 2 }] });
    expect(healthz.integrations[0].reason).toMatch(reason);
    const metrics = (await app.inject('/metrics')).body;
    expect(metrics).toContain('xdpwall_integration_up{integration="crowdsec"} 0');
    expect(metrics).toContain('xdpwall_integration_updates_total{integration="crowdsec",result="error"} 1');

    await bouncer.pull();
    expect(lapi.requests.at(-1)!.url).toBe('/v1/decisions/stream?startup=true');
    expect(bouncer.status()).toMatchObject({ state: 'ok', entries: 2, updates: { ok: 2, error: 1 } });
    expect(bouncer.status().reason).toBeUndefined();
    expect(crowdsecBlocks().map((b) => b.cidr).sort()).toEqual(['198.18.5.7/32', '198.18.6.0/24']);
    expect(verdict('198.18.5.5')).toBe(PASS);
    expect((await health()).status).toBe('ok');
    const after = (await app.inject('/metrics')).body;
    expect(after).toContain('xdpwall_integration_up{integration="crowdsec"} 1');
    expect(after).toContain('xdpwall_integration_entries{integration="crowdsec"} 2');
  });

  it('entries that are not decisions are skipped and counted; the rest of the answer applies', async () => {
    lapi.fault({ kind: 'body', body: JSON.stringify({ new: [{ id: 1, type: 'ban', scope: 'Ip', value: '198.18.5.5', duration: '1h' }, { id: 'two' }, 'x'], deleted: null }) });
    await bouncer.pull();
    expect(bouncer.status()).toMatchObject({ state: 'ok', entries: 1, skipped: { malformed: 2 } });
    expect(verdict('198.18.5.5')).toBe(DROP);
  });

  it('a wrong key or an unreachable LAPI is degraded with the reason', async () => {
    const wrongKey = new CrowdsecBouncer({ url: lapi.url, apiKey: 'wrong', refreshMs: 10_000 }, firewall.originBlocks(CROWDSEC_ORIGIN), { now });
    await wrongKey.pull();
    expect(wrongKey.status()).toMatchObject({ state: 'degraded', reason: 'crowdsec: the Local API refused the bouncer key (HTTP 403); make one with `cscli bouncers add NAME`' });
    const closed = new LapiDouble(KEY);
    await closed.start();
    const url = closed.url;
    await closed.close();
    const unreachable = new CrowdsecBouncer({ url, apiKey: KEY, refreshMs: 10_000 }, firewall.originBlocks(CROWDSEC_ORIGIN), { now });
    await unreachable.pull();
    expect(unreachable.status()).toMatchObject({ state: 'degraded', reason: `crowdsec: cannot reach the Local API at ${url}/v1/decisions/stream?startup=true: ECONNREFUSED` });
  });

  it('a large list is one bulk change, not a change per decision', async () => {
    for (let i = 0; i < 20_000; i++) lapi.add(`198.18.${128 + (i >> 8)}.${i & 255}`);
    lapi.add('fd00:198:2::/48');
    const bulk = vi.spyOn(firewall.blocks, 'addMany');
    const single = vi.spyOn(firewall.blocks, 'add');
    await bouncer.pull();
    expect(bulk).toHaveBeenCalledTimes(1);
    expect(single).not.toHaveBeenCalled();
    bulk.mockRestore();
    single.mockRestore();
    expect(bouncer.status()).toMatchObject({ state: 'ok', entries: 20_001, updates: { ok: 1, error: 0 } });
    expect(firewall.blocks.list({ origin: CROWDSEC_ORIGIN, limit: 1 }).total).toBe(20_001);
    expect(verdict('198.18.128.0')).toBe(DROP);
    expect(verdict('198.18.206.31')).toBe(DROP); // the last: i = 19_999
    expect(verdict('198.18.206.32')).toBe(PASS);
  });

  it('at start, blocks it owned whose decisions went while it was away are removed (startup reconciles)', async () => {
    lapi.add('198.18.5.5');
    const gone = lapi.add('198.18.5.6');
    await bouncer.pull();
    await bouncer.stop();
    lapi.delete(gone);
    const next = new CrowdsecBouncer({ url: lapi.url, apiKey: KEY, refreshMs: 10_000 }, firewall.originBlocks(CROWDSEC_ORIGIN), { now });
    await next.pull();
    expect(crowdsecBlocks().map((b) => b.cidr)).toEqual(['198.18.5.5/32']);
    expect(verdict('198.18.5.6')).toBe(PASS);
  });

  it('a decision no delta carried, and a block removed behind its back, are enforced again by the periodic resync; /metrics counts the drift', async () => {
    const resyncing = new CrowdsecBouncer({ url: lapi.url, apiKey: KEY, refreshMs: 10_000, resyncMs: 600_000 }, firewall.originBlocks(CROWDSEC_ORIGIN), { now, timeoutMs: 2_000 });
    unregister();
    unregister = firewall.integrations.register(CROWDSEC_ORIGIN, () => resyncing.status());
    lapi.add('198.18.5.5', { durationMs: 7_200_000 });
    lapi.add('198.18.5.6', { durationMs: 7_200_000 });
    await resyncing.pull();
    wallMs += 10_000;
    lapi.add('198.18.6.0/24', { durationMs: 7_200_000, late: true });
    await resyncing.pull();
    await firewall.blocks.removeByCidr('198.18.5.6/32');
    expect([verdict('198.18.6.9'), verdict('198.18.5.6'), verdict('198.18.5.5')]).toEqual([PASS, PASS, DROP]);
    wallMs = T0 + 600_000;
    await resyncing.pull();
    expect(lapi.requests.map((r) => r.url)).toEqual(['/v1/decisions/stream?startup=true', '/v1/decisions/stream', '/v1/decisions/stream?startup=true']);
    expect([verdict('198.18.6.9'), verdict('198.18.5.6'), verdict('198.18.5.5')]).toEqual([DROP, DROP, DROP]);
    expect(crowdsecBlocks().sort((a, b) => a.cidr.localeCompare(b.cidr))).toEqual([
      { cidr: '198.18.5.5/32', expiresAt: '2026-12-02T14:00:00.000Z', dryRun: false, origin: 'crowdsec' },
      { cidr: '198.18.5.6/32', expiresAt: '2026-12-02T14:00:00.000Z', dryRun: false, origin: 'crowdsec' },
      { cidr: '198.18.6.0/24', expiresAt: '2026-12-02T14:00:10.000Z', dryRun: false, origin: 'crowdsec' },
    ]);
    expect(resyncing.status()).toMatchObject({ state: 'ok', entries: 3, resync: { runs: 1, added: 2, extended: 0, removed: 0, lastAt: '2026-12-02T12:10:00.000Z' } });
    const metrics = (await app.inject('/metrics')).body;
    expect(metrics).toContain('xdpwall_integration_resyncs_total{integration="crowdsec"} 1');
    expect(metrics).toContain('xdpwall_integration_resync_drift_total{integration="crowdsec",change="added"} 2');
    expect(metrics).toContain('xdpwall_integration_resync_drift_total{integration="crowdsec",change="extended"} 0');
    expect(metrics).toContain('xdpwall_integration_resync_drift_total{integration="crowdsec",change="removed"} 0');
  });

  it('start() pulls at once and every refresh; stop() ends the loop', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const loop = new CrowdsecBouncer({ url: lapi.url, apiKey: KEY, refreshMs: 10_000 }, firewall.originBlocks(CROWDSEC_ORIGIN), { now, timeoutMs: 60_000 });
      loop.start();
      await vi.waitFor(() => expect(loop.status().updates.ok).toBe(1));
      lapi.add('198.18.5.5');
      await vi.advanceTimersByTimeAsync(10_000);
      await vi.waitFor(() => expect(loop.status().updates.ok).toBe(2));
      expect(verdict('198.18.5.5')).toBe(DROP);
      await loop.stop();
      await vi.advanceTimersByTimeAsync(30_000);
      expect(lapi.requests.length).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });
});

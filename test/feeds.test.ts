// Feeds against a real HTTP server this test starts on 127.0.0.1: the list
// is filled and enforced (BPF_PROG_TEST_RUN), an unchanged feed answers 304
// to If-None-Match / If-Modified-Since, and a failed fetch or a broken body
// keeps the last good version while /healthz and /metrics say so. Needs root.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { FeedRunner, parseDuration, parseFeeds } from '../src/lists/feeds.js';
import { openTestFirewall } from './lib/firewall.js';
import { ether, ipv4, udp } from './lib/packets.js';
import { xdpCtx } from './lib/policy.js';

const XDP_DROP = 1;
const XDP_PASS = 2;

let firewall: Firewall;
let app: FastifyInstance;
let server: Server;
let url: string;
/** What the server answers next. */
let serve: { status: number; body: string; etag?: string; lastModified?: string } = { status: 200, body: '' };
const requests: IncomingMessage['headers'][] = [];

const verdict = (src: string) => {
  const frame = ether(ipv4({ src, dst: '198.19.0.1' }, udp({ sport: 1, dport: 2 })));
  return firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval;
};

beforeAll(async () => {
  firewall = await openTestFirewall();
  app = await buildApp({ firewall });
  server = createServer((req, res) => {
    requests.push(req.headers);
    if (serve.etag && req.headers['if-none-match'] === serve.etag) {
      res.writeHead(304).end();
      return;
    }
    res.writeHead(serve.status, {
      'content-type': 'text/plain',
      ...(serve.etag && { etag: serve.etag }),
      ...(serve.lastModified && { 'last-modified': serve.lastModified }),
    });
    res.end(serve.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/drop.txt`;
});

afterAll(async () => {
  await app?.close();
  firewall?.close();
  await new Promise((resolve) => server?.close(resolve));
});

describe('feeds configuration', () => {
  it('parses durations and feed entries, and refuses bad ones with the key named', () => {
    expect([parseDuration('30s', 'x'), parseDuration('5m', 'x'), parseDuration('1h', 'x')]).toEqual([30_000, 300_000, 3_600_000]);
    expect(() => parseDuration('soon', 'feeds[0].refresh')).toThrow('feeds[0].refresh must be a duration like 30s, 5m or 1h');
    expect(parseFeeds([{ list: 'drop', url: 'https://www.spamhaus.org/drop/drop.txt', format: 'spamhaus', refresh: '1h' }])).toEqual([
      { list: 'drop', url: 'https://www.spamhaus.org/drop/drop.txt', format: 'spamhaus', refreshMs: 3_600_000, action: 'deny', direction: 'src' },
    ]);
    expect(() => parseFeeds([{ list: 'x', url: 'ftp://a/b' }])).toThrow('feeds[0].url must be an http:// or https:// URL');
    expect(() => parseFeeds([{ list: 'x', url: 'http://a/', action: 'block' }])).toThrow('feeds[0].action must be deny, allow or none');
    expect(() => parseFeeds([{ list: 'x', url: 'http://a/', every: '1h' }])).toThrow('feeds[0]: unknown key every');
  });
});

describe('a feed from a local HTTP server', () => {
  it('fills, keeps, replaces, and survives failures with the last good version', async () => {
    const logs: string[] = [];
    const log = { info: (_d: object, m: string) => logs.push(m), warn: (_d: object, m: string) => logs.push(`WARN ${m}`) };
    const feeds = new FeedRunner(parseFeeds([{ list: 'drop', url, format: 'spamhaus', refresh: '1h' }]), firewall.lists, log);
    firewall.feeds = feeds;
    const health = async () => (await app.inject({ method: 'GET', url: '/healthz' })).json();
    const metrics = async () => (await app.inject({ method: 'GET', url: '/metrics' })).body;

    serve = { status: 200, body: '; Spamhaus DROP\n198.18.5.0/24 ; SBL1\n198.18.6.0/24 ; SBL2\n', etag: '"v1"', lastModified: 'Tue, 01 Dec 2026 10:00:00 GMT' };
    await feeds.refreshAll();
    expect(feeds.states()[0]).toMatchObject({ list: 'drop', ok: true, entries: 2, fetches: { updated: 1, notModified: 0, failed: 0 } });
    expect(firewall.lists.get('drop')).toMatchObject({ origin: 'feed', action: 'deny', direction: 'src', revision: 1 });
    expect(verdict('198.18.5.1')).toBe(XDP_DROP);

    await feeds.refreshAll();
    expect(requests.at(-1)).toMatchObject({ 'if-none-match': '"v1"', 'if-modified-since': 'Tue, 01 Dec 2026 10:00:00 GMT' });
    expect(feeds.states()[0]!.fetches).toEqual({ updated: 1, notModified: 1, failed: 0 });
    expect(firewall.lists.get('drop').revision).toBe(1);

    serve = { status: 200, body: '198.18.7.0/24 ; SBL3\n198.18.6.0/24 ; SBL2\n', etag: '"v2"' };
    await feeds.refreshAll();
    expect(verdict('198.18.5.1')).toBe(XDP_PASS);
    expect(verdict('198.18.7.1')).toBe(XDP_DROP);
    expect(firewall.lists.get('drop').revision).toBe(2);

    serve = { status: 503, body: 'maintenance' };
    await feeds.refreshAll();
    expect(verdict('198.18.7.1')).toBe(XDP_DROP);
    const degraded = await health();
    expect(degraded.status).toBe('degraded');
    expect(degraded.degraded).toEqual([{ feed: 'drop', reason: `feed drop (${url}): HTTP 503 Service Unavailable; the last good version stays in force` }]);
    expect(await metrics()).toMatch(/^xdpwall_feed_up\{list="drop"\} 0$/m);
    expect(logs).toContain('WARN feed refresh failed');

    serve = { status: 200, body: '198.18.8.0/24\n<html>oops</html>\n', etag: '"v3"' };
    await feeds.refreshAll();
    expect(feeds.states()[0]!.reason).toContain('INVALID_CIDR: line 2');
    expect(verdict('198.18.7.1')).toBe(XDP_DROP);
    expect(verdict('198.18.8.1')).toBe(XDP_PASS);

    serve = { status: 200, body: '198.18.8.0/24\n', etag: '"v4"' };
    await feeds.refreshAll();
    expect(verdict('198.18.8.1')).toBe(XDP_DROP);
    expect(verdict('198.18.7.1')).toBe(XDP_PASS);
    expect((await health()).status).toBe('ok');
    const text = await metrics();
    expect(text).toMatch(/^xdpwall_feed_up\{list="drop"\} 1$/m);
    expect(text).toMatch(/^xdpwall_feed_fetches_total\{list="drop",result="failed"\} 2$/m);
    expect(text).toMatch(/^xdpwall_list_entries\{list="drop",action="deny"\} 1$/m);
    expect(logs).toContain('feed healthy again');
    feeds.stop();
    firewall.feeds = undefined;
  });
});

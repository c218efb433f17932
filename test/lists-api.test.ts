// /v1/lists through inject() on a real Firewall: lists are stored, compiled
// into the block tables, and packets run through the real program
// (BPF_PROG_TEST_RUN) meet them. Includes the atomic-replace check: an
// address in both the old and the new list is dropped by every one of
// millions of runs while the list is replaced back and forth. Needs root.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { openTestFirewall } from './lib/firewall.js';
import { ether, ipv4, ipv6, udp } from './lib/packets.js';
import { xdpCtx } from './lib/policy.js';
import { parseListText } from '../src/lists/parse.js';

const XDP_DROP = 1;
const XDP_PASS = 2;

const frameFrom = (src: string, dst = '198.19.200.1') =>
  src.includes(':') ? ether(ipv6({ src, dst: 'fd00:198::200' }, udp({ sport: 4000, dport: 53 }))) : ether(ipv4({ src, dst }, udp({ sport: 4000, dport: 53 })));

let firewall: Firewall;
let app: FastifyInstance;
const verdict = (src: string, dst?: string) => {
  const frame = frameFrom(src, dst);
  return firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval;
};

describe('list text formats', () => {
  it('parses FireHOL netsets and Spamhaus DROP as they are, comments and duplicates aside', () => {
    const firehol = '#\n# firehol_level1\n#\n0.0.0.0/8\n1.10.16.0/20\n1.19.0.0/16\n1.19.0.0/16\n';
    expect(parseListText(firehol).texts).toEqual(['0.0.0.0/8', '1.10.16.0/20', '1.19.0.0/16']);
    expect(() => parseListText('1.2.3.0/24\n0.0.0.0/0\n')).toThrow(/line 2: 0.0.0.0\/0 covers everything/);
    expect(parseListText('# x\n1.10.16.0/20\n1.19.0.0/16\n1.19.0.0/16\n').texts).toEqual(['1.10.16.0/20', '1.19.0.0/16']);
    const spamhaus = '; Spamhaus DROP List 2026/12/02 - (c) 2026 The Spamhaus Project\n; Last-Modified: Tue, 01 Dec 2026\n1.10.16.0/20 ; SBL256894\n2001:db8::/32 ; SBL1\n';
    expect(parseListText(spamhaus).texts).toEqual(['1.10.16.0/20', '2001:db8::/32']);
    expect(parseListText('198.18.0.1\r\n198.18.0.2  extra column\n').texts).toEqual(['198.18.0.1/32', '198.18.0.2/32']);
    expect(() => parseListText('198.18.0.1\n198.18.0.1/15\n')).toThrow(/line 2: .*host bits/);
  });
});

describe('/v1/lists', () => {
  beforeAll(async () => {
    firewall = await openTestFirewall({ cidrV4: 16_384, cidrV6: 1024, flows: 1024 });
    app = await buildApp({ firewall });
  });
  afterAll(async () => {
    await app?.close();
    firewall?.close();
  });
  beforeEach(async () => {
    for (const list of firewall.lists.all()) await firewall.lists.delete(list.name);
    for (const block of firewall.blocks.list({ limit: 1000, offset: 0 }).items) await firewall.blocks.removeById(block.id);
  });

  const put = (name: string, payload: object, headers: Record<string, string> = {}) =>
    app.inject({ method: 'PUT', url: `/v1/lists/${name}`, payload, headers });

  it('PUT JSON stores and enforces a deny list; GET shows it, its entries and its hits', async () => {
    const res = await put('bad', { entries: ['198.18.5.0/24', '198.18.6.7', 'fd00:198:1::/48'], comment: 'test' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toEqual({ name: 'bad', count: 3, revision: 1, updatedAt: body.updatedAt });
    expect(res.headers.etag).toBe('"1"');
    expect(verdict('198.18.5.9')).toBe(XDP_DROP);
    expect(verdict('198.18.6.7')).toBe(XDP_DROP);
    expect(verdict('198.18.6.8')).toBe(XDP_PASS);
    expect(verdict('fd00:198:1::5')).toBe(XDP_DROP);
    const one = (await app.inject({ method: 'GET', url: '/v1/lists/bad' })).json();
    expect(one).toMatchObject({ name: 'bad', action: 'deny', direction: 'src', comment: 'test', count: 3, revision: 1, origin: 'api' });
    expect(one.hits.packets).toBe(3);
    expect((await app.inject({ method: 'GET', url: '/v1/lists' })).json().items.map((l: { name: string }) => l.name)).toEqual(['bad']);
    const entries = (await app.inject({ method: 'GET', url: '/v1/lists/bad/entries?limit=2&offset=1' })).json();
    expect(entries).toEqual({ items: ['198.18.6.7/32', 'fd00:198:1::/48'], total: 3, limit: 2, offset: 1, revision: 1 });
    const containing = (await app.inject({ method: 'GET', url: '/v1/lists/bad/entries?contains=198.18.5.77' })).json();
    expect(containing.items).toEqual(['198.18.5.0/24']);
  });

  it('GET progress: inactive for a list no change is under way for, 404 for no list (the counts themselves: test/list-keys.test.ts)', async () => {
    expect((await put('quiet', { entries: ['198.18.5.0/24'] })).statusCode).toBe(200);
    const idle = await app.inject({ method: 'GET', url: '/v1/lists/quiet/progress' });
    expect([idle.statusCode, idle.json()]).toEqual([200, { name: 'quiet', active: false }]);
    const missing = await app.inject({ method: 'GET', url: '/v1/lists/nosuch/progress' });
    expect([missing.statusCode, missing.json().error.code]).toEqual([404, 'NOT_FOUND']);
  });

  it('PUT text/plain takes action and direction from the query; dst lists match destinations', async () => {
    const res = await app.inject({
      method: 'PUT', url: '/v1/lists/dsts?direction=dst', headers: { 'content-type': 'text/plain' },
      payload: '; Spamhaus DROP\n198.19.200.0/24 ; SBL1\n',
    });
    expect(res.statusCode).toBe(200);
    expect(verdict('198.18.1.1', '198.19.200.1')).toBe(XDP_DROP);
    expect(verdict('198.19.200.1', '198.18.1.1')).toBe(XDP_PASS);
    const none = await app.inject({ method: 'PUT', url: '/v1/lists/ref?action=none', headers: { 'content-type': 'text/plain' }, payload: '198.18.9.0/24\n' });
    expect(none.statusCode).toBe(200);
    expect(verdict('198.18.9.1', '198.18.1.1')).toBe(XDP_PASS);
  });

  it('refuses bad input with stable codes and changes nothing', async () => {
    await put('keep', { entries: ['198.18.5.0/24'] });
    const bad = await app.inject({ method: 'PUT', url: '/v1/lists/keep', headers: { 'content-type': 'text/plain' }, payload: '198.18.7.0/24\nnot-an-ip\n' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toEqual({ code: 'INVALID_CIDR', message: expect.stringContaining('line 2') });
    expect((await put('keep', { entries: ['198.18.7.0/24'], action: 'block' })).statusCode).toBe(400);
    expect((await put('bad name!', { entries: [] })).statusCode).toBe(400);
    expect((await put('keep', { entries: ['0.0.0.0/0'] })).json().error.code).toBe('TOO_BROAD');
    expect(verdict('198.18.5.1')).toBe(XDP_DROP);
    expect(verdict('198.18.7.1')).toBe(XDP_PASS);
    expect((await app.inject({ method: 'GET', url: '/v1/lists/nope' })).statusCode).toBe(404);
  });

  it('If-Match with a stale revision gets 412 REVISION_MISMATCH', async () => {
    await put('race', { entries: ['198.18.5.0/24'] });
    expect((await put('race', { entries: ['198.18.6.0/24'] }, { 'if-match': '"1"' })).json().revision).toBe(2);
    const stale = await put('race', { entries: ['198.18.7.0/24'] }, { 'if-match': '1' });
    expect(stale.statusCode).toBe(412);
    expect(stale.json().error.code).toBe('REVISION_MISMATCH');
    const patch = await app.inject({ method: 'PATCH', url: '/v1/lists/race', payload: { add: ['198.18.8.0/24'] }, headers: { 'if-match': '1' } });
    expect(patch.statusCode).toBe(412);
    expect(verdict('198.18.6.1')).toBe(XDP_DROP);
    expect(verdict('198.18.7.1')).toBe(XDP_PASS);
  });

  it('PATCH adds and removes in one change, all or nothing; DELETE lifts the list', async () => {
    await put('p', { entries: ['198.18.5.0/24', '198.18.6.0/24'] });
    const ok = await app.inject({ method: 'PATCH', url: '/v1/lists/p', payload: { add: ['198.18.7.0/24'], remove: ['198.18.5.0/24'] } });
    expect(ok.json()).toMatchObject({ count: 2, revision: 2 });
    expect(verdict('198.18.5.1')).toBe(XDP_PASS);
    expect(verdict('198.18.7.1')).toBe(XDP_DROP);
    const bad = await app.inject({ method: 'PATCH', url: '/v1/lists/p', payload: { add: ['198.18.8.0/24', 'bogus'], remove: ['198.18.6.0/24'] } });
    expect(bad.statusCode).toBe(400);
    expect(verdict('198.18.6.1')).toBe(XDP_DROP);
    expect(verdict('198.18.8.1')).toBe(XDP_PASS);
    expect((await app.inject({ method: 'DELETE', url: '/v1/lists/p' })).statusCode).toBe(204);
    expect(verdict('198.18.6.1')).toBe(XDP_PASS);
    expect((await app.inject({ method: 'DELETE', url: '/v1/lists/p' })).statusCode).toBe(404);
  });

  it('shares keys with blocks and other lists: a block holds its key, deny beats allow, the last owner leaving lifts it', async () => {
    await put('a', { entries: ['198.18.5.0/24', '198.18.6.6'] });
    await firewall.addBlock({ cidr: '198.18.5.0/24' });
    await put('b', { entries: ['198.18.5.0/24', '198.18.6.6'] });
    await put('a', { entries: [] });
    expect(verdict('198.18.5.1')).toBe(XDP_DROP);
    await firewall.blocks.removeByCidr('198.18.5.0/24');
    expect(verdict('198.18.5.1')).toBe(XDP_DROP); // list b still holds it
    await firewall.addBlock({ cidr: '198.18.6.6/32' });
    await firewall.lists.delete('b');
    expect(verdict('198.18.5.1')).toBe(XDP_PASS);
    expect(verdict('198.18.6.6')).toBe(XDP_DROP); // the block
    await firewall.blocks.removeByCidr('198.18.6.6/32');
    expect(verdict('198.18.6.6')).toBe(XDP_PASS);
    // An allow list: the longest match wins, so it carves exceptions out of broader denies; on one key deny wins.
    await firewall.addBlock({ cidr: '198.18.0.0/16' });
    await put('ok', { entries: ['198.18.7.0/24', '198.18.8.0/24'], action: 'allow' });
    await put('deny8', { entries: ['198.18.8.0/24'] });
    expect(verdict('198.18.7.1')).toBe(XDP_PASS);
    expect(verdict('198.18.8.1')).toBe(XDP_DROP);
    expect(verdict('198.18.9.1')).toBe(XDP_DROP);
    await firewall.lists.delete('deny8');
    expect(verdict('198.18.8.1')).toBe(XDP_PASS);
    await firewall.blocks.removeByCidr('198.18.0.0/16');
  });

  it('a replace never leaves an address of both lists unfiltered: millions of runs during back-and-forth replaces all drop', async () => {
    const shared = '198.18.77.77';
    const setA = ['198.18.77.77', ...Array.from({ length: 2000 }, (_, i) => `198.18.${100 + (i >> 8)}.${i & 255}`)];
    const setB = [...Array.from({ length: 2000 }, (_, i) => `198.19.${100 + (i >> 8)}.${i & 255}`), '198.18.77.77', '198.18.77.0/24'];
    await put('flip', { entries: setA });
    const frame = frameFrom(shared);
    const repeat = 3_000_000;
    let done = false;
    const run = firewall.datapath.ingress.testRun({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0, repeat }).finally(() => {
      done = true;
    });
    let flips = 0;
    while (!done) {
      await firewall.lists.put('flip', { entries: parseListText((flips % 2 === 0 ? setB : setA).join('\n')) });
      flips++;
    }
    const result = await run;
    expect(result.retval).toBe(XDP_DROP);
    const stats = (await app.inject({ method: 'GET', url: '/v1/lists/flip' })).json();
    expect(stats.hits.packets).toBe(repeat);
    expect(flips).toBeGreaterThanOrEqual(2);
  }, 120_000);
});

describe('lists are durable', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'xw-lists-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a restart restores lists from the store and enforces them', async () => {
    const storePath = join(dir, 'rules.sqlite');
    let fw = await openTestFirewall(undefined, undefined, { storePath });
    await fw.lists.put('keep', { entries: parseListText('198.18.5.0/24\n198.18.6.6\n'), action: 'deny' });
    await fw.lists.put('open', { entries: parseListText('198.18.5.128/25\n'), action: 'allow' });
    fw.close();
    fw = await openTestFirewall(undefined, undefined, { storePath });
    try {
      expect(fw.lists.all().map((l) => [l.name, l.revision, l.texts.length])).toEqual([['keep', 1, 2], ['open', 1, 1]]);
      const run = (src: string) => {
        const frame = frameFrom(src);
        return fw.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval;
      };
      expect(run('198.18.5.1')).toBe(XDP_DROP);
      expect(run('198.18.5.200')).toBe(XDP_PASS);
      expect(run('198.18.6.6')).toBe(XDP_DROP);
    } finally {
      fw.close();
    }
  });
});

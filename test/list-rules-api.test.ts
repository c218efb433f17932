// Rules that reference named lists ("src": "list:NAME", "dst": "list:NAME")
// through inject() on a real Firewall: the list's entries are compiled into
// the rule's address field, packets run through the real program
// (BPF_PROG_TEST_RUN) meet them, and every change of the list (PUT, PATCH)
// recompiles the rules that use it. A missing list is 400 INVALID_RULE
// naming the field; deleting a list a rule uses is 409 LIST_IN_USE; a list
// too big for the rule tables is 507 and changes nothing. Needs root.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { POL_MAX_ADDRS } from '../src/datapath/abi.js';
import { parseListText } from '../src/lists/parse.js';
import { openTestFirewall } from './lib/firewall.js';
import { ether, ipv4, ipv6, tcp, udp } from './lib/packets.js';
import { xdpCtx } from './lib/policy.js';

const XDP_DROP = 1;
const XDP_PASS = 2;

const dns = (src: string, dst = '198.19.200.1') =>
  src.includes(':')
    ? ether(ipv6({ src, dst: 'fd00:198::200' }, udp({ sport: 4000, dport: 53 })))
    : ether(ipv4({ src, dst }, udp({ sport: 4000, dport: 53 })));

let firewall: Firewall;
let app: FastifyInstance;
const run = (frame: Buffer) => firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval;
const verdict = (src: string, dst?: string) => run(dns(src, dst));

const putList = (name: string, payload: object) => app.inject({ method: 'PUT', url: `/v1/lists/${name}`, payload });
const postRule = (payload: object) => app.inject({ method: 'POST', url: '/v1/rules', payload });
/** n distinct /32s of 198.19.0.0/16 and up, from `base`. */
const hosts = (n: number, base = 0) => Array.from({ length: n }, (_, i) => `${198 + ((base + i) >> 24)}.${(19 + ((base + i) >> 16)) & 255}.${((base + i) >> 8) & 255}.${(base + i) & 255}`);

describe('rules referencing lists', () => {
  beforeAll(async () => {
    firewall = await openTestFirewall({ cidrV4: 16_384, cidrV6: 1024, flows: 1024 });
    app = await buildApp({ firewall });
  });
  afterAll(async () => {
    await app?.close();
    firewall?.close();
  });
  beforeEach(async () => {
    for (const rule of firewall.rules.all()) await firewall.rules.remove(rule.id);
    for (const list of firewall.lists.all()) await firewall.lists.delete(list.name);
  });

  it('drops udp 53 from list:bad while another source passes; GET shows the reference as written', async () => {
    expect((await putList('bad', { entries: ['198.18.5.0/24', '198.18.6.7'], action: 'none' })).statusCode).toBe(200);
    const res = await postRule({ action: 'drop', proto: 'udp', dstPort: 53, src: 'list:bad' });
    expect(res.statusCode).toBe(201);
    const rule = res.json();
    expect(rule.src).toBe('list:bad');
    const got = (await app.inject({ method: 'GET', url: `/v1/rules/${rule.id}` })).json();
    expect(got).toMatchObject({ src: 'list:bad', dst: null, proto: 'udp', dstPort: 53 });
    expect(verdict('198.18.5.9')).toBe(XDP_DROP);
    expect(verdict('198.18.6.7')).toBe(XDP_DROP);
    expect(verdict('198.18.6.8')).toBe(XDP_PASS); // not in the list
    expect(verdict('198.18.7.1')).toBe(XDP_PASS);
    expect(run(ether(ipv4({ src: '198.18.5.9', dst: '198.19.200.1' }, tcp({ sport: 4000, dport: 53 }))))).toBe(XDP_PASS); // tcp
    // action none: the list alone blocks nothing
    await firewall.rules.remove(rule.id);
    expect(verdict('198.18.5.9')).toBe(XDP_PASS);
    const hits = (await app.inject({ method: 'GET', url: '/v1/lists/bad' })).json().hits;
    expect(hits.packets).toBe(0);
  });

  it('dst: list:NAME, both families in one list, and a rule with a CIDR beside a list', async () => {
    await putList('servers', { entries: ['198.19.200.0/24', 'fd00:198::200'], action: 'none' });
    const rule = (await postRule({ action: 'drop', dst: 'list:servers', src: '198.18.9.0/24' })).json();
    expect(rule).toMatchObject({ dst: 'list:servers', src: '198.18.9.0/24' });
    expect(verdict('198.18.9.1', '198.19.200.1')).toBe(XDP_DROP);
    expect(verdict('198.18.8.1', '198.19.200.1')).toBe(XDP_PASS); // src outside the CIDR
    expect(verdict('198.18.9.1', '198.19.201.1')).toBe(XDP_PASS); // dst outside the list
    await firewall.rules.remove(rule.id);
    await postRule({ action: 'drop', dst: 'list:servers' });
    expect(verdict('fd00:198::7')).toBe(XDP_DROP); // to fd00:198::200
  });

  it.each([
    [{ action: 'drop', src: 'list:nope' }, 'src'],
    [{ action: 'drop', dst: 'list:nope' }, 'dst'],
    [{ action: 'drop', src: 'list:' }, 'src'],
    [{ action: 'drop', src: 'list:bad name' }, 'src'],
  ])('refuses %j with 400 INVALID_RULE naming %s, storing nothing', async (payload, field) => {
    const res = await postRule(payload);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('INVALID_RULE');
    expect(res.json().error.message.startsWith(`${field}: `)).toBe(true);
    expect(firewall.rules.all()).toEqual([]);
  });

  it('PUT and PATCH of the list change what the rule drops; PUT of the rule may switch lists', async () => {
    await putList('bad', { entries: ['198.18.5.0/24'], action: 'none' });
    const rule = (await postRule({ action: 'drop', proto: 'udp', src: 'list:bad' })).json();
    expect(verdict('198.18.5.1')).toBe(XDP_DROP);
    await putList('bad', { entries: ['198.18.6.0/24'], action: 'none' });
    expect(verdict('198.18.5.1')).toBe(XDP_PASS);
    expect(verdict('198.18.6.1')).toBe(XDP_DROP);
    const patched = await app.inject({ method: 'PATCH', url: '/v1/lists/bad', payload: { add: ['198.18.7.7'], remove: ['198.18.6.0/24'] } });
    expect(patched.statusCode).toBe(200);
    expect(verdict('198.18.6.1')).toBe(XDP_PASS);
    expect(verdict('198.18.7.7')).toBe(XDP_DROP);
    // An empty list: the rule matches nothing.
    await putList('bad', { entries: [], action: 'none' });
    expect(verdict('198.18.7.7')).toBe(XDP_PASS);
    // The rule moves to another list (what "renaming" the reference does).
    await putList('worse', { entries: ['198.18.8.0/24'], action: 'none' });
    const put = await app.inject({ method: 'PUT', url: `/v1/rules/${rule.id}`, payload: { action: 'drop', proto: 'udp', src: 'list:worse' } });
    expect(put.statusCode).toBe(200);
    expect(put.json().src).toBe('list:worse');
    expect(verdict('198.18.8.8')).toBe(XDP_DROP);
    // bad is unused now; worse is not.
    expect((await app.inject({ method: 'DELETE', url: '/v1/lists/bad' })).statusCode).toBe(204);
    const refused = await app.inject({ method: 'PUT', url: `/v1/rules/${rule.id}`, payload: { action: 'drop', src: 'list:bad' } });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error.message).toMatch(/^src: list:bad: no list named bad/);
    expect(verdict('198.18.8.8')).toBe(XDP_DROP); // unchanged
  });

  it('DELETE of a list a rule uses is 409 LIST_IN_USE naming the rule; after the rule goes, it deletes', async () => {
    await putList('bad', { entries: ['198.18.5.0/24'], action: 'deny' });
    const rule = (await postRule({ action: 'log', src: 'list:bad' })).json();
    const res = await app.inject({ method: 'DELETE', url: '/v1/lists/bad' });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe('LIST_IN_USE');
    expect(res.json().error.message).toContain(`rule ${rule.id}`);
    expect(verdict('198.18.5.1')).toBe(XDP_DROP); // the deny list still blocks, before any rule
    await app.inject({ method: 'DELETE', url: `/v1/rules/${rule.id}` });
    expect((await app.inject({ method: 'DELETE', url: '/v1/lists/bad' })).statusCode).toBe(204);
    expect(verdict('198.18.5.1')).toBe(XDP_PASS);
  });

  it(`a 100,000-entry list works; one over ${POL_MAX_ADDRS.toLocaleString('en-US')} addresses per hook is 507 and changes nothing`, async () => {
    const a = hosts(100_000);
    const b = hosts(100_000, 100_000);
    let started = performance.now();
    await firewall.lists.put('big', { entries: parseListText(a.join('\n')), action: 'none' });
    const rule = (await postRule({ action: 'drop', proto: 'udp', src: 'list:big' })).json();
    const firstMs = performance.now() - started;
    expect(verdict(a[0]!)).toBe(XDP_DROP);
    expect(verdict(a[99_999]!)).toBe(XDP_DROP);
    expect(verdict(b[0]!)).toBe(XDP_PASS);
    started = performance.now();
    await firewall.lists.put('big', { entries: parseListText(b.join('\n')), action: 'none' });
    const replaceMs = performance.now() - started;
    expect(verdict(a[0]!)).toBe(XDP_PASS);
    expect(verdict(b[0]!)).toBe(XDP_DROP);
    expect(verdict(b[99_999]!)).toBe(XDP_DROP);
    console.log(`100k-entry list: PUT + rule ${firstMs.toFixed(0)} ms, replace by another 100k (rules recompiled) ${replaceMs.toFixed(0)} ms`);

    const tooBig = hosts(POL_MAX_ADDRS + 1, 300_000);
    const res = await app.inject({ method: 'PUT', url: '/v1/lists/big?action=none', headers: { 'content-type': 'text/plain' }, payload: tooBig.join('\n') });
    expect(res.statusCode).toBe(507);
    expect(res.json().error.code).toBe('CAPACITY_EXCEEDED');
    expect(res.json().error.message).toContain('262,144 per hook');
    expect(firewall.lists.get('big').texts.length).toBe(100_000);
    expect(verdict(b[0]!)).toBe(XDP_DROP);
    expect(verdict(tooBig[0]!)).toBe(XDP_PASS);
    // A new rule that would bring the hook over the limit is refused the same way.
    await firewall.lists.put('huge', { entries: parseListText(tooBig.slice(0, POL_MAX_ADDRS - 100_000 + 1).join('\n')), action: 'none' });
    const refused = await postRule({ action: 'drop', src: 'list:huge' });
    expect(refused.statusCode).toBe(507);
    expect(refused.json().error.code).toBe('CAPACITY_EXCEEDED');
    expect(firewall.rules.all().map((r) => r.id)).toEqual([rule.id]);
    expect(verdict(b[0]!)).toBe(XDP_DROP);
    // ... while in the other hook it fits.
    const egress = await postRule({ action: 'drop', hook: 'egress', src: 'list:huge' });
    expect(egress.json()).toMatchObject({ src: 'list:huge' });
  }, 300_000);

  it('a list replace is atomic for the rule: an address in both versions is dropped by every one of millions of runs', async () => {
    const shared = '198.18.77.77';
    const setA = [shared, ...hosts(2000)];
    const setB = [...hosts(2000, 5000), shared, '198.18.77.0/24'];
    await putList('flip', { entries: setA, action: 'none' });
    const rule = (await postRule({ action: 'drop', proto: 'udp', dstPort: 53, src: 'list:flip' })).json();
    const frame = dns(shared);
    // Runs of a million packets until the list has been replaced at least 4 times during them
    // (a run alone can end before a replace does; at most 30 runs).
    const repeat = 1_000_000;
    let flips = 0;
    let stop = false;
    const flipper = (async () => {
      while (!stop) {
        await firewall.lists.put('flip', { entries: parseListText((flips % 2 === 0 ? setB : setA).join('\n')), action: 'none' });
        flips++;
      }
    })();
    let runs = 0;
    try {
      while (runs < 30 && (runs === 0 || flips < 4)) {
        expect((await firewall.datapath.ingress.testRun({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0, repeat })).retval).toBe(XDP_DROP);
        runs++;
      }
    } finally {
      stop = true;
      await flipper;
    }
    const got = (await app.inject({ method: 'GET', url: `/v1/rules/${rule.id}` })).json();
    expect(got.hits.packets).toBe(runs * repeat);
    expect(flips).toBeGreaterThanOrEqual(4);
  }, 120_000);
});

describe('rules referencing lists are durable', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'xw-listrules-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a restart restores the rule with its list reference and enforces the list', async () => {
    const storePath = join(dir, 'rules.sqlite');
    let fw = await openTestFirewall(undefined, undefined, { storePath });
    await fw.lists.put('bad', { entries: parseListText('198.18.5.0/24\n'), action: 'none' });
    const rule = await fw.rules.add({ action: 'drop', proto: 'udp', src: 'list:bad' });
    fw.close();
    fw = await openTestFirewall(undefined, undefined, { storePath });
    try {
      expect(fw.rules.get(rule.id)).toMatchObject({ srcList: 'bad', src: null });
      const frame = dns('198.18.5.5');
      expect(fw.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval).toBe(XDP_DROP);
      await expect(fw.lists.delete('bad')).rejects.toMatchObject({ code: 'LIST_IN_USE' });
    } finally {
      fw.close();
    }
  });
});

// The origin of blocks: "api" by default, any short name a client or an
// integration gives, listed and filtered by GET /v1/blocks?origin=; a block
// belongs to the origin whose expiry is later; bulk adds with ttl and origin
// (Firewall.addBlocks) merge like single ones. Needs root.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { loadConfig } from '../src/config.js';
import { parseDuration } from '../src/duration.js';
import { openTestFirewall } from './lib/firewall.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** loadConfig on a file holding `crowdsec: YAML`. */
function crowdsecConfig(yaml: string) {
  const dir = mkdtempSync(join(tmpdir(), 'xwt-config-'));
  try {
    writeFileSync(join(dir, 'c.yaml'), `crowdsec: ${yaml}\n`);
    return loadConfig(join(dir, 'c.yaml'), { stateDir: dir }).crowdsec;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const T0 = Date.parse('2026-12-02T12:00:00Z');
let firewall: Firewall;
let app: FastifyInstance;

beforeAll(async () => {
  firewall = await openTestFirewall(undefined, { wallMs: () => T0, monotonicNs: () => process.hrtime.bigint() });
  app = await buildApp({ firewall });
});
afterAll(async () => {
  await app?.close();
  firewall?.close();
});

const post = (payload: object) => app.inject({ method: 'POST', url: '/v1/blocks', payload });
const list = async (query: string) => (await app.inject(`/v1/blocks?${query}`)).json();

describe('block origin', () => {
  it('is "api" by default, takes a short name, and GET /v1/blocks?origin= filters (with contains too)', async () => {
    expect((await post({ cidr: '198.18.40.0/24' })).json().origin).toBe('api');
    expect((await post({ cidr: '198.18.41.0/24', origin: 'fail2ban', ttl: 60 })).json()).toMatchObject({ origin: 'fail2ban', expiresAt: '2026-12-02T12:01:00.000Z' });
    expect((await post({ cidr: '198.18.42.0/24', origin: 'my-script_2' })).json().origin).toBe('my-script_2');
    expect((await list('origin=api')).items.map((b: { cidr: string }) => b.cidr)).toEqual(['198.18.40.0/24']);
    expect((await list('origin=fail2ban')).total).toBe(1);
    expect((await list('origin=fail2ban&contains=198.18.41.7')).total).toBe(1);
    expect((await list('origin=fail2ban&contains=198.18.40.7')).total).toBe(0);
    expect((await list('origin=nobody')).total).toBe(0);
    for (const cidr of ['198.18.40.0/24', '198.18.41.0/24', '198.18.42.0/24']) await app.inject({ method: 'DELETE', url: `/v1/blocks?cidr=${cidr}` });
  });

  it.each([['Upper'], ['1abc'], [''], ['x'.repeat(33)], ['a b']])('refuses origin %j with 400', async (origin) => {
    const response = await post({ cidr: '198.18.43.0/24', origin });
    expect(response.statusCode).toBe(400);
    expect((await app.inject(`/v1/blocks?origin=${encodeURIComponent(origin)}`)).statusCode).toBe(400);
  });

  it('belongs to the origin whose expiry is later; a tie keeps the first; its extras go with the block', async () => {
    expect((await post({ cidr: '198.18.44.0/24', origin: 'crowdsec', ttl: 60 })).json().origin).toBe('crowdsec');
    expect((await post({ cidr: '198.18.44.0/24', origin: 'fail2ban', ttl: 60 })).json().origin).toBe('crowdsec');
    expect((await post({ cidr: '198.18.44.0/24', origin: 'fail2ban', ttl: 30 })).json().origin).toBe('crowdsec');
    expect((await post({ cidr: '198.18.44.0/24', origin: 'fail2ban', ttl: 120 })).json()).toMatchObject({ origin: 'fail2ban', expiresAt: '2026-12-02T12:02:00.000Z' });
    expect((await post({ cidr: '198.18.44.0/24' })).json()).toMatchObject({ origin: 'api', expiresAt: null });
    expect((await post({ cidr: '198.18.44.0/24', origin: 'crowdsec', ttl: 60 })).json()).toMatchObject({ origin: 'api', expiresAt: null });
    await app.inject({ method: 'DELETE', url: '/v1/blocks?cidr=198.18.44.0/24' });
    // Gone with the block: a bulk import of the same CIDR is a plain permanent API block.
    expect((await app.inject({ method: 'POST', url: '/v1/blocks/bulk', payload: { items: [{ cidr: '198.18.44.0/24' }] } })).json()).toEqual({ created: 1, existing: 0 });
    expect((await list('contains=198.18.44.1')).items[0]).toMatchObject({ origin: 'api', expiresAt: null });
    await app.inject({ method: 'DELETE', url: '/v1/blocks?cidr=198.18.44.0/24' });
  });

  it('bulk with ttl and origin: new blocks get theirs, existing ones merge, repeats take the later expiry', async () => {
    await post({ cidr: '198.18.45.1' });
    const result = await firewall.addBlocks([
      { cidr: '198.18.45.1', ttl: 60, origin: 'crowdsec' },
      { cidr: '198.18.45.2', ttl: 60, origin: 'crowdsec' },
      { cidr: '198.18.45.2', ttl: 90, origin: 'crowdsec' },
      { cidr: 'fd00:198:45::/64', ttl: 30, origin: 'crowdsec' },
    ]);
    expect(result).toEqual({ created: 2, existing: 2 });
    const meta = (cidr: string) => firewall.blockMeta.meta({ cidr, direction: 'src' });
    expect(meta('198.18.45.1/32')).toEqual({ expiresAt: null, dryRun: false, origin: null });
    expect(meta('198.18.45.2/32')).toEqual({ expiresAt: '2026-12-02T12:01:30.000Z', dryRun: false, origin: 'crowdsec' });
    expect(meta('fd00:198:45::/64')).toEqual({ expiresAt: '2026-12-02T12:00:30.000Z', dryRun: false, origin: 'crowdsec' });
    expect(firewall.blockMeta.ownedBy('crowdsec').map((b) => b.cidr).sort()).toEqual(['198.18.45.2/32', 'fd00:198:45::/64']);
    // An integration removes only what it owns.
    await firewall.originBlocks('crowdsec').removeMany([
      { cidr: '198.18.45.1/32', direction: 'src' }, { cidr: '198.18.45.2/32', direction: 'src' }, { cidr: 'fd00:198:45::/64', direction: 'src' },
    ]);
    expect(firewall.blocks.all().map((b) => b.cidr)).toEqual(['198.18.45.1/32']);
    expect(firewall.blockMeta.ownedBy('crowdsec')).toEqual([]);
    await firewall.blocks.removeByCidr('198.18.45.1/32');
  });

  it('a bulk item with a bad ttl fails the lot with its index and changes nothing', async () => {
    await expect(firewall.addBlocks([{ cidr: '198.18.46.1', ttl: 60 }, { cidr: '198.18.46.2', ttl: -1 }])).rejects.toThrow(/^items\[1\]: ttl/);
    expect(firewall.blocks.list({ contains: '198.18.46.1' }).total).toBe(0);
  });
});

describe('crowdsec configuration', () => {
  it('parses url, apiKey, refresh and resync; defaults refresh to 10s and resync to 10m', () => {
    expect(parseDuration('10s', 'x')).toBe(10_000);
    expect(parseDuration('1h30m', 'x')).toBe(5_400_000);
    expect(parseDuration('500ms', 'x')).toBe(500);
    expect(() => parseDuration('soon', 'crowdsec.refresh')).toThrow(/crowdsec.refresh must be a duration/);
  });

  it.each([
    ['{url: "http://127.0.0.1:8080", apiKey: k}', { url: 'http://127.0.0.1:8080', apiKey: 'k', refreshMs: 10_000, resyncMs: 600_000 }],
    ['{url: "http://127.0.0.1:8080/", apiKey: k, refresh: 2m}', { url: 'http://127.0.0.1:8080', apiKey: 'k', refreshMs: 120_000, resyncMs: 600_000 }],
    ['{url: "http://127.0.0.1:8080", apiKey: k, resync: 30m}', { url: 'http://127.0.0.1:8080', apiKey: 'k', refreshMs: 10_000, resyncMs: 1_800_000 }],
    ['{url: "http://127.0.0.1:8080", apiKey: k, resync: 90s}', { url: 'http://127.0.0.1:8080', apiKey: 'k', refreshMs: 10_000, resyncMs: 90_000 }],
    ['{url: "http://127.0.0.1:8080", apiKey: k, resync: off}', { url: 'http://127.0.0.1:8080', apiKey: 'k', refreshMs: 10_000, resyncMs: 0 }],
    ['{url: "http://127.0.0.1:8080", apiKey: k, resync: 0}', { url: 'http://127.0.0.1:8080', apiKey: 'k', refreshMs: 10_000, resyncMs: 0 }],
    ['{url: "http://127.0.0.1:8080", apiKey: k, resync: "0"}', { url: 'http://127.0.0.1:8080', apiKey: 'k', refreshMs: 10_000, resyncMs: 0 }],
    ['{url: "http://127.0.0.1:8080", apiKey: k, resync: false}', { url: 'http://127.0.0.1:8080', apiKey: 'k', refreshMs: 10_000, resyncMs: 0 }],
  ])('crowdsec: %s', (yaml, expected) => expect(crowdsecConfig(yaml)).toEqual(expected));

  it.each([
    ['{apiKey: k}', /crowdsec.url must be the Local API's http\(s\) URL/],
    ['{url: "ftp://x", apiKey: k}', /crowdsec.url must be/],
    ['{url: "http://127.0.0.1:8080"}', /give apiKey or apiKeyFile/],
    ['{url: "http://127.0.0.1:8080", apiKey: k, refresh: soon}', /crowdsec.refresh must be a duration/],
    ['{url: "http://127.0.0.1:8080", apiKey: k, interval: 5s}', /crowdsec.interval: unknown key/],
    ['{url: "http://127.0.0.1:8080", apiKey: k, resync: soon}', /crowdsec.resync must be a duration/],
    ['{url: "http://127.0.0.1:8080", apiKey: k, resync: -5m}', /crowdsec.resync must be a duration/],
    ['{url: "http://127.0.0.1:8080", apiKey: k, resync: true}', /crowdsec.resync must be a duration/],
    ['[1, 2]', /crowdsec must be a mapping/],
  ])('refuses crowdsec: %s', (yaml, error) => expect(() => crowdsecConfig(yaml)).toThrow(error));
});

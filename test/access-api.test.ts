// Who may change the firewall, through inject() on an app configured as the
// daemon configures a TCP listener: tokens and scopes (401/403), the Host
// check (421), rate limits (429, clock stepped by the test), the audit trail,
// and self lock-out (409) on a real Firewall whose kernel maps are checked.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { AccessStore } from '../src/auth/access.js';
import { RateLimiter } from '../src/auth/rate-limit.js';
import { openTestFirewall } from './lib/firewall.js';

const LISTENER = { kind: 'tcp' as const, host: '127.0.0.1', port: 7070 };
/** A client on another host: the only kind a block can lock out. */
const REMOTE = '198.18.5.9';

let firewall: Firewall;
let store: AccessStore;
let app: FastifyInstance;
let clockMs = 0;
const token: Record<'reader' | 'writer' | 'admin' | 'limited', string> = { reader: '', writer: '', admin: '', limited: '' };

beforeAll(async () => {
  firewall = await openTestFirewall();
  store = AccessStore.open(':memory:', { synchronous: 'NORMAL' });
  token.reader = store.tokens.create('reader', 'read').token;
  token.writer = store.tokens.create('writer', 'write').token;
  token.admin = store.tokens.create('admin', 'admin').token;
  token.limited = store.tokens.create('limited', 'write').token;
  app = await buildApp({
    firewall,
    access: {
      listener: LISTENER,
      store,
      hostNames: ['fw.example.net'],
      rateLimiter: new RateLimiter({ burst: 5, perSecond: 0.5 }, () => clockMs),
      now: () => new Date(Date.UTC(2026, 11, 2, 3, 0, 0) + clockMs),
    },
  });
});

afterAll(async () => {
  await app?.close();
  store?.close();
  firewall?.close();
});

// Every test starts with full buckets: a minute passes between tests.
beforeEach(() => {
  clockMs += 60_000;
});

const as = (who: keyof typeof token | null, options: InjectOptions) =>
  app.inject({ ...options, headers: { ...(who && { authorization: `Bearer ${token[who]}` }), ...options.headers } });

const latestAudit = () => store.audit.list({ limit: 1 })[0];

describe('tokens on a TCP listener', () => {
  it('refuses a request without a token with 401 UNAUTHENTICATED and a Bearer challenge', async () => {
    for (const options of [{ method: 'GET' as const, url: '/v1/blocks' }, { method: 'POST' as const, url: '/v1/blocks', payload: { cidr: '198.18.60.0/24' } }]) {
      const res = await as(null, options);
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('UNAUTHENTICATED');
      expect(res.headers['www-authenticate']).toBe('Bearer realm="xdpwall"');
    }
    expect(firewall.blocks.list({ contains: '198.18.60.1' }).total).toBe(0);
  });

  it.each([
    ['an unknown token', `Bearer xdpw_${'A'.repeat(43)}`],
    ['a malformed token', 'Bearer hunter2'],
    ['another scheme', `Basic ${Buffer.from('admin:admin').toString('base64')}`],
  ])('refuses %s with 401', async (_what, authorization) => {
    const res = await app.inject({ method: 'GET', url: '/v1/stats', headers: { authorization } });
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe('UNAUTHENTICATED');
  });

  it('says invalid_token in the challenge when a token was sent', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/stats', headers: { authorization: `Bearer xdpw_${'A'.repeat(43)}` } });
    expect(res.headers['www-authenticate']).toBe('Bearer realm="xdpwall", error="invalid_token"');
  });

  it('serves /healthz and /metrics without a token, and /docs only with one', async () => {
    expect((await as(null, { method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await as(null, { method: 'GET', url: '/metrics' })).statusCode).toBe(200);
    expect((await as(null, { method: 'GET', url: '/docs/json' })).statusCode).toBe(401);
    expect((await as('reader', { method: 'GET', url: '/docs/json' })).statusCode).toBe(200);
  });

  it('needs a token for /metrics when publicMetrics is false', async () => {
    const strict = await buildApp({ firewall, access: { listener: LISTENER, store, publicMetrics: false } });
    try {
      expect((await strict.inject('/metrics')).statusCode).toBe(401);
      expect((await strict.inject({ url: '/metrics', headers: { authorization: `Bearer ${token.reader}` } })).statusCode).toBe(200);
    } finally {
      await strict.close();
    }
  });

  it('covers unknown routes too: 401 before 404', async () => {
    expect((await as(null, { method: 'GET', url: '/v1/nothing-here' })).statusCode).toBe(401);
    expect((await as('reader', { method: 'GET', url: '/v1/nothing-here' })).statusCode).toBe(404);
  });

  it('gives 403 FORBIDDEN when the scope is too small', async () => {
    const write = await as('reader', { method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.61.0/24' } });
    expect(write.statusCode).toBe(403);
    expect(write.json().error.code).toBe('FORBIDDEN');
    expect(write.headers['www-authenticate']).toContain('scope="write"');
    expect((await as('reader', { method: 'GET', url: '/v1/blocks' })).statusCode).toBe(200);
    expect((await as('writer', { method: 'GET', url: '/v1/audit' })).statusCode).toBe(403);
    expect((await as('writer', { method: 'POST', url: '/v1/tokens', payload: { name: 'sneaky', scope: 'admin' } })).statusCode).toBe(403);
    expect((await as('admin', { method: 'GET', url: '/v1/audit' })).statusCode).toBe(200);
    expect(firewall.blocks.list({ contains: '198.18.61.1' }).total).toBe(0);
  });

  it('refuses a token revoked while the app runs, from the next request on', async () => {
    const { token: secret } = store.tokens.create('short-lived', 'read');
    const request = () => app.inject({ method: 'GET', url: '/v1/stats', headers: { authorization: `Bearer ${secret}` } });
    expect((await request()).statusCode).toBe(200);
    store.tokens.revoke('short-lived');
    expect((await request()).statusCode).toBe(401);
  });

  it('creates and revokes tokens over the API with scope admin', async () => {
    const created = await as('admin', { method: 'POST', url: '/v1/tokens', payload: { name: 'ci', scope: 'read' } });
    expect(created.statusCode).toBe(201);
    const body = created.json();
    expect(body).toMatchObject({ name: 'ci', scope: 'read' });
    expect(body.token).toMatch(/^xdpw_[A-Za-z0-9_-]{43}$/);
    const listed = (await as('admin', { method: 'GET', url: '/v1/tokens' })).json();
    expect(JSON.stringify(listed)).not.toContain(body.token);
    expect(listed.items.map((t: { name: string }) => t.name)).toContain('ci');
    expect((await app.inject({ url: '/v1/stats', headers: { authorization: `Bearer ${body.token}` } })).statusCode).toBe(200);
    expect((await as('admin', { method: 'DELETE', url: '/v1/tokens/ci' })).statusCode).toBe(204);
    expect((await app.inject({ url: '/v1/stats', headers: { authorization: `Bearer ${body.token}` } })).statusCode).toBe(401);
    expect((await as('admin', { method: 'DELETE', url: '/v1/tokens/ci' })).statusCode).toBe(404);
    expect((await as('admin', { method: 'POST', url: '/v1/tokens', payload: { name: 'unix', scope: 'read' } })).json().error.code).toBe('INVALID_ARGUMENT');
  });
});

describe('Host check', () => {
  it.each(['rebind.evil.example', 'rebind.evil.example:7070', '198.18.0.2:7070', '127.0.0.1.evil.example'])(
    'answers Host %s with 421 MISDIRECTED_REQUEST, token or not',
    async (host) => {
      for (const who of ['admin', null] as const) {
        const res = await as(who, { method: 'GET', url: '/v1/blocks', headers: { host } });
        expect(res.statusCode).toBe(421);
        expect(res.json().error.code).toBe('MISDIRECTED_REQUEST');
      }
      const health = await as(null, { method: 'GET', url: '/healthz', headers: { host } });
      expect(health.statusCode).toBe(421);
    },
  );

  it.each(['127.0.0.1:7070', '127.0.0.1', 'localhost:7070', 'fw.example.net', 'FW.Example.NET:7070'])('accepts Host %s', async (host) => {
    expect((await as('reader', { method: 'GET', url: '/v1/stats', headers: { host } })).statusCode).toBe(200);
  });

  it('accepts a bracketed IPv6 Host on an IPv6 listener, and not localhost on a public one', async () => {
    const v6 = await buildApp({ firewall, access: { listener: { kind: 'tcp', host: '2001:db8::1', port: 7070 }, store } });
    try {
      const get = (host: string) => v6.inject({ url: '/healthz', headers: { host } });
      expect((await get('[2001:db8::1]:7070')).statusCode).toBe(200);
      expect((await get('localhost:7070')).statusCode).toBe(421);
    } finally {
      await v6.close();
    }
  });
});

describe('rate limits', () => {
  it('allows a burst of changes, then 429 RATE_LIMITED with Retry-After, per principal', async () => {
    const post = (cidr: string) => as('limited', { method: 'POST', url: '/v1/blocks', payload: { cidr } });
    for (const cidr of ['198.18.62.0/24', '198.18.63.0/24', '198.18.64.0/24', '198.18.67.0/24', '198.18.68.0/24']) expect((await post(cidr)).statusCode).toBe(201);
    const limited = await post('198.18.65.0/24');
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error.code).toBe('RATE_LIMITED');
    // One token per 2 s at 0.5/s.
    expect(limited.headers['retry-after']).toBe('2');
    expect(firewall.blocks.list({ contains: '198.18.65.1' }).total).toBe(0);

    // Reads are not limited, nor are other principals.
    expect((await as('limited', { method: 'GET', url: '/v1/blocks' })).statusCode).toBe(200);
    expect((await as('writer', { method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.65.0/24' } })).statusCode).toBe(201);

    clockMs += 1_999;
    expect((await post('198.18.66.0/24')).statusCode).toBe(429);
    clockMs += 1;
    expect((await post('198.18.66.0/24')).statusCode).toBe(201);
  });
});

describe('audit trail', () => {
  it('records a change: who, from where, what and the result', async () => {
    const res = await as('writer', { method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.70.0/24', comment: 'audit' }, remoteAddress: '127.0.0.9' });
    expect(res.statusCode).toBe(201);
    const { id, ...entry } = latestAudit()!;
    expect(id).toBeTypeOf('number');
    expect(entry).toEqual({
      time: new Date(Date.UTC(2026, 11, 2, 3, 0, 0) + clockMs).toISOString(),
      principal: 'writer',
      remote: '127.0.0.9',
      method: 'POST',
      route: '/v1/blocks',
      status: 201,
      detail: { list: 'blocks', cidr: '198.18.70.0/24', ruleId: res.json().id },
    });
  });

  it('records failed changes with their error code', async () => {
    expect((await as('writer', { method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.70.1/24' } })).statusCode).toBe(400);
    expect(latestAudit()).toMatchObject({ principal: 'writer', status: 400, detail: { list: 'blocks', cidr: '198.18.70.1/24', error: 'INVALID_CIDR' } });
    expect((await as('reader', { method: 'DELETE', url: '/v1/blocks?cidr=198.18.70.0/24' })).statusCode).toBe(403);
    expect(latestAudit()).toMatchObject({ principal: 'reader', status: 403, route: '/v1/blocks', detail: { cidr: '198.18.70.0/24', error: 'FORBIDDEN' } });
    expect((await as('writer', { method: 'DELETE', url: '/v1/blocks/999999' })).statusCode).toBe(404);
    expect(latestAudit()).toMatchObject({ route: '/v1/blocks/:id', status: 404, detail: { ruleId: 999999, error: 'NOT_FOUND' } });
  });

  it('records bulk counts and what a delete removed', async () => {
    const items = [{ cidr: '198.18.71.0/24' }, { cidr: '198.18.72.0/24' }, { cidr: '198.18.71.0/24' }];
    expect((await as('writer', { method: 'POST', url: '/v1/blocks/bulk', payload: { items } })).json()).toEqual({ created: 2, existing: 1 });
    expect(latestAudit()).toMatchObject({ route: '/v1/blocks/bulk', status: 200, detail: { list: 'blocks', count: 3, created: 2, existing: 1 } });
    const id = firewall.blocks.list({ contains: '198.18.72.1' }).items[0]!.id;
    expect((await as('writer', { method: 'DELETE', url: `/v1/blocks/${id}` })).statusCode).toBe(204);
    expect(latestAudit()).toMatchObject({ route: '/v1/blocks/:id', status: 204, detail: { ruleId: id, cidr: '198.18.72.0/24', direction: 'src' } });
    expect((await as('writer', { method: 'DELETE', url: '/v1/blocks?cidr=198.18.71.0/24' })).statusCode).toBe(204);
    expect(latestAudit()).toMatchObject({ status: 204, detail: { cidr: '198.18.71.0/24', count: 1 } });
  });

  it('records token changes made over the API, and not reads', async () => {
    const before = latestAudit()!.id;
    await as('admin', { method: 'GET', url: '/v1/blocks' });
    expect(latestAudit()!.id).toBe(before);
    await as('admin', { method: 'POST', url: '/v1/tokens', payload: { name: 'audited', scope: 'write' } });
    expect(latestAudit()).toMatchObject({ principal: 'admin', route: '/v1/tokens', status: 201, detail: { list: 'tokens', token: 'audited', scope: 'write' } });
  });

  it('stores no row for requests refused before authentication', async () => {
    const before = latestAudit()!.id;
    await as(null, { method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.73.0/24' } });
    await as('admin', { method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.73.0/24' }, headers: { host: 'evil.example' } });
    expect(latestAudit()!.id).toBe(before);
  });

  it('writes each row to the log too, and logs refusals it does not store', async () => {
    const lines: Array<{ msg: string; audit: { principal: string; status: number; detail: object } }> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const logged = await buildApp({ firewall, logger, access: { listener: LISTENER, store, now: () => new Date(Date.UTC(2026, 11, 2, 3, 0, 0) + clockMs) } });
    try {
      await logged.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.76.0/24' }, headers: { authorization: `Bearer ${token.writer}` } });
      await logged.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.77.0/24' } });
    } finally {
      await logged.close();
    }
    expect(lines.filter((line) => line.audit).map(({ msg, audit }) => [msg, audit.principal, audit.status, audit.detail])).toEqual([
      ['audit', 'writer', 201, { list: 'blocks', cidr: '198.18.76.0/24', ruleId: expect.any(Number) }],
      ['mutation refused before authentication', 'anonymous', 401, { list: 'blocks', error: 'UNAUTHENTICATED' }],
    ]);
  });

  it('serves GET /v1/audit with limit and since', async () => {
    const since = new Date(Date.UTC(2026, 11, 2, 3, 0, 0) + clockMs).toISOString();
    for (const cidr of ['198.18.74.0/24', '198.18.75.0/24']) await as('writer', { method: 'POST', url: '/v1/blocks', payload: { cidr } });
    const all = (await as('admin', { method: 'GET', url: `/v1/audit?since=${since}` })).json().items;
    expect(all.map((e: { detail: { cidr: string } }) => e.detail.cidr)).toEqual(['198.18.74.0/24', '198.18.75.0/24']);
    const one = (await as('admin', { method: 'GET', url: '/v1/audit?limit=1' })).json().items;
    expect(one).toHaveLength(1);
    expect(one[0].detail.cidr).toBe('198.18.75.0/24');
    expect((await as('admin', { method: 'GET', url: '/v1/audit?since=yesterday' })).statusCode).toBe(400);
    expect((await as('admin', { method: 'GET', url: '/v1/audit?limit=0' })).statusCode).toBe(400);
  });
});

describe('self lock-out', () => {
  const remotePost = (url: string, payload: object) => as('writer', { method: 'POST', url, payload, remoteAddress: REMOTE });

  it('refuses with 409 SELF_LOCKOUT a src block covering the client, and changes nothing', async () => {
    for (const cidr of ['198.18.5.0/24', '198.18.5.9/32', '198.18.0.0/15', '0.0.0.0/0']) {
      const res = await remotePost('/v1/blocks', { cidr });
      expect(res.statusCode, cidr).toBe(409);
      expect(res.json().error.code).toBe('SELF_LOCKOUT');
      expect(res.json().error.message).toContain(REMOTE);
    }
    expect(firewall.blocks.list({ contains: REMOTE }).total).toBe(0);
    expect(latestAudit()).toMatchObject({ status: 409, remote: REMOTE, detail: { cidr: '0.0.0.0/0', error: 'SELF_LOCKOUT' } });
  });

  it('allows blocks that spare the client, and any block with "force": true', async () => {
    expect((await remotePost('/v1/blocks', { cidr: '198.18.6.0/24' })).statusCode).toBe(201);
    expect((await remotePost('/v1/blocks', { cidr: '198.18.5.0/24', direction: 'dst' })).statusCode).toBe(201);
    const forced = await remotePost('/v1/blocks', { cidr: '198.18.5.0/25', force: true });
    expect(forced.statusCode).toBe(201);
    expect(latestAudit()).toMatchObject({ status: 201, detail: { cidr: '198.18.5.0/25', force: true } });
    expect(firewall.blocks.list({ contains: REMOTE }).items.map((b) => `${b.cidr} ${b.direction}`).sort()).toEqual([
      '198.18.5.0/24 dst',
      '198.18.5.0/25 src',
    ]);
  });

  it('checks each bulk item, names the first offender, and adds none of them', async () => {
    const items = [{ cidr: '198.18.7.0/24' }, { cidr: '198.18.4.0/22' }, { cidr: '198.18.8.0/24' }];
    const res = await remotePost('/v1/blocks/bulk', { items });
    expect(res.statusCode).toBe(409);
    expect(res.json().error).toMatchObject({ code: 'SELF_LOCKOUT', message: expect.stringMatching(/^items\[1\]: blocking 198\.18\.4\.0\/22 \(src\)/) });
    expect(firewall.blocks.list({ contains: '198.18.7.1' }).total).toBe(0);

    expect((await remotePost('/v1/blocks/bulk', { items: [items[0], { ...items[1], force: true }] })).statusCode).toBe(200);
    expect((await remotePost('/v1/blocks/bulk', { items: [{ cidr: '198.18.5.0/26' }], force: true })).statusCode).toBe(200);
  });

  it('never applies to loopback clients, which XDP does not filter', async () => {
    const res = await as('writer', { method: 'POST', url: '/v1/blocks', payload: { cidr: '127.0.0.0/8' }, remoteAddress: '127.0.0.1' });
    expect(res.statusCode).toBe(201);
  });
});

describe('OpenAPI', () => {
  it('documents the bearer scheme, required everywhere except the public routes', async () => {
    const doc = (await as('reader', { method: 'GET', url: '/docs/json' })).json();
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ bearer: [] }]);
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    expect(doc.paths['/metrics'].get.security).toEqual([]);
    expect(doc.paths['/v1/blocks'].post.security).toBeUndefined();
    expect(Object.keys(doc.paths['/v1/blocks'].post.responses)).toEqual(expect.arrayContaining(['401', '403', '421', '429', '409']));
    expect(Object.keys(doc.paths['/v1/blocks'].get.responses)).not.toContain('429');
    expect(Object.keys(doc.paths['/healthz'].get.responses)).not.toContain('401');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/audit', '/v1/tokens', '/v1/tokens/{name}']));
  });
});

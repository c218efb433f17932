// Input is taken as written or refused with a 400 that says why: no type
// coercion in bodies, no invalid UTF-8, no control characters in text people
// read, no numbers the store cannot represent. Each refused request changes
// nothing. Accepted IPv6 notations come back in their stored form.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { openTestFirewall } from './lib/firewall.js';

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

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const ESC = '\u001b';

describe('refused input', () => {
  it.each([
    // type coercion: JSON carries its own types
    ['an array for the CIDR', 'POST', '/v1/blocks', json({ cidr: ['198.18.3.0/24'] }), 'INVALID_REQUEST', /body\/cidr must be string/],
    ['a number for the comment', 'POST', '/v1/blocks', json({ cidr: '198.18.3.0/24', comment: 42 }), 'INVALID_REQUEST', /body\/comment must be string/],
    ['a boolean for the comment', 'POST', '/v1/blocks', json({ cidr: '198.18.3.0/24', comment: true }), 'INVALID_REQUEST', /body\/comment must be string/],
    ['a number for the CIDR', 'POST', '/v1/blocks', json({ cidr: 3322036992 }), 'INVALID_REQUEST', /body\/cidr must be string/],
    ['a one-item array for the direction', 'POST', '/v1/blocks', json({ cidr: '198.18.3.0/24', direction: ['dst'] }), 'INVALID_REQUEST', /body\/direction must be string/],
    ['an array CIDR inside a bulk item', 'POST', '/v1/blocks/bulk', json({ items: [{ cidr: ['198.18.3.0/24'] }] }), 'INVALID_REQUEST', /body\/items\/0\/cidr must be string/],
    // invalid UTF-8: refused, not replaced by U+FFFD
    ['a lone continuation byte', 'POST', '/v1/blocks', Buffer.concat([Buffer.from('{"cidr":"198.18.3.0/24","comment":"a'), Buffer.from([0x80]), Buffer.from('"}')]), 'INVALID_UTF8', /not valid UTF-8/],
    ['an overlong encoding', 'POST', '/v1/blocks', Buffer.concat([Buffer.from('{"cidr":"198.18.3.0/24","comment":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]), 'INVALID_UTF8', /not valid UTF-8/],
    ['an encoded surrogate', 'POST', '/v1/blocks/bulk', Buffer.concat([Buffer.from('{"items":[{"cidr":"198.18.3.0/24","comment":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}]}')]), 'INVALID_UTF8', /not valid UTF-8/],
    // control characters in text an operator reads
    ['an escape sequence in the comment', 'POST', '/v1/blocks', json({ cidr: '198.18.3.0/24', comment: `${ESC}[2J` }), 'INVALID_REQUEST', /body\/comment must not contain control characters/],
    ['a newline in the comment', 'POST', '/v1/blocks', json({ cidr: '198.18.3.0/24', comment: 'a\nb' }), 'INVALID_REQUEST', /body\/comment must not contain control characters/],
    ['a NUL in the comment', 'POST', '/v1/blocks', json({ cidr: '198.18.3.0/24', comment: 'a\u0000' }), 'INVALID_REQUEST', /must not contain control characters/],
    ['a C1 CSI in the comment', 'POST', '/v1/blocks', json({ cidr: '198.18.3.0/24', comment: '\u009b2J' }), 'INVALID_REQUEST', /must not contain control characters/],
    ['a bidi override in the comment', 'POST', '/v1/blocks', json({ cidr: '198.18.3.0/24', comment: 'abc\u202edef' }), 'INVALID_REQUEST', /must not contain control characters/],
    ['a lone surrogate in the comment', 'POST', '/v1/blocks', Buffer.from('{"cidr":"198.18.3.0/24","comment":"\\ud800"}'), 'INVALID_REQUEST', /must not contain control characters/],
    ['a control character in a bulk comment', 'POST', '/v1/blocks/bulk', json({ items: [{ cidr: '198.18.3.0/24', comment: `x${ESC}[31m` }] }), 'INVALID_REQUEST', /body\/items\/0\/comment must not contain/],
    // numbers the store cannot represent
    ['offset=1e20', 'GET', '/v1/blocks?offset=1e20', undefined, 'INVALID_REQUEST', /querystring\/offset must be <= 9007199254740991/],
    ['offset=-1', 'GET', '/v1/blocks?offset=-1', undefined, 'INVALID_REQUEST', /querystring\/offset must be >= 0/],
    ['limit=1e20', 'GET', '/v1/blocks?limit=1e20', undefined, 'INVALID_REQUEST', /querystring\/limit must be <=/],
    ['limit=0', 'GET', '/v1/blocks?limit=0', undefined, 'INVALID_REQUEST', /querystring\/limit must be >= 1/],
    ['flows limit=1e20', 'GET', '/v1/flows?limit=1e20', undefined, 'INVALID_REQUEST', /querystring\/limit must be <=/],
    ['flows port=1e20', 'GET', '/v1/flows?port=1e20', undefined, 'INVALID_REQUEST', /querystring\/port must be <= 65535/],
    ['id 1e20', 'GET', '/v1/blocks/1e20', undefined, 'INVALID_REQUEST', /params\/id must be <= 9007199254740991/],
    ['delete id 1e20', 'DELETE', '/v1/blocks/100000000000000000000', undefined, 'INVALID_REQUEST', /params\/id must be <=/],
    // IPv6 notations that are not IPv4
    ['an IPv6 /96 with host bits in its dotted tail', 'POST', '/v1/blocks', json({ cidr: '64:ff9b::192.0.2.0/96' }), 'INVALID_CIDR', /did you mean 64:ff9b::\/96\?/],
    ['a mapped /120 with host bits', 'POST', '/v1/blocks', json({ cidr: '::ffff:192.0.2.1/120' }), 'INVALID_CIDR', /did you mean 192\.0\.2\.0\/24\?/],
  ])('%s → 400 %s', async (_name, method, url, payload, code, message) => {
    const before = firewall.blocks.list({ limit: 1 }).total;
    const res = await app.inject({
      method: method as 'GET',
      url,
      ...(payload && { payload, headers: { 'content-type': 'application/json' } }),
    });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json()).toEqual({ error: { code, message: expect.stringMatching(message) } });
    expect(firewall.blocks.list({ limit: 1 }).total).toBe(before);
  });
});

describe('accepted input', () => {
  it.each([
    ['2001:db8::198.19.42.1/128', '2001:db8::c613:2a01/128'],
    ['::ffff:192.0.2.0/120', '192.0.2.0/24'],
    ['::ffff:198.18.44.5', '198.18.44.5/32'],
    ['64:ff9b::192.0.2.0/120', '64:ff9b::c000:200/120'],
  ])('%s is stored and answered as %s', async (cidr, stored) => {
    const res = await app.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr } });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().cidr).toBe(stored);
    const { items } = (await app.inject(`/v1/blocks?limit=1000`)).json() as { items: Array<{ cidr: string }> };
    expect(items.map((item) => item.cidr)).toContain(stored);
  });

  it('keeps printable Unicode in comments exactly as sent', async () => {
    const comment = 'Ünïcödé 🔥 ticket #42 — «quoted»';
    const res = await app.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.45.0/24', comment } });
    expect(res.statusCode).toBe(201);
    expect(res.json().comment).toBe(comment);
  });

  it('still coerces the query string and path, which arrive as text', async () => {
    const res = await app.inject('/v1/blocks?limit=2&offset=0');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ limit: 2, offset: 0 });
  });

  it('answers the largest offset and id it accepts without a 5xx', async () => {
    const page = await app.inject(`/v1/blocks?offset=${Number.MAX_SAFE_INTEGER}`);
    expect(page.statusCode, page.body).toBe(200);
    expect(page.json()).toMatchObject({ items: [], offset: Number.MAX_SAFE_INTEGER });
    const one = await app.inject(`/v1/blocks/${Number.MAX_SAFE_INTEGER}`);
    expect(one.statusCode, one.body).toBe(404);
  });

  it('filters flows with an IPv4-mapped CIDR as the IPv4 prefix it stands for', async () => {
    for (const src of ['::ffff:198.18.0.0/111', '2001:db8::198.18.0.1/128']) {
      const res = await app.inject(`/v1/flows?src=${encodeURIComponent(src)}`);
      expect(res.statusCode, res.body).toBe(200);
    }
    const bad = await app.inject(`/v1/flows?src=${encodeURIComponent('::ffff:198.18.0.1/111')}`);
    expect(bad.json()).toEqual({ error: { code: 'INVALID_CIDR', message: expect.stringMatching(/did you mean 198\.18\.0\.0\/15\?/) } });
  });
});

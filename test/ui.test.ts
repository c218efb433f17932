// The dashboard's files at /ui: served without a token on a TCP listener
// (they hold no data), with a Content-Security-Policy that keeps the page to
// its own scripts; the API behind it still needs the token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { AccessStore } from '../src/auth/access.js';
import { openTestFirewall } from './lib/firewall.js';

let firewall: Firewall;
let store: AccessStore;
let tcp: FastifyInstance;
let unix: FastifyInstance;
const HOST = { host: '127.0.0.1:7070' };

beforeAll(async () => {
  firewall = await openTestFirewall();
  store = AccessStore.open(':memory:', { synchronous: 'NORMAL' });
  tcp = await buildApp({ firewall, access: { listener: { kind: 'tcp', host: '127.0.0.1', port: 7070 }, store } });
  unix = await buildApp({ firewall });
}, 60_000);

afterAll(async () => {
  await tcp?.close();
  await unix?.close();
  store?.close();
  firewall?.close();
});

describe('/ui', () => {
  it.each([
    ['/ui', 'text/html; charset=utf-8', '<title>xdpwall</title>'],
    ['/ui/', 'text/html; charset=utf-8', '<title>xdpwall</title>'],
    ['/ui/app.js', 'text/javascript; charset=utf-8', "const TOKEN_KEY = 'xdpwall.token';"],
    ['/ui/app.css', 'text/css; charset=utf-8', '--drop:'],
    ['/ui/vendor/uPlot.iife.min.js', 'text/javascript; charset=utf-8', 'uPlot'],
    ['/ui/vendor/uPlot.min.css', 'text/css; charset=utf-8', '.uplot'],
  ])('serves %s without a token on TCP, with a strict CSP', async (url, type, text) => {
    const response = await tcp.inject({ method: 'GET', url, headers: HOST });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe(type);
    expect(response.headers['content-security-policy']).toContain("default-src 'none'; script-src 'self'");
    expect(response.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.body).toContain(text);
  });

  it('tells the page whether the API needs a token: yes on TCP, no on the unix socket', async () => {
    expect((await tcp.inject({ method: 'GET', url: '/ui/config.json', headers: HOST })).json()).toEqual({ tokenRequired: true });
    expect((await unix.inject({ method: 'GET', url: '/ui/config.json' })).json()).toEqual({ tokenRequired: false });
  });

  it('still checks the Host header (DNS rebinding) on the public UI routes', async () => {
    const response = await tcp.inject({ method: 'GET', url: '/ui', headers: { host: 'evil.example:7070' } });
    expect(response.statusCode).toBe(421);
    expect(response.json().error.code).toBe('MISDIRECTED_REQUEST');
  });

  it('leaves the API behind the page closed without a token', async () => {
    const response = await tcp.inject({ method: 'GET', url: '/v1/stats', headers: HOST });
    expect(response.statusCode).toBe(401);
  });

  it('does not serve other files under /ui and keeps the UI out of the OpenAPI document', async () => {
    for (const url of ['/ui/../package.json', '/ui/index.html', '/ui/vendor/', '/ui/x.js']) {
      expect((await tcp.inject({ method: 'GET', url, headers: HOST })).statusCode).toBeGreaterThanOrEqual(400);
    }
    const doc = (await unix.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((path) => path.startsWith('/ui'))).toEqual([]);
  });
});

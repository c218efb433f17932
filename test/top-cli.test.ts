// `xdpwall top --once` as a user runs it, over the unix socket (no token)
// and over TCP (with the token, refused without), against a real Firewall.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { AccessStore } from '../src/auth/access.js';
import { openTestFirewall } from './lib/firewall.js';
import { runCli as cli } from './lib/cli.js';

let firewall: Firewall;
let store: AccessStore;
let unixApp: FastifyInstance;
let tcpApp: FastifyInstance;
let dir: string;
let socketPath: string;
let tcpUrl: string;
let token: string;

beforeAll(async () => {
  firewall = await openTestFirewall();
  dir = mkdtempSync(join(tmpdir(), 'xwt-top-'));
  socketPath = join(dir, 'api.sock');
  unixApp = await buildApp({ firewall });
  await unixApp.listen({ path: socketPath });
  store = AccessStore.open(':memory:', { synchronous: 'NORMAL' });
  token = store.tokens.create('reader', 'read').token;
  tcpApp = await buildApp({ firewall, access: { listener: { kind: 'tcp', host: '127.0.0.1', port: 0 }, store } });
  tcpUrl = await tcpApp.listen({ host: '127.0.0.1', port: 0 });
}, 60_000);

afterAll(async () => {
  await unixApp?.close();
  await tcpApp?.close();
  store?.close();
  firewall?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('xdpwall top --once', () => {
  it('draws one frame over the unix socket', async () => {
    const result = await cli(['top', '--once', '--interval', '0.2', '--api', `unix:${socketPath}`]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(new RegExp(`^xdpwall top — unix:${socketPath.replace(/[.]/g, '\\.')} — \\d\\d:\\d\\d:\\d\\d {3}in: pass 0\\.0 pkt/s, drop 0\\.0 pkt/s`));
    expect(lines).toContain('REASON  DIR  PKT/S  BYTES/S  PACKETS');
    expect(lines).toContain('(no flows)');
  });

  it('uses the token over TCP', async () => {
    const ok = await cli(['top', '--once', '--interval', '0.2', '--api', tcpUrl], { XDPWALL_TOKEN: token });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`xdpwall top — ${tcpUrl} — `);
  });

  it('says so when TCP needs a token and none is given', async () => {
    const refused = await cli(['top', '--once', '--interval', '0.2', '--api', tcpUrl]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^xdpwall: UNAUTHENTICATED: /);
  });

  it('refuses to draw live on something that is not a terminal', async () => {
    const result = await cli(['top', '--api', `unix:${socketPath}`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('xdpwall: top draws on a terminal; use --once (or --once --json) elsewhere\n');
  });
});

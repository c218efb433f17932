// `xdpwall list put|ls|show|rm` over the unix socket against a real Firewall:
// a FireHOL-style file streamed as it is, with progress lines on stderr.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { openTestFirewall } from './lib/firewall.js';
import { runCli } from './lib/cli.js';

let firewall: Firewall;
let app: FastifyInstance;
let dir: string;
let api: string;

beforeAll(async () => {
  firewall = await openTestFirewall({ cidrV4: 8192, cidrV6: 1024, flows: 1024 });
  dir = mkdtempSync(join(tmpdir(), 'xwt-listcli-'));
  app = await buildApp({ firewall });
  await app.listen({ path: join(dir, 'api.sock') });
  api = `unix:${join(dir, 'api.sock')}`;
}, 60_000);

afterAll(async () => {
  await app?.close();
  firewall?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('xdpwall list', () => {
  it('puts a netset file with progress, lists, shows and removes it', async () => {
    const lines = ['#', '# firehol_level1 netset', '#'];
    for (let i = 0; i < 5000; i++) lines.push(`198.18.${100 + (i >> 8)}.${i & 255}`);
    const file = join(dir, 'level1.netset');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const put = await runCli(['list', 'put', 'level1', file, '--direction', 'src', '--api', api]);
    expect(put.code).toBe(0);
    expect(put.stdout.trim()).toBe('list level1: 5,000 entries, revision 1');
    expect(put.stderr).toMatch(/^list level1: \d0% /m);
    expect(put.stderr).toContain('list level1: sent 5,003 lines; the daemon is parsing and swapping the list in');
    const ls = await runCli(['list', 'ls', '--api', api]);
    expect(ls.stdout).toMatch(/^level1\s+deny\s+src\s+5000\s+1\s+api\s+0\s/m);
    const show = await runCli(['list', 'show', 'level1', '--contains', '198.18.100.7', '--api', api]);
    expect(show.stdout.split('\n')[1]).toBe('198.18.100.7/32');
    const bad = await runCli(['list', 'put', 'level1', '-', '--api', api], {}, 'not-an-ip\n');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('INVALID_CIDR: line 1');
    const rm = await runCli(['list', 'rm', 'level1', '--api', api]);
    expect(rm.stdout.trim()).toBe('deleted list level1');
    expect(firewall.lists.all()).toEqual([]);
  }, 240_000);
});

// serve --rules FILE, in-process on a real Firewall: the file is applied at
// start and on change (fs.watch or the poll), a broken file changes nothing
// and shows in /healthz, and the API gets 409 MANAGED_BY_FILE for what the
// file manages. Packets through BPF_PROG_TEST_RUN. Needs root.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { RulesFile, parseRulesFile } from '../src/fleet/rules-file.js';
import { openTestFirewall, quietLog } from './lib/firewall.js';
import { ether, ipv4, udp } from './lib/packets.js';
import { xdpCtx } from './lib/policy.js';

const XDP_DROP = 1;
const XDP_PASS = 2;
let firewall: Firewall;
let app: FastifyInstance;
let dir: string;

const verdict = (src: string, dport = 53) => {
  const frame = ether(ipv4({ src, dst: '198.19.0.1' }, udp({ sport: 1, dport })));
  return firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xwt-rulesfile-'));
  firewall = await openTestFirewall();
  app = await buildApp({ firewall });
});
afterAll(async () => {
  await app?.close();
  firewall?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('refuses a broken file naming the key', () => {
  expect(() => parseRulesFile('/x', 'blocks: [not-a-cidr]')).toThrow(/^blocks\[0\]: INVALID_CIDR/);
  expect(() => parseRulesFile('/x', 'rules: [{action: explode}]')).toThrow(/^rules\[0\]: INVALID_RULE/);
  expect(() => parseRulesFile('/x', 'lists: {a: {entries: [198.18.0.0/24], file: x}}')).toThrow('lists.a: exactly one of entries and file');
  expect(() => parseRulesFile('/x', 'block: []')).toThrow('unknown top-level key block');
});

it('applies the file at start and on change, keeps the last good state when broken, and guards what it manages', async () => {
  const path = join(dir, 'rules.yaml');
  writeFileSync(join(dir, 'drop.netset'), '# netset\n198.18.9.0/24\n');
  writeFileSync(path, [
    'policy: {egress: accept}',
    'blocks: [198.18.5.0/24, {cidr: 198.18.6.6, comment: file}]',
    'rules: [{action: drop, proto: udp, dstPort: 9999}]',
    'lists:',
    '  inline: {entries: [198.18.7.0/24], action: deny}',
    '  fromfile: {file: drop.netset}',
  ].join('\n'));
  const rulesFile = new RulesFile(path, firewall, quietLog, { pollMs: 200 });
  firewall.rulesFile = rulesFile;
  await rulesFile.start();
  try {
    expect(rulesFile.status()).toMatchObject({ ok: true });
    for (const src of ['198.18.5.1', '198.18.6.6', '198.18.7.1', '198.18.9.1']) expect(verdict(src)).toBe(XDP_DROP);
    expect(verdict('198.18.1.1', 9999)).toBe(XDP_DROP);
    expect(verdict('198.18.1.1')).toBe(XDP_PASS);
    expect(firewall.lists.get('inline').origin).toBe('file');

    const block = firewall.blocks.list({ limit: 10, offset: 0 }).items.find((b) => b.cidr === '198.18.5.0/24')!;
    const rule = firewall.rules.all()[0]!;
    for (const req of [
      { method: 'DELETE' as const, url: `/v1/blocks/${block.id}` },
      { method: 'DELETE' as const, url: '/v1/blocks?cidr=198.18.6.6/32' },
      { method: 'DELETE' as const, url: `/v1/rules/${rule.id}` },
      { method: 'PUT' as const, url: '/v1/policy', payload: { ingress: 'drop' } },
      { method: 'PUT' as const, url: '/v1/lists/inline', payload: { entries: [] } },
      { method: 'DELETE' as const, url: '/v1/lists/fromfile' },
    ]) {
      const res = await app.inject(req);
      expect([req.url, res.statusCode, res.json().error.code]).toEqual([req.url, 409, 'MANAGED_BY_FILE']);
    }

    const first = rulesFile.status().applied;
    writeFileSync(path, 'blocks: [198.18.5.0/24]\nlists: {inline: {entries: [198.18.8.0/24]}}\n');
    await waitFor(() => rulesFile.status().applied !== first);
    expect(verdict('198.18.8.1')).toBe(XDP_DROP);
    expect(verdict('198.18.7.1')).toBe(XDP_PASS);
    expect(verdict('198.18.6.6')).toBe(XDP_PASS);
    expect(verdict('198.18.9.1')).toBe(XDP_PASS);
    expect(verdict('198.18.1.1', 9999)).toBe(XDP_PASS);
    expect(firewall.lists.all().map((l) => l.name)).toEqual(['inline']);
    expect((await app.inject({ method: 'PUT', url: '/v1/policy', payload: { ingress: 'accept' } })).statusCode).toBe(200);

    writeFileSync(path, 'blocks: [198.18.5.0/24, oops]\n');
    await waitFor(() => !rulesFile.status().ok);
    const health = (await app.inject({ method: 'GET', url: '/healthz' })).json();
    expect(health.status).toBe('degraded');
    expect(health.degraded).toEqual([{ rulesFile: path, reason: expect.stringContaining('blocks[1]: INVALID_CIDR') }]);
    expect(verdict('198.18.8.1')).toBe(XDP_DROP);
    expect(verdict('198.18.5.1')).toBe(XDP_DROP);

    writeFileSync(path, 'blocks: []\n');
    await waitFor(() => rulesFile.status().ok);
    await waitFor(() => verdict('198.18.5.1') === XDP_PASS);
    expect(verdict('198.18.5.1')).toBe(XDP_PASS);
    expect(verdict('198.18.8.1')).toBe(XDP_PASS);
  } finally {
    rulesFile.stop();
    firewall.rulesFile = undefined;
  }
}, 120_000);

it('rules of the file reference lists of the file (src: list:NAME); a reference the file cannot satisfy changes nothing', async () => {
  const path = join(dir, 'lists.yaml');
  const file = (entries: string, rules = 'rules: [{action: drop, proto: udp, dstPort: 53, src: list:bad}]', lists = `lists: {bad: {entries: [${entries}], action: none}}`) =>
    writeFileSync(path, `${rules}\n${lists}\n`);
  file('198.18.20.0/24');
  const rulesFile = new RulesFile(path, firewall, quietLog, { pollMs: 200 });
  firewall.rulesFile = rulesFile;
  await rulesFile.start();
  try {
    expect(rulesFile.status()).toMatchObject({ ok: true });
    expect(verdict('198.18.20.5')).toBe(XDP_DROP);
    expect(verdict('198.18.20.5', 54)).toBe(XDP_PASS);
    expect(verdict('198.18.21.5')).toBe(XDP_PASS); // another source
    const rules = (await app.inject({ method: 'GET', url: '/v1/rules' })).json().items;
    expect(rules).toMatchObject([{ src: 'list:bad', dstPort: 53 }]);
    expect(firewall.lists.get('bad')).toMatchObject({ origin: 'file', action: 'none' });

    // The file changes the list: the rule follows.
    let applied = rulesFile.status().applied;
    file('198.18.21.0/24, 198.18.22.0/24');
    await waitFor(() => rulesFile.status().applied !== applied);
    expect(verdict('198.18.20.5')).toBe(XDP_PASS);
    expect(verdict('198.18.21.5')).toBe(XDP_DROP);
    expect(verdict('198.18.22.5')).toBe(XDP_DROP);

    // A rule naming a list the file does not have: nothing of the file is applied.
    file('198.18.23.0/24', 'rules: [{action: drop, proto: udp, dstPort: 53, src: list:bad}, {action: drop, dst: list:missing}]');
    await waitFor(() => !rulesFile.status().ok);
    expect(rulesFile.status().reason).toContain('rules[1]: dst: list:missing: no list named missing');
    expect(verdict('198.18.21.5')).toBe(XDP_DROP);
    expect(verdict('198.18.23.5')).toBe(XDP_PASS);
    expect(firewall.rules.all()).toHaveLength(1);

    // A rule made through the API may use the file's list; the file then cannot drop the list.
    const apiRule = (await app.inject({ method: 'POST', url: '/v1/rules', payload: { action: 'drop', proto: 'udp', dstPort: 54, src: 'list:bad' } })).json();
    expect(apiRule).toMatchObject({ src: 'list:bad' });
    expect(verdict('198.18.21.5', 54)).toBe(XDP_DROP);
    file('', 'rules: []', 'lists: {}');
    await waitFor(() => rulesFile.status().reason?.includes('lists.bad') === true);
    expect(rulesFile.status().reason).toContain(`lists.bad: removed from the file while rule ${apiRule.id} still uses it`);
    expect(verdict('198.18.21.5')).toBe(XDP_DROP);
    expect(firewall.rules.all()).toHaveLength(2);
    // Once that rule is gone, the next look at the file applies it: the file's rule, then its list.
    applied = rulesFile.status().applied;
    expect((await app.inject({ method: 'DELETE', url: `/v1/rules/${apiRule.id}` })).statusCode).toBe(204);
    await waitFor(() => rulesFile.status().ok && rulesFile.status().applied !== applied);
    expect(firewall.rules.all()).toHaveLength(0);
    expect(firewall.lists.has('bad')).toBe(false);
    expect(verdict('198.18.21.5')).toBe(XDP_PASS);
  } finally {
    rulesFile.stop();
    firewall.rulesFile = undefined;
  }
}, 120_000);

async function waitFor(done: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !done(); i++) await new Promise((r) => setTimeout(r, 100));
  expect(done()).toBe(true);
}

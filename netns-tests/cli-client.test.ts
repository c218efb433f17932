// The CLI client commands against a running daemon: exit codes, and errors as
// one readable line on stderr.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostAddress } from '../src/lab/netns.js';
import { freeLoopbackPort } from './lib/daemon.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { xdpwall } from './lib/cli.js';
import { CLI_PATH } from './lib/lab-env.js';
import { run } from '../src/lab/run.js';
import { ping } from './lib/traffic.js';

/** stderr is exactly one non-empty line. */
function expectOneLine(stderr: string): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/\S/);
}

describe('xdpwall CLI client', () => {
  const world = new FirewallLab({ subnet: 50 });
  let api = '';
  /** The client commands read the token from $XDPWALL_TOKEN (or --token). */
  let env: Record<string, string> = {};

  beforeAll(async () => {
    await world.setUp();
    api = world.daemon.baseUrl;
    env = { XDPWALL_TOKEN: world.daemon.state.token };
  });
  afterAll(() => world.tearDown());

  it('block adds a rule that stops traffic, and says so', async () => {
    const client = `${hostAddress(world.lab.client.ipv4)}/32`;
    const result = await xdpwall(['block', client, '--comment', 'cli test'], api, env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(client);
    expect((await ping(world.lab.client.netns, world.lab.server.ipv4)).received).toBe(0);
  });

  it('block of an existing rule succeeds again', async () => {
    const result = await xdpwall(['block', `${hostAddress(world.lab.client.ipv4)}/32`], api, env);
    expect(result.code, result.stderr).toBe(0);
  });

  it('blocks lists the rules', async () => {
    const result = await xdpwall(['blocks'], api, env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('198.18.50.1/32');
    expect(result.stdout).toContain('cli test');
  });

  it('unblock removes the rule and traffic resumes', async () => {
    const result = await xdpwall(['unblock', '198.18.50.1/32'], api, env);
    expect(result.code, result.stderr).toBe(0);
    expect((await ping(world.lab.client.netns, world.lab.server.ipv4)).received).toBe(3);
  });

  it('flows --top and stats print tables', async () => {
    const flows = await xdpwall(['flows', '--top', '3'], api, env);
    expect(flows.code, flows.stderr).toBe(0);
    expect(flows.stdout).toContain('198.18.50.1');
    const stats = await xdpwall(['stats'], api, env);
    expect(stats.code, stats.stderr).toBe(0);
    expect(stats.stdout).toContain('deny_src_cidr');
  });

  it.each([
    ['host bits set', ['block', '198.18.1.1/16'], /INVALID_CIDR/],
    ['not a CIDR', ['block', 'banana'], /INVALID_CIDR/],
    ['unblock of an absent rule', ['unblock', '198.18.99.0/24'], /NOT_FOUND/],
  ])('fails with one line on %s', async (_what, args, pattern) => {
    const result = await xdpwall(args, api, env);
    expect(result.code).not.toBe(0);
    expectOneLine(result.stderr);
    expect(result.stderr).toMatch(pattern);
    expect(result.stdout).toBe('');
  });

  it('fails with one line without a token, and with a read token on a change', { timeout: 120_000 }, async () => {
    const anonymous = await xdpwall(['blocks'], api, { XDPWALL_TOKEN: '' });
    expect(anonymous.code).not.toBe(0);
    expectOneLine(anonymous.stderr);
    expect(anonymous.stderr).toMatch(/UNAUTHENTICATED/);

    // Made while the daemon runs; the daemon sees it on the next request.
    const created = await run([process.execPath, CLI_PATH, 'token', 'create', 'reader', '--scope', 'read', '--state-dir', world.daemon.state.stateDir]);
    expect(created.code, created.stderr).toBe(0);
    const reader = created.stdout.trim();
    expect((await xdpwall(['blocks', '--token', reader], api)).code).toBe(0);
    const refused = await xdpwall(['block', '198.18.99.0/24', '--token', reader], api);
    expect(refused.code).not.toBe(0);
    expectOneLine(refused.stderr);
    expect(refused.stderr).toMatch(/FORBIDDEN/);
  });

  it('fails with one line when no daemon answers', async () => {
    const nowhere = `http://127.0.0.1:${await freeLoopbackPort()}`;
    const result = await xdpwall(['blocks'], nowhere);
    expect(result.code).not.toBe(0);
    expectOneLine(result.stderr);
    expect(result.stderr).toContain(nowhere);
  });
});

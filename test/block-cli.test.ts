// `xdpwall block CIDR --ttl S | --expires-at ISO --dry-run` over the unix
// socket against a real Firewall: the block is stored with its expiry and
// as a dry run, and a malformed --ttl is refused before any request.
import { describe, expect, it } from 'vitest';
import { serveOnSocket } from './lib/cli-lab.js';
import { runCli } from './lib/cli.js';

const lab = serveOnSocket('xwt-block-cli-', { cidrV4: 1024, cidrV6: 1024, flows: 1024 });

describe('xdpwall block with ttl and dry run', () => {
  it('--ttl and --dry-run reach the API and the stored block', async () => {
    const started = Date.now();
    const result = await runCli(['block', '198.18.90.0/24', '--ttl', '600', '--dry-run', '--api', lab.api, '--json']);
    expect(result.code).toBe(0);
    const body = JSON.parse(result.stdout) as { cidr: string; dryRun: boolean; expiresAt: string };
    expect(body).toMatchObject({ cidr: '198.18.90.0/24', dryRun: true });
    const expires = Date.parse(body.expiresAt) - started;
    expect(expires).toBeGreaterThan(590_000);
    expect(expires).toBeLessThanOrEqual(610_000);
  });

  it('--expires-at sets the expiry; the text output says so', async () => {
    const at = new Date(Date.now() + 3_600_000).toISOString();
    const result = await runCli(['block', '198.18.91.0/24', '--expires-at', at, '--api', lab.api]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^blocked 198\.18\.91\.0\/24 \(src, id \d+, until \S+\)\n$/);
  });

  it('checks the body against the API\'s own schema before sending it (no daemon at this address)', async () => {
    const result = await runCli(['block', '198.18.93.0/24', '--origin', 'Not An Origin', '--api', 'unix:/nonexistent/api.sock']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^xdpwall: INVALID_REQUEST: body\/origin must match pattern/);
    const rule = await runCli(['rule', 'add', 'drop', '--vlan', '5000', '--api', 'unix:/nonexistent/api.sock']);
    expect(rule.code).toBe(1);
    expect(rule.stderr).toMatch(/^xdpwall: INVALID_REQUEST: body\/vlan must be <= 4095/);
  });

  it('refuses a --ttl that is not a whole number of seconds, with nothing stored', async () => {
    const result = await runCli(['block', '198.18.92.0/24', '--ttl', '1h', '--api', lab.api]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--ttl must be a whole number of seconds');
    expect(lab.firewall.blocks.list({ limit: 10, contains: '198.18.92.1' }).total).toBe(0);
  });
});

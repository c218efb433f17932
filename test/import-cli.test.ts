// `xdpwall block import FILE|-` over the unix socket against a real Firewall:
// lines become one all-or-nothing bulk import (kernel maps checked through
// the API's hit lookups), progress as plain lines when stderr is not a
// terminal, and an invalid line named by its line number with nothing stored.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serveOnSocket } from './lib/cli-lab.js';
import { runCli } from './lib/cli.js';

const lab = serveOnSocket('xwt-import-', { cidrV4: 8192, cidrV6: 1024, flows: 1024 });

/** 198.18.X.Y/32 for i = 0..n-1, one per line, with a header comment and a blank line. */
function cidrFile(n: number, first = 0): string {
  const lines = ['# spam sources', ''];
  for (let i = first; i < first + n; i++) lines.push(`198.18.${100 + (i >> 8)}.${i & 255}/32`);
  return `${lines.join('\n')}\n`;
}

describe('xdpwall block import', () => {
  it('imports a file with plain progress lines on a non-terminal', async () => {
    const file = join(lab.dir, 'list.txt');
    // Big enough for several reads (64 KiB each): progress at each tenth.
    writeFileSync(file, cidrFile(5000));
    const result = await runCli(['block', 'import', file, '--comment', 'feed', '--api', lab.api]);
    expect(result.stderr.split('\n').filter(Boolean).at(-1)).toBe('import: sent 5,000 items; the daemon is storing and installing them');
    expect(result.stderr).toMatch(/^import: \d0% \([\d.]+ KiB of [\d.]+ KiB, [\d,]+ items\)$/m);
    expect(result.stderr).not.toContain('\r');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('imported 5,000 items: 5,000 blocked, 0 already blocked\n');
    const listed = lab.firewall.blocks.list({ limit: 1, contains: '198.18.119.135' });
    expect(listed.items.map(({ cidr, comment }) => ({ cidr, comment }))).toEqual([{ cidr: '198.18.119.135/32', comment: 'feed' }]);
    expect(lab.firewall.blocks.list({ limit: 1 }).total).toBe(5000);
  });

  it('reads standard input with "-", keeps per-line comments and NDJSON lines, and counts what exists', async () => {
    const input = ['198.18.100.0/32', '198.18.200.0/24 from the feed', '{"cidr":"198.18.201.0/24","direction":"dst"}', ''].join('\n');
    const result = await runCli(['block', 'import', '-', '--api', lab.api, '--json'], {}, input);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ created: 2, existing: 1 });
    expect(lab.firewall.blocks.list({ limit: 10, contains: '198.18.200.7' }).items[0]).toMatchObject({ comment: 'from the feed', direction: 'src' });
    expect(lab.firewall.blocks.list({ limit: 10, contains: '198.18.201.7' }).items[0]).toMatchObject({ direction: 'dst' });
  });

  it('names the line of an invalid item and stores nothing', async () => {
    const before = lab.firewall.blocks.list({ limit: 1 }).total;
    const input = ['# header', '198.18.210.0/24', '', '198.18.211.1/24'].join('\n');
    const result = await runCli(['block', 'import', '-', '--api', lab.api], {}, input);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n').at(-1)).toMatch(/^xdpwall: INVALID_CIDR: items\[1\]: .*198\.18\.211\.1\/24.* \(stdin line 4\)$/);
    expect(lab.firewall.blocks.list({ limit: 1 }).total).toBe(before);
  });

  it('--ttl, --dry-run and --origin apply to lines without their own; NDJSON lines keep theirs', async () => {
    const started = Date.now();
    const input = ['198.18.220.0/24 timed', '{"cidr":"198.18.221.0/24","ttl":60}', ''].join('\n');
    const result = await runCli(['block', 'import', '-', '--ttl', '600', '--dry-run', '--origin', 'fail2ban', '--api', lab.api, '--json'], {}, input);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ created: 2, existing: 0 });
    const timed = lab.firewall.blockMeta.meta({ cidr: '198.18.220.0/24', direction: 'src' });
    expect(timed).toMatchObject({ dryRun: true, origin: 'fail2ban' });
    expect(Date.parse(timed.expiresAt!) - started).toBeGreaterThan(590_000);
    expect(Date.parse(timed.expiresAt!) - started).toBeLessThanOrEqual(610_000);
    const own = lab.firewall.blockMeta.meta({ cidr: '198.18.221.0/24', direction: 'src' });
    expect(own).toMatchObject({ dryRun: false, origin: null });
    expect(Date.parse(own.expiresAt!) - started).toBeLessThanOrEqual(70_000);
  });

  it('says so when the file cannot be read', async () => {
    const result = await runCli(['block', 'import', join(lab.dir, 'missing.txt'), '--api', lab.api]);
    expect(result).toMatchObject({ code: 2, stderr: `xdpwall: cannot read ${join(lab.dir, 'missing.txt')}: ENOENT\n` });
  });
});

// `xdpwall list put|ls|show|rm` over the unix socket against a real Firewall:
// a FireHOL-style file streamed as it is, with progress lines on stderr.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serveOnSocket } from './lib/cli-lab.js';
import { runCli } from './lib/cli.js';

const lab = serveOnSocket('xwt-listcli-', { cidrV4: 8192, cidrV6: 1024, flows: 1024 });

describe('xdpwall list', () => {
  it('puts a netset file with progress, lists, shows and removes it', async () => {
    const lines = ['#', '# firehol_level1 netset', '#'];
    for (let i = 0; i < 5000; i++) lines.push(`198.18.${100 + (i >> 8)}.${i & 255}`);
    const file = join(lab.dir, 'level1.netset');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const put = await runCli(['list', 'put', 'level1', file, '--direction', 'src', '--api', lab.api]);
    expect(put.code).toBe(0);
    expect(put.stdout.trim()).toBe('list level1: 5,000 entries, revision 1');
    expect(put.stderr).toMatch(/^list level1: \d0% /m);
    expect(put.stderr).toContain('list level1: sent 5,003 lines; the daemon is parsing and swapping the list in');
    const ls = await runCli(['list', 'ls', '--api', lab.api]);
    expect(ls.stdout).toMatch(/^level1\s+deny\s+src\s+5000\s+1\s+api\s+0\s/m);
    const show = await runCli(['list', 'show', 'level1', '--contains', '198.18.100.7', '--api', lab.api]);
    expect(show.stdout.split('\n')[1]).toBe('198.18.100.7/32');
    const bad = await runCli(['list', 'put', 'level1', '-', '--api', lab.api], {}, 'not-an-ip\n');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('INVALID_CIDR: line 1');
    const rm = await runCli(['list', 'rm', 'level1', '--api', lab.api]);
    expect(rm.stdout.trim()).toBe('deleted list level1');
    expect(lab.firewall.lists.all()).toEqual([]);
  }, 240_000);
});

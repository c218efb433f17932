// Start-up failures are one clear line on stderr and a non-zero exit, from
// the built CLI as an operator runs it; nothing is left behind in bpffs.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureStateDir } from '../daemon/startup.js';
import { pinDirFor } from '../src/firewall.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'xw-startup-'));
const instance = `startup-${process.pid}`;

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(pinDirFor('/sys/fs/bpf', instance), { recursive: true, force: true });
});

/** Runs `xdpwall serve ...`; a daemon that does not exit within 20 s is killed and fails the test. */
function serve(args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--instance', instance, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stderr });
    });
  });
}

const oneLine = (pattern: RegExp) => expect.stringMatching(new RegExp(`^xdpwall: CONFIG_ERROR: ${pattern.source}\\n$`));

describe('start-up errors', () => {
  it.each([
    ['a state directory under /proc', ['--state-dir', `/proc/xdpwall-${process.pid}/state`], /cannot create the state directory \/proc\/xdpwall-\d+\/state: ENOENT: no such file or directory, mkdir '\/proc\/xdpwall-\d+'/],
    ['a state directory under a file', ['--state-dir', `${CLI}/state`], /state directory .*main\.js\/state: .*main\.js exists and is not a directory/],
    ['a unix socket in a missing directory', ['--state-dir', join(work, 's1'), '--listen', `unix:${work}/missing/api.sock`], /cannot listen on unix:.*\/missing\/api\.sock: the directory .*\/missing does not exist/],
    ['an invalid log level in the config', ['--state-dir', join(work, 's2'), '--config', 'LOGLEVEL'], /logLevel "loud" must be one of fatal, error, warn, info, debug, trace, silent/],
  ])('%s: one line, exit 1', async (_name, args, message) => {
    const config = join(work, 'loglevel.yaml');
    writeFileSync(config, 'logLevel: loud\n');
    const result = await serve(args.map((arg) => (arg === 'LOGLEVEL' ? config : arg)));
    expect(result).toEqual({ status: 1, stderr: oneLine(message) });
    expect(existsSync(pinDirFor('/sys/fs/bpf', instance))).toBe(false);
  });

  it('an address in use: one line, exit 1', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = holder.address() as AddressInfo;
      const result = await serve(['--state-dir', join(work, 's3'), '--listen', `127.0.0.1:${port}`, '--log-level', 'silent']);
      expect(result).toEqual({ status: 1, stderr: oneLine(/cannot listen on 127\.0\.0\.1:\d+: the address is already in use \(another xdpwall\?\)/) });
    } finally {
      holder.close();
    }
  });

  it('serves with no interface but says so in health, which `xdpwall health --config` reports', async () => {
    const config = join(work, 'no-iface.yaml');
    writeFileSync(config, `listen: unix:${work}/api.sock\nstateDir: ${work}/s4\nlogLevel: warn\n`);
    const health = () => spawnSync(process.execPath, [CLI, 'health', '--config', config], { encoding: 'utf8' });
    const child = spawn(process.execPath, [CLI, 'serve', '--instance', instance, '--config', config], { stdio: ['ignore', 'pipe', 'ignore'] });
    let log = '';
    child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
    try {
      let result = health();
      for (let i = 0; i < 200 && result.status !== 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        result = health();
      }
      expect(result).toMatchObject({ status: 0, stdout: 'ok\nwarning: no interface is attached: nothing is filtered\n' });
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    expect(log).toContain('no interface configured');
    expect(health()).toMatchObject({ status: 1, stderr: expect.stringMatching(/^xdpwall: cannot reach the xdpwall daemon at unix:.*api\.sock: ENOENT\n$/) });
  });

  it('creates a missing state directory and its parents, private to the daemon', () => {
    const dir = join(work, 'a', 'b', 'c');
    ensureStateDir(dir);
    expect(existsSync(dir)).toBe(true);
    ensureStateDir(dir); // existing: nothing to do
  });
});

// fail2ban with deploy/fail2ban/action.d/xdpwall.conf: Debian's real
// fail2ban-server (its own configuration, socket, pid file and database
// under a temporary directory) watches a generated log file through a jail
// and a filter made here. Failures from the lab client's address get it
// banned: an xdpwall block with origin "fail2ban" and the jail's bantime as
// ttl, made by the CLI over the daemon's unix socket, that stops the
// client's traffic; `fail2ban-client set JAIL unbanip` removes it.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../cli/client.js';
import { hostAddress } from '../src/lab/netns.js';
import { run } from '../src/lab/run.js';
import { newDaemonState, removeDaemonState, type DaemonState } from './lib/daemon.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { CLI_PATH, REPO_ROOT } from './lib/lab-env.js';
import { teardown } from './lib/teardown.js';
import { ping, sendUdp } from './lib/traffic.js';

const FAIL2BAN_SERVER = '/usr/bin/fail2ban-server';
const FAIL2BAN_CLIENT = '/usr/bin/fail2ban-client';
const ACTION = join(REPO_ROOT, 'deploy', 'fail2ban', 'action.d', 'xdpwall.conf');
const JAIL = 'xdpwall-test';
const BANTIME = 3600;
const ECHO_PORT = 9000;
const missing = [FAIL2BAN_SERVER, FAIL2BAN_CLIENT].find((path) => !existsSync(path));

/** Stops a child by its PID: SIGTERM, SIGKILL after 15 s. */
function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  return exited.finally(() => clearTimeout(timer));
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

describe.skipIf(missing !== undefined)(`fail2ban action${missing ? ` (skipped: ${missing} is missing; install Debian's fail2ban)` : ''}`, () => {
  const world = new FirewallLab({ subnet: 94, echo: { port: ECHO_PORT, replyBytes: 32 }, daemon: false });
  let state: DaemonState | undefined;
  let daemon: ChildProcess | undefined;
  let daemonOutput = '';
  let fail2ban: ChildProcess | undefined;
  let dir = '';
  let api: ApiClient;
  let srcPort = 44000;
  const f2b = (args: string[]) => run([FAIL2BAN_CLIENT, '-c', dir, '-s', join(dir, 'fail2ban.sock'), ...args], { timeoutMs: 20_000 });

  beforeAll(async () => {
    await world.setUp();
    state = newDaemonState();
    const socket = join(state.stateDir, 'api.sock');
    daemon = spawn(process.execPath, [
      CLI_PATH, 'serve', '--iface', world.lab.serverIface, '--listen', `unix:${socket}`, '--state-dir', state.stateDir, '--instance', state.instance,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stdout!.on('data', (chunk: Buffer) => (daemonOutput += chunk.toString()));
    daemon.stderr!.on('data', (chunk: Buffer) => (daemonOutput += chunk.toString()));
    api = new ApiClient(`unix:${socket}`);
    await waitFor('the daemon on its unix socket', async () => {
      if (daemon!.exitCode !== null) throw new Error(`daemon exited:\n${daemonOutput}`);
      return (await api.call('GET', '/healthz')).status === 200 ? true : undefined;
    }, 120_000);

    dir = mkdtempSync(join(tmpdir(), 'xwt-fail2ban-'));
    mkdirSync(join(dir, 'filter.d'));
    mkdirSync(join(dir, 'action.d'));
    copyFileSync(ACTION, join(dir, 'action.d', 'xdpwall.conf'));
    writeFileSync(join(dir, 'fail2ban.conf'), [
      '[Definition]', 'loglevel = INFO', `logtarget = ${dir}/fail2ban.log`, 'syslogsocket = auto',
      `socket = ${dir}/fail2ban.sock`, `pidfile = ${dir}/fail2ban.pid`, `dbfile = ${dir}/fail2ban.sqlite3`, '',
    ].join('\n'));
    writeFileSync(join(dir, 'filter.d', `${JAIL}.conf`), '[Definition]\nfailregex = ^\\s*xdpwall-test: authentication failure from <HOST>$\n');
    writeFileSync(join(dir, 'auth.log'), '');
    writeFileSync(join(dir, 'jail.conf'), [
      '[DEFAULT]', 'backend = polling', '',
      `[${JAIL}]`, 'enabled = true', `filter = ${JAIL}`, `logpath = ${dir}/auth.log`, 'maxretry = 3', 'findtime = 600', `bantime = ${BANTIME}`,
      `action = xdpwall[xdpwall="${process.execPath} ${CLI_PATH}", socket="${socket}"]`, '',
    ].join('\n'));
    fail2ban = spawn(FAIL2BAN_SERVER, ['-f', '-x', '-c', dir, '-s', join(dir, 'fail2ban.sock'), '-p', join(dir, 'fail2ban.pid'), '--logtarget', join(dir, 'fail2ban.log')], {
      stdio: 'ignore',
    });
    await waitFor('fail2ban-server and the jail', async () => ((await f2b(['status', JAIL])).code === 0 ? true : undefined), 60_000);
  }, 300_000);

  afterAll(() => teardown(
    () => stopChild(fail2ban),
    () => stopChild(daemon),
    () => world.tearDown(),
    () => state && removeDaemonState(state),
    () => dir && rmSync(dir, { recursive: true, force: true }),
  ));

  async function replies(family: 'ipv4' | 'ipv6'): Promise<{ ping: number; udp: number }> {
    const target = world.lab.server[family];
    const pings = await ping(world.lab.client.netns, target);
    const udp = await sendUdp(world.lab.client.netns, { address: target, port: ECHO_PORT, srcPort: srcPort++, count: 3, size: 32 });
    return { ping: pings.received, udp: udp.received };
  }
  /** A log line as the filter expects it, stamped now in local time (as fail2ban reads it). */
  function fail(address: string): void {
    const d = new Date();
    const pad = (n: number) => String(n).padStart(2, '0');
    const stamp = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    appendFileSync(join(dir, 'auth.log'), `${stamp} xdpwall-test: authentication failure from ${address}\n`);
  }
  type Block = { cidr: string; origin: string; createdAt: string; expiresAt: string | null; comment: string | null };
  async function fail2banBlocks(): Promise<Block[]> {
    const { body } = await api.call<{ items: Block[] }>('GET', '/v1/blocks?origin=fail2ban');
    return body.items;
  }
  const f2bLog = () => (existsSync(join(dir, 'fail2ban.log')) ? readFileSync(join(dir, 'fail2ban.log'), 'utf8').slice(-3000) : '');

  it.each([
    ['ipv4', 32],
    ['ipv6', 128],
  ] as const)('%s: three failures ban the client (a block with the bantime as ttl; its traffic stops); unbanip removes it', async (family, bits) => {
    const address = hostAddress(world.lab.client[family]);
    expect(await replies(family)).toEqual({ ping: 3, udp: 3 });
    fail(address);
    fail(address);
    const before = Date.now();
    fail(address);
    const block = await waitFor(`a fail2ban block of ${address}:\n${f2bLog()}`, async () => (await fail2banBlocks()).find((b) => b.cidr === `${address}/${bits}`));
    expect(block).toMatchObject({ origin: 'fail2ban', comment: `fail2ban jail ${JAIL}` });
    // The ttl is the bantime, counted from when the ban reached the daemon (after `before`);
    // createdAt is stamped a few ms after the expiry is computed.
    expect(Date.parse(block.createdAt)).toBeGreaterThanOrEqual(before - 1000);
    const ttlMs = Date.parse(block.expiresAt!) - Date.parse(block.createdAt);
    expect(Math.abs(ttlMs - BANTIME * 1000)).toBeLessThan(1000);
    expect((await f2b(['status', JAIL])).stdout).toContain(address);
    expect(await replies(family)).toEqual({ ping: 0, udp: 0 });

    const unban = await f2b(['set', JAIL, 'unbanip', address]);
    expect(unban.code, unban.stderr).toBe(0);
    await waitFor(`the block of ${address} to go:\n${f2bLog()}`, async () => ((await fail2banBlocks()).length === 0 ? true : undefined));
    expect(await replies(family)).toEqual({ ping: 3, udp: 3 });
    expect(f2bLog()).not.toMatch(/ERROR/);
  });
});

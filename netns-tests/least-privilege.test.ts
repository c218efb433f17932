// The daemon as a non-root user holding only CAP_BPF, CAP_PERFMON and
// CAP_NET_ADMIN (setpriv, as deploy/systemd does with AmbientCapabilities=)
// loads, attaches and filters real traffic; CAP_SYS_ADMIN is added only to
// reach an interface in another network namespace, and without CAP_PERFMON it
// refuses to start with one line that says why.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../cli/client.js';
import { hostAddress } from '../src/lab/netns.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { CLI_PATH } from './lib/lab-env.js';
import { ping } from './lib/traffic.js';

/** A uid and gid with no passwd entry: nothing but the capabilities given here. */
const UID = 64101;
const CAPS = ['bpf', 'perfmon', 'net_admin'];
const CAP_BIT = { net_admin: 12, sys_admin: 21, perfmon: 38, bpf: 39 } as const;

interface Run {
  child: ChildProcess;
  api: ApiClient;
  pinDir: string;
  output(): string;
  /** Stopping leaves the programs enforcing (hitless restarts): this removes them. */
  detach(): void;
}

describe('least privilege', () => {
  const world = new FirewallLab({ subnet: 60, daemon: false });
  const suffix = `${process.pid}-${randomBytes(2).toString('hex')}`;
  // As deploy/systemd does it: bpffs itself may be root's with mode 0700
  // (systemd mounts it so, and so does the daemon), which the user cannot even
  // traverse; a directory made for the user is bound where the user can reach it.
  const bpffsHost = `/sys/fs/bpf/xwt-lp-${suffix}`;
  const bindBase = mkdtempSync(join(tmpdir(), 'xwt-lp-bpffs-'));
  const bpffsRoot = join(bindBase, 'bpffs');
  let bound = false;
  const runs: Run[] = [];
  const stateDirs: string[] = [];

  beforeAll(async () => {
    await world.setUp();
    mkdirSync(bpffsHost, { mode: 0o700 });
    chownSync(bpffsHost, UID, UID);
    chownSync(bindBase, UID, UID);
    mkdirSync(bpffsRoot, { mode: 0o700 });
    execFileSync('mount', ['--bind', bpffsHost, bpffsRoot]);
    bound = true;
  });

  afterAll(async () => {
    for (const run of runs) {
      await stop(run.child);
      try {
        run.detach();
      } catch {
        // nothing attached (it never started), or already detached
      }
    }
    if (bound) execFileSync('umount', [bpffsRoot]);
    rmSync(bindBase, { recursive: true, force: true });
    rmSync(bpffsHost, { recursive: true, force: true });
    for (const dir of stateDirs) rmSync(dir, { recursive: true, force: true });
    await world.tearDown();
  });

  /** Starts `serve` as UID with exactly `caps`, optionally inside the server's namespace. */
  async function serveAs(caps: string[], iface: string, netns?: string): Promise<Run> {
    const stateDir = mkdtempSync(join(tmpdir(), 'xwt-lp-state-'));
    stateDirs.push(stateDir);
    chownSync(stateDir, UID, UID);
    const configPath = join(stateDir, 'config.yaml');
    writeFileSync(configPath, `bpffsRoot: ${bpffsRoot}\n`);
    const socket = join(stateDir, 'api.sock');
    const instance = `lp-${suffix}-${runs.length}`;
    const capList = `-all,${caps.map((cap) => `+${cap}`).join(',')}`;
    const setpriv = [
      'setpriv', `--reuid=${UID}`, `--regid=${UID}`, '--clear-groups',
      `--inh-caps=${capList}`, `--ambient-caps=${capList}`, `--bounding-set=${capList}`, '--',
      process.execPath, CLI_PATH, 'serve', '--iface', iface, '--listen', `unix:${socket}`,
      '--state-dir', stateDir, '--instance', instance, '--config', configPath, '--mode', 'generic',
    ];
    // nsenter execs setpriv, which execs node: the child's pid is the daemon's.
    const argv = netns ? ['nsenter', `--net=/run/netns/${netns}`, ...setpriv] : setpriv;
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const detach = () => execFileSync(process.execPath, [CLI_PATH, 'detach', '--state-dir', stateDir, '--instance', instance, '--config', configPath]);
    const run: Run = { child, api: new ApiClient(`unix:${socket}`), pinDir: join(bpffsRoot, 'xdpwall', instance), output: () => output, detach };
    runs.push(run);
    return run;
  }

  /** Resolves once /healthz answers, or with the exit code if the daemon exits first. */
  async function started(run: Run): Promise<'healthy' | number | null> {
    for (let i = 0; i < 300; i++) {
      if (run.child.exitCode !== null || run.child.signalCode !== null) return run.child.exitCode;
      try {
        if ((await run.api.call('GET', '/healthz')).status === 200) return 'healthy';
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`daemon neither healthy nor exited in 30 s:\n${run.output()}`);
  }

  function stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    return exited.finally(() => clearTimeout(timer));
  }

  /** Effective capabilities and real uid of a running process, from /proc. */
  function credentials(pid: number): { uid: number; capEff: bigint } {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return {
      uid: Number(/^Uid:\s+(\d+)/m.exec(status)![1]),
      capEff: BigInt(`0x${/^CapEff:\s+([0-9a-f]+)/m.exec(status)![1]}`),
    };
  }
  const capMask = (caps: Array<keyof typeof CAP_BIT>) => caps.reduce((mask, cap) => mask | (1n << BigInt(CAP_BIT[cap])), 0n);

  /** Blocks the client's IPv4 address: pings stop; unblocks it: pings return. */
  async function expectFiltering(api: ApiClient): Promise<void> {
    const { client, server } = world.lab;
    expect((await ping(client.netns, server.ipv4)).received).toBe(3);
    const { status, body } = await api.call<{ id: number }>('POST', '/v1/blocks', { cidr: `${hostAddress(client.ipv4)}/32` });
    expect(status).toBe(201);
    expect((await ping(client.netns, server.ipv4)).received).toBe(0);
    await api.call('DELETE', `/v1/blocks/${body.id}`);
    expect((await ping(client.netns, server.ipv4)).received).toBe(3);
  }

  it('filters as uid 64101 with only CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, inside the interface namespace', async () => {
    const run = await serveAs(CAPS, world.lab.server.ifname, world.lab.server.netns);
    expect(await started(run), run.output()).toBe('healthy');
    expect(credentials(run.child.pid!)).toEqual({ uid: UID, capEff: capMask(['bpf', 'perfmon', 'net_admin']) });
    expect(statSync(run.pinDir).uid).toBe(UID);
    await expectFiltering(run.api);
    await stop(run.child);
    expect(run.child.exitCode, run.output()).toBe(0);
    run.detach();
  });

  it('reaches an interface in another namespace with CAP_SYS_ADMIN added', async () => {
    const run = await serveAs([...CAPS, 'sys_admin'], world.lab.serverIface);
    expect(await started(run), run.output()).toBe('healthy');
    expect(credentials(run.child.pid!)).toEqual({ uid: UID, capEff: capMask(['bpf', 'perfmon', 'net_admin', 'sys_admin']) });
    await expectFiltering(run.api);
    await stop(run.child);
    expect(run.child.exitCode, run.output()).toBe(0);
    run.detach();
  });

  it('refuses to start without CAP_PERFMON, saying so in one line', async () => {
    const run = await serveAs(['bpf', 'net_admin'], world.lab.server.ifname, world.lab.server.netns);
    expect(await started(run)).toBe(1);
    const lastLine = run.output().trimEnd().split('\n').at(-1)!;
    expect(lastLine).toMatch(/^xdpwall: DATAPATH_ERROR: cannot load \S+: EACCES: the daemon lacks CAP_PERFMON: it needs CAP_BPF, CAP_PERFMON \(the verifier refuses the data plane's pointer comparisons without it\) and CAP_NET_ADMIN$/);
  });
});

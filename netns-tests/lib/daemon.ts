// The real daemon as a child process: a fresh temporary state directory and
// bpffs instance, a free loopback port, JSON logs to a file, stopped by its
// own PID.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI_PATH } from './lab-env.js';

/** What a daemon keeps between runs: its rule store and its pinned maps. */
export interface DaemonState {
  stateDir: string;
  /** --instance: names the pin directory /sys/fs/bpf/xdpwall/INSTANCE. */
  instance: string;
  /** An admin token made with `xdpwall token create` in stateDir: the API on TCP needs one. */
  token: string;
}

export interface DaemonOptions {
  /** "NETNS/IFNAME" values for --iface. */
  ifaces: string[];
  /** Reuse state (a restart); default: new state, removed again if start-up fails. */
  state?: DaemonState;
  mode?: 'auto' | 'native' | 'generic';
  startTimeoutMs?: number;
  /** More `serve` arguments, e.g. ['--force']. */
  args?: string[];
  /** Extra environment, e.g. XDPWALL_BPF_OBJECT for an upgrade. */
  env?: Record<string, string>;
  /** A configuration file (--config); flags still set the rest. */
  config?: string;
}

export interface Daemon {
  pid: number;
  /** http://127.0.0.1:PORT */
  baseUrl: string;
  state: DaemonState;
  logPath: string;
  /** The daemon's log so far (JSON lines), for failure messages. */
  log(): string;
  /** SIGTERM, wait for exit; SIGKILL after timeoutMs. Resolves to the exit code (null if killed). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL (a crash: no shutdown code runs) and wait for the exit. */
  kill(): Promise<void>;
}

const STATE_PREFIX = join(tmpdir(), 'xwt-state-');
const PIN_ROOT = '/sys/fs/bpf/xdpwall';

export function newDaemonState(): DaemonState {
  const stateDir = mkdtempSync(STATE_PREFIX);
  const token = execFileSync(process.execPath, [CLI_PATH, 'token', 'create', 'netns-test', '--scope', 'admin', '--state-dir', stateDir], {
    encoding: 'utf8',
  }).trim();
  return { stateDir, instance: basename(stateDir), token };
}

/** Removes the state directory and the pinned maps; the daemon must be stopped. */
export function removeDaemonState(state: DaemonState): void {
  if (!state.stateDir.startsWith(STATE_PREFIX) || !state.instance.startsWith('xwt-state-')) {
    throw new Error(`refusing to remove ${state.stateDir} / ${state.instance}`);
  }
  rmSync(state.stateDir, { recursive: true, force: true });
  rmSync(join(PIN_ROOT, state.instance), { recursive: true, force: true });
}

/** A loopback TCP port that was free a moment ago. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

function waitForExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Serving, and done reconciling the pinned maps (a restart serves first: degraded[].restore meanwhile). */
async function healthy(baseUrl: string): Promise<boolean> {
  try {
    const response = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(1_000) });
    if (!response.ok) return false;
    const { degraded } = (await response.json()) as { degraded?: Array<{ restore?: string }> };
    return !degraded?.some((entry) => entry.restore !== undefined);
  } catch {
    return false;
  }
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const state = options.state ?? newDaemonState();
  const { stateDir } = state;
  const port = await freeLoopbackPort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const logPath = join(stateDir, 'daemon.log');
  const argv = [
    CLI_PATH, 'serve', ...options.ifaces.flatMap((iface) => ['--iface', iface]),
    '--listen', `127.0.0.1:${port}`, '--state-dir', stateDir, '--instance', state.instance, '--mode', options.mode ?? 'auto',
    ...(options.args ?? []),
  ];
  if (options.config) argv.push('--config', options.config);
  const logFd = openSync(logPath, 'a');
  const child = spawn(process.execPath, argv, { stdio: ['ignore', logFd, logFd], env: { ...process.env, ...options.env } });
  closeSync(logFd);
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn the daemon');
  const exited = waitForExit(child);
  const log = (): string => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };

  const stop = async (timeoutMs = 15_000): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };

  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await exited;
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  while (!(await healthy(baseUrl))) {
    const exitedEarly = child.exitCode !== null || child.signalCode !== null;
    if (exitedEarly || Date.now() > deadline) {
      await stop();
      const message = exitedEarly
        ? `daemon exited (${child.exitCode ?? child.signalCode}) during start-up`
        : `daemon not healthy at ${baseUrl} in time`;
      const output = log();
      if (!options.state) removeDaemonState(state);
      throw new Error(`${message}:\n${output}`);
    }
    await sleep(100);
  }
  return { pid, baseUrl, state, logPath, log, stop, kill };
}

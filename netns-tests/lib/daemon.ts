// The real daemon as a child process: a fresh temporary state directory, a
// free loopback port, JSON logs to a file, stopped by its own PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI_PATH } from './lab-env.js';

export interface DaemonOptions {
  /** "NETNS/IFNAME" values for --iface. */
  ifaces: string[];
  /** Reuse a state directory (a restart); default: a new temporary one. */
  stateDir?: string;
  mode?: 'auto' | 'native' | 'generic';
  startTimeoutMs?: number;
}

export interface Daemon {
  pid: number;
  /** http://127.0.0.1:PORT */
  baseUrl: string;
  stateDir: string;
  logPath: string;
  /** The daemon's log so far (JSON lines), for failure messages. */
  log(): string;
  /** SIGTERM, wait for exit; SIGKILL after timeoutMs. Resolves to the exit code (null if killed). */
  stop(timeoutMs?: number): Promise<number | null>;
}

export function newStateDir(): string {
  return mkdtempSync(join(tmpdir(), 'xwt-state-'));
}

export function removeStateDir(dir: string): void {
  if (!dir.startsWith(join(tmpdir(), 'xwt-state-'))) throw new Error(`refusing to remove ${dir}`);
  rmSync(dir, { recursive: true, force: true });
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

async function healthy(baseUrl: string): Promise<boolean> {
  try {
    return (await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(1_000) })).ok;
  } catch {
    return false;
  }
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const stateDir = options.stateDir ?? newStateDir();
  const port = await freeLoopbackPort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const logPath = join(stateDir, 'daemon.log');
  const argv = [
    CLI_PATH, 'serve', ...options.ifaces.flatMap((iface) => ['--iface', iface]),
    '--listen', `127.0.0.1:${port}`, '--state-dir', stateDir, '--mode', options.mode ?? 'auto',
  ];
  const logFd = openSync(logPath, 'a');
  const child = spawn(process.execPath, argv, { stdio: ['ignore', logFd, logFd] });
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

  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  while (!(await healthy(baseUrl))) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`daemon exited (${child.exitCode ?? child.signalCode}) during start-up:\n${log()}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`daemon not healthy at ${baseUrl} in time:\n${log()}`);
    }
    await sleep(100);
  }
  return { pid, baseUrl, stateDir, logPath, log, stop };
}

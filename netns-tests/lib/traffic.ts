// Bounded traffic between lab namespaces: ping, and UDP with a responder.
// Every sender stops by itself (fixed count, per-packet timeout, and an outer
// time limit on the process).
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { hostAddress, isLabAddress, runInNetns, spawnInNetns } from '../../src/lab/netns.js';

const UDP_ECHO = fileURLToPath(new URL('./bin/udp-echo.mjs', import.meta.url));
const UDP_SEND = fileURLToPath(new URL('./bin/udp-send.mjs', import.meta.url));

function assertLabTarget(address: string): void {
  if (!isLabAddress(address)) throw new Error(`refusing to send to ${address}: not a lab address`);
}

export interface PingResult {
  transmitted: number;
  received: number;
}

export interface PingOptions {
  /** Echo requests to send; default 3. */
  count?: number;
  /** ICMP echo identifier (ping -e); default random. */
  identifier?: number;
}

/** `ping -c COUNT -W 1 -i 0.2` from the namespace; never throws on loss. */
export async function ping(netns: string, address: string, options: PingOptions = {}): Promise<PingResult> {
  const target = hostAddress(address);
  assertLabTarget(target);
  const count = options.count ?? 3;
  const argv = ['ping', '-n', '-q', '-c', String(count), '-W', '1', '-i', '0.2', target];
  if (options.identifier !== undefined) argv.push('-e', String(options.identifier));
  const result = await runInNetns(netns, argv, { timeoutMs: 5_000 + count * 1_200 });
  const match = /(\d+) packets transmitted, (\d+) received/.exec(result.stdout);
  if (!match) throw new Error(`unexpected ping output: ${result.stdout}${result.stderr}`);
  return { transmitted: Number(match[1]), received: Number(match[2]) };
}

/**
 * Pings once a second until one reply arrives or timeoutMs passes: a fresh
 * veth can take a moment before the first IPv6 neighbour resolves.
 */
export async function waitReachable(netns: string, address: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await ping(netns, address, { count: 1 })).received === 1) return;
  }
  throw new Error(`${address} not reachable from ${netns} within ${timeoutMs} ms`);
}

export interface UdpEchoServer {
  pid: number;
  stop(): Promise<void>;
}

/** Starts the UDP responder inside the namespace; it answers with replySize-byte payloads. */
export async function startUdpEcho(netns: string, port: number, replySize: number, lifetimeMs = 120_000): Promise<UdpEchoServer> {
  const child: ChildProcess = spawnInNetns(
    netns,
    [process.execPath, UDP_ECHO, String(port), String(replySize), String(lifetimeMs)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const pid = child.pid;
  if (pid === undefined || !child.stdout) throw new Error('could not start the UDP responder');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = createInterface({ input: child.stdout });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('udp-echo not ready within 5 s')), 5_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      if (line === 'ready') resolve();
      else reject(new Error(`udp-echo said: ${line}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`udp-echo exited (${code}) before it was ready`));
    });
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(pid, 'SIGTERM');
      await exited;
    }
  };
  try {
    await ready;
  } catch (error) {
    await stop();
    throw error;
  }
  return { pid, stop };
}

export interface UdpSendOptions {
  address: string;
  port: number;
  srcPort: number;
  count: number;
  /** UDP payload bytes per datagram. */
  size: number;
  intervalMs?: number;
  /** How long to wait for replies after the last datagram. */
  waitMs?: number;
  /** Stop sending early when this aborts (the result counts what was sent). */
  stop?: AbortSignal;
}

export interface UdpSendResult {
  sent: number;
  received: number;
  receivedBytes: number;
}

/** Sends a fixed number of datagrams from the namespace and counts the replies. */
export async function sendUdp(netns: string, options: UdpSendOptions): Promise<UdpSendResult> {
  const target = hostAddress(options.address);
  assertLabTarget(target);
  const intervalMs = options.intervalMs ?? 20;
  const waitMs = options.waitMs ?? 500;
  const argv = [
    process.execPath, UDP_SEND, target, options.port, options.srcPort, options.count, options.size, intervalMs, waitMs,
  ].map(String);
  // Timers run late on a busy machine: allow twice the nominal sending time.
  const nothing: UdpSendResult = { sent: 0, received: 0, receivedBytes: 0 };
  if (options.stop?.aborted) return nothing;
  const result = await runInNetns(netns, argv, { timeoutMs: 5_000 + options.count * intervalMs * 2 + waitMs, stop: options.stop });
  // A stop that lands while node is still starting kills the sender before it
  // installs its SIGTERM handler, which it does before sending anything.
  if (result.signal === 'SIGTERM' && options.stop?.aborted) return nothing;
  if (result.code !== 0) throw new Error(`udp-send failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as UdpSendResult;
}

/** Bytes of one Ethernet frame carrying a UDP payload (no FCS; veth does not pad). */
export function udpFrameLength(address: string, payloadBytes: number): number {
  const ipHeader = hostAddress(address).includes(':') ? 40 : 20;
  return 14 + ipHeader + 8 + payloadBytes;
}

const TCP_LISTEN = fileURLToPath(new URL('./bin/tcp-listen.mjs', import.meta.url));
const TCP_CONNECT = fileURLToPath(new URL('./bin/tcp-connect.mjs', import.meta.url));

/** Starts TCP listeners on `ports` inside the namespace (each answers "ok"). */
export async function startTcpListener(netns: string, ports: number[], lifetimeMs = 180_000): Promise<UdpEchoServer> {
  const child: ChildProcess = spawnInNetns(netns, [process.execPath, TCP_LISTEN, String(lifetimeMs), ...ports.map(String)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const pid = child.pid;
  if (pid === undefined || !child.stdout) throw new Error('could not start the TCP listener');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('tcp-listen not ready within 5 s')), 5_000);
    createInterface({ input: child.stdout! }).once('line', (text) => {
      clearTimeout(timer);
      resolve(text);
    });
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(pid, 'SIGTERM');
      await exited;
    }
  };
  if (line !== 'ready') {
    await stop();
    throw new Error(`tcp-listen said: ${line}`);
  }
  return { pid, stop };
}

/** One TCP connect from the namespace; true when the server answered. */
export async function tcpConnects(netns: string, address: string, port: number, timeoutMs = 1_500): Promise<boolean> {
  const target = hostAddress(address);
  assertLabTarget(target);
  const result = await runInNetns(netns, [process.execPath, TCP_CONNECT, target, String(port), String(timeoutMs)], { timeoutMs: timeoutMs + 5_000 });
  return result.stdout.startsWith('connected ok');
}

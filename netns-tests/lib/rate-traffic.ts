// Paced UDP senders and a counting sink for rate-limit suites: bounded
// (a fixed number of datagrams, at most 100,000; a time limit on every
// process), lab addresses only.
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { hostAddress, isLabAddress, runInNetns, runInNetnsChecked, spawnInNetns } from '../../src/lab/netns.js';

const UDP_RATE = fileURLToPath(new URL('./bin/udp-rate.mjs', import.meta.url));
const UDP_COUNT = fileURLToPath(new URL('./bin/udp-count.mjs', import.meta.url));

export interface RateSendOptions {
  /** Source address to bind (an address of the namespace). */
  from: string;
  to: string;
  port: number;
  srcPort: number;
  pps: number;
  seconds: number;
  /** UDP payload bytes. */
  size: number;
}

export interface RateSendResult {
  sent: number;
  elapsedMs: number;
  /** Datagrams handed to the kernel in each second since the first. */
  perSecond: number[];
}

export async function sendAtRate(netns: string, o: RateSendOptions): Promise<RateSendResult> {
  const to = hostAddress(o.to);
  const from = hostAddress(o.from);
  if (!isLabAddress(to) || !isLabAddress(from)) throw new Error(`refusing to send ${from} -> ${to}: not lab addresses`);
  const argv = [process.execPath, UDP_RATE, from, to, o.port, o.srcPort, o.pps, o.seconds, o.size].map(String);
  const result = await runInNetns(netns, argv, { timeoutMs: 20_000 + o.seconds * 3_000 });
  if (result.code !== 0) throw new Error(`udp-rate failed (${result.code ?? result.signal}): ${result.stderr}`);
  return JSON.parse(result.stdout) as RateSendResult;
}

export interface SinkCounts {
  sources: Record<string, { total: number; perSecond: number[] }>;
}

export interface UdpSink {
  pid: number;
  /** Stops the sink and returns what it counted. */
  stop(): Promise<SinkCounts>;
}

export async function startUdpSink(netns: string, port: number, lifetimeMs = 60_000): Promise<UdpSink> {
  const child: ChildProcess = spawnInNetns(netns, [process.execPath, UDP_COUNT, String(port), String(lifetimeMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const pid = child.pid;
  if (pid === undefined || !child.stdout) throw new Error('could not start the UDP sink');
  const lines = createInterface({ input: child.stdout });
  const output: string[] = [];
  // the last line (the counts) is read once stdout closes, which may be after the exit event
  const closed = new Promise<void>((resolve) => lines.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('udp-count not ready within 5 s')), 5_000);
    lines.on('line', (line) => {
      if (line === 'ready') {
        clearTimeout(timer);
        resolve();
      } else {
        output.push(line);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`udp-count exited (${code}) before it was ready`));
    });
  });
  return {
    pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGTERM');
      await closed;
      const last = output.at(-1);
      if (!last) throw new Error('udp-count printed nothing');
      return JSON.parse(last) as SinkCounts;
    },
  };
}

/** Adds an address to an interface of a lab namespace (a second source). */
export async function addAddress(netns: string, ifname: string, cidr: string): Promise<void> {
  if (!isLabAddress(hostAddress(cidr))) throw new Error(`refusing to add ${cidr}: not a lab address`);
  await runInNetnsChecked(netns, ['ip', cidr.includes(':') ? '-6' : '-4', 'addr', 'add', cidr, 'dev', ifname, ...(cidr.includes(':') ? ['nodad'] : [])]);
}

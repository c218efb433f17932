// Profiling helper (not part of the suite): the bench's daemon cases on their own. Fills a daemon
// (`xdpwall serve`, pinned maps, no interface) with the bench's mixed 1M import, then restarts it
// ROUNDS times, timed to its first answered /healthz, alternating between the CLIs given in CLIS
// (comma-separated, default this tree's): an A/B of two builds on the same store and pins.
// NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") go to the daemons' node; KEEP=1 keeps the state.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/paths.js';
import { stopDaemon, untilServing } from '../bench/lib/serving.js';
import { mixedImportNdjson } from '../bench/lib/prefixes.js';

const N = Number(process.env.N ?? 1_000_000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const clis = (process.env.CLIS ?? join(PACKAGE_ROOT, 'dist', 'cli', 'main.js')).split(',');
const nodeArgs = (process.env.NODE_ARGS ?? '').split(' ').filter(Boolean);
const state = mkdtempSync(join(tmpdir(), 'prof-restart-'));
const instance = `prof-restart-${process.pid}`;
const port = 20000 + (process.pid % 20000);
const base = `http://127.0.0.1:${port}`;
let daemon: ChildProcess | null = null;

async function start(cli: string, logLevel = 'error'): Promise<number> {
  const t0 = performance.now();
  daemon = spawn(process.execPath, [...nodeArgs, cli, 'serve', '--listen', `127.0.0.1:${port}`, '--state-dir', state, '--instance', instance, '--config', join(state, 'config.json'), '--log-level', logLevel], { stdio: ['ignore', 'inherit', 'inherit'] });
  await untilServing(daemon, base);
  return (performance.now() - t0) / 1000;
}

async function stop(): Promise<void> {
  const d = daemon;
  daemon = null;
  await stopDaemon(d);
}

try {
  writeFileSync(join(state, 'config.json'), JSON.stringify({ capacity: { cidrV4: N + 1024, cidrV6: N + 1024 } }));
  const token = execFileSync(process.execPath, [clis[0]!, 'token', 'create', 'bench', '--scope', 'admin', '--state-dir', state]).toString().trim();
  await start(clis[0]!);
  const body = mixedImportNdjson(N);
  async function* pieces(b: Buffer) { for (let at = 0; at < b.length; at += 1 << 16) yield b.subarray(at, at + (1 << 16)); }
  const t0 = performance.now();
  const r = await fetch(`${base}/v1/blocks/bulk`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${token}` }, body: pieces(body), duplex: 'half' } as RequestInit);
  console.log('mixed import', r.status, await r.text(), ((performance.now() - t0) / 1000).toFixed(2), 's');
  await stop();
  for (let round = 0; round < ROUNDS; round++) {
    for (const cli of clis) {
      const t0 = performance.now();
      const seconds = await start(cli, process.env.LOG_LEVEL ?? 'error');
      // /healthz every 20 ms until it no longer reports a restore running (main never does).
      const latencies: number[] = [];
      for (;;) {
        const t = performance.now();
        const health = (await (await fetch(`${base}/healthz`)).json()) as { degraded?: Array<{ restore?: string }> };
        latencies.push(performance.now() - t);
        if (!health.degraded?.some((d) => d.restore !== undefined)) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const restored = (performance.now() - t0) / 1000;
      // The same probes once restored: the baseline the machine's load gives.
      const idle: number[] = [];
      for (let i = 0; i < 100; i++) {
        const t = performance.now();
        await (await fetch(`${base}/healthz`)).arrayBuffer();
        idle.push(performance.now() - t);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      idle.sort((a, b) => a - b);
      latencies.sort((a, b) => a - b);
      const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]!;
      console.log(`restart ${cli}: serving ${seconds.toFixed(2)} s, restored ${restored.toFixed(2)} s, /healthz meanwhile ${latencies.length} probes p99 ${p99.toFixed(0)} ms max ${latencies.at(-1)!.toFixed(0)} ms; then 100 probes p99 ${idle[98]!.toFixed(0)} max ${idle[99]!.toFixed(0)} ms  (load ${execFileSync('cat', ['/proc/loadavg']).toString().split(' ').slice(0, 3).join(' ')})`);
      await new Promise((resolve) => setTimeout(resolve, Number(process.env.SETTLE_MS ?? 3000)));
      await stop();
    }
  }
} finally {
  if (daemon) (daemon as ChildProcess).kill('SIGKILL');
  try {
    execFileSync(process.execPath, [clis[0]!, 'detach', '--state-dir', state, '--instance', instance], { stdio: 'ignore' });
  } catch {
    // nothing attached
  }
  rmSync(`/sys/fs/bpf/xdpwall/${instance}`, { recursive: true, force: true });
  if (!process.env.KEEP) rmSync(state, { recursive: true, force: true });
  else console.log('state kept in', state, 'instance', instance);
}

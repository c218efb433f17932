// Profiling helper (not part of the suite): 1M import through the API, then a restart of Firewall.open on the same store, then single POSTs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../api/app.js';
import { Firewall } from '../src/firewall.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { generateV4, v4Cidr } from '../bench/lib/prefixes.js';
import { quantile } from '../bench/lib/stats.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const N = Number(process.env.N ?? 1_000_000);
const quietLog = { info: () => {}, warn: () => {} };
const prefixes = generateV4(N + 2000, 42 + 10);
const state = mkdtempSync(join(tmpdir(), 'import2-prof-'));
const opts = { objectPath: BPF_OBJECT_PATH, storePath: join(state, 'rules.sqlite'), pin: null, capacity: { cidrV4: 1 << 21, cidrV6: 1024, flows: 1 << 16 }, countersCacheMs: 250 };
try {
  const { firewall } = await Firewall.open(opts, quietLog);
  const app = await buildApp({ firewall });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const items: string[] = [];
  for (let i = 0; i < N; i++) items.push(`{"cidr":"${v4Cidr(prefixes, i)}"}`);
  const body = Buffer.from(`{"items":[${items.join(',')}]}`);
  items.length = 0;
  async function* pieces(b: Buffer) { for (let at = 0; at < b.length; at += 1 << 16) yield b.subarray(at, at + (1 << 16)); }
  const eld = monitorEventLoopDelay({ resolution: 5 });
  eld.enable();
  const cpu0 = process.cpuUsage();
  let t0 = performance.now();
  const r = await fetch(`${base}/v1/blocks/bulk`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: pieces(body), duplex: 'half' } as RequestInit);
  console.log('import', r.status, await r.text(), ((performance.now() - t0) / 1000).toFixed(2), 's');
  eld.disable();
  const cpu = process.cpuUsage(cpu0);
  console.log('process CPU during import (all threads, client included):', ((cpu.user + cpu.system) / 1e6).toFixed(2), 's');
  console.log('event loop delay during import: p99', (eld.percentile(99) / 1e6).toFixed(1), 'ms, max', (eld.max / 1e6).toFixed(1), 'ms');
  const lat: number[] = [];
  if (!process.env.SKIP_SINGLE) {
    for (let i = N; i < N + 1000; i++) {
      const t = performance.now();
      const res = await fetch(`${base}/v1/blocks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cidr: v4Cidr(prefixes, i), comment: 'bench' }) });
      await res.arrayBuffer();
      lat.push(performance.now() - t);
    }
    console.log('single p50', quantile(lat, 0.5).toFixed(2), 'p99', quantile(lat, 0.99).toFixed(2), 'max', Math.max(...lat).toFixed(1));
  }
  await app.close();
  firewall.close();
  t0 = performance.now();
  const { firewall: again } = await Firewall.open(opts, quietLog);
  console.log('reopen', ((performance.now() - t0) / 1000).toFixed(2), 's');
  again.close();
} finally {
  rmSync(state, { recursive: true, force: true });
}

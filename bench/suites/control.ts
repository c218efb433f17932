// Control plane: the daemon's pieces in this process (Firewall.open +
// buildApp, listening on 127.0.0.1:0, SQLite store in a temp dir, maps not
// pinned), driven over real HTTP. Compares a 1M-CIDR bulk import with the
// raw bpf_map_update_batch of the same prefixes, times single-block
// requests, flow listing with 1M flows, and GET /v1/stats under autocannon.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfObject } from '@xdpwall/addon';
import { buildApp } from '../../api/app.js';
import { Firewall } from '../../src/firewall.js';
import { MAPS, Layout, cpusOf, encodeFlowKey } from '../../src/datapath/abi.js';
import { run } from '../../src/lab/run.js';
import { BPF_OBJECT_PATH, PACKAGE_ROOT } from '../../src/paths.js';
import { BENCH_CPU, allCpus, pinProcess } from '../lib/cpu.js';
import { sizeLabel, type SuiteContext } from '../lib/context.js';
import { denyValues, generateV4, mixedImportNdjson, v4Cidr, v4Keys } from '../lib/prefixes.js';
import { median, quantile } from '../lib/stats.js';
import { stopDaemon, untilServing } from '../lib/serving.js';

const SINGLE = 'POST /v1/blocks (one CIDR), sequential';
const quietLog = { info: () => {}, warn: () => {} };

export async function runControl(ctx: SuiteContext): Promise<void> {
  const imported = ctx.quick ? 100_000 : 1_000_000;
  const singles = ctx.quick ? 300 : 1000;
  const throughputRequests = ctx.quick ? 1000 : 3000;
  const flows = ctx.quick ? 100_000 : 1_000_000;
  const statsSeconds = ctx.quick ? 3 : 10;
  const IMPORT = `import ${sizeLabel(imported)} IPv4 CIDRs via POST /v1/blocks/bulk`;
  const RAW = `raw bpf_map_update_batch of the same ${sizeLabel(imported)}`;
  const prefixes = generateV4(imported + singles + throughputRequests, ctx.seed + 10);

  const state = mkdtempSync(join(tmpdir(), `${ctx.runId}-control-`));
  ctx.cleanup.add(`remove ${state}`, () => rmSync(state, { recursive: true, force: true }));
  const { firewall } = await Firewall.open(
    {
      objectPath: BPF_OBJECT_PATH,
      storePath: join(state, 'rules.sqlite'),
      pin: null,
      capacity: { cidrV4: 1 << 21, cidrV6: 1024, flows: 1 << 21 },
      countersCacheMs: 250,
    },
    quietLog,
  );
  ctx.cleanup.add('close the control-plane firewall', () => firewall.close());
  const app = await buildApp({ firewall });
  ctx.cleanup.add('close the API', () => app.close());
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  ctx.log(`control: API on ${base}, state in ${state}`);

  // 1. Raw batch of the same prefixes into a fresh trie: the floor for the import.
  const keys = v4Keys(prefixes, 0, imported);
  const values = denyValues(1, imported);
  const raw = BpfObject.open(BPF_OBJECT_PATH);
  try {
    raw.setMapMaxEntries(MAPS.srcV4, 1 << 21);
    await raw.load();
    const t0 = performance.now();
    await raw.map(MAPS.srcV4).updateBatch(keys, values, imported);
    ctx.results.add({ suite: 'control', case: RAW, metric: 'time', value: (performance.now() - t0) / 1000, unit: 's' });
  } finally {
    raw.close();
  }

  // 2. The same prefixes through the API, end to end.
  const items: string[] = [];
  for (let i = 0; i < imported; i++) items.push(`{"cidr":"${v4Cidr(prefixes, i)}"}`);
  // Encoded before the clock starts: given a string, fetch converts 27 MB on this (the daemon's) event loop.
  const body = Buffer.from(`{"items":[${items.join(',')}]}`);
  {
    const t0 = performance.now();
    const response = await fetch(`${base}/v1/blocks/bulk`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: pieces(body), duplex: 'half' });
    const text = await response.text();
    const seconds = (performance.now() - t0) / 1000;
    if (response.status === 404) {
      ctx.note('control: POST /v1/blocks/bulk does not exist yet: the 1M import was not measured');
    } else if (!response.ok) {
      ctx.note(`control: bulk import answered ${response.status}: ${text.slice(0, 200)}`);
    } else {
      ctx.results.add({ suite: 'control', case: IMPORT, metric: 'time', value: seconds, unit: 's', baseline: RAW });
      ctx.note(`control: bulk import of ${imported.toLocaleString('en-US')} CIDRs (${(body.length / 1e6).toFixed(1)} MB of JSON) answered ${text}`);
    }
  }

  // 3. Single blocks, one at a time, with the big rule set in place.
  const latencies: number[] = [];
  const post = async (i: number): Promise<void> => {
    const response = await fetch(`${base}/v1/blocks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cidr: v4Cidr(prefixes, i), comment: 'bench' }),
    });
    await response.arrayBuffer();
    if (response.status !== 201) throw new Error(`POST /v1/blocks answered ${response.status}`);
  };
  for (let i = imported; i < imported + singles; i++) {
    const t0 = performance.now();
    await post(i);
    latencies.push(performance.now() - t0);
  }
  for (const [metric, q] of [['p50', 0.5], ['p99', 0.99]] as const) {
    ctx.results.add({ suite: 'control', case: SINGLE, metric, value: quantile(latencies, q), unit: 'ms' });
  }
  {
    const concurrency = 16;
    let next = imported + singles;
    const end = next + throughputRequests;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < end) await post(next++);
      }),
    );
    ctx.results.add({
      suite: 'control',
      case: `POST /v1/blocks (one CIDR), ${concurrency} in flight`,
      metric: 'throughput',
      value: throughputRequests / ((performance.now() - t0) / 1000),
      unit: 'req/s',
    });
  }
  ctx.note(`control: single-block latency over ${singles} sequential requests with ${imported.toLocaleString('en-US')} rules stored; the HTTP client runs in the daemon's process`);

  // 4. A full flow table, then GET /v1/flows?limit=100: the first request reads the table into the
  // snapshot (src/flows/snapshot.ts), the next ones are answered from it or from the one read behind it.
  await fillFlows(firewall, flows);
  const timeFlows = async (query: string, expected: number): Promise<number[]> => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 300)); // past the counters cache
      const t0 = performance.now();
      const response = await fetch(`${base}/v1/flows${query}`);
      const json = (await response.json()) as { items: unknown[] };
      times.push(performance.now() - t0);
      if (!response.ok || json.items.length !== expected) throw new Error(`GET /v1/flows${query} answered ${response.status} with ${json.items.length} items`);
    }
    return times;
  };
  const flowTimes = await timeFlows('?limit=100', 100);
  ctx.results.add({ suite: 'control', case: `GET /v1/flows?limit=100, ${sizeLabel(flows)} flows`, metric: 'p50', value: median(flowTimes), unit: 'ms' });
  ctx.results.add({ suite: 'control', case: `GET /v1/flows?limit=100, ${sizeLabel(flows)} flows, first request (reads the snapshot)`, metric: 'time', value: flowTimes[0]!, unit: 'ms' });
  // The first 65,536 flows come from 198.18.0.0/24 (256 per address, fillFlows), in the quick run's 100k too;
  // another sort: a filter and a new sort column.
  const filtered = await timeFlows('?src=198.18.0.0/24&sort=packets&limit=100', 100);
  ctx.results.add({ suite: 'control', case: `GET /v1/flows?src=/24&sort=packets&limit=100, ${sizeLabel(flows)} flows`, metric: 'p50', value: median(filtered), unit: 'ms' });
  ctx.note(`control: flow table holds ${(await firewall.flowCount()).toLocaleString('en-US')} flows for the /v1/flows request (filled with bpf_map_update_batch); answers come from a snapshot at most flowSnapshotMaxAgeMs (2 s) old, the first request's time includes reading it`);

  // 5. GET /v1/stats under autocannon, a separate process.
  const cannon = await run(
    [join(PACKAGE_ROOT, 'node_modules', '.bin', 'autocannon'), '--json', '--connections', '10', '--duration', String(statsSeconds), `${base}/v1/stats`],
    { timeoutMs: (statsSeconds + 30) * 1000 },
  );
  if (cannon.code !== 0) throw new Error(`autocannon exited ${cannon.code}: ${cannon.stderr.slice(0, 300)}`);
  const report = JSON.parse(cannon.stdout) as { requests: { average: number }; latency: { p99: number }; non2xx: number; errors: number };
  ctx.results.add({ suite: 'control', case: 'GET /v1/stats under autocannon', metric: 'throughput', value: report.requests.average, unit: 'req/s' });
  ctx.results.add({ suite: 'control', case: 'GET /v1/stats under autocannon', metric: 'p99', value: report.latency.p99, unit: 'ms' });
  ctx.note(`control: autocannon, 10 connections, ${statsSeconds} s: ${report.non2xx} non-2xx, ${report.errors} errors`);

  // 6. A real daemon process: a mixed 1M import over HTTP from this process,
  // /healthz probed meanwhile, then restarts to serving with the rules stored.
  await runDaemonCases(ctx, imported);
}

const CLI = join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');

/** A body in 64 KiB pieces: fetch copies a Buffer body whole on this process's loop (0.2 s for 27 MB), which is also the API's here. */
async function* pieces(body: Buffer): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < body.length; at += 1 << 16) yield body.subarray(at, at + (1 << 16));
}

/** Resident memory of a process, in MB. */
const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

/**
 * The daemon as deployed (`xdpwall serve`, pinned maps, no interface), fed
 * a mixed import of IPv4 /32s and IPv6 /128s as NDJSON over HTTP from this
 * process; then stopped and started again: with its maps pinned (a restart
 * or upgrade) and with the pins gone (a reboot), timed to its first
 * answered /healthz.
 */
async function runDaemonCases(ctx: SuiteContext, count: number): Promise<void> {
  if (!existsSync(CLI)) {
    ctx.note(`control: ${CLI} is missing (npm run build): the daemon cases were not measured`);
    return;
  }
  const MIXED = `import ${sizeLabel(count)} mixed IPv4 /32 + IPv6 /128 over HTTP (NDJSON, another process)`;
  const state = mkdtempSync(join(tmpdir(), `${ctx.runId}-daemon-`));
  const instance = `${ctx.runId}-daemon`.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40);
  ctx.cleanup.add(`remove ${state}`, () => rmSync(state, { recursive: true, force: true }));
  ctx.cleanup.add(`remove the pins of ${instance}`, () => {
    try {
      execFileSync(process.execPath, [CLI, 'detach', '--state-dir', state, '--instance', instance], { stdio: 'ignore' });
    } catch {
      // nothing attached
    }
    rmSync(`/sys/fs/bpf/xdpwall/${instance}`, { recursive: true, force: true });
  });
  const config = join(state, 'config.json');
  writeFileSync(config, JSON.stringify({ capacity: { cidrV4: count + 1024, cidrV6: count + 1024 } }));
  const port = 20000 + (process.pid % 20000);
  const base = `http://127.0.0.1:${port}`;
  const token = execFileSync(process.execPath, [CLI, 'token', 'create', 'bench', '--scope', 'admin', '--state-dir', state]).toString().trim();
  let daemon: ChildProcess | null = null;
  const stop = async (): Promise<void> => {
    const d = daemon;
    daemon = null;
    await stopDaemon(d);
  };
  ctx.cleanup.add('stop the bench daemon', () => {
    if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  });
  /** Starts the daemon; resolves to the seconds until /healthz answered. */
  const start = async (): Promise<number> => {
    const t0 = performance.now();
    daemon = spawn(process.execPath, [CLI, 'serve', '--listen', `127.0.0.1:${port}`, '--state-dir', state, '--instance', instance, '--config', config, '--log-level', 'error'], { stdio: ['ignore', 'ignore', 'inherit'] });
    await untilServing(daemon, base);
    return (performance.now() - t0) / 1000;
  };

  await start();
  const idleRss = rssMb(daemon!.pid!);
  // Rules only: no interface is attached, so no packet meets them. Encoded once, before the probes
  // start: a string body makes fetch convert 38 MB on this process's event loop, which delayed this
  // process's own /healthz probes (a 408 ms maximum) and was counted as the daemon's.
  const body = mixedImportNdjson(count);
  const latencies: number[] = [];
  let importing = true;
  let maxRss = idleRss;
  const probe = (async () => {
    while (importing) {
      const t0 = performance.now();
      await (await fetch(`${base}/healthz`)).arrayBuffer();
      latencies.push(performance.now() - t0);
      maxRss = Math.max(maxRss, rssMb(daemon!.pid!));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  const t0 = performance.now();
  const response = await fetch(`${base}/v1/blocks/bulk`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${token}` },
    body: pieces(body),
    duplex: 'half',
  });
  const answer = await response.text();
  const seconds = (performance.now() - t0) / 1000;
  importing = false;
  await probe;
  if (!response.ok) {
    ctx.note(`control: the mixed import answered ${response.status}: ${answer.slice(0, 200)}`);
  } else {
    ctx.results.add({ suite: 'control', case: MIXED, metric: 'time', value: seconds, unit: 's' });
    ctx.results.add({ suite: 'control', case: `GET /healthz during the ${sizeLabel(count)} mixed import`, metric: 'p99', value: quantile(latencies, 0.99), unit: 'ms' });
    ctx.results.add({ suite: 'control', case: `daemon RSS during the ${sizeLabel(count)} mixed import`, metric: 'max', value: maxRss, unit: 'MB' });
    ctx.note(`control: mixed import (${(body.length / 1e6).toFixed(1)} MB NDJSON) answered ${answer}; /healthz ${latencies.length} probes, max ${Math.max(...latencies).toFixed(0)} ms; daemon RSS idle ${idleRss.toFixed(0)} MB`);
  }
  await stop();

  const restartedAt = performance.now();
  const pinned = await start();
  // Serving comes first when the maps were filled by the run before (they enforce meanwhile; changes wait):
  // healthz says ok, not degraded with degraded[].restore, once the kernel is reconciled with the store.
  const restored = await untilRestored(base, restartedAt);
  const rss = rssMb(daemon!.pid!);
  ctx.results.add({ suite: 'control', case: `restart to serving with ${sizeLabel(count)} rules (maps pinned)`, metric: 'time', value: pinned, unit: 's' });
  ctx.results.add({ suite: 'control', case: `restart to rules reconciled with the kernel, ${sizeLabel(count)} rules (maps pinned)`, metric: 'time', value: restored, unit: 's' });
  ctx.results.add({ suite: 'control', case: `daemon RSS serving ${sizeLabel(count)} rules after restart`, metric: 'rss', value: rss, unit: 'MB' });
  await stop();
  execFileSync(process.execPath, [CLI, 'detach', '--state-dir', state, '--instance', instance], { stdio: 'ignore' });
  rmSync(`/sys/fs/bpf/xdpwall/${instance}`, { recursive: true, force: true });
  const cold = await start();
  ctx.results.add({ suite: 'control', case: `start to serving with ${sizeLabel(count)} rules (no pinned maps)`, metric: 'time', value: cold, unit: 's' });
  await stop();
}

/** Seconds from `since` until /healthz no longer reports a restore running (120 s at most). */
async function untilRestored(base: string, since: number): Promise<number> {
  for (let i = 0; i < 6000; i++) {
    const health = (await (await fetch(`${base}/healthz`)).json()) as { degraded?: Array<{ restore?: string }> };
    if (!health.degraded?.some((d) => d.restore !== undefined)) return (performance.now() - since) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('the daemon did not reconcile its maps within 120 s');
}

/**
 * Fills xw_flows with `count` distinct IPv4 UDP flows. The table is a
 * per-CPU-LRU hash (BPF_F_NO_COMMON_LRU): user-space inserts draw on the
 * calling CPU's share, so half are inserted from each CPU.
 */
async function fillFlows(firewall: Firewall, count: number): Promise<void> {
  const map = firewall.datapath.maps.flows;
  const cpus = cpusOf(map);
  const now = process.hrtime.bigint();
  const chunk = 1 << 16;
  try {
    for (let start = 0; start < count; start += chunk) {
      const n = Math.min(chunk, count - start);
      const cpu = start < count / 2 ? 0 : BENCH_CPU;
      if (start === 0 || (start >= count / 2 && start - chunk < count / 2)) await pinProcess(process.pid, String(cpu));
      const keys = Buffer.alloc(n * map.keySize);
      const values = Buffer.alloc(n * map.valueStride);
      for (let i = 0; i < n; i++) {
        const id = start + i;
        const src = Buffer.alloc(16);
        src.writeUInt16BE(0xffff, 10);
        src.writeUInt32BE((0xc6120000 | (id >>> 8)) >>> 0, 12); // 198.18.x.y
        const dst = Buffer.alloc(16);
        dst.writeUInt16BE(0xffff, 10);
        dst.writeUInt32BE(0xc613ff02, 12); // 198.19.255.2
        encodeFlowKey({ src, dst, sport: 1024 + (id & 0xff), dport: 53, ifindex: 1, proto: 17, family: 4 }).copy(keys, i * map.keySize);
        const at = i * map.valueStride + (cpu % cpus) * (map.valueStride / cpus);
        values.writeBigUInt64LE(BigInt(1 + (id % 1000)), at + Layout.flowValue.dir); // ingress packets
        values.writeBigUInt64LE(BigInt(64 * (1 + (id % 1000))), at + Layout.flowValue.dir + 8);
        values.writeBigUInt64LE(now, at + Layout.flowValue.firstSeenNs);
        values.writeBigUInt64LE(now, at + Layout.flowValue.lastSeenNs);
      }
      await map.updateBatch(keys, values, n);
    }
  } finally {
    await pinProcess(process.pid, allCpus());
  }
}

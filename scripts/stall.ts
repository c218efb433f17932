// npm run stall: how long the daemon's event loop stalls during the long
// requests of issue 11. Starts `xdpwall serve` (no interface, pinned maps in
// a unique instance, state in a temp dir), and while /healthz is probed every
// 10 ms: imports 1M IPv4 rules (NDJSON, 900k /32 + 100k /24), blocks
// 0.0.0.0/1 (2^23 DIR-24 slots), unblocks it, and blocks and unblocks
// 128.0.0.0/1 as dst, then fills the flow table (XW_STALL_FLOWS flows,
// default 262,144 = the default capacity.flows, written into the daemon's pinned xw_flows with map updates: no
// traffic) and runs GET /v1/flows alone and concurrent variants. Prints, per phase, the request's time, the probes'
// count, p50, p99 and max, and the daemon's own view (a 5 ms timer in the
// daemon, scripts/loop-gaps.mjs, reports gaps over 20 ms): the longest time
// its event loop was held, how often it was held over 50 ms, and the most
// CPU time the loop's thread itself ran within one gap. On a busy machine
// the wall-clock figures are mostly time the daemon waited for a CPU; the
// on-CPU figure is the work between two turns of the loop. XW_STALL_RULES sets
// the rule count; XW_STALL_NODE_ARGS passes more flags to the daemon's node
// (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"); XW_STALL_GAPS=FILE keeps
// the gaps for scripts/prof-gaps.mjs, which shows what ran in each.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BpfObject } from '@xdpwall/addon';
import { BPF_OBJECT_PATH, PACKAGE_ROOT } from '../src/paths.js';
import { applyCapacity } from '../src/datapath/datapath.js';
import { Layout, cpusOf } from '../src/datapath/abi.js';
import { parseIp, toMappedV6 } from '../src/rules/cidr.js';

const CLI = join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');
const count = Number(process.env.XW_STALL_RULES ?? 1_000_000);
/** Flows written: the default capacity.flows, so the table is full (an LRU: the last writes evict a few). */
const flowCount = Number(process.env.XW_STALL_FLOWS ?? 262_144);
const nodeArgs = (process.env.XW_STALL_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** XW_STALL_GAPS=FILE appends the daemon's LOOP_GAP lines there, to match against a --cpu-prof profile (same clock). */
const gapsFile = process.env.XW_STALL_GAPS;
const state = mkdtempSync(join(tmpdir(), 'xw-stall-'));
const instance = `stall-${process.pid}`;
const port = 20000 + (process.pid % 20000);
const base = `http://127.0.0.1:${port}`;
let daemon: ChildProcess | null = null;
/** Gaps of the daemon's event loop, [from, to] in µs of CLOCK_MONOTONIC, the µs its thread ran meanwhile and the µs it waited for a CPU. */
const gaps: Array<[number, number, number, number]> = [];
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

const quantile = (values: number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
};
const ms = (value: number): string => `${value.toFixed(1)} ms`;

function cleanup(): void {
  if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  try {
    execFileSync(process.execPath, [CLI, 'detach', '--state-dir', state, '--instance', instance], { stdio: 'ignore' });
  } catch {
    // nothing attached
  }
  rmSync(`/sys/fs/bpf/xdpwall/${instance}`, { recursive: true, force: true });
  rmSync(state, { recursive: true, force: true });
}

/** A body in 64 KiB pieces: fetch copies a Buffer body whole on this process's loop (0.2 s for 26 MB), delaying its probes. */
async function* pieces(body: Buffer): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < body.length; at += 1 << 16) yield body.subarray(at, at + (1 << 16));
}

/** Runs `request` while probing /healthz every 10 ms; prints one line. */
async function phase(name: string, request: () => Promise<Response>): Promise<{ p99: number; max: number; held: number; onCpu: number }> {
  const latencies: number[] = [];
  const from = nowUs();
  if (gapsFile) appendFileSync(gapsFile, `PHASE ${from} ${name}\n`);
  let running = true;
  const probe = (async () => {
    while (running) {
      const t0 = performance.now();
      const response = await fetch(`${base}/healthz`);
      await response.arrayBuffer();
      latencies.push(performance.now() - t0);
      if (!response.ok) throw new Error(`/healthz answered ${response.status}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  const t0 = performance.now();
  const response = await request();
  const answer = await response.text();
  const seconds = (performance.now() - t0) / 1000;
  running = false;
  await probe;
  await new Promise((resolve) => setTimeout(resolve, 50)); // the last gap's line
  if (!response.ok) throw new Error(`${name} answered ${response.status}: ${answer.slice(0, 300)}`);
  const to = nowUs();
  const inPhase = gaps.filter(([start, end]) => end > from && start < to);
  const held = inPhase.map(([start, end]) => (end - start) / 1000);
  const onCpu = Math.max(0, ...inPhase.map(([, , cpu]) => cpu / 1000));
  // The longest gap split: ran, waited for a CPU, slept (a system call or a lock).
  const longest = inPhase.reduce<(typeof gaps)[number] | undefined>((a, g) => (!a || g[1] - g[0] > a[1] - a[0] ? g : a), undefined);
  const split = longest
    ? ` (longest: ran ${ms(longest[2] / 1000)}, waited for a CPU ${ms(longest[3] / 1000)}, slept ${ms(Math.max(0, longest[1] - longest[0] - longest[2] - longest[3]) / 1000)})`
    : '';
  const result = { p99: quantile(latencies, 0.99), max: Math.max(...latencies), held: Math.max(0, ...held), onCpu };
  console.log(
    `${name.padEnd(40)} ${seconds.toFixed(2).padStart(6)} s; /healthz ${String(latencies.length).padStart(5)} probes: ` +
      `p50 ${ms(quantile(latencies, 0.5))}, p99 ${ms(result.p99)}, max ${ms(result.max)}; ` +
      `loop held max ${ms(result.held)}, ${held.filter((h) => h > 50).length}x > 50 ms, on CPU max ${ms(onCpu)}${split}`,
  );
  return result;
}

/** Runs the requests at once: the first failed response, or one 200 when all succeeded. */
async function all(requests: Array<() => Promise<Response>>): Promise<Response> {
  const responses = await Promise.all(requests.map((request) => request()));
  for (const response of responses) {
    if (!response.ok) return response;
    await response.arrayBuffer();
  }
  return new Response('ok');
}

/**
 * Writes `flowCount` flows into the daemon's pinned xw_flows (the same
 * object opened on the instance's maps directory reuses its pins): unique
 * IPv4 5-tuples from 198.18.0.0/15 to 198.19.0.1-4, seeded counters.
 */
async function fillFlows(capacity: Parameters<typeof applyCapacity>[1]): Promise<void> {
  const root = `/sys/fs/bpf/xdpwall/${instance}`;
  const dir = execFileSync('find', [root, '-name', 'xw_flows']).toString().trim().split('\n')[0];
  if (!dir) throw new Error(`no xw_flows pinned under ${root}`);
  const object = BpfObject.open(BPF_OBJECT_PATH, { pinRoot: dir.slice(0, -'/xw_flows'.length) });
  try {
    applyCapacity(object, capacity);
    await object.load();
    const map = object.map('xw_flows');
    const K = Layout.flowKey;
    const V = Layout.flowValue;
    const stride = map.valueStride;
    const slot = stride / cpusOf(map);
    const chunk = 65536;
    let seed = 7;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const src = toMappedV6(parseIp('198.18.0.0'));
    const t0 = performance.now();
    for (let from = 0; from < flowCount; from += chunk) {
      const n = Math.min(chunk, flowCount - from);
      const keys = Buffer.alloc(n * K.size);
      const values = Buffer.alloc(n * stride);
      for (let j = 0; j < n; j++) {
        const i = from + j;
        const k = j * K.size;
        keys.set(src, k + K.src);
        keys.writeUInt32BE((0xc6120000 + (i % 131072)) >>> 0, k + K.src + 12);
        keys.set(src, k + K.dst);
        keys.writeUInt32BE(0xc6130001 + (i % 4), k + K.dst + 12);
        keys.writeUInt16BE(1024 + Math.floor(i / 131072), k + K.sport);
        keys.writeUInt16BE([22, 53, 80, 443][i % 4]!, k + K.dport);
        keys.writeUInt8(i % 3 === 0 ? 17 : 6, k + K.proto);
        keys.writeUInt8(4, k + K.family);
        const v = j * stride;
        values.writeBigUInt64LE(BigInt(1 + Math.floor(random() * 1000)), v + V.dir);
        values.writeBigUInt64LE(BigInt(64 + Math.floor(random() * 1_000_000)), v + V.dir + 8);
        values.writeBigUInt64LE(1_000_000_000n, v + V.firstSeenNs);
        values.writeBigUInt64LE(2_000_000_000n + BigInt(Math.floor(random() * 1e9)), v + V.lastSeenNs);
        if (slot < stride) values.copy(values, v + slot, v, v + slot); // another CPU saw the same
      }
      await map.updateBatch(keys, values, n);
    }
    console.log(`wrote ${flowCount.toLocaleString('en-US')} flows into ${dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    object.close();
  }
}

try {
  const config = join(state, 'config.json');
  const capacity = { cidrV4: count + 1024, cidrV6: 1024, flows: Math.max(262_144, flowCount), rateBuckets: 65536, timedBlocks: 65536 };
  writeFileSync(config, JSON.stringify({ capacity }));
  const token = execFileSync(process.execPath, [CLI, 'token', 'create', 'stall', '--scope', 'admin', '--state-dir', state]).toString().trim();
  const auth = { authorization: `Bearer ${token}` };
  daemon = spawn(
    process.execPath,
    ['--import', join(PACKAGE_ROOT, 'scripts', 'loop-gaps.mjs'), ...nodeArgs, CLI, 'serve', '--listen', `127.0.0.1:${port}`, '--state-dir', state, '--instance', instance, '--config', config, '--log-level', 'error'],
    { stdio: ['ignore', 'inherit', 'pipe'] },
  );
  createInterface({ input: daemon.stderr! }).on('line', (line) => {
    const gap = /^LOOP_GAP (\d+) (\d+) (\d+) (\d+)$/.exec(line);
    if (gap) {
      gaps.push([Number(gap[1]), Number(gap[2]), Number(gap[3]), Number(gap[4])]);
      if (gapsFile) appendFileSync(gapsFile, `${line}\n`);
    }
    else console.error(line);
  });
  for (let i = 0; ; i++) {
    if (daemon.exitCode !== null) throw new Error(`the daemon exited with ${daemon.exitCode}`);
    if (i > 3000) throw new Error('the daemon did not answer /healthz within 60 s');
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const lines: string[] = [];
  const v24 = Math.floor(count / 10);
  for (let n = 0; n < count - v24; n++) lines.push(`{"cidr":"10.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/32"}`);
  for (let n = 0; n < v24; n++) lines.push(`{"cidr":"${11 + (n >>> 16)}.${(n >>> 8) & 255}.${n & 255}.0/24"}`);
  // Encoded once, here: a string body makes fetch convert 26 MB on this process's event loop, which
  // delayed this process's own /healthz probes by ~0.5 s and was counted as the daemon's stall.
  const body = Buffer.from(lines.join('\n'));
  lines.length = 0;
  console.log(`daemon pid ${daemon.pid}; ${count.toLocaleString('en-US')} rules (${(count - v24).toLocaleString('en-US')} /32 + ${v24.toLocaleString('en-US')} /24), ${(body.length / 1e6).toFixed(1)} MB NDJSON`);
  const results: Array<{ p99: number; max: number; held: number; onCpu: number }> = [];
  results.push(await phase(`bulk import of ${count.toLocaleString('en-US')}`, () =>
    fetch(`${base}/v1/blocks/bulk`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...auth }, body: pieces(body), duplex: 'half' })));
  const block = async (cidr: string, direction: 'src' | 'dst'): Promise<void> => {
    let id = 0;
    results.push(await phase(`POST /v1/blocks ${cidr} (${direction})`, async () => {
      const response = await fetch(`${base}/v1/blocks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify({ cidr, direction }),
      });
      id = ((await response.clone().json()) as { id: number }).id;
      return response;
    }));
    results.push(await phase(`DELETE /v1/blocks/:id ${cidr} (${direction})`, () =>
      fetch(`${base}/v1/blocks/${id}`, { method: 'DELETE', headers: auth })));
  };
  await block('0.0.0.0/1', 'src');
  await block('128.0.0.0/1', 'dst');
  await fillFlows(capacity);
  const flows = (query: string) => fetch(`${base}/v1/flows${query}`, { headers: auth });
  results.push(await phase(`GET /v1/flows?limit=100 (${(flowCount / 1e6).toFixed(2)}M flows)`, () => flows('?limit=100')));
  const variants = ['?limit=100', '?limit=100', '?sort=packets&limit=1000', '?sort=lastSeen&src=198.18.0.0/16', '?proto=tcp&port=443&limit=10000', '?dst=198.19.0.1/32&sort=packets&limit=5', '?limit=1'];
  results.push(await phase(`${variants.length} concurrent GET /v1/flows`, () => all(variants.map((q) => () => flows(q)))));
  results.push(await phase(`3 rounds of ${variants.length} concurrent`, async () => {
    for (let round = 0; round < 3; round++) {
      const response = await all(variants.map((q) => () => flows(q)));
      if (!response.ok) return response;
    }
    return new Response('ok');
  }));
  results.push(await phase('GET /v1/ratelimits/top + /v1/stats', () =>
    all([() => fetch(`${base}/v1/ratelimits/top`, { headers: auth }), () => fetch(`${base}/v1/stats`, { headers: auth })])));
  const worst = (key: 'p99' | 'max' | 'held' | 'onCpu') => ms(Math.max(...results.map((r) => r[key])));
  console.log(
    `worst: /healthz p99 ${worst('p99')}, max ${worst('max')}; loop held max ${worst('held')}, on CPU max ${worst('onCpu')}; ` +
      `load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`,
  );
  const exited = new Promise((resolve) => daemon!.once('exit', resolve));
  daemon.kill('SIGTERM');
  await exited;
} finally {
  cleanup();
}

// CrowdSec: time from N ban decisions added to the Local API until all are
// enforced, for xdpwall's bouncer and for Debian's crowdsec-firewall-bouncer
// (nftables), on the same private LAPI, one after the other.
//
//   npx tsx bench/crowdsec.ts [--decisions 100000] [--refresh 1s] [--resync 1m]
//
// Everything runs inside one network namespace made for the run (nsenter):
// the LAPI (crowdsec -no-cs, listening on that namespace's 127.0.0.1), the
// xdpwall daemon (no interface attached; its maps are what enforces, and its
// API is a unix socket) and the nftables bouncer, whose tables land in that
// namespace, never in this host's firewall. The decisions are IPv4
// addresses from 198.18.0.0/15 (never sent to). Each bouncer pulls every
// --refresh; the clock starts when `cscli decisions import` has returned
// (the import's own time is reported apart) and stops when:
//   xdpwall: /healthz reports the crowdsec integration with N entries (set
//            once the bulk change returned: on disk and in the kernel maps);
//   nftables: `nft list set` counts N elements in crowdsec-blacklists.
// A pull racing the import can lose whole batches of 50 for good (LAPI 1.4
// stamps created_at before the batch commits; see src/integrations/
// crowdsec.ts): xdpwall's periodic resync (--resync) then brings them, and
// the result says how many it added; the nftables bouncer has no resync, so
// when its count stops short of N for --stall it is reported as stuck there.
// The load average is reported with each figure (the machine is shared).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient } from '../cli/client.js';
import { CrowdsecLapi, crowdsecMissing } from '../src/lab/crowdsec-lapi.js';
import { createNetns, deleteNetns, nsenterArgv, runInNetns } from '../src/lab/netns.js';
import { run } from '../src/lab/run.js';
import { parseDuration } from '../src/duration.js';
import { Cleanup } from './lib/cleanup.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const NFT_BOUNCER = '/usr/bin/crowdsec-firewall-bouncer';

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] ? process.argv[at + 1]! : fallback;
}

const N = Number(option('decisions', '100000'));
const REFRESH = option('refresh', '1s');
const RESYNC = option('resync', '1m');
const STALL_MS = Number(option('stall', '120')) * 1000;
if (!Number.isInteger(N) || N < 1 || N > 131_072) throw new Error('--decisions: 1..131072 (addresses of 198.18.0.0/15)');

const address = (i: number) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
/** --resync in ms ("0"/"off": none). */
const resyncMs = (text: string) => (text === '0' || text === 'off' ? 0 : parseDuration(text, '--resync'));
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function spawnLogged(argv: string[], logPath: string): ChildProcess {
  const log = openSync(logPath, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', log, log] });
  closeSync(log);
  return child;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  return exited.finally(() => clearTimeout(timer));
}

const load = () => loadavg().map((l) => +l.toFixed(2));

/**
 * Polls a count until it reaches `target`: the time it took, or, when the
 * count stays short for `stallMs`, where it stopped and when it last moved.
 */
async function countUntil(what: string, count: () => Promise<number | undefined>, target: number, stallMs: number, everyMs = 100): Promise<{ ms: number; reached: number; complete: boolean }> {
  const started = performance.now();
  let last = -1;
  let lastChange = started;
  for (;;) {
    const value = await count().catch(() => undefined);
    const at = performance.now();
    if (value !== undefined && value !== last) {
      last = value;
      lastChange = at;
    }
    if (value === target) return { ms: at - started, reached: value, complete: true };
    if (at - lastChange > stallMs) {
      console.log(`${what}: stuck at ${last} of ${target} for ${Math.round(stallMs / 1000)} s`);
      return { ms: lastChange - started, reached: last, complete: false };
    }
    await sleep(everyMs);
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function main(): Promise<void> {
  const missing = crowdsecMissing();
  if (missing) throw new Error(missing);
  const cleanup = new Cleanup();
  const onSignal = () => void cleanup.runAll().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const netns = `xwb-${process.pid}-cs`;
  const work = mkdtempSync(join(tmpdir(), 'xwb-crowdsec-'));
  cleanup.add('work dir', () => rmSync(work, { recursive: true, force: true }));
  const results: Record<string, unknown> = { decisions: N, refresh: REFRESH, cpus: (await import('node:os')).cpus().length };
  try {
    await createNetns(netns);
    cleanup.add('netns', async () => void (await deleteNetns(netns)));
    await runInNetns(netns, ['ip', 'link', 'set', 'lo', 'up']);
    const lapi = await CrowdsecLapi.start({ netns, timeoutMs: 60_000 });
    cleanup.add('lapi', () => lapi.stop());
    const decisions = Array.from({ length: N }, (_, i) => ({ value: address(i), scope: 'Ip' as const, duration: '4h' }));
    const importAll = async (): Promise<number> => {
      const started = performance.now();
      await lapi.importDecisions(decisions);
      return performance.now() - started;
    };

    // ---- xdpwall
    const xdpwallKey = randomBytes(16).toString('hex');
    await lapi.addBouncer('xdpwall-bench', xdpwallKey);
    const stateDir = join(work, 'xdpwall');
    const socket = join(work, 'xdpwall.sock');
    const instance = `xwb-crowdsec-${process.pid}`;
    writeFileSync(join(work, 'xdpwall.yaml'), [
      `crowdsec: { url: "${lapi.url}", apiKey: "${xdpwallKey}", refresh: ${REFRESH}, resync: ${RESYNC} }`,
      // Every decision is a block with a ttl: xw_block_meta needs an entry each (default 65,536).
      `capacity: { cidrV4: ${Math.max(N, 1024) * 2}, cidrV6: 1024, flows: 1024, timedBlocks: ${Math.max(N * 2, 65_536)} }`, 'logLevel: info', '',
    ].join('\n'));
    const daemon = spawnLogged(nsenterArgv(netns, [
      process.execPath, CLI, 'serve', '--listen', `unix:${socket}`, '--state-dir', stateDir, '--instance', instance, '--config', join(work, 'xdpwall.yaml'),
    ]), join(work, 'xdpwall.log'));
    cleanup.add('xdpwall daemon', async () => {
      await stopChild(daemon);
      rmSync(`/sys/fs/bpf/xdpwall/${instance}`, { recursive: true, force: true });
    });
    const api = new ApiClient(`unix:${socket}`);
    type Health = { integrations?: Array<{ state: string; entries: number; lastSuccessAt: string | null }> };
    const crowdsec = async () => (await api.call<Health>('GET', '/healthz')).body.integrations?.[0];
    const resyncDrift = async () => {
      const metrics = (await api.call<string>('GET', '/metrics')).body;
      const text = typeof metrics === 'string' ? metrics : JSON.stringify(metrics);
      const series = (name: string) => Number(/ (\d+)$/m.exec(text.split('\n').find((line) => line.startsWith(name)) ?? '')?.[1] ?? 0);
      return { resyncs: series('xdpwall_integration_resyncs_total'), added: series('xdpwall_integration_resync_drift_total{integration="crowdsec",change="added"}') };
    };
    await until('xdpwall following the LAPI', async () => ((await crowdsec())?.state === 'ok' ? true : undefined), 120_000);
    const xLoad = load();
    const xImportMs = await importAll();
    const xdpwall = await countUntil('xdpwall', async () => (await crowdsec())?.entries, N, Math.max(STALL_MS, 2 * resyncMs(RESYNC)));
    const blocks = (await api.call<{ total: number }>('GET', '/v1/blocks?origin=crowdsec&limit=1')).body.total;
    const drift = await resyncDrift();
    results.xdpwall = {
      importSeconds: +(xImportMs / 1000).toFixed(2), enforcedSeconds: +(xdpwall.ms / 1000).toFixed(2), complete: xdpwall.complete, reached: xdpwall.reached,
      blocks, resyncs: drift.resyncs, addedByResync: drift.added, loadBefore: xLoad, loadAfter: load(),
    };
    console.log(`xdpwall:  import ${seconds(xImportMs)}; ${xdpwall.complete ? `all ${N}` : `${xdpwall.reached} of ${N} (stuck)`} enforced ${seconds(xdpwall.ms)} after (blocks of origin crowdsec: ${blocks}; resyncs ${drift.resyncs}, blocks they added ${drift.added}); load ${xLoad.join(' ')} -> ${load().join(' ')}`);

    // Remove them again (and time that too), then stop xdpwall before the nftables bouncer runs.
    await lapi.cscli(['decisions', 'delete', '--all'], 600_000);
    const rStart = performance.now();
    await until('xdpwall removing the decisions', async () => ((await crowdsec())?.entries === 0 ? true : undefined), 600_000);
    const removeMs = performance.now() - rStart;
    (results.xdpwall as Record<string, unknown>).removedSeconds = +(removeMs / 1000).toFixed(2);
    console.log(`xdpwall:  all ${N} removed ${seconds(removeMs)} after \`cscli decisions delete --all\` returned`);
    await stopChild(daemon);

    // ---- nftables bouncer (inside the namespace: its tables are that namespace's)
    const nftKey = randomBytes(16).toString('hex');
    await lapi.addBouncer('nftables-bench', nftKey);
    const nftConfig = join(work, 'nft-bouncer.yaml');
    writeFileSync(nftConfig, [
      'mode: nftables', `pid_dir: ${work}/`, `update_frequency: ${REFRESH}`, 'daemonize: false', 'log_mode: stdout', 'log_level: info',
      `api_url: ${lapi.url}/`, `api_key: ${nftKey}`, 'insecure_skip_verify: false', 'disable_ipv6: false', 'deny_action: DROP', 'deny_log: false',
      'supported_decisions_types: [ban]', 'blacklists_ipv4: crowdsec-blacklists', 'blacklists_ipv6: crowdsec6-blacklists',
      'nftables:', '  ipv4: { enabled: true, set-only: false, table: crowdsec, chain: crowdsec-chain }',
      '  ipv6: { enabled: true, set-only: false, table: crowdsec6, chain: crowdsec6-chain }',
      'prometheus: { enabled: false, listen_addr: 127.0.0.1, listen_port: 60601 }', '',
    ].join('\n'));
    const bouncer = spawnLogged(nsenterArgv(netns, [NFT_BOUNCER, '-c', nftConfig]), join(work, 'nft-bouncer.log'));
    cleanup.add('nftables bouncer', () => stopChild(bouncer));
    let nftError = '';
    const setSize = async (): Promise<number | undefined> => {
      // Listing 100k elements takes nft a while on a loaded machine: a generous timeout, or no sample at all.
      const listed = await runInNetns(netns, ['nft', '-j', 'list', 'set', 'ip', 'crowdsec', 'crowdsec-blacklists'], { timeoutMs: 300_000 });
      if (listed.code !== 0) {
        nftError = (listed.stderr || `exit ${listed.code}`).trim().split('\n')[0] ?? '';
        return undefined;
      }
      const set = (JSON.parse(listed.stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> }).nftables.find((item) => item.set)?.set;
      return set?.elem?.length ?? 0;
    };
    await until('the nftables bouncer\'s set', async () => ((await setSize()) === 0 ? true : undefined), 60_000, 500);
    await sleep(2_000); // its first pull (startup) is done
    const nLoad = load();
    const nImportMs = await importAll();
    const nft = await countUntil('nftables', setSize, N, STALL_MS, 250);
    if (!nft.complete && nftError) console.log(`nftables: the last \`nft list set\` failed: ${nftError}`);
    results.nftables = {
      importSeconds: +(nImportMs / 1000).toFixed(2), enforcedSeconds: +(nft.ms / 1000).toFixed(2), complete: nft.complete, reached: nft.reached,
      loadBefore: nLoad, loadAfter: load(),
    };
    console.log(`nftables: import ${seconds(nImportMs)}; ${nft.complete ? `all ${N}` : `${nft.reached} of ${N} (stuck)`} in the set ${seconds(nft.ms)} after; load ${nLoad.join(' ')} -> ${load().join(' ')}`);
    const version = (await run(['dpkg-query', '-W', '-f', '${Version}', 'crowdsec-firewall-bouncer'])).stdout;
    const lapiVersion = (await run(['dpkg-query', '-W', '-f', '${Version}', 'crowdsec'])).stdout;
    results.versions = { crowdsec: lapiVersion, 'crowdsec-firewall-bouncer': version };
    console.log(JSON.stringify(results));
  } catch (error) {
    for (const log of ['xdpwall.log', 'nft-bouncer.log']) {
      try {
        console.error(`--- ${log}\n${readFileSync(join(work, log), 'utf8').slice(-3000)}`);
      } catch {
        // not started
      }
    }
    throw error;
  } finally {
    await cleanup.runAll();
  }
}

await main();

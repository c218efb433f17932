// Soak: the real daemon filtering a lab veth while UDP traffic flows through
// it and the API takes a steady mix of reads and writes (open loop: request
// i is sent at start + i / rate, whatever the answers). Counts errors (any
// unexpected status or failed request), latency percentiles and the daemon's
// resident memory over time. Used by `npm run soak` (300 s at 300 req/s) and,
// bounded, by netns-tests/soak.test.ts.
//
// Writes come from several write tokens, each below the default per-principal
// rate limit (20 changes/s, burst 100): the soak runs the limiter as shipped,
// the way several clients would use it.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { prng } from '../../test/lib/prng.js';
import { createLabPair, CLI_PATH, type LabPair } from './lab-env.js';
import { removeDaemonState, startDaemon, type Daemon } from './daemon.js';
import { sendUdp, startUdpEcho, waitReachable, type UdpEchoServer } from './traffic.js';
import { teardown } from './teardown.js';

export interface SoakOptions {
  durationS: number;
  /** API requests per second, reads and writes together. */
  rate: number;
  /** The lab's subnet (third octet); distinct from other suites'. */
  subnet: number;
  seed?: number;
  /** Progress lines, every progressEveryS seconds (default 30); silent when absent. */
  progress?: (line: string) => void;
  progressEveryS?: number;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface SoakReport {
  durationS: number;
  /** durationS * rate: what the open loop was to send. */
  requested: number;
  /** What it did send (fewer when the daemon fell behind by MAX_IN_FLIGHT requests). */
  sent: number;
  completed: number;
  errors: number;
  /** The first few errors, for the failure message. */
  errorSamples: string[];
  achievedRate: number;
  latencyMs: LatencySummary;
  byKind: Record<string, LatencySummary>;
  rssMiB: { start: number; baseline: number; end: number; peak: number };
  /** end / baseline - 1: growth after the warm-up (first 20% of the run). */
  rssGrowth: number;
  traffic: { sent: number; received: number; errors: string[] };
  rulesAtEnd: number;
}

const WRITE_TOKENS = 8;
/** Changes per second each write token may make, kept below the default 20/s. */
const MAX_WRITES_PER_TOKEN = 15;
const MAX_IN_FLIGHT = 64;
/** The soak's rules: host routes and /24s in 198.19.0.0/16, never the lab's own addresses. */
const MAX_LIVE_RULES = 4000;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summarize(samples: number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 10) / 10;
  return { count: sorted.length, p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? 0) };
}

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? 0) / 1024;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
};

type Kind = 'list' | 'flows' | 'stats' | 'healthz' | 'metrics' | 'block' | 'unblock' | 'bulk';

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const random = prng(options.seed ?? 0x50a4);
  const int = (n: number) => Math.floor(random() * n);
  let lab: LabPair | undefined;
  let daemon: Daemon | undefined;
  let echo: UdpEchoServer | undefined;
  const stopTraffic = new AbortController();
  try {
    const setupStarted = performance.now();
    lab = await createLabPair(options.subnet);
    daemon = await startDaemon({ ifaces: [lab.serverIface] });
    options.progress?.(`lab and daemon up in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s`);
    const { baseUrl, state } = daemon;
    const writers = Array.from({ length: WRITE_TOKENS }, (_, i) =>
      execFileSync(process.execPath, [CLI_PATH, 'token', 'create', `soak-writer-${i}`, '--scope', 'write', '--state-dir', state.stateDir], { encoding: 'utf8' }).trim(),
    );
    if (options.rate * 0.4 > WRITE_TOKENS * MAX_WRITES_PER_TOKEN) {
      throw new Error(`${options.rate} req/s needs more than ${WRITE_TOKENS} write tokens at ${MAX_WRITES_PER_TOKEN} changes/s`);
    }

    // Traffic: UDP through the filtered veth, a new source port (a new flow) every round.
    const server = lab.server.ipv4.split('/')[0]!;
    echo = await startUdpEcho(lab.server.netns, 9000, 64, (options.durationS + 60) * 1000);
    await waitReachable(lab.client.netns, server);
    const traffic = { sent: 0, received: 0 };
    const trafficErrors: string[] = [];
    const trafficDone = (async () => {
      for (let round = 0; !stopTraffic.signal.aborted; round++) {
        // One listener on the soak's signal at a time: each round gets its own.
        const stopRound = new AbortController();
        const onStop = () => stopRound.abort();
        stopTraffic.signal.addEventListener('abort', onStop, { once: true });
        try {
          const result = await sendUdp(lab!.client.netns, {
            address: server, port: 9000, srcPort: 20000 + (round % 20000), count: 100, size: 64, intervalMs: 10, waitMs: 1000, stop: stopRound.signal,
          });
          traffic.sent += result.sent;
          traffic.received += result.received;
        } catch (error) {
          trafficErrors.push((error as Error).message);
          if (trafficErrors.length > 3) return;
        } finally {
          stopTraffic.signal.removeEventListener('abort', onStop);
        }
      }
    })();

    const live: number[] = []; // ids of rules the soak made one by one and has not removed
    const liveIds = new Set<number>();
    const latencies: number[] = [];
    const byKind = new Map<Kind, number[]>();
    const errorSamples: string[] = [];
    let errors = 0;
    let completed = 0;
    let sent = 0;
    let writeTurn = 0;
    const nextWriter = () => writers[writeTurn++ % writers.length]!;
    const reader = state.token;

    const call = async (kind: Kind, method: string, path: string, token: string, body: unknown, ok: number[]): Promise<{ status: number; body: unknown } | undefined> => {
      const started = performance.now();
      try {
        const response = await fetch(`${baseUrl}${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(10_000),
        });
        const text = await response.text();
        const elapsed = performance.now() - started;
        latencies.push(elapsed);
        (byKind.get(kind) ?? byKind.set(kind, []).get(kind)!).push(elapsed);
        if (!ok.includes(response.status)) {
          errors++;
          if (errorSamples.length < 10) errorSamples.push(`${method} ${path} -> ${response.status} ${text.slice(0, 200)}`);
          return undefined;
        }
        return { status: response.status, body: response.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text };
      } catch (error) {
        errors++;
        if (errorSamples.length < 10) errorSamples.push(`${method} ${path} -> ${(error as Error).message}`);
        return undefined;
      } finally {
        completed++;
      }
    };

    const randomCidr = () => (random() < 0.7 ? `198.19.${int(256)}.${int(256)}/32` : `198.19.${int(256)}.0/24`);
    const oneRequest = async (): Promise<void> => {
      const dice = random();
      if (dice < 0.25) await call('list', 'GET', `/v1/blocks?limit=100&offset=${int(Math.max(1, live.length))}`, reader, undefined, [200]);
      else if (dice < 0.35) await call('flows', 'GET', '/v1/flows?limit=50&sort=lastSeen', reader, undefined, [200]);
      else if (dice < 0.45) await call('stats', 'GET', '/v1/stats', reader, undefined, [200]);
      else if (dice < 0.55) await call('healthz', 'GET', '/healthz', reader, undefined, [200]);
      else if (dice < 0.6) await call('metrics', 'GET', '/metrics', reader, undefined, [200]);
      else if (dice < 0.995 && (dice < 0.8 || live.length === 0) && live.length < MAX_LIVE_RULES) {
        const answer = await call('block', 'POST', '/v1/blocks', nextWriter(), { cidr: randomCidr(), comment: 'soak' }, [200, 201]);
        // Only a 201 makes the block this request's to remove: a 200 names one that exists already,
        // which another request made (and may be removing right now).
        const created = answer?.status === 201 ? (answer.body as { id: number }) : undefined;
        if (created && !liveIds.has(created.id)) {
          live.push(created.id);
          liveIds.add(created.id);
        }
      } else if (dice < 0.995 && live.length > 0) {
        const id = live.splice(int(live.length), 1)[0]!;
        liveIds.delete(id);
        await call('unblock', 'DELETE', `/v1/blocks/${id}`, nextWriter(), undefined, [204]);
      } else {
        const items = Array.from({ length: 100 }, () => ({ cidr: `198.19.${int(256)}.${int(256)}/32`, comment: 'soak bulk' }));
        // One bulk import at a time is the contract: a second one meanwhile gets 409 BUSY (with Retry-After).
        await call('bulk', 'POST', '/v1/blocks/bulk', nextWriter(), { items }, [200, 409]);
      }
    };

    // RSS once a second.
    const rss: Array<{ t: number; mib: number }> = [{ t: 0, mib: rssMiB(daemon.pid) }];
    const startedAt = performance.now();
    const sampler = setInterval(() => rss.push({ t: (performance.now() - startedAt) / 1000, mib: rssMiB(daemon!.pid) }), 1000);
    const total = Math.round(options.durationS * options.rate);
    const inFlight = new Set<Promise<void>>();
    let lastProgress = 0;
    try {
      // Bounded by time: requests the daemon could not take in the duration are not sent (see `requested`).
      const endAt = startedAt + options.durationS * 1000;
      for (let i = 0; i < total && performance.now() < endAt; i++) {
        const due = startedAt + (i * 1000) / options.rate;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
        sent++;
        const request = oneRequest().finally(() => inFlight.delete(request));
        inFlight.add(request);
        const elapsed = (performance.now() - startedAt) / 1000;
        if (options.progress && elapsed - lastProgress >= (options.progressEveryS ?? 30)) {
          lastProgress = elapsed;
          options.progress(`${elapsed.toFixed(0)} s: ${completed} requests, ${errors} errors, RSS ${rss.at(-1)!.mib.toFixed(1)} MiB, ${live.length} rules, ${traffic.sent} datagrams${errorSamples[0] ? `; first error: ${errorSamples[0]}` : ''}`);
        }
      }
      await Promise.all(inFlight);
    } finally {
      clearInterval(sampler);
    }
    const durationS = (performance.now() - startedAt) / 1000;
    stopTraffic.abort();
    await trafficDone;

    const window = (from: number, to: number) => rss.filter(({ t }) => t >= from * durationS && t <= to * durationS).map(({ mib }) => mib);
    const baseline = median(window(0.1, 0.2));
    const end = median(window(0.9, 1));
    const rulesAtEnd = ((await (await fetch(`${baseUrl}/v1/blocks?limit=1`, { headers: { authorization: `Bearer ${reader}` } })).json()) as { total: number }).total;
    const round1 = (n: number) => Math.round(n * 10) / 10;
    return {
      durationS: round1(durationS),
      requested: total,
      sent,
      completed,
      errors,
      errorSamples,
      achievedRate: round1(completed / durationS),
      latencyMs: summarize(latencies),
      byKind: Object.fromEntries([...byKind].map(([kind, samples]) => [kind, summarize(samples)])),
      rssMiB: { start: round1(rss[0]!.mib), baseline: round1(baseline), end: round1(end), peak: round1(Math.max(...rss.map(({ mib }) => mib))) },
      rssGrowth: Math.round((end / baseline - 1) * 1000) / 1000,
      traffic: { ...traffic, errors: trafficErrors },
      rulesAtEnd,
    };
  } finally {
    stopTraffic.abort();
    const state = daemon?.state;
    await teardown(
      () => echo?.stop(),
      () => daemon?.stop(),
      () => state && removeDaemonState(state),
      () => lab?.destroy(),
    );
  }
}

// Flow queries answered from a snapshot (src/flows/snapshot.ts and
// snapshot-engine.ts): on a seeded table read in uneven pages they answer
// exactly what the one-go reference query over the whole table answers, per-CPU
// values merged; a snapshot answers while it is young enough and a query that
// finds it too old waits for the next; refreshes are shared; at most maxWaiting
// distinct queries wait (503 QUERY_QUEUE_FULL); failures fail only their
// refresh. The engine runs in-process here with the same code the worker runs
// (one test runs it on the worker thread).
import { describe, expect, it } from 'vitest';
import type { BatchLookupPage } from '@xdpwall/addon';
import {
  AHEAD_FACTOR, FlowSnapshots, KEEP_WARM_MIN_BUILD_MS, KEEP_WARM_MS, LocalSnapshotEngine, REUSE_FACTOR, WorkerSnapshotEngine, type FlowPageReader, type FlowSnapshotsOptions, type SnapshotEngine,
} from '../src/flows/snapshot.js';
import { queryFlows, type FlowQuery } from '../src/flows/query.js';
import type { FlowTable } from '../src/datapath/counters.js';
import { Layout } from '../src/datapath/abi.js';
import { prng, seededFlowTable } from './lib/flow-table.js';
import type { Clock } from '../src/clock.js';
import { countingSlicer } from './lib/counting-slicer.js';

const fixedClock: Clock = { wallMs: () => Date.parse('2026-12-02T12:00:00.000Z'), monotonicNs: () => 100_000_000_000n };
const names = (ifindex: number) => (ifindex === 3 ? 'lab/veth0' : undefined);

/** Serves `table` in pages of seeded, uneven sizes (as hash buckets make them); the cursor is the next offset. */
function pagedReader(table: FlowTable, seed: number, reads: { count: number } = { count: 0 }): FlowPageReader {
  const random = prng(seed);
  const K = Layout.flowKey.size;
  return async (cursor) => {
    reads.count++;
    const from = cursor ? cursor.readUInt32LE(0) : 0;
    const to = Math.min(table.count, from + 1 + Math.floor(random() * 3000));
    const next = Buffer.alloc(8);
    next.writeUInt32LE(to, 0);
    const page: BatchLookupPage = {
      keys: Buffer.from(table.keys.subarray(from * K, to * K)),
      values: Buffer.from(table.values.subarray(from * table.stride, to * table.stride)),
      count: to - from,
      cursor: to < table.count ? next : null,
    };
    return page;
  };
}

/** A clock the test moves, and build times the test sets (elapsedMs advances by `buildMs` per refresh). */
function testTime(buildMs = 10) {
  let now = 1_000_000;
  let elapsed = 0;
  let reads = 0;
  return {
    clock: { wallMs: () => now, monotonicNs: () => 100_000_000_000n } satisfies Clock,
    // Each refresh reads elapsedMs twice: before the walk and after it.
    elapsedMs: () => (reads++ % 2 === 0 ? elapsed : (elapsed += buildMs)),
    advance: (ms: number) => {
      now += ms;
    },
  };
}

function snapshots(table: FlowTable, options: Partial<FlowSnapshotsOptions> = {}): FlowSnapshots {
  return new FlowSnapshots({
    read: pagedReader(table, 5), layout: { stride: table.stride, cpus: table.cpus }, clock: fixedClock, ifaceName: names,
    engine: new LocalSnapshotEngine(), countMaxAgeMs: 0, keepWarmMs: 0, ...options,
  });
}

const QUERIES: FlowQuery[] = [
  {},
  { limit: 1 },
  { limit: 10_000 },
  { sort: 'packets', limit: 50 },
  { sort: 'lastSeen', limit: 700 },
  { src: '198.18.7.0/24' },
  { src: '198.18.0.0/15', dst: '198.19.0.2/32', sort: 'packets' },
  { src: 'fd00:198::/48', proto: 'icmpv6', limit: 5000 },
  { proto: 'tcp', port: 443, sort: 'lastSeen', limit: 3 },
  { port: 22 },
  { dst: '::ffff:198.19.0.0/120', proto: '17' },
];

describe('flow queries from a snapshot', () => {
  const N = 20_000;
  const table = seededFlowTable(N, 11);

  it.each(QUERIES.map((q) => [JSON.stringify(q), q] as const))('%s: the same records as the one-go query over the whole table', async (_, query) => {
    const expected = queryFlows(table, query, fixedClock, names);
    expect(expected.length).toBeGreaterThan(0);
    for (const cpus of [2, 1, 3]) {
      const t = cpus === 2 ? table : seededFlowTable(N, 11 + cpus, cpus);
      const answer = await snapshots(t, { clock: fixedClock }).query(query);
      expect(answer.items).toEqual(queryFlows(t, query, fixedClock, names));
      expect(answer.asOfMs).toBe(fixedClock.wallMs());
    }
  });

  it('counters summed past 2^32 and 2^53 per CPU stay exact; the stamps are the kernel\'s own', async () => {
    const t = seededFlowTable(3, 1, 2);
    const L = Layout.flowValue;
    const big = [0xffff_ffffn, 0x1_0000_0001n, (1n << 53n) + 1n];
    for (let i = 0; i < 3; i++) {
      for (let cpu = 0; cpu < 2; cpu++) {
        const base = i * t.stride + cpu * L.size;
        t.values.writeBigUInt64LE(big[i]!, base + L.dir + 8); // ingress bytes
        t.values.writeBigUInt64LE(123_456_789_012_345_678n + BigInt(cpu), base + L.lastSeenNs);
      }
    }
    const engine = new LocalSnapshotEngine();
    engine.begin(1, t.stride, 2);
    engine.page({ keys: t.keys, values: t.values, count: 3, cursor: null });
    expect(await engine.commit()).toBe(3);
    const selected = await engine.query({ limit: 3, sort: 'bytes' });
    const values = Buffer.from(selected.values);
    const byKey = new Map<string, bigint[]>();
    for (let r = 0; r < 3; r++) {
      byKey.set(Buffer.from(selected.keys.subarray(r * 44, r * 44 + 44)).toString('hex'),
        [values.readBigUInt64LE(r * L.size + L.dir + 8), values.readBigUInt64LE(r * L.size + L.lastSeenNs)]);
    }
    for (let i = 0; i < 3; i++) {
      expect(byKey.get(t.keys.subarray(i * 44, i * 44 + 44).toString('hex'))).toEqual([2n * big[i]!, 123_456_789_012_345_679n]);
    }
  });

  it.each([
    // build ms, maxAgeMs, how long it answers, after when a query also starts the next (AHEAD_FACTOR build times before its end)
    [10, 1000, 10 * REUSE_FACTOR, 10 * REUSE_FACTOR - 10 * AHEAD_FACTOR],
    [400, 1000, 1000, 1000 - 400 * AHEAD_FACTOR],
    [0, 1000, 0, 0],
  ] as const)('built in %i ms with maxAgeMs %i, a snapshot answers for %i ms; after %i ms a query also starts the next', async (buildMs, maxAgeMs, freshFor, aheadAfter) => {
    const time = testTime(buildMs);
    const s = snapshots(table, { clock: time.clock, elapsedMs: time.elapsedMs, maxAgeMs });
    const project = (answer: { items: Array<{ src: string; srcPort: number }> }) => answer.items.map(({ src, srcPort }) => `${src}:${srcPort}`);
    const first = await s.query({ limit: 3 });
    expect(s.refreshes).toBe(1);
    if (freshFor > 0) {
      time.advance(aheadAfter);
      expect((await s.query({ limit: 3 })).asOfMs).toBe(first.asOfMs);
      expect(s.refreshes).toBe(1);
      time.advance(1);
      // Late in its life: still the answer, and the next refresh begins behind it.
      const late = await s.query({ limit: 3 });
      expect(late.asOfMs).toBe(first.asOfMs);
      expect(project(late)).toEqual(project(first));
      expect(s.refreshes).toBe(2);
      time.advance(freshFor);
    } else {
      time.advance(1);
    }
    // Too old: answered from a snapshot begun when the query came, and no other refresh behind it.
    const refreshes = s.refreshes;
    const later = await s.query({ limit: 3 });
    expect(later.asOfMs).toBe(time.clock.wallMs());
    expect(s.refreshes).toBe(refreshes + 1);
    await s.close();
  });

  it('while queries come, the next snapshot is read by timer before the current one ends; after KEEP_WARM_MS without queries, no more', async () => {
    const buildMs = 300;
    const time = testTime(buildMs);
    const timers: Array<{ run: () => void; ms: number; cancelled: boolean }> = [];
    const s = snapshots(table, {
      clock: time.clock, elapsedMs: time.elapsedMs, maxAgeMs: 2000, keepWarmMs: KEEP_WARM_MS,
      timer: (run, ms) => {
        const t = { run, ms, cancelled: false };
        timers.push(t);
        return () => {
          t.cancelled = true;
        };
      },
    });
    const first = await s.query({});
    // freshFor = min(2000, 4 x 300) = 1200; the next read starts 1.5 x 300 before: 750 ms after asOf.
    expect(timers.map((t) => t.ms)).toEqual([750]);
    time.advance(750);
    timers[0]!.run();
    expect(s.refreshes).toBe(2);
    await new Promise((resolve) => setImmediate(resolve));
    const next = await s.query({});
    expect(next.asOfMs).toBe(first.asOfMs + 750);
    expect(s.refreshes).toBe(2);
    // The second snapshot scheduled the third.
    expect(timers).toHaveLength(2);
    // Quiet for longer than KEEP_WARM_MS: the timer's refresh schedules none after it.
    time.advance(KEEP_WARM_MS + 1);
    timers[1]!.run();
    for (let i = 0; i < 5 && s.refreshes < 3; i++) await new Promise((resolve) => setImmediate(resolve));
    await (s as unknown as { refreshing?: Promise<unknown> }).refreshing;
    expect(s.refreshes).toBe(3);
    expect(timers).toHaveLength(2);
    await s.close();
  });

  it('no reading ahead when a snapshot would answer for less than (1 + AHEAD_FACTOR) build times: queries wait for one walk', async () => {
    const time = testTime(500); // freshFor = min(1000, 2000) = 1000 < 2.5 x 500
    let scheduled = 0;
    const s = snapshots(table, {
      clock: time.clock, elapsedMs: time.elapsedMs, maxAgeMs: 1000, keepWarmMs: KEEP_WARM_MS,
      timer: () => {
        scheduled++;
        return () => {};
      },
    });
    const first = await s.query({});
    time.advance(999);
    expect((await s.query({})).asOfMs).toBe(first.asOfMs);
    time.advance(1);
    expect((await s.query({})).asOfMs).toBe(first.asOfMs + 1000);
    expect(s.refreshes).toBe(2);
    expect(scheduled).toBe(0);
    await s.close();
  });

  it(`tables read in less than ${KEEP_WARM_MIN_BUILD_MS} ms are not kept warm`, async () => {
    const time = testTime(KEEP_WARM_MIN_BUILD_MS - 1);
    let scheduled = 0;
    const s = snapshots(table, {
      clock: time.clock, elapsedMs: time.elapsedMs, keepWarmMs: KEEP_WARM_MS,
      timer: () => {
        scheduled++;
        return () => {};
      },
    });
    await s.query({});
    expect(scheduled).toBe(0);
    await s.close();
  });

  it('queries arriving during a refresh wait for it and share it; identical ones share one answer', async () => {
    const reads = { count: 0 };
    const s = snapshots(table, { read: pagedReader(table, 3, reads) });
    const first = s.query({ limit: 5 });
    const during = [s.query({ sort: 'packets' }), s.query({ sort: 'packets' }), s.query({ port: 22 }), s.count()] as const;
    const [a, b, c, counted] = await Promise.all(during);
    expect((await first).items).toEqual(queryFlows(table, { limit: 5 }, fixedClock, names));
    expect(s.refreshes).toBe(1);
    expect(a).toBe(b);
    expect(a.items).toEqual(queryFlows(table, { sort: 'packets' }, fixedClock, names));
    expect(c.items).toEqual(queryFlows(table, { port: 22 }, fixedClock, names));
    expect(counted).toBe(N);
  });

  it('at most maxWaiting distinct queries wait or run: one more is refused with QUERY_QUEUE_FULL, an identical one joins', async () => {
    const s = snapshots(table, { maxWaiting: 3 });
    const waiting = [1, 2, 3].map((limit) => s.query({ limit }));
    expect(() => s.query({ limit: 4 })).toThrow(expect.objectContaining({ code: 'QUERY_QUEUE_FULL' }));
    const joined = s.query({ limit: 2 });
    const answers = await Promise.all(waiting);
    expect(await joined).toBe(answers[1]);
    expect(answers.map((r) => r.items.length)).toEqual([1, 2, 3]);
    expect(s.refreshes).toBe(1);
    // Once they are answered, the queue has room again.
    expect((await s.query({ limit: 4 })).items).toHaveLength(4);
  });

  it('gives the loop back while it decodes a large answer', async () => {
    const counting = countingSlicer();
    try {
      const s = snapshots(table, { slicer: counting.slicer });
      expect((await s.query({ limit: 10_000 })).items).toHaveLength(10_000);
      // One turn per 1,024 records after the first.
      expect(counting.ticksAtTurns).toHaveLength(Math.ceil(10_000 / 1024) - 1);
      expect(counting.ticksAtTurns.every((n, i) => n > (counting.ticksAtTurns[i - 1] ?? 0))).toBe(true);
    } finally {
      counting.stop();
    }
  });

  it('a bad query is refused before anything is read; a failing read fails only its refresh and keeps no half snapshot', async () => {
    let fail = false;
    let failAfter = 0;
    const reader = pagedReader(table, 8);
    const time = testTime(10);
    const s = snapshots(table, {
      clock: time.clock, elapsedMs: time.elapsedMs,
      read: async (cursor) => {
        if (fail && failAfter-- <= 0) throw Object.assign(new Error('bpf_map_lookup_batch: EIO'), { code: 'EIO' });
        return reader(cursor);
      },
    });
    expect(() => s.query({ limit: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => s.query({ src: '198.18.0.1/33' })).toThrow(expect.objectContaining({ code: 'INVALID_CIDR' }));
    expect(s.refreshes).toBe(0);
    fail = true;
    await expect(s.query({})).rejects.toThrow(/EIO/);
    // A refresh failing after some pages: nothing of it is kept.
    failAfter = 2;
    await expect(s.query({})).rejects.toThrow(/EIO/);
    fail = false;
    expect((await s.query({})).items).toEqual(queryFlows(table, {}, time.clock, names));
    expect(await s.count()).toBe(N);
    expect(s.refreshes).toBe(3);
  });

  it('a page with an impossible value layout fails the refresh, not the process', async () => {
    const s = snapshots(table, { layout: { stride: table.stride, cpus: 3 } });
    await expect(s.query({})).rejects.toThrow(/does not split into 3 slots/);
  });

  it('count() answers from a snapshot younger than countMaxAgeMs or still fresh, else from a new one', async () => {
    const time = testTime(10);
    const s = snapshots(table, { clock: time.clock, elapsedMs: time.elapsedMs, countMaxAgeMs: 250 });
    await s.query({ limit: 1 });
    expect(await s.count()).toBe(N);
    expect(s.refreshes).toBe(1);
    time.advance(249);
    expect(await s.count()).toBe(N);
    expect(s.refreshes).toBe(1);
    time.advance(1);
    expect(await s.count()).toBe(N);
    expect(s.refreshes).toBe(2);
  });

  it('the worker-thread engine answers what the in-process one does; a worker that dies is replaced, a closed one stays closed', async () => {
    const lost: Error[] = [];
    const engine = new WorkerSnapshotEngine((error) => lost.push(error));
    const time = testTime(10);
    const s = snapshots(table, { engine, clock: time.clock, elapsedMs: time.elapsedMs });
    try {
      for (const query of QUERIES) expect((await s.query(query)).items).toEqual(queryFlows(table, query, time.clock, names));
      // Keys and one value a flow, and a column of doubles for each of the three sorts the queries used.
      expect(await engine.bytes()).toBe(N * (Layout.flowKey.size + Layout.flowValue.size + 3 * 8));
      const refreshes = s.refreshes;
      await (engine as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
      expect(lost.map((e) => e.message)).toEqual(['the flow snapshot worker exited with 1']);
      // The snapshot went with the worker: the next query reads the table again on a new one.
      expect((await s.query({ limit: 7 })).items).toEqual(queryFlows(table, { limit: 7 }, time.clock, names));
      expect(s.refreshes).toBe(refreshes + 1);
    } finally {
      await s.close();
    }
    expect(() => engine.begin(1, table.stride, table.cpus)).toThrow(/closed/);
  });
});

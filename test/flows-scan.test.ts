// Flow queries read the table a page at a time and give the event loop back
// between steps (src/flows/scan.ts): on a seeded table they answer exactly
// what the one-go query over the whole table answers, ask the slicer an exact
// number of times while other work runs between the turns, and concurrent
// queries share passes (identical ones one selection) up to a bound.
import { describe, expect, it } from 'vitest';
import type { BatchLookupPage } from '@xdpwall/addon';
import { FlowScanner, SCAN_STEP, scanFlowTable, type FlowPageReader } from '../src/flows/scan.js';
import { FlowSelection, queryFlows, type FlowQuery } from '../src/flows/query.js';
import type { FlowTable } from '../src/datapath/counters.js';
import { Layout } from '../src/datapath/abi.js';
import { prng, seededFlowTable } from './lib/flow-table.js';
import type { Clock } from '../src/clock.js';
import { countingSlicer } from './lib/counting-slicer.js';

const clock: Clock = { wallMs: () => Date.parse('2026-12-02T12:00:00.000Z'), monotonicNs: () => 100_000_000_000n };
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

describe('flow queries read in pages', () => {
  const N = 20_000;
  const table = seededFlowTable(N, 11);
  const layout = { stride: table.stride, cpus: table.cpus };

  it.each(QUERIES.map((q) => [JSON.stringify(q), q] as const))('%s: the same records as the one-go query over the whole table', async (_, query) => {
    const scanner = new FlowScanner({ read: pagedReader(table, 5), layout, clock, ifaceName: names, countMaxAgeMs: 0 });
    const expected = queryFlows(table, query, clock, names);
    expect(expected.length).toBeGreaterThan(0);
    expect(await scanner.query(query)).toEqual(expected);
  });

  it(`asks the slicer ceil(N / ${SCAN_STEP}) - 1 times wherever the pages end, with other work between every two turns`, async () => {
    for (const [count, seed] of [[N, 1], [N, 2], [SCAN_STEP, 3], [SCAN_STEP + 1, 4], [1, 5], [0, 6]] as const) {
      const counting = countingSlicer();
      try {
        const small = seededFlowTable(count, seed);
        const selection = new FlowSelection({ limit: 10 });
        const reads = { count: 0 };
        const seen = await scanFlowTable(pagedReader(small, seed, reads), layout, [selection], counting.slicer());
        expect(seen).toBe(count);
        expect(counting.ticksAtTurns).toHaveLength(Math.max(0, Math.ceil(count / SCAN_STEP) - 1));
        expect(counting.ticksAtTurns.every((n, i) => n > (counting.ticksAtTurns[i - 1] ?? 0))).toBe(true);
        expect(reads.count).toBeGreaterThan(count > 3000 ? 1 : 0);
        expect(selection.records(clock, names)).toEqual(queryFlows(small, { limit: 10 }, clock, names));
      } finally {
        counting.stop();
      }
    }
  });

  it('a pass also gives the loop back while it decodes a large answer', async () => {
    const counting = countingSlicer();
    try {
      const scanner = new FlowScanner({ read: pagedReader(table, 9), layout, clock, ifaceName: names, slicer: counting.slicer, countMaxAgeMs: 0 });
      const records = await scanner.query({ limit: 10_000 });
      expect(records).toHaveLength(10_000);
      // The walk's turns, then the decoding's: one per 1,024 records after the first.
      expect(counting.ticksAtTurns).toHaveLength(Math.ceil(N / SCAN_STEP) - 1 + Math.ceil(10_000 / 1024) - 1);
      expect(counting.ticksAtTurns.every((n, i) => n > (counting.ticksAtTurns[i - 1] ?? 0))).toBe(true);
    } finally {
      counting.stop();
    }
  });

  it('concurrent queries share passes: those arriving during a pass wait for the next, identical ones share one answer', async () => {
    const reads = { count: 0 };
    const scanner = new FlowScanner({ read: pagedReader(table, 3, reads), layout, clock, ifaceName: names, countMaxAgeMs: 0 });
    const first = scanner.query({ limit: 5 });
    const during = [scanner.query({ sort: 'packets' }), scanner.query({ sort: 'packets' }), scanner.query({ port: 22 }), scanner.count()];
    const [a, b, c, counted] = await Promise.all(during);
    expect(await first).toEqual(queryFlows(table, { limit: 5 }, clock, names));
    expect(scanner.passes).toBe(2);
    expect(a).toBe(b);
    expect(a).toEqual(queryFlows(table, { sort: 'packets' }, clock, names));
    expect(c).toEqual(queryFlows(table, { port: 22 }, clock, names));
    expect(counted).toBe(N);
  });

  it('at most maxWaiting distinct queries wait: one more is refused with QUERY_QUEUE_FULL, an identical one joins', async () => {
    const scanner = new FlowScanner({ read: pagedReader(table, 4), layout, clock, ifaceName: names, maxWaiting: 3, countMaxAgeMs: 0 });
    const running = scanner.query({ sort: 'lastSeen' }); // taken by the first pass at once
    const waiting = [1, 2, 3].map((limit) => scanner.query({ limit }));
    expect(() => scanner.query({ limit: 4 })).toThrow(expect.objectContaining({ code: 'QUERY_QUEUE_FULL' }));
    const joined = scanner.query({ limit: 2 });
    const answers = await Promise.all(waiting);
    expect(await joined).toBe(answers[1]);
    expect(answers.map((r) => r.length)).toEqual([1, 2, 3]);
    expect(await running).toHaveLength(100);
    expect(scanner.passes).toBe(2);
    // Once the pass has taken them, the queue has room again.
    expect(await scanner.query({ limit: 4 })).toHaveLength(4);
  });

  it('a bad query is refused before anything is read; a failing read fails only its pass', async () => {
    let fail = true;
    const reader = pagedReader(table, 8);
    const scanner = new FlowScanner({
      read: async (cursor) => {
        if (fail) throw Object.assign(new Error('bpf_map_lookup_batch: EIO'), { code: 'EIO' });
        return reader(cursor);
      },
      layout, clock, ifaceName: names, countMaxAgeMs: 0,
    });
    expect(() => scanner.query({ limit: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => scanner.query({ src: '198.18.0.1/33' })).toThrow(expect.objectContaining({ code: 'INVALID_CIDR' }));
    await expect(scanner.query({})).rejects.toThrow(/EIO/);
    expect(scanner.passes).toBe(1);
    fail = false;
    expect(await scanner.query({})).toEqual(queryFlows(table, {}, clock, names));
  });

  it('count() answers from the last pass while it is fresh', async () => {
    let now = 0;
    const moving: Clock = { wallMs: () => now, monotonicNs: () => 0n };
    const scanner = new FlowScanner({ read: pagedReader(table, 2), layout, clock: moving, ifaceName: names, countMaxAgeMs: 250 });
    await scanner.query({ limit: 1 });
    expect(await scanner.count()).toBe(N);
    expect(scanner.passes).toBe(1);
    now = 250;
    expect(await scanner.count()).toBe(N);
    expect(scanner.passes).toBe(2);
  });
});

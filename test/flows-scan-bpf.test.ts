// Flow queries over the real kernel flow table (xw_flows, an LRU hash read a
// page at a time with bpf_map_lookup_batch into a snapshot on a worker
// thread): a seeded table gives the same records as the one-go query over the
// whole table read at once, the snapshot holds ~100 bytes a flow, and the
// Firewall's queries and count go through it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BpfMap } from '@xdpwall/addon';
import { FlowSnapshots, SNAPSHOT_PAGE, WorkerSnapshotEngine } from '../src/flows/snapshot.js';
import { queryFlows, type FlowQuery } from '../src/flows/query.js';
import { Layout, cpusOf } from '../src/datapath/abi.js';
import type { Firewall } from '../src/firewall.js';
import { openTestFirewall } from './lib/firewall.js';
import { seededFlowTable } from './lib/flow-table.js';

const N = 20_000;
let firewall: Firewall;
let flows: BpfMap;

beforeAll(async () => {
  // Twice the flows: an LRU hash may evict before it is full.
  firewall = await openTestFirewall({ cidrV4: 64, cidrV6: 64, flows: 2 * N });
  flows = firewall.datapath.maps.flows;
  const table = seededFlowTable(N, 21, cpusOf(flows));
  expect(table.stride).toBe(flows.valueStride);
  expect(await flows.updateBatch(table.keys, table.values, N)).toBe(N);
});

afterAll(() => firewall?.close());

const names = () => undefined;
const clock = { wallMs: () => Date.parse('2026-12-02T12:00:00.000Z'), monotonicNs: () => 100_000_000_000n };

describe('flow queries over xw_flows', () => {
  it('lookupBatch pages walk every element once; the last page has no cursor', async () => {
    let cursor: Buffer | null = null;
    let seen = 0;
    let pages = 0;
    do {
      const page = await flows.lookupBatch(cursor, SNAPSHOT_PAGE);
      expect(page.count).toBeLessThanOrEqual(SNAPSHOT_PAGE);
      expect(page.keys.length).toBe(page.count * flows.keySize);
      expect(page.values.length).toBe(page.count * flows.valueStride);
      seen += page.count;
      pages++;
      cursor = page.cursor;
    } while (cursor);
    expect(seen).toBe(N);
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(N / SNAPSHOT_PAGE));
    await expect(flows.lookupBatch(Buffer.alloc(2))).rejects.toThrow(/cursor is 2 bytes/);
  });

  const QUERIES: FlowQuery[] = [{}, { limit: 10_000, sort: 'packets' }, { sort: 'lastSeen', src: '198.18.0.0/17' }, { proto: 'udp', port: 53 }];

  it.each(QUERIES.map((q) => [JSON.stringify(q), q] as const))('%s: the records of the one-go query over lookupAll()', async (_, query) => {
    const all = await flows.lookupAll();
    const table = { ...all, stride: flows.valueStride, cpus: cpusOf(flows) };
    const snapshots = new FlowSnapshots({
      read: (cursor) => flows.lookupBatch(cursor, SNAPSHOT_PAGE), layout: { stride: table.stride, cpus: table.cpus }, clock, ifaceName: names, countMaxAgeMs: 0,
    });
    try {
      const answer = await snapshots.query(query);
      expect(answer.items).toEqual(queryFlows(table, query, clock, names));
      expect(answer.asOfMs).toBe(clock.wallMs());
    } finally {
      await snapshots.close();
    }
  });

  it('the snapshot on the worker holds every flow in key + one value bytes, whatever the CPU count', async () => {
    const engine = new WorkerSnapshotEngine();
    const snapshots = new FlowSnapshots({
      read: (cursor) => flows.lookupBatch(cursor, SNAPSHOT_PAGE), layout: { stride: flows.valueStride, cpus: cpusOf(flows) },
      clock, ifaceName: names, countMaxAgeMs: 0, engine,
    });
    try {
      expect(await snapshots.count()).toBe(N);
      expect(await engine.bytes()).toBe(N * (Layout.flowKey.size + Layout.flowValue.size));
    } finally {
      await snapshots.close();
    }
  });

  it('the Firewall answers flows and flowCount from the snapshot', async () => {
    const all = await flows.lookupAll();
    const table = { ...all, stride: flows.valueStride, cpus: cpusOf(flows) };
    const fixed = queryFlows(table, { limit: 5 }, clock, names);
    const { items: listed } = await firewall.flows({ limit: 5 });
    expect(listed.map(({ src, srcPort, dst, dstPort, proto, ingress, egress }) => ({ src, srcPort, dst, dstPort, proto, ingress, egress })))
      .toEqual(fixed.map(({ src, srcPort, dst, dstPort, proto, ingress, egress }) => ({ src, srcPort, dst, dstPort, proto, ingress, egress })));
    expect(await firewall.flowCount()).toBe(N);
    expect((await firewall.tableUsage()).find((t) => t.table === 'flows')).toEqual({ table: 'flows', entries: N, capacity: 2 * N });
  });
});

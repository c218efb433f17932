// Flow queries over the real kernel flow table (xw_flows, an LRU hash read a
// page at a time with bpf_map_lookup_batch): a seeded table gives the same
// records as the one-go query over the whole table read at once, the walk
// asks its slicer an exact number of times, and the Firewall's queries and
// count go through it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BpfMap } from '@xdpwall/addon';
import { FlowScanner, SCAN_PAGE, SCAN_STEP } from '../src/flows/scan.js';
import { queryFlows, type FlowQuery } from '../src/flows/query.js';
import { cpusOf } from '../src/datapath/abi.js';
import type { Firewall } from '../src/firewall.js';
import { openTestFirewall } from './lib/firewall.js';
import { seededFlowTable } from './lib/flow-table.js';
import { countingSlicer } from './lib/counting-slicer.js';

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
      const page = await flows.lookupBatch(cursor, SCAN_PAGE);
      expect(page.count).toBeLessThanOrEqual(SCAN_PAGE);
      expect(page.keys.length).toBe(page.count * flows.keySize);
      expect(page.values.length).toBe(page.count * flows.valueStride);
      seen += page.count;
      pages++;
      cursor = page.cursor;
    } while (cursor);
    expect(seen).toBe(N);
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(N / SCAN_PAGE));
    await expect(flows.lookupBatch(Buffer.alloc(2))).rejects.toThrow(/cursor is 2 bytes/);
  });

  const QUERIES: FlowQuery[] = [{}, { limit: 10_000, sort: 'packets' }, { sort: 'lastSeen', src: '198.18.0.0/17' }, { proto: 'udp', port: 53 }];

  it.each(QUERIES.map((q) => [JSON.stringify(q), q] as const))('%s: the records of the one-go query over lookupAll()', async (_, query) => {
    const all = await flows.lookupAll();
    const table = { ...all, stride: flows.valueStride, cpus: cpusOf(flows) };
    const scanner = new FlowScanner({
      read: (cursor) => flows.lookupBatch(cursor, SCAN_PAGE), layout: { stride: table.stride, cpus: table.cpus }, clock, ifaceName: names, countMaxAgeMs: 0,
    });
    expect(await scanner.query(query)).toEqual(queryFlows(table, query, clock, names));
  });

  it(`a pass asks the slicer ceil(N / ${SCAN_STEP}) - 1 times, with other work between every two turns`, async () => {
    const counting = countingSlicer();
    const { ticksAtTurns } = counting;
    const scanner = new FlowScanner({
      read: (cursor) => flows.lookupBatch(cursor, SCAN_PAGE),
      layout: { stride: flows.valueStride, cpus: cpusOf(flows) },
      clock, ifaceName: names, countMaxAgeMs: 0,
      slicer: counting.slicer,
    });
    try {
      expect(await scanner.count()).toBe(N);
      expect(ticksAtTurns).toHaveLength(Math.ceil(N / SCAN_STEP) - 1);
      expect(ticksAtTurns.every((n, i) => n > (ticksAtTurns[i - 1] ?? 0))).toBe(true);
    } finally {
      counting.stop();
    }
  });

  it('the Firewall answers flows and flowCount from the scanner', async () => {
    const all = await flows.lookupAll();
    const table = { ...all, stride: flows.valueStride, cpus: cpusOf(flows) };
    const fixed = queryFlows(table, { limit: 5 }, clock, names);
    const listed = await firewall.flows({ limit: 5 });
    expect(listed.map(({ src, srcPort, dst, dstPort, proto, ingress, egress }) => ({ src, srcPort, dst, dstPort, proto, ingress, egress })))
      .toEqual(fixed.map(({ src, srcPort, dst, dstPort, proto, ingress, egress }) => ({ src, srcPort, dst, dstPort, proto, ingress, egress })));
    expect(await firewall.flowCount()).toBe(N);
    expect((await firewall.tableUsage()).find((t) => t.table === 'flows')).toEqual({ table: 'flows', entries: N, capacity: 2 * N });
  });
});

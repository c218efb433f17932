// How one flow's per-CPU values merge into what /v1/flows shows, and what it
// sorts by. Each case is built so that the wrong merge (summing times,
// dropping a direction's flags, sampling the clocks per stamp) gives another
// answer than the right one, for 1, 2 and 4 slots (a shared table has 1).
import { describe, expect, it } from 'vitest';
import { flowSortValue, mergeFlowValue, type FlowSlots } from '../src/flows/merge.js';
import { queryFlows } from '../src/flows/query.js';
import { Direction, Layout, encodeFlowKey } from '../src/datapath/abi.js';
import type { FlowTable } from '../src/datapath/counters.js';
import type { Clock } from '../src/clock.js';
import { parseIp, toMappedV6 } from '../src/rules/cidr.js';
import { TCP } from './lib/packets.js';

const L = Layout.flowValue;

/** What one CPU wrote for a flow. */
interface Slot {
  ingress?: [packets: number, bytes: number];
  egress?: [packets: number, bytes: number];
  firstSeenNs?: bigint;
  lastSeenNs?: bigint;
  flags?: { ingress?: number; egress?: number };
}

/** Packs slots as the kernel hands a flow over; `cpus` slots, the missing ones zero (never saw it). */
function packSlots(slots: Slot[], cpus: number, slotSize: number = L.size): Buffer {
  const out = Buffer.alloc(cpus * slotSize);
  slots.forEach((s, cpu) => {
    const base = cpu * slotSize;
    for (const dir of ['ingress', 'egress'] as const) {
      const [packets, bytes] = s[dir] ?? [0, 0];
      out.writeBigUInt64LE(BigInt(packets), base + L.dir + Direction[dir] * Layout.counter.size + Layout.counter.packets);
      out.writeBigUInt64LE(BigInt(bytes), base + L.dir + Direction[dir] * Layout.counter.size + Layout.counter.bytes);
      out.writeUInt8(s.flags?.[dir] ?? 0, base + L.tcpFlags + Direction[dir]);
    }
    out.writeBigUInt64LE(s.firstSeenNs ?? 0n, base + L.firstSeenNs);
    out.writeBigUInt64LE(s.lastSeenNs ?? 0n, base + L.lastSeenNs);
  });
  return out;
}

const slotsOf = (slots: Slot[], cpus: number): FlowSlots => ({ values: packSlots(slots, cpus), offset: 0, stride: cpus * L.size, cpus });

describe('mergeFlowValue', () => {
  it.each([1, 2, 4])('keeps the egress TCP flags of a flow whose directions ran on different CPUs (%i slots)', (cpus) => {
    // With one slot both directions share it; with more, egress was seen on the last CPU only.
    const slots: Slot[] = cpus === 1
      ? [{ ingress: [1, 74], egress: [1, 74], firstSeenNs: 5n, lastSeenNs: 6n, flags: { ingress: TCP.syn, egress: TCP.syn | TCP.ack } }]
      : [
          { ingress: [1, 74], firstSeenNs: 5n, lastSeenNs: 5n, flags: { ingress: TCP.syn } },
          ...Array.from({ length: cpus - 2 }, () => ({})),
          { egress: [1, 74], firstSeenNs: 6n, lastSeenNs: 6n, flags: { egress: TCP.syn | TCP.ack } },
        ];
    expect(mergeFlowValue(slotsOf(slots, cpus))).toEqual({
      ingress: { packets: 1n, bytes: 74n },
      egress: { packets: 1n, bytes: 74n },
      firstSeenNs: 5n,
      lastSeenNs: 6n,
      tcpFlags: { ingress: TCP.syn, egress: TCP.syn | TCP.ack },
    });
  });

  it('sums counters, takes the earliest non-zero first stamp and the latest last stamp', () => {
    const merged = mergeFlowValue(slotsOf([
      { ingress: [3, 300], firstSeenNs: 9n, lastSeenNs: 20n },
      {},
      { ingress: [1, 100], egress: [2, 120], firstSeenNs: 7n, lastSeenNs: 15n },
      { egress: [5, 500], firstSeenNs: 8n, lastSeenNs: 30n },
    ], 4));
    expect(merged).toMatchObject({
      ingress: { packets: 4n, bytes: 400n }, egress: { packets: 7n, bytes: 620n }, firstSeenNs: 7n, lastSeenNs: 30n,
    });
  });

  it('reads the slots of one flow among many, whatever their padding', () => {
    const flow = packSlots([{ egress: [2, 128], firstSeenNs: 1n, lastSeenNs: 2n, flags: { egress: TCP.fin } }], 2, L.size + 8);
    const values = Buffer.concat([Buffer.alloc(flow.length, 0xff), flow]);
    expect(mergeFlowValue({ values, offset: flow.length, stride: flow.length, cpus: 2 })).toMatchObject({
      egress: { packets: 2n, bytes: 128n }, tcpFlags: { ingress: 0, egress: TCP.fin },
    });
  });

  it('refuses a stride that does not split into whole slots', () => {
    expect(() => mergeFlowValue({ values: Buffer.alloc(112), offset: 0, stride: 112, cpus: 3 })).toThrow(RangeError);
    expect(() => mergeFlowValue({ values: Buffer.alloc(56), offset: 0, stride: 56, cpus: 2 })).toThrow(RangeError);
  });
});

describe('flowSortValue', () => {
  it.each([1, 2, 4])('agrees with the merge for bytes, packets and lastSeen (%i slots)', (cpus) => {
    const slots: Slot[] = Array.from({ length: cpus }, (_, cpu) => ({
      ingress: [cpu + 1, 100 * (cpu + 1)], egress: [2, 50], firstSeenNs: 10n, lastSeenNs: 1_000n + BigInt(cpu * 7 % 3),
    }));
    const flow = slotsOf(slots, cpus);
    const merged = mergeFlowValue(flow);
    expect(flowSortValue(flow, 'bytes')).toBe(Number(merged.ingress.bytes + merged.egress.bytes));
    expect(flowSortValue(flow, 'packets')).toBe(Number(merged.ingress.packets + merged.egress.packets));
    expect(flowSortValue(flow, 'lastSeen')).toBe(Number(merged.lastSeenNs));
  });
});

describe('queryFlows over per-CPU values', () => {
  const key = (src: string, sport: number) =>
    encodeFlowKey({ src: toMappedV6(parseIp(src)), dst: toMappedV6(parseIp('198.18.0.2')), sport, dport: 443, ifindex: 3, proto: 6, family: 4 });

  function table(flows: Array<{ src: string; sport: number; slots: Slot[] }>, cpus: number): FlowTable {
    return {
      keys: Buffer.concat(flows.map((f) => key(f.src, f.sport))),
      values: Buffer.concat(flows.map((f) => packSlots(f.slots, cpus))),
      count: flows.length,
      stride: cpus * L.size,
      cpus,
    };
  }

  const fixedClock: Clock = { wallMs: () => Date.parse('2026-12-01T00:00:10.000Z'), monotonicNs: () => 10_000_000_000n };
  const noNames = () => undefined;

  it('sorts by the latest lastSeen over CPUs, not by their sum', () => {
    // busy: seen on both CPUs, most recently at 5 s (the sum, 9 s, would put it first).
    // recent: seen on one CPU only, at 8 s.
    const flows = table([
      { src: '198.18.1.1', sport: 1000, slots: [{ ingress: [1, 60], firstSeenNs: 1_000_000_000n, lastSeenNs: 4_000_000_000n }, { ingress: [1, 60], firstSeenNs: 2_000_000_000n, lastSeenNs: 5_000_000_000n }] },
      { src: '198.18.1.2', sport: 2000, slots: [{}, { ingress: [1, 60], firstSeenNs: 8_000_000_000n, lastSeenNs: 8_000_000_000n }] },
    ], 2);
    const listed = queryFlows(flows, { sort: 'lastSeen' }, fixedClock, noNames);
    expect(listed.map((f) => [f.src, f.lastSeen])).toEqual([
      ['198.18.1.2', '2026-12-01T00:00:08.000Z'],
      ['198.18.1.1', '2026-12-01T00:00:05.000Z'],
    ]);
    expect(listed[1]!.firstSeen).toBe('2026-12-01T00:00:01.000Z');
  });

  it('lists the egress TCP flags with the ingress ones', () => {
    const flows = table([
      { src: '198.18.1.1', sport: 1000, slots: [{ ingress: [1, 74], firstSeenNs: 1n, lastSeenNs: 1n, flags: { ingress: TCP.syn } }, { egress: [1, 74], firstSeenNs: 2n, lastSeenNs: 2n, flags: { egress: TCP.syn | TCP.ack } }] },
    ], 2);
    expect(queryFlows(flows, {}, fixedClock, noNames)[0]!.tcpFlags).toEqual(['SYN', 'ACK']);
  });

  it('never shows firstSeen after lastSeen, even when the clocks move between readings', () => {
    // Each reading of the monotonic clock is 1 s later while the wall clock stands still:
    // converting each stamp against its own reading would put firstSeen 1 s after lastSeen.
    let monotonic = 20_000_000_000n;
    const movingClock: Clock = { wallMs: () => Date.parse('2026-12-01T00:00:20.000Z'), monotonicNs: () => (monotonic += 1_000_000_000n) };
    const flows = table([
      { src: '198.18.1.1', sport: 1000, slots: [{ ingress: [1, 60], firstSeenNs: 15_000_000_000n, lastSeenNs: 15_000_000_000n }] },
      { src: '198.18.1.2', sport: 2000, slots: [{ ingress: [1, 60], firstSeenNs: 14_000_000_000n, lastSeenNs: 15_000_000_000n }] },
    ], 1);
    const listed = queryFlows(flows, { sort: 'lastSeen' }, movingClock, noNames);
    expect(listed.map((f) => [f.firstSeen, f.lastSeen])).toEqual([
      ['2026-12-01T00:00:14.000Z', '2026-12-01T00:00:14.000Z'],
      ['2026-12-01T00:00:13.000Z', '2026-12-01T00:00:14.000Z'],
    ]);
  });
});

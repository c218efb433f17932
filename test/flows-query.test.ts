import { describe, expect, it } from 'vitest';
import { queryFlows, tcpFlagNames } from '../src/flows/query.js';
import { toMappedV6, parseIp } from '../src/rules/cidr.js';
import type { FlowTable } from '../src/datapath/counters.js';
import { Layout, encodeFlowKey, type FlowKey } from '../src/datapath/abi.js';
import type { Clock } from '../src/clock.js';

/** A flow as this test describes it: counters summed over CPUs, both directions' flags ORed. */
interface FlowEntry {
  key: FlowKey;
  totals: {
    ingress: { packets: bigint; bytes: bigint };
    egress: { packets: bigint; bytes: bigint };
    firstSeenNs: bigint;
    lastSeenNs: bigint;
    tcpFlags: number;
  };
}

const clock: Clock = { wallMs: () => Date.parse('2026-11-25T12:00:10.000Z'), monotonicNs: () => 10_000_000_000n };

function flow(src: string, dst: string, proto: number, sport: number, dport: number, bytes: number, packets: number, lastSeenNs: bigint): FlowEntry {
  return {
    key: { src: toMappedV6(parseIp(src)), dst: toMappedV6(parseIp(dst)), sport, dport, ifindex: 7, proto, family: src.includes(':') ? 6 : 4 },
    totals: {
      ingress: { packets: BigInt(packets), bytes: BigInt(bytes) },
      egress: { packets: 1n, bytes: 60n },
      firstSeenNs: 1_000_000_000n,
      lastSeenNs,
      tcpFlags: 0x12,
    },
  };
}

/**
 * Packs flows as the kernel hands them over, split over two CPUs: ingress
 * counted on CPU 0, egress on CPU 1, first seen on 0, last seen on 1.
 */
function pack(flows: FlowEntry[]): FlowTable {
  const L = Layout.flowValue;
  const cpus = 2;
  const stride = L.size * cpus;
  const keys = Buffer.concat(flows.map((f) => encodeFlowKey(f.key)));
  const values = Buffer.alloc(flows.length * stride);
  flows.forEach(({ totals }, i) => {
    const cpu0 = i * stride;
    const cpu1 = cpu0 + L.size;
    values.writeBigUInt64LE(totals.ingress.packets, cpu0 + L.dir);
    values.writeBigUInt64LE(totals.ingress.bytes, cpu0 + L.dir + 8);
    values.writeBigUInt64LE(totals.egress.packets, cpu1 + L.dir + 16);
    values.writeBigUInt64LE(totals.egress.bytes, cpu1 + L.dir + 24);
    values.writeBigUInt64LE(totals.firstSeenNs, cpu0 + L.firstSeenNs);
    values.writeBigUInt64LE(totals.firstSeenNs, cpu0 + L.lastSeenNs);
    values.writeBigUInt64LE(totals.firstSeenNs + 1n, cpu1 + L.firstSeenNs);
    values.writeBigUInt64LE(totals.lastSeenNs, cpu1 + L.lastSeenNs);
    values.writeUInt8(totals.tcpFlags, cpu0 + L.tcpFlags);
  });
  return { keys, values, count: flows.length, stride, cpus };
}

const entries = pack([
  flow('198.18.0.1', '198.18.0.2', 17, 40000, 53, 1000, 10, 9_000_000_000n),
  flow('198.18.5.1', '198.18.0.2', 6, 40001, 443, 5000, 3, 8_000_000_000n),
  flow('fd00:198::1', 'fd00:198::2', 58, 128, 0, 300, 50, 9_500_000_000n),
]);
const names = (ifindex: number) => (ifindex === 7 ? 'lab/veth0' : undefined);

describe('queryFlows', () => {
  it('renders one record per flow with both directions and wall-clock times', () => {
    const [top] = queryFlows(entries, { limit: 1 }, clock, names);
    expect(top).toEqual({
      proto: 'tcp', src: '198.18.5.1', srcPort: 40001, dst: '198.18.0.2', dstPort: 443, iface: 'lab/veth0',
      ingress: { packets: 3, bytes: 5000 }, egress: { packets: 1, bytes: 60 },
      firstSeen: '2026-11-25T12:00:01.000Z', lastSeen: '2026-11-25T12:00:08.000Z', tcpFlags: ['SYN', 'ACK'],
    });
  });

  it.each([
    [{ sort: 'bytes' as const }, ['198.18.5.1', '198.18.0.1', 'fd00:198::1']],
    [{ sort: 'packets' as const }, ['fd00:198::1', '198.18.0.1', '198.18.5.1']],
    [{ sort: 'lastSeen' as const }, ['fd00:198::1', '198.18.0.1', '198.18.5.1']],
    [{ src: '198.18.0.0/24' }, ['198.18.0.1']],
    [{ dst: 'fd00:198::/48' }, ['fd00:198::1']],
    [{ proto: 'udp' }, ['198.18.0.1']],
    [{ proto: '58' }, ['fd00:198::1']],
    [{ port: 443 }, ['198.18.5.1']],
    [{ port: 40000 }, ['198.18.0.1']],
    [{ limit: 2 }, ['198.18.5.1', '198.18.0.1']],
  ])('%j', (query, sources) => {
    expect(queryFlows(entries, query, clock, names).map((f) => f.src)).toEqual(sources);
  });

  it.each([
    [{ limit: 0 }, 'INVALID_ARGUMENT'],
    [{ limit: 10_001 }, 'INVALID_ARGUMENT'],
    [{ proto: 'sctp' }, 'INVALID_ARGUMENT'],
    [{ proto: '256' }, 'INVALID_ARGUMENT'],
    [{ src: '198.18.0.1/8' }, 'INVALID_CIDR'],
  ])('rejects %j', (query, code) => {
    expect(() => queryFlows(entries, query, clock, names)).toThrow(expect.objectContaining({ code }));
  });

  it('returns the same top N as a full sort, ties in table order (seeded, 2,000 flows)', () => {
    let seed = 7;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const many = Array.from({ length: 2000 }, (_, i) =>
      flow(`198.18.${i >> 8}.${i & 255}`, '198.18.0.2', 17, 1000 + i, 53, Math.floor(random() * 50) * 100, 1, 1_000_000_000n + BigInt(i)),
    );
    const expected = many
      .map((f, i) => ({ i, bytes: Number(f.totals.ingress.bytes + f.totals.egress.bytes) }))
      .sort((a, b) => b.bytes - a.bytes || a.i - b.i)
      .slice(0, 25)
      .map(({ i }) => 1000 + i);
    expect(queryFlows(pack(many), { limit: 25 }, clock, names).map((f) => f.srcPort)).toEqual(expected);
  });

  it('names TCP flags', () => {
    expect(tcpFlagNames(0x02)).toEqual(['SYN']);
    expect(tcpFlagNames(0xff)).toEqual(['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR']);
  });
});

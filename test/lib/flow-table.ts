// A seeded flow table in the kernel's packed layout, for flow query tests.
import type { FlowTable } from '../../src/datapath/counters.js';
import { Layout, encodeFlowKey } from '../../src/datapath/abi.js';
import { parseIp, toMappedV6 } from '../../src/rules/cidr.js';

export function prng(seed: number): () => number {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

/**
 * A seeded table of `count` flows over `cpus` CPU slots: few distinct byte
 * and packet counts (many ties), IPv4 and IPv6, TCP/UDP/ICMP, ports from a
 * small set, counters and stamps spread over the slots.
 */
export function seededFlowTable(count: number, seed: number, cpus = 2): FlowTable {
  const random = prng(seed);
  const L = Layout.flowValue;
  const slot = L.size;
  const stride = slot * cpus;
  const keys = Buffer.alloc(count * Layout.flowKey.size);
  const values = Buffer.alloc(count * stride);
  const protos = [6, 17, 1, 58];
  for (let i = 0; i < count; i++) {
    const v6 = random() < 0.2;
    const src = v6 ? `fd00:198::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}` : `198.18.${(i >> 8) & 255}.${i & 255}`;
    const dst = v6 ? 'fd00:198::1' : `198.19.0.${1 + Math.floor(random() * 4)}`;
    const proto = protos[Math.floor(random() * (v6 ? 4 : 3))]!;
    encodeFlowKey({
      src: toMappedV6(parseIp(src)), dst: toMappedV6(parseIp(dst)),
      sport: 1024 + Math.floor(random() * 8), dport: [22, 53, 80, 443][Math.floor(random() * 4)]!,
      ifindex: random() < 0.5 ? 3 : 4, proto, family: v6 ? 6 : 4,
    }).copy(keys, i * Layout.flowKey.size);
    for (let cpu = 0; cpu < cpus; cpu++) {
      const base = i * stride + cpu * slot;
      if (random() < 0.3) continue; // this CPU never saw the flow
      values.writeBigUInt64LE(BigInt(Math.floor(random() * 5)), base + L.dir);
      values.writeBigUInt64LE(BigInt(Math.floor(random() * 20) * 100), base + L.dir + 8);
      values.writeBigUInt64LE(BigInt(Math.floor(random() * 3)), base + L.dir + 16);
      values.writeBigUInt64LE(BigInt(Math.floor(random() * 10) * 60), base + L.dir + 24);
      values.writeBigUInt64LE(1_000_000_000n + BigInt(Math.floor(random() * 1000)), base + L.firstSeenNs);
      values.writeBigUInt64LE(50_000_000_000n + BigInt(Math.floor(random() * 50)) * 1_000_000n, base + L.lastSeenNs);
      values.writeUInt8(Math.floor(random() * 256), base + L.tcpFlags);
      values.writeUInt8(Math.floor(random() * 256), base + L.tcpFlags + 1);
    }
  }
  return { keys, values, count, stride, cpus };
}


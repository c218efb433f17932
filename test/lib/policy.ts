// Helpers for policy tests: rules in the classifiers' form, frames built
// from the fields the parser extracts, and the compiled object loaded with
// its policy maps wrapped for PolicyTables.
import { readRuleHits } from '../../src/datapath/rule-hits.js';
import { BpfObject, type BpfMap, type BpfProgram } from '@xdpwall/addon';
import { Direction, MAPS, PROGRAMS, Reason, Verdict, cpusOf, encodeRuleId, statsIndex, sumCounters, type ReasonName } from '../../src/datapath/abi.js';
import { parseCidr } from '../../src/rules/cidr.js';
import { PolicyTables, policyMapsOf, type PolicyMaps } from '../../src/policy/tables.js';
import type { ClassRule, PacketFields, Prefix } from '../../src/policy/reference.js';
import { ether, icmp, icmpv6, ipv4, ipv6, rawL4, tcp, udp, TPID_8021Q, type L4Segment } from './packets.js';

export const prefix = (text: string): Prefix => {
  const c = parseCidr(text);
  return { family: c.family, bytes: new Uint8Array(c.bytes), prefixLen: c.prefixLen };
};

export function classRule(overrides: Partial<ClassRule> & Pick<ClassRule, 'kernelId'>): ClassRule {
  return {
    action: 'drop',
    dryRun: false,
    ifindex: null,
    src: null,
    dst: null,
    proto: null,
    srcPort: null,
    dstPort: null,
    tcpFlags: null,
    icmpType: null,
    icmpCode: null,
    vlan: null,
    expiresNs: 0n,
    ...overrides,
  };
}

const v4text = (b: Uint8Array) => [...b].join('.');
const v6text = (b: Uint8Array) => {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(':');
};

/** A frame the parser turns back into exactly these fields. */
export function frameOf(p: PacketFields): Buffer {
  let l4: L4Segment;
  if (!p.l4) {
    l4 = rawL4(p.proto, Buffer.alloc(16, 0xee));
  } else if (p.proto === 6) {
    l4 = tcp({ sport: p.sport, dport: p.dport, flags: p.tcpFlags });
  } else if (p.proto === 17) {
    l4 = udp({ sport: p.sport, dport: p.dport });
  } else if (p.proto === 1) {
    l4 = icmp({ type: p.icmpType, code: p.icmpCode, rest: 0x00010001 });
  } else if (p.proto === 58) {
    l4 = p.family === 6 ? icmpv6({ type: p.icmpType, code: p.icmpCode, rest: 0x00010001 }) : { ...icmp({ type: p.icmpType, code: p.icmpCode }), proto: 58 };
  } else {
    l4 = rawL4(p.proto, Buffer.alloc(16));
  }
  const l3 = p.family === 4
    ? ipv4({ src: v4text(p.src), dst: v4text(p.dst), ...(p.l4 ? {} : { fragOffset: 1480 }) }, l4)
    : ipv6({ src: v6text(p.src), dst: v6text(p.dst), ...(p.l4 ? {} : { ext: [{ type: 'fragment', offset: 1448 }] }) }, l4);
  return ether(l3, p.vlan === null ? {} : { vlans: [{ tpid: TPID_8021Q, vid: p.vlan }] });
}

export function packet(overrides: Partial<PacketFields> = {}): PacketFields {
  return {
    ifindex: 1,
    family: 4,
    src: Uint8Array.from([198, 18, 1, 2]),
    dst: Uint8Array.from([198, 18, 7, 9]),
    proto: 6,
    l4: true,
    sport: 40000,
    dport: 443,
    tcpFlags: 0x02,
    icmpType: 0,
    icmpCode: 0,
    vlan: null,
    ...overrides,
  };
}

export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;

/** The data plane loaded with small maps, nothing attached. */
export interface LoadedPolicy {
  object: BpfObject;
  progs: { ingress: BpfProgram; egress: BpfProgram };
  maps: PolicyMaps;
  tables: PolicyTables;
  close(): void;
}

export async function loadPolicyObject(objectPath: string): Promise<LoadedPolicy> {
  const object = BpfObject.open(objectPath);
  for (const name of [MAPS.srcV4, MAPS.dstV4, MAPS.srcV6, MAPS.dstV6, MAPS.srcHostV4, MAPS.dstHostV4, MAPS.srcHostV6, MAPS.dstHostV6]) {
    object.setMapMaxEntries(name, 1024);
  }
  object.setMapMaxEntries(MAPS.ruleStats, 1 << 16);
  object.setMapMaxEntries(MAPS.flows, 4096);
  await object.load();
  const maps = policyMapsOf(object);
  const tables = await PolicyTables.open(maps);
  return {
    object,
    progs: { ingress: object.program(PROGRAMS.ingress), egress: object.program(PROGRAMS.egress) },
    maps,
    tables,
    close: () => object.close(),
  };
}

/** struct xdp_md with ingress_ifindex set; data_end must equal the frame length. */
export function xdpCtx(frameLength: number, ifindex: number): Buffer {
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(frameLength, 4);
  ctx.writeUInt32LE(ifindex, 12);
  return ctx;
}

export function runIngress(loaded: LoadedPolicy, frame: Buffer, ifindex = 1): number {
  return loaded.progs.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, ifindex), dataSizeOut: 0 }).retval;
}

export type { ReasonName };

/** Packets counted under one (interface, hook, verdict, reason): XW_STATS_INDEX over the interface's slot. */
export function statsPackets(loaded: LoadedPolicy, hook: 'ingress' | 'egress', verdict: 'pass' | 'drop', reason: ReasonName, ifindex = 1): bigint {
  const map = loaded.object.map(MAPS.stats);
  const value = map.lookup(statsKey(loaded.object.map(MAPS.ifslots), ifindex, hook, verdict, reason));
  return value ? sumCounters(value, 0, map.valueStride, cpusOf(map)).packets : 0n;
}

/** The xw_stats key of (the interface's slot, hook, verdict, reason); an interface without a slot in xw_ifslots counts in slot 0. */
export function statsKey(ifslots: BpfMap, ifindex: number, hook: 'ingress' | 'egress', verdict: 'pass' | 'drop', reason: ReasonName): Buffer {
  const slot = ifslots.lookup(encodeRuleId(ifindex))?.readUInt32LE(0) ?? 0;
  return encodeRuleId(statsIndex(slot, Direction[hook], Verdict[verdict], Reason[reason]));
}

/** Packets counted under a rule id in xw_rule_stats and its hit cache. */
export function rulePackets(loaded: LoadedPolicy, ruleId: number): bigint {
  return readRuleHits(loaded.object.map(MAPS.ruleStats), loaded.object.map(MAPS.ruleHitCache), ruleId).packets;
}

// The policy stage as a table of packets with expected verdicts: every
// field, every range edge (lo, hi, lo-1, hi+1), TCP flags, VLAN, non-first
// fragments, priorities, expiry and dry-run. Each row runs through the real
// program (BPF_PROG_TEST_RUN) and through the TypeScript reference, and
// both must give the row's verdict, reason and counted rule. Needs root.
//
// Non-first fragments carry no ports, flags or ICMP header: a rule that
// names srcPort, dstPort, tcpFlags, icmpType or icmpCode never matches
// them (they fall through to later rules and the default policy), while a
// rule on addresses and protocol alone does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { compileTable } from '../src/policy/compile.js';
import { classify, type ClassRule, type PacketFields, type PrefixList, type ReferencePolicy } from '../src/policy/reference.js';
import { Layout, PolTable, type ReasonName } from '../src/datapath/abi.js';
import {
  TC_ACT_OK, TC_ACT_SHOT, XDP_DROP, XDP_PASS, classRule, frameOf, loadPolicyObject, packet, prefix, rulePackets, runIngress, statsPackets,
  type LoadedPolicy,
} from './lib/policy.js';
import { TCP } from './lib/packets.js';

let loaded: LoadedPolicy;
beforeAll(async () => {
  loaded = await loadPolicyObject(BPF_OBJECT_PATH);
});
afterAll(() => loaded?.close());

interface Row {
  name: string;
  rules: ClassRule[];
  packet: PacketFields;
  hook?: 'ingress' | 'egress';
  default?: 'accept' | 'drop';
  failsafe?: ClassRule[];
  verdict: 'pass' | 'drop';
  reason: ReasonName;
  /** The rule counted; 0 for none. */
  ruleId?: number;
}

const R = 0x8000_0000;
const rule = (id: number, o: Partial<ClassRule> = {}) => classRule({ kernelId: R + id, ...o });
const list = (name: string, ...entries: string[]): PrefixList => ({ name, version: `${name}:${entries.join()}`, prefixes: entries.map(prefix) });
const dropped = (name: string, rules: ClassRule[], p: PacketFields, ruleId: number, extra: Partial<Row> = {}): Row =>
  ({ name, rules, packet: p, verdict: 'drop', reason: 'drop_rule', ruleId: R + ruleId, ...extra });
const passed = (name: string, rules: ClassRule[], p: PacketFields, extra: Partial<Row> = {}): Row =>
  ({ name, rules, packet: p, verdict: 'pass', reason: 'pass_no_match', ruleId: 0, ...extra });

const tcpTo = (dport: number, o: Partial<PacketFields> = {}) => packet({ proto: 6, dport, ...o });
const udpFrom = (sport: number, o: Partial<PacketFields> = {}) => packet({ proto: 17, sport, dport: 53, ...o });
const v6 = (o: Partial<PacketFields> = {}) =>
  packet({ family: 6, src: prefix('fd00:198::7').bytes, dst: prefix('fd00:198:1::1').bytes, ...o });
const icmpPacket = (type: number, code: number, o: Partial<PacketFields> = {}) => packet({ proto: 1, icmpType: type, icmpCode: code, ...o });

/** lo-1, lo, hi, hi+1 of a range rule on one port field. */
function rangeEdges(field: 'srcPort' | 'dstPort', lo: number, hi: number): Row[] {
  const r = [rule(1, { proto: field === 'srcPort' ? 17 : 6, [field]: { lo, hi } })];
  const at = (port: number) => (field === 'srcPort' ? udpFrom(port) : tcpTo(port));
  const rows: Row[] = [];
  if (lo > 0) rows.push(passed(`${field} ${lo}-${hi}: lo-1 (${lo - 1}) passes`, r, at(lo - 1)));
  rows.push(dropped(`${field} ${lo}-${hi}: lo (${lo}) drops`, r, at(lo), 1));
  rows.push(dropped(`${field} ${lo}-${hi}: hi (${hi}) drops`, r, at(hi), 1));
  if (hi < 65535) rows.push(passed(`${field} ${lo}-${hi}: hi+1 (${hi + 1}) passes`, r, at(hi + 1)));
  return rows;
}

const rows: Row[] = [
  // ports: ranges, single ports, the ends of the port space
  ...rangeEdges('dstPort', 8000, 8080),
  ...rangeEdges('srcPort', 8000, 8080),
  ...rangeEdges('dstPort', 22, 22),
  ...rangeEdges('dstPort', 0, 1023),
  ...rangeEdges('dstPort', 65000, 65535),
  ...rangeEdges('srcPort', 0, 0),
  dropped('srcPort and dstPort together: both must match', [rule(1, { proto: 17, srcPort: { lo: 53, hi: 53 }, dstPort: { lo: 1024, hi: 65535 } })], packet({ proto: 17, sport: 53, dport: 5000 }), 1),
  passed('srcPort and dstPort together: one alone is not enough', [rule(1, { proto: 17, srcPort: { lo: 53, hi: 53 }, dstPort: { lo: 1024, hi: 65535 } })], packet({ proto: 17, sport: 53, dport: 80 })),
  dropped('overlapping ranges: the first by priority decides', [rule(1, { proto: 6, dstPort: { lo: 80, hi: 90 } }), rule(2, { proto: 6, dstPort: { lo: 85, hi: 100 }, action: 'pass' })], tcpTo(86), 1),
  passed('overlapping ranges: past the first, the second decides', [rule(1, { proto: 6, dstPort: { lo: 80, hi: 90 } }), rule(2, { proto: 6, dstPort: { lo: 85, hi: 100 }, action: 'pass' })], tcpTo(95), { reason: 'pass_rule', ruleId: R + 2 }),
  // protocol
  dropped('proto tcp matches TCP', [rule(1, { proto: 6 })], tcpTo(80), 1),
  passed('proto tcp does not match UDP', [rule(1, { proto: 6 })], udpFrom(80)),
  dropped('proto by number (47, GRE)', [rule(1, { proto: 47 })], packet({ proto: 47 }), 1),
  dropped('a port rule on tcp does not match udp to the same port', [rule(1, { proto: 6, dstPort: { lo: 53, hi: 53 } }), rule(2, { proto: 17 })], udpFrom(1000), 2),
  // addresses
  dropped('src prefix: inside', [rule(1, { src: prefix('198.18.0.0/16') })], packet({ src: Uint8Array.from([198, 18, 255, 255]) }), 1),
  passed('src prefix: just outside', [rule(1, { src: prefix('198.18.0.0/16') })], packet({ src: Uint8Array.from([198, 19, 0, 0]) })),
  dropped('dst host (bare address)', [rule(1, { dst: prefix('198.18.7.9') })], packet(), 1),
  passed('dst host: the neighbour', [rule(1, { dst: prefix('198.18.7.9') })], packet({ dst: Uint8Array.from([198, 18, 7, 10]) })),
  dropped('nested prefixes: the packet in both gets the earlier rule', [rule(1, { src: prefix('198.18.1.0/24') }), rule(2, { src: prefix('198.18.0.0/15') })], packet(), 1),
  dropped('nested prefixes: a later, wider rule still matches outside the narrow one', [rule(1, { src: prefix('198.18.1.0/24') }), rule(2, { src: prefix('198.18.0.0/15') })], packet({ src: Uint8Array.from([198, 19, 3, 3]) }), 2),
  dropped('nested prefixes in reverse priority: the wide rule first', [rule(1, { src: prefix('198.18.0.0/15'), action: 'log' }), rule(2, { src: prefix('198.18.1.0/24') })], packet(), 0, { verdict: 'pass', reason: 'pass_log', ruleId: R + 1 }),
  dropped('IPv6 src prefix', [rule(1, { src: prefix('fd00:198::/48') })], v6(), 1),
  passed('an IPv4 rule never matches IPv6', [rule(1, { src: prefix('0.0.0.0/1') }), rule(2, { dst: prefix('128.0.0.0/1') })], v6()),
  passed('an IPv6 ::/0 rule never matches IPv4', [rule(1, { src: prefix('::/0') })], packet()),
  dropped('src and dst together', [rule(1, { src: prefix('198.18.1.0/24'), dst: prefix('198.18.7.0/24') })], packet(), 1),
  passed('src and dst together: dst outside', [rule(1, { src: prefix('198.18.1.0/24'), dst: prefix('198.18.8.0/24') })], packet()),
  // named lists ("src": "list:NAME"): any entry contains the address
  dropped('srcList: inside an entry', [rule(1, { srcList: list('bad', '198.18.5.0/24', '198.18.1.2') })], packet(), 1),
  dropped('srcList: inside another entry', [rule(1, { srcList: list('bad', '198.18.5.0/24', '198.18.1.0/30') })], packet(), 1),
  passed('srcList: in no entry', [rule(1, { srcList: list('bad', '198.18.5.0/24', '198.18.1.3') })], packet()),
  passed('srcList: an empty list matches nothing', [rule(1, { srcList: list('empty') })], packet()),
  dropped('srcList: an empty list falls through to the next rule', [rule(1, { srcList: list('empty'), action: 'pass' }), rule(2, { proto: 6 })], packet(), 2),
  dropped('dstList: inside an entry', [rule(1, { dstList: list('servers', '198.18.7.0/24') })], packet(), 1),
  dropped('srcList: both families in one list (IPv6 packet)', [rule(1, { srcList: list('mixed', '198.18.5.0/24', 'fd00:198::/64') })], v6(), 1),
  passed('srcList: an IPv4 entry does not match the IPv6 packet', [rule(1, { srcList: list('v4', '0.0.0.0/1', '128.0.0.0/1') })], v6()),
  passed('srcList: a list entry narrower than a later rule\'s prefix: the list rule decides inside it', [rule(1, { srcList: list('ok', '198.18.1.0/24'), action: 'pass' }), rule(2, { src: prefix('198.18.0.0/16') })], packet(), { reason: 'pass_rule', ruleId: R + 1 }),
  dropped('srcList: ... and the later rule outside it', [rule(1, { srcList: list('ok', '198.18.1.0/24'), action: 'pass' }), rule(2, { src: prefix('198.18.0.0/16') })], packet({ src: Uint8Array.from([198, 18, 2, 1]) }), 2),
  passed('srcList: a list entry wider than a later rule\'s prefix still matches inside that prefix', [rule(1, { srcList: list('ok', '198.18.0.0/16'), action: 'log' }), rule(2, { src: prefix('198.18.1.2') })], packet(), { reason: 'pass_log', ruleId: R + 1 }),
  dropped('srcList: an entry equal to another rule\'s prefix: priority decides', [rule(1, { src: prefix('198.18.1.0/24') }), rule(2, { srcList: list('same', '198.18.1.0/24'), action: 'pass' })], packet(), 1),
  passed('srcList: one list shared by two rules (the first by priority decides)', [rule(1, { srcList: list('shared', '198.18.1.0/24'), proto: 17 }), rule(2, { srcList: list('shared', '198.18.1.0/24'), action: 'pass' })], tcpTo(443), { reason: 'pass_rule', ruleId: R + 2 }),
  dropped('srcList and dstList together: both must match', [rule(1, { srcList: list('a', '198.18.1.0/24'), dstList: list('b', '198.18.7.9') })], packet(), 1),
  passed('srcList and dstList together: dst in neither entry', [rule(1, { srcList: list('a', '198.18.1.0/24'), dstList: list('b', '198.18.7.10') })], packet()),
  dropped('drop udp 53 from list:bad', [rule(1, { proto: 17, dstPort: { lo: 53, hi: 53 }, srcList: list('bad', '198.18.1.0/24') })], udpFrom(4000), 1),
  passed('drop udp 53 from list:bad: another source passes', [rule(1, { proto: 17, dstPort: { lo: 53, hi: 53 }, srcList: list('bad', '198.18.9.0/24') })], udpFrom(4000)),
  // TCP flags
  dropped('syn,!ack matches a SYN', [rule(1, { proto: 6, tcpFlags: { mask: TCP.syn | TCP.ack, set: TCP.syn } })], tcpTo(80, { tcpFlags: TCP.syn }), 1),
  passed('syn,!ack does not match a SYN-ACK', [rule(1, { proto: 6, tcpFlags: { mask: TCP.syn | TCP.ack, set: TCP.syn } })], tcpTo(80, { tcpFlags: TCP.syn | TCP.ack })),
  dropped('syn,!ack ignores flags it does not name (SYN+ECE+CWR)', [rule(1, { proto: 6, tcpFlags: { mask: TCP.syn | TCP.ack, set: TCP.syn } })], tcpTo(80, { tcpFlags: TCP.syn | TCP.ece | TCP.cwr }), 1),
  dropped('fin,psh,urg (xmas) matches all three set', [rule(1, { proto: 6, tcpFlags: { mask: TCP.fin | TCP.psh | TCP.urg, set: TCP.fin | TCP.psh | TCP.urg } })], tcpTo(80, { tcpFlags: 0x29 }), 1),
  passed('fin,psh,urg does not match two of three', [rule(1, { proto: 6, tcpFlags: { mask: TCP.fin | TCP.psh | TCP.urg, set: TCP.fin | TCP.psh | TCP.urg } })], tcpTo(80, { tcpFlags: 0x09 })),
  dropped('!syn,!ack,!fin,!rst matches a null scan (no flags)', [rule(1, { proto: 6, tcpFlags: { mask: 0x17, set: 0 } })], tcpTo(80, { tcpFlags: 0 }), 1),
  // ICMP
  dropped('icmp type 8', [rule(1, { proto: 1, icmpType: 8 })], icmpPacket(8, 0), 1),
  passed('icmp type 8 does not match type 0', [rule(1, { proto: 1, icmpType: 8 })], icmpPacket(0, 0)),
  dropped('icmp type 3 code 1', [rule(1, { proto: 1, icmpType: 3, icmpCode: 1 })], icmpPacket(3, 1), 1),
  passed('icmp type 3 code 1 does not match code 3', [rule(1, { proto: 1, icmpType: 3, icmpCode: 1 })], icmpPacket(3, 3)),
  dropped('icmpv6 type 128', [rule(1, { proto: 58, icmpType: 128 })], v6({ proto: 58, icmpType: 128, icmpCode: 0 }), 1),
  // VLAN
  dropped('vlan 10 matches a frame tagged 10', [rule(1, { vlan: 10 })], packet({ vlan: 10 }), 1),
  passed('vlan 10 does not match a frame tagged 20', [rule(1, { vlan: 10 })], packet({ vlan: 20 })),
  passed('vlan 10 does not match an untagged frame', [rule(1, { vlan: 10 })], packet()),
  dropped('a rule without vlan matches tagged frames too', [rule(1, { proto: 6 })], packet({ vlan: 30 }), 1),
  // interface
  dropped('iface: the packet\'s ifindex', [rule(1, { ifindex: 1, proto: 6 })], tcpTo(80), 1),
  passed('iface: another interface\'s rule', [rule(1, { ifindex: 2, proto: 6 })], tcpTo(80)),
  // non-first fragments
  passed('non-first fragment: a dstPort rule does not match (no ports)', [rule(1, { proto: 6, dstPort: { lo: 0, hi: 65535 } })], tcpTo(0, { l4: false })),
  passed('non-first fragment: a tcpFlags rule does not match', [rule(1, { proto: 6, tcpFlags: { mask: TCP.syn, set: 0 } })], tcpTo(0, { l4: false, tcpFlags: 0 })),
  passed('non-first fragment: an icmpType rule does not match', [rule(1, { proto: 1, icmpType: 0 })], icmpPacket(0, 0, { l4: false })),
  dropped('non-first fragment: falls through a port rule to a proto rule', [rule(1, { proto: 6, dstPort: { lo: 80, hi: 80 }, action: 'pass' }), rule(2, { proto: 6 })], tcpTo(80, { l4: false }), 2),
  dropped('non-first fragment: an address and proto rule matches', [rule(1, { src: prefix('198.18.1.0/24'), proto: 17 })], udpFrom(0, { l4: false }), 1),
  dropped('IPv6 non-first fragment: an address rule matches', [rule(1, { src: prefix('fd00:198::/48') })], v6({ proto: 17, l4: false }), 1),
  // actions, priority, expiry, dry-run
  passed('pass rule', [rule(1, { proto: 6, action: 'pass' })], tcpTo(80), { reason: 'pass_rule', ruleId: R + 1 }),
  passed('log rule passes and counts', [rule(1, { proto: 6, action: 'log' })], tcpTo(80), { reason: 'pass_log', ruleId: R + 1 }),
  passed('dry-run drop passes as would_drop', [rule(1, { proto: 6, dryRun: true })], tcpTo(80), { reason: 'would_drop', ruleId: R + 1 }),
  dropped('an expired rule is skipped for the next one', [rule(1, { proto: 6, action: 'pass', expiresNs: 1n }), rule(2, { proto: 6 })], tcpTo(80), 2),
  passed('an expired rule alone matches nothing', [rule(1, { proto: 6, expiresNs: 1n })], tcpTo(80)),
  dropped('a rule expiring in the future matches', [rule(1, { proto: 6, expiresNs: 1n << 62n })], tcpTo(80), 1),
  dropped('rule 65 (second word) is found when the first 64 miss', [...Array.from({ length: 64 }, (_, i) => rule(100 + i, { proto: 17 })), rule(1, { proto: 6 })], tcpTo(80), 1),
  // default policy and failsafe
  dropped('default drop: no rule matched', [rule(1, { proto: 17 })], tcpTo(80), 0, { default: 'drop', reason: 'drop_policy', ruleId: 0 }),
  passed('default drop: a pass rule still passes', [rule(1, { proto: 6, action: 'pass' })], tcpTo(80), { default: 'drop', reason: 'pass_rule', ruleId: R + 1 }),
  passed('default drop with no rules at all', [], tcpTo(80), { default: 'drop', verdict: 'drop', reason: 'drop_policy' }),
  passed('failsafe: TCP 22 passes a default drop', [], tcpTo(22), { default: 'drop', reason: 'pass_failsafe', failsafe: [classRule({ kernelId: 0, action: 'pass', proto: 6, dstPort: { lo: 22, hi: 22 } })] }),
  passed('failsafe: overrides a drop rule', [rule(1, { proto: 6 })], tcpTo(22), { reason: 'pass_failsafe', failsafe: [classRule({ kernelId: 0, action: 'pass', proto: 6, dstPort: { lo: 22, hi: 22 } })] }),
  dropped('failsafe: TCP 23 is not TCP 22', [rule(1, { proto: 6 })], tcpTo(23), 1, { failsafe: [classRule({ kernelId: 0, action: 'pass', proto: 6, dstPort: { lo: 22, hi: 22 } })] }),
  // xw_failsafe_quick: port 86 shares port 22's bit (86 & 63), UDP 22 its port: both go on to the table, which says no.
  dropped('failsafe: TCP 86 (port 22\'s quick bit) is not TCP 22', [rule(1, { proto: 6 })], tcpTo(86), 1, { failsafe: [classRule({ kernelId: 0, action: 'pass', proto: 6, dstPort: { lo: 22, hi: 22 } })] }),
  dropped('failsafe: UDP 22 is not TCP 22', [rule(1, { proto: 17 })], packet({ proto: 17, dport: 22 }), 1, { failsafe: [classRule({ kernelId: 0, action: 'pass', proto: 6, dstPort: { lo: 22, hi: 22 } })] }),
  passed('failsafe: a port range\'s last port passes', [rule(1, { proto: 17 })], packet({ proto: 17, dport: 200 }), { reason: 'pass_failsafe', failsafe: [classRule({ kernelId: 0, action: 'pass', proto: 17, dstPort: { lo: 100, hi: 200 } })] }),
  dropped('failsafe: one past a port range drops', [rule(1, { proto: 17 })], packet({ proto: 17, dport: 201 }), 1, { failsafe: [classRule({ kernelId: 0, action: 'pass', proto: 17, dstPort: { lo: 100, hi: 200 } })] }),
  passed('failsafe: a would_drop on a failsafe port passes as failsafe', [rule(1, { proto: 6, dryRun: true })], tcpTo(22), { reason: 'pass_failsafe', failsafe: [classRule({ kernelId: 0, action: 'pass', proto: 6, dstPort: { lo: 22, hi: 22 } })] }),
  passed('failsafe: a packet that passes anyway keeps its reason', [rule(1, { proto: 6, action: 'pass' })], tcpTo(22), { reason: 'pass_rule', ruleId: R + 1, failsafe: [classRule({ kernelId: 0, action: 'pass', proto: 6, dstPort: { lo: 22, hi: 22 } })] }),
  // egress
  { ...dropped('egress drop rule: TC_ACT_SHOT', [rule(1, { proto: 17, dstPort: { lo: 53, hi: 53 } })], udpFrom(5353), 1), hook: 'egress' },
  { ...passed('egress default drop', [], udpFrom(5353), { verdict: 'drop', reason: 'drop_policy', default: 'drop' }), hook: 'egress' },
  { ...passed('egress: a packet to a remote port 22 is not failsafe', [], tcpTo(22), { verdict: 'drop', reason: 'drop_policy', default: 'drop', failsafe: [classRule({ kernelId: 0, action: 'pass', proto: 6, dstPort: { lo: 22, hi: 22 } })] }), hook: 'egress' },
  { ...passed('egress: the answer from local port 22 is failsafe under default drop', [], packet({ proto: 6, sport: 22, dport: 40000 }), { reason: 'pass_failsafe', default: 'drop', failsafe: [classRule({ kernelId: 0, action: 'pass', proto: 6, dstPort: { lo: 22, hi: 22 } })] }), hook: 'egress' },
  { ...passed('egress: a drop rule does not stop a failsafe CIDR\'s answers', [rule(1, { proto: 6 })], packet({ proto: 6, sport: 443, dst: prefix('198.18.9.7').bytes }), { reason: 'pass_failsafe', failsafe: [classRule({ kernelId: 0, action: 'pass', src: prefix('198.18.9.0/24') })] }), hook: 'egress' },
  { ...passed('egress: ICMPv6 neighbour advertisement is failsafe', [], v6({ proto: 58, icmpType: 136, icmpCode: 0 }), { reason: 'pass_failsafe', default: 'drop', failsafe: [classRule({ kernelId: 0, action: 'pass', proto: 58, icmpType: 136 })] }), hook: 'egress' },
];

describe('policy fixtures', () => {
  it.each(rows.map((row) => [row.name, row] as const))('%s', async (_name, row) => {
    const hook = row.hook ?? 'ingress';
    const policy: ReferencePolicy = {
      ingress: hook === 'ingress' ? row.rules : [],
      egress: hook === 'egress' ? row.rules : [],
      failsafe: row.failsafe ?? [],
      blocks: [],
      defaults: { ingress: hook === 'ingress' ? (row.default ?? 'accept') : 'accept', egress: hook === 'egress' ? (row.default ?? 'accept') : 'accept' },
    };
    const env = { nowNs: process.hrtime.bigint(), isReply: () => false };
    const expected = { verdict: row.verdict, reason: row.reason, ruleId: row.ruleId ?? 0 };
    expect(classify(policy, hook, row.packet, env)).toEqual(expected);

    await loaded.tables.apply(PolTable.ingress, compileTable(policy.ingress, { defaultAction: policy.defaults.ingress }));
    await loaded.tables.apply(PolTable.egress, compileTable(policy.egress, { defaultAction: policy.defaults.egress }));
    await loaded.tables.apply(PolTable.failsafe, compileTable(policy.failsafe));
    const before = statsPackets(loaded, hook, row.verdict, row.reason);
    const ruleBefore = expected.ruleId ? rulePackets(loaded, expected.ruleId) : 0n;
    const frame = frameOf(row.packet);
    const retval = hook === 'ingress' ? runIngress(loaded, frame) : loaded.progs.egress.testRunSync({ data: frame, dataSizeOut: 0 }).retval;
    const want = hook === 'ingress' ? (row.verdict === 'drop' ? XDP_DROP : XDP_PASS) : row.verdict === 'drop' ? TC_ACT_SHOT : TC_ACT_OK;
    expect(retval).toBe(want);
    expect(statsPackets(loaded, hook, row.verdict, row.reason)).toBe(before + 1n);
    if (expected.ruleId) expect(rulePackets(loaded, expected.ruleId)).toBe(ruleBefore + 1n);
  });

  it('keeps xw_failsafe_quick covering the failsafe table, and the data plane trusts it', async () => {
    const quick = () => {
      const value = loaded.maps.failsafeQuick.lookup(Buffer.alloc(4))!;
      return { dports: value.readBigUInt64LE(Layout.failsafeQuick.dports), portsOnly: value.readUInt32LE(Layout.failsafeQuick.portsOnly) };
    };
    const ssh = classRule({ kernelId: 0, action: 'pass', proto: 6, dstPort: { lo: 22, hi: 22 } });
    const dhcp = classRule({ kernelId: 0, action: 'pass', proto: 17, dstPort: { lo: 68, hi: 68 } });
    await loaded.tables.apply(PolTable.ingress, compileTable([rule(1, { proto: 6 })]));
    await loaded.tables.apply(PolTable.failsafe, compileTable([ssh, dhcp]));
    expect(quick()).toEqual({ portsOnly: 1, dports: (1n << 22n) | (1n << 4n) });
    const ssh22 = frameOf(tcpTo(22));
    expect(runIngress(loaded, ssh22)).toBe(XDP_PASS);
    // An entry without a port: no quick answer, every packet about to drop is classified.
    await loaded.tables.apply(PolTable.failsafe, compileTable([ssh, classRule({ kernelId: 0, action: 'pass', src: prefix('198.18.9.0/24') })]));
    expect(quick().portsOnly).toBe(0);
    expect(runIngress(loaded, ssh22)).toBe(XDP_PASS);
    await loaded.tables.apply(PolTable.failsafe, compileTable([]));
    expect(quick()).toEqual({ portsOnly: 1, dports: 0n });
    expect(runIngress(loaded, ssh22)).toBe(XDP_DROP);
    // Proof that the data plane reads it: a (wrong) quick value without port 22's bit hides the SSH entry.
    await loaded.tables.apply(PolTable.failsafe, compileTable([ssh]));
    const hiding = Buffer.alloc(Layout.failsafeQuick.size);
    hiding.writeUInt32LE(1, Layout.failsafeQuick.portsOnly);
    loaded.maps.failsafeQuick.update(Buffer.alloc(4), hiding);
    expect(runIngress(loaded, ssh22)).toBe(XDP_DROP);
    await loaded.tables.apply(PolTable.failsafe, compileTable([]));
    await loaded.tables.apply(PolTable.ingress, compileTable([]));
  });

  it('has a row for every field', () => {
    const fields = new Set(rows.flatMap((row) => row.rules.flatMap((r) => Object.entries(r).filter(([k, v]) => v !== null && !['kernelId', 'action', 'dryRun', 'expiresNs'].includes(k)).map(([k]) => k))));
    expect([...fields].sort()).toEqual(['dst', 'dstList', 'dstPort', 'icmpCode', 'icmpType', 'ifindex', 'proto', 'src', 'srcList', 'srcPort', 'tcpFlags', 'vlan']);
  });
});

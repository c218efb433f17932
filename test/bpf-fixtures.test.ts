// The compiled data plane (xdp/build/xdpwall.bpf.o) against tables of packets,
// run through BPF_PROG_TEST_RUN in the real kernel. Each fixture states the
// program's return code, the one xw_stats counter the packet must land in, and
// the flow entry it must leave (or that it must leave none). Maps are private
// to this file's object and emptied before every fixture. Needs root.
import { readRuleHits } from '../src/datapath/rule-hits.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DIR24_BLOCK_PAIRS, Dir24Index, packBlocks, packSlotPairs } from '../src/datapath/dir24.js';
import { BpfObject, type BpfMap, type BpfProgram } from '@xdpwall/addon';
import {
  Action,
  Direction,
  Cache,
  Feature,
  Layout,
  MAPS,
  PROGRAMS,
  Reason,
  Verdict,
  cpusOf,
  statsIndexParts,
  encodeFlowKey,
  encodeLpmKey,
  encodeRuleId,
  encodeRuleValue,
  sumCounters,
  type Counter,
  type ReasonName,
} from '../src/datapath/abi.js';
import {
  IPPROTO,
  TCP,
  TPID_8021AD,
  TPID_8021Q,
  ETH_P_IP,
  ETH_P_IPV6,
  ETH_P_LLDP,
  arp,
  ether,
  icmp,
  icmpv6,
  ipv4,
  ipv4Bytes,
  ipv4Mapped,
  ipv6,
  ipv6Bytes,
  rawL3,
  rawL4,
  tcp,
  truncate,
  udp,
  type Ipv6Ext,
  type VlanTag,
} from './lib/packets.js';

const OBJECT_PATH = new URL('../xdp/build/xdpwall.bpf.o', import.meta.url).pathname;
const LO = 1; // test runs see the loopback device: ingress via ctx, egress by default
const XDP_DROP = 1;
const XDP_PASS = 2;
const TC_ACT_OK = 0;
const MAX_IPV6_EXT = 6; // XW_MAX_IPV6_EXT

// ---------------------------------------------------------------- fixtures

type Hook = 'ingress' | 'egress';

interface ExpectedFlow {
  /** Flow-key order: remote peer first, whatever the packet's direction. */
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
  tcpFlags?: number;
}

interface Rule {
  map:
    | 'xw_src_v4' | 'xw_dst_v4' | 'xw_src_v6' | 'xw_dst_v6'
    | 'xw_src_host_v4' | 'xw_dst_host_v4' | 'xw_src_host_v6' | 'xw_dst_host_v6';
  cidr: string;
  ruleId: number;
  action?: number;
  /** Whether the control plane created the rule's xw_rule_stats entry in advance. Default true. */
  counted?: boolean;
}

interface Fixture {
  name: string;
  frame: Buffer;
  hook?: Hook;
  verdict: 'pass' | 'drop';
  reason: ReasonName;
  /** The entry the packet must create; null (the default) means no entry at all. */
  flow?: ExpectedFlow | null;
  rules?: Rule[];
  /** Rule ids whose xw_rule_stats entry must count this one packet. */
  counts?: number[];
  /** __sk_buff gso_size for egress (a GSO super-packet). */
  gsoSize?: number;
}

const A4 = '198.51.100.7'; // remote
const B4 = '192.0.2.10'; // local
const A6 = '2001:db8:aaaa::7';
const B6 = '2001:db8:bbbb::10';

const v4 = (l4: Parameters<typeof ipv4>[1], extra: Partial<Parameters<typeof ipv4>[0]> = {}) =>
  ipv4({ src: A4, dst: B4, ...extra }, l4);
const v6 = (l4: Parameters<typeof ipv6>[1], extra: Partial<Parameters<typeof ipv6>[0]> = {}) =>
  ipv6({ src: A6, dst: B6, ...extra }, l4);
const syn = tcp({ sport: 40000, dport: 443, flags: TCP.syn });
const dns = udp({ sport: 53000, dport: 53, payload: Buffer.from('query') });
const ping = icmp({ type: 8, code: 0, rest: 0x00010001 });
const ping6 = icmpv6({ type: 128, code: 0, rest: 0x00010001 });

const flow4 = (sport: number, dport: number, proto: number, tcpFlags?: number): ExpectedFlow => ({
  src: A4,
  dst: B4,
  sport,
  dport,
  proto,
  tcpFlags,
});
const flow6 = (sport: number, dport: number, proto: number, tcpFlags?: number): ExpectedFlow => ({
  src: A6,
  dst: B6,
  sport,
  dport,
  proto,
  tcpFlags,
});
const SYN4 = flow4(40000, 443, IPPROTO.tcp, TCP.syn);
const DNS4 = flow4(53000, 53, IPPROTO.udp);
const DNS6 = flow6(53000, 53, IPPROTO.udp);
const q = (vid: number): VlanTag => ({ tpid: TPID_8021Q, vid });
const ad = (vid: number): VlanTag => ({ tpid: TPID_8021AD, vid });
const pass = (name: string, frame: Buffer, flow: ExpectedFlow | null = null): Fixture => ({
  name,
  frame,
  verdict: 'pass',
  reason: flow ? 'pass_no_match' : 'pass_non_ip',
  flow,
});
const drop = (name: string, frame: Buffer, reason: ReasonName): Fixture => ({ name, frame, verdict: 'drop', reason });

const parsePaths: Fixture[] = [
  pass('IPv4 TCP SYN', ether(v4(syn)), SYN4),
  pass('IPv4 UDP', ether(v4(dns)), DNS4),
  pass('IPv4 ICMP echo request (identifier as both ports)', ether(v4(ping)), flow4(1, 1, IPPROTO.icmp)),
  pass('IPv4 ICMP time exceeded (type, code as ports)', ether(v4(icmp({ type: 11, code: 1 }))), flow4(11, 1, IPPROTO.icmp)),
  pass('IPv4 GRE (no ports)', ether(v4(rawL4(IPPROTO.gre))), flow4(0, 0, IPPROTO.gre)),
  pass('IPv4 TCP with options (MSS, SACK-permitted)', ether(v4(tcp({ sport: 40000, dport: 443, flags: TCP.syn, options: Buffer.from([2, 4, 0x05, 0xb4, 4, 2, 1, 1]) }))), SYN4),
  pass('IPv4 TCP ACK|PSH records the flag byte', ether(v4(tcp({ sport: 40000, dport: 443, flags: TCP.ack | TCP.psh, payload: Buffer.from('GET /') }))), flow4(40000, 443, IPPROTO.tcp, TCP.ack | TCP.psh)),
  pass('IPv4 UDP in a frame padded to 60 bytes', ether(v4(udp({ sport: 53000, dport: 53 })), { pad: true }), DNS4),
  pass('IPv6 TCP SYN', ether(v6(syn)), flow6(40000, 443, IPPROTO.tcp, TCP.syn)),
  pass('IPv6 UDP', ether(v6(dns)), DNS6),
  pass('IPv6 ICMPv6 echo request (identifier as both ports)', ether(v6(ping6)), flow6(1, 1, IPPROTO.icmpv6)),
  pass('IPv6 ICMPv6 packet too big (type, code as ports)', ether(v6(icmpv6({ type: 2, rest: 1280 }))), flow6(2, 0, IPPROTO.icmpv6)),
  pass('IPv6 no next header (59)', ether(v6(rawL4(IPPROTO.none, Buffer.alloc(0)))), flow6(0, 0, IPPROTO.none)),
  pass('IPv6 ESP (no ports)', ether(v6(rawL4(IPPROTO.esp, Buffer.alloc(16)))), flow6(0, 0, IPPROTO.esp)),
  pass('ARP request', ether(arp({ senderIp: A4, targetIp: B4 }))),
  pass('ARP request padded to 60 bytes', ether(arp({ senderIp: A4, targetIp: B4 }), { pad: true })),
  pass('LLDP', ether(rawL3(ETH_P_LLDP, Buffer.alloc(32)))),
  pass('802.3 length field (LLC)', ether(rawL3(0x0026, Buffer.alloc(38)))),
  pass('14-byte frame with a non-IP ethertype', ether(rawL3(ETH_P_LLDP))),
  drop('14-byte frame with ethertype IPv4', ether(rawL3(ETH_P_IP)), 'malformed_ipv4'),
  drop('14-byte frame with ethertype IPv6', ether(rawL3(ETH_P_IPV6)), 'malformed_ipv6'),
  drop('14-byte frame with ethertype 802.1Q', ether(rawL3(TPID_8021Q)), 'malformed_l2'),
];

const ipv4Cases: Fixture[] = [
  pass('IPv4 options: IHL 6 (router alert)', ether(v4(dns, { options: Buffer.from([0x94, 4, 0, 0]) })), DNS4),
  pass('IPv4 options: IHL 15 (40 bytes of NOPs)', ether(v4(dns, { options: Buffer.alloc(40, 1) })), DNS4),
  pass('IPv4 first fragment (MF, offset 0) keeps ports', ether(v4(dns, { moreFragments: true })), DNS4),
  pass('IPv4 non-first fragment: ports 0', ether(v4(rawL4(IPPROTO.udp, Buffer.alloc(24, 0xee)), { fragOffset: 1480 })), flow4(0, 0, IPPROTO.udp)),
  pass('IPv4 last fragment, 1 byte of payload', ether(v4(rawL4(IPPROTO.tcp, Buffer.alloc(1)), { fragOffset: 8 })), flow4(0, 0, IPPROTO.tcp)),
  pass('IPv4 DF set, not a fragment', ether(v4(syn, { dontFragment: true })), SYN4),
  drop('IPv4 version 6 under ethertype IPv4', ether(v4(syn, { version: 6 })), 'malformed_ipv4'),
  drop('IPv4 IHL 4', ether(v4(syn, { ihl: 4 })), 'malformed_ipv4'),
  drop('IPv4 IHL 0', ether(v4(syn, { ihl: 0 })), 'malformed_ipv4'),
  drop('IPv4 IHL 15 past the end of the packet', ether(ipv4({ src: A4, dst: B4, ihl: 15, totalLength: 40 }, rawL4(IPPROTO.none, Buffer.alloc(4)))), 'malformed_ipv4'),
  drop('IPv4 total length below the header length', ether(v4(syn, { totalLength: 19 })), 'malformed_ipv4'),
  drop('IPv4 total length beyond the frame', ether(v4(syn, { totalLength: 41 })), 'malformed_ipv4'),
  drop('IPv4 total length ends inside the TCP header (padding is not TCP)', ether(v4(syn, { totalLength: 39 }), { pad: true }), 'malformed_l4'),
  drop('IPv4 first fragment with 19 bytes of TCP', ether(v4(rawL4(IPPROTO.tcp, Buffer.alloc(19)), { moreFragments: true })), 'malformed_l4'),
  drop('IPv4 TCP data offset 4', ether(v4(tcp({ sport: 1, dport: 2, doff: 4 }))), 'malformed_l4'),
  drop('IPv4 TCP data offset 15 past the end', ether(v4(tcp({ sport: 1, dport: 2, doff: 15 }))), 'malformed_l4'),
  drop('IPv4 UDP, 7 bytes', ether(v4(rawL4(IPPROTO.udp, Buffer.alloc(7)))), 'malformed_l4'),
  drop('IPv4 ICMP, 4 bytes', ether(v4(rawL4(IPPROTO.icmp, Buffer.alloc(4)))), 'malformed_l4'),
];

const ext = (type: 'hopopts' | 'routing' | 'dstopts', len = 0): Ipv6Ext => ({ type, len });
const ipv6Cases: Fixture[] = [
  pass('IPv6 hop-by-hop + UDP', ether(v6(dns, { ext: [ext('hopopts')] })), DNS6),
  pass('IPv6 routing + UDP', ether(v6(dns, { ext: [ext('routing', 2)] })), DNS6),
  pass('IPv6 destination options (24 bytes) + UDP', ether(v6(dns, { ext: [ext('dstopts', 2)] })), DNS6),
  pass('IPv6 AH ((4+2)*4 bytes) + UDP', ether(v6(dns, { ext: [{ type: 'ah', len: 4 }] })), DNS6),
  pass('IPv6 first fragment keeps ports', ether(v6(dns, { ext: [{ type: 'fragment', offset: 0, more: true }] })), DNS6),
  pass('IPv6 non-first fragment: ports 0', ether(v6(rawL4(IPPROTO.udp, Buffer.alloc(24, 0xee)), { ext: [{ type: 'fragment', offset: 1448 }] })), flow6(0, 0, IPPROTO.udp)),
  pass('IPv6 non-first fragment ends the walk even if more extensions follow in the chain', ether(v6(rawL4(IPPROTO.tcp, Buffer.alloc(16)), { ext: [ext('hopopts'), { type: 'fragment', offset: 8 }, ext('dstopts')] })), flow6(0, 0, IPPROTO.dstopts)),
  pass('IPv6 hop-by-hop, routing, fragment, AH, dest options + TCP', ether(v6(syn, { ext: [ext('hopopts'), ext('routing', 2), { type: 'fragment' }, { type: 'ah' }, ext('dstopts')] })), flow6(40000, 443, IPPROTO.tcp, TCP.syn)),
  pass(`IPv6 chain of exactly ${MAX_IPV6_EXT} extensions`, ether(v6(dns, { ext: Array.from({ length: MAX_IPV6_EXT }, () => ext('dstopts')) })), DNS6),
  drop(`IPv6 chain of ${MAX_IPV6_EXT + 1} extensions`, ether(v6(dns, { ext: Array.from({ length: MAX_IPV6_EXT + 1 }, () => ext('dstopts')) })), 'ipv6_ext_limit'),
  drop('IPv6 destination options (32 bytes) longer than the packet', (() => {
    const frame = ether(v6(dns, { ext: [ext('dstopts')] })); // 8 bytes of options + 13 of UDP
    frame.writeUInt8(3, 14 + 40 + 1);
    return frame;
  })(), 'malformed_ipv6'),
  drop('IPv6 destination options past the payload length (padding is not IPv6)', ether(v6(rawL4(IPPROTO.none, Buffer.alloc(0)), { ext: [ext('dstopts')], payloadLength: 4 }), { pad: true }), 'malformed_ipv6'),
  drop('IPv6 hop-by-hop claiming 2048 bytes', (() => {
    const frame = ether(v6(dns, { ext: [ext('hopopts')] }));
    frame.writeUInt8(255, 14 + 40 + 1);
    return frame;
  })(), 'malformed_ipv6'),
  drop('IPv6 AH claiming more than the payload', (() => {
    const frame = ether(v6(dns, { ext: [{ type: 'ah', len: 4 }] }));
    frame.writeUInt8(40, 14 + 40 + 1);
    return frame;
  })(), 'malformed_ipv6'),
  drop('IPv6 fragment header cut short', truncate(ether(v6(rawL4(IPPROTO.none, Buffer.alloc(0)), { ext: [{ type: 'fragment' }], payloadLength: 4 })), 14 + 40 + 4), 'malformed_ipv6'),
  drop('IPv6 version 4 under ethertype IPv6', ether(v6(dns, { version: 4 })), 'malformed_ipv6'),
  drop('IPv6 payload length beyond the frame', ether(v6(dns, { payloadLength: 200 })), 'malformed_ipv6'),
  drop('IPv6 payload length ends inside the UDP header', ether(v6(dns, { payloadLength: 7 })), 'malformed_l4'),
  drop('IPv6 TCP, 19 bytes', ether(v6(rawL4(IPPROTO.tcp, Buffer.alloc(19)))), 'malformed_l4'),
  drop('IPv6 ICMPv6, 4 bytes', ether(v6(rawL4(IPPROTO.icmpv6, Buffer.alloc(4)))), 'malformed_l4'),
];

const vlanCases: Fixture[] = [
  pass('802.1Q + IPv4 UDP', ether(v4(dns), { vlans: [q(10)] }), DNS4),
  pass('802.1ad + IPv4 UDP', ether(v4(dns), { vlans: [ad(10)] }), DNS4),
  pass('802.1ad, 802.1Q (QinQ) + IPv4 UDP', ether(v4(dns), { vlans: [ad(100), q(10)] }), DNS4),
  pass('802.1Q, 802.1Q + IPv6 UDP', ether(v6(dns), { vlans: [q(100), q(10)] }), DNS6),
  pass('802.1ad, 802.1ad + IPv4 TCP', ether(v4(syn), { vlans: [ad(100), ad(10)] }), SYN4),
  pass('802.1Q, 802.1ad (reversed nesting) + IPv4 UDP', ether(v4(dns), { vlans: [q(100), ad(10)] }), DNS4),
  pass('802.1Q + ARP', ether(arp({ senderIp: A4, targetIp: B4 }), { vlans: [q(10)] })),
  pass('802.1ad, 802.1Q + LLDP', ether(rawL3(ETH_P_LLDP, Buffer.alloc(16)), { vlans: [ad(100), q(10)] })),
  drop('three 802.1Q tags', ether(v4(dns), { vlans: [q(1), q(2), q(3)] }), 'malformed_l2'),
  drop('802.1ad, 802.1Q, 802.1Q', ether(v4(dns), { vlans: [ad(1), q(2), q(3)] }), 'malformed_l2'),
  drop('802.1Q tag cut after 2 bytes', truncate(ether(v4(dns), { vlans: [q(10)] }), 16), 'malformed_l2'),
  drop('802.1Q + IPv4 cut inside the IP header', truncate(ether(v4(dns), { vlans: [q(10)] }), 30), 'malformed_ipv4'),
];

/**
 * Every prefix of a base packet: the first layer the cut lands in decides
 * the reason. IP length fields say the datagram goes on, so a cut anywhere
 * after the IP header start is a truncated IP packet, not a truncated L4 one.
 */
function truncations(label: string, frame: Buffer, l3Offset: number, l3Reason: ReasonName, flow: ExpectedFlow): Fixture[] {
  const out: Fixture[] = [];
  for (let len = 14; len < frame.length; len++) {
    out.push(drop(`${label} cut to ${len} bytes`, truncate(frame, len), len < l3Offset ? 'malformed_l2' : l3Reason));
  }
  out.push(pass(`${label} whole (${frame.length} bytes)`, frame, flow));
  return out;
}

const truncationCases: Fixture[] = [
  ...truncations('IPv4 TCP', ether(v4(syn)), 14, 'malformed_ipv4', SYN4),
  ...truncations('IPv6 UDP', ether(v6(dns)), 14, 'malformed_ipv6', DNS6),
  ...truncations('802.1Q IPv4 UDP', ether(v4(dns), { vlans: [q(10)] }), 18, 'malformed_ipv4', DNS4),
];

const rule = (map: Rule['map'], cidr: string, ruleId: number, extra: Partial<Rule> = {}): Rule => ({ map, cidr, ruleId, ...extra });
/** A fixture with rules installed first; `counts` lists the rules that must count the packet. */
const withRules = (f: Fixture, rules: Rule[], counts: number[] = []): Fixture => ({ ...f, rules, counts });
const SRC_A4 = rule('xw_src_v4', '198.51.100.0/24', 11);

const denyCases: Fixture[] = [
  withRules(drop('deny source v4 /24', ether(v4(syn)), 'deny_src_cidr'), [SRC_A4], [11]),
  withRules(drop('deny destination v4 /32', ether(v4(dns)), 'deny_dst_cidr'), [rule('xw_dst_v4', `${B4}/32`, 12)], [12]),
  withRules(drop('deny source v6 /48', ether(v6(syn)), 'deny_src_cidr'), [rule('xw_src_v6', '2001:db8:aaaa::/48', 13)], [13]),
  withRules(drop('deny destination v6 /64', ether(v6(dns)), 'deny_dst_cidr'), [rule('xw_dst_v6', '2001:db8:bbbb::/64', 14)], [14]),
  withRules(drop('deny source v4 /0 catches everything, VLAN-tagged too', ether(v4(dns), { vlans: [ad(100), q(10)] }), 'deny_src_cidr'), [rule('xw_src_v4', '0.0.0.0/0', 15)], [15]),
  withRules(drop('deny source v4 host (hash)', ether(v4(syn)), 'deny_src_cidr'), [rule('xw_src_host_v4', `${A4}/32`, 41)], [41]),
  withRules(drop('deny destination v6 host (hash)', ether(v6(dns)), 'deny_dst_cidr'), [rule('xw_dst_host_v6', `${B6}/128`, 42)], [42]),
  withRules(pass('a host route for another address does not match', ether(v4(syn)), SYN4), [rule('xw_src_host_v4', '198.51.100.99/32', 43)]),
  withRules(drop('the host hash is consulted before the trie', ether(v4(syn)), 'deny_src_cidr'), [rule('xw_src_host_v4', `${A4}/32`, 44), SRC_A4], [44]),
  withRules(drop('source is checked before destination', ether(v4(syn)), 'deny_src_cidr'), [SRC_A4, rule('xw_dst_v4', '192.0.2.0/24', 22)], [11]),
  withRules(drop('deny rule without a counter entry drops and creates it', ether(v4(syn)), 'deny_src_cidr'), [{ ...SRC_A4, counted: false }], [11]),
  withRules(pass('a rule that does not match gets no counter entry', ether(v4(syn)), SYN4), [rule('xw_src_v4', '203.0.113.0/24', 37, { counted: false })]),
  withRules(drop('deny IPv4 fragment by source (no ports needed)', ether(v4(rawL4(IPPROTO.udp, Buffer.alloc(16)), { fragOffset: 64 })), 'deny_src_cidr'), [SRC_A4], [11]),
  withRules(pass('more specific allow entry inside a deny prefix passes', ether(v4(syn)), SYN4), [SRC_A4, rule('xw_src_v4', `${A4}/32`, 32, { action: Action.allow })]),
  // DIR-24 (IPv4 up to /24) and the trie behind it for /25../31. A4 is 198.51.100.7.
  withRules(drop('deny v4 /16 via the DIR-24 table', ether(v4(syn)), 'deny_src_cidr'), [rule('xw_src_v4', '198.51.0.0/16', 51)], [51]),
  withRules(drop('a /25 inside a /24 wins over it (trie behind a flagged slot)', ether(v4(syn)), 'deny_src_cidr'), [rule('xw_src_v4', '198.51.100.0/24', 52), rule('xw_src_v4', '198.51.100.0/25', 53)], [53]),
  withRules(drop('the /24 still matches where its /25 does not cover', ether(v4(dns)), 'deny_dst_cidr'), [rule('xw_dst_v4', '192.0.2.0/24', 54), rule('xw_dst_v4', '192.0.2.128/25', 55)], [54]),
  withRules(pass('an allow /24 inside a deny /16 passes', ether(v4(syn)), SYN4), [rule('xw_src_v4', '198.51.0.0/16', 56), rule('xw_src_v4', '198.51.100.0/24', 57, { action: Action.allow })]),
  withRules(pass('a /25 beside the address does not match, nor does its flag', ether(v4(syn)), SYN4), [rule('xw_src_v4', '198.51.100.128/25', 58)]),
  // DIR-24-8 second level: a /24 holding a /25../31 gets a block of 256 slots. A4 is 198.51.100.7.
  withRules(drop('a /31 covering the address denies (second-level block)', ether(v4(syn)), 'deny_src_cidr'), [rule('xw_src_v4', '198.51.100.6/31', 61)], [61]),
  withRules(pass('a /31 ending just below the address does not match', ether(v4(syn)), SYN4), [rule('xw_src_v4', '198.51.100.4/31', 62)]),
  withRules(pass('a /29 starting just above the address does not match', ether(v4(syn)), SYN4), [rule('xw_src_v4', '198.51.100.8/29', 63)]),
  withRules(drop('the longest of nested /26, /28, /30 wins in the block', ether(v4(syn)), 'deny_src_cidr'), [rule('xw_src_v4', '198.51.100.0/26', 64), rule('xw_src_v4', '198.51.100.4/30', 66), rule('xw_src_v4', '198.51.100.0/28', 65)], [66]),
  withRules(pass('an allow /31 inside a deny /30 passes', ether(v4(syn)), SYN4), [rule('xw_src_v4', '198.51.100.4/30', 67), rule('xw_src_v4', '198.51.100.6/31', 68, { action: Action.allow })]),
  withRules(drop('a block slot no /25../31 covers falls through to its /24', ether(v4(syn)), 'deny_src_cidr'), [rule('xw_src_v4', '198.51.100.0/24', 69), rule('xw_src_v4', '198.51.100.128/25', 70)], [69]),
  withRules(drop('a block slot no /25../31 covers falls through to a covering /8', ether(v4(syn)), 'deny_src_cidr'), [rule('xw_src_v4', '198.0.0.0/8', 71), rule('xw_src_v4', '198.51.100.64/26', 72)], [71]),
  withRules(drop('the last address of a /25 (.127) is in it', ether(ipv4({ src: '198.51.100.127', dst: B4 }, syn)), 'deny_src_cidr'), [rule('xw_src_v4', '198.51.100.0/25', 73)], [73]),
  withRules(pass('the first address after a /25 (.128) is not', ether(ipv4({ src: '198.51.100.128', dst: B4 }, syn)), { ...SYN4, src: '198.51.100.128' }), [rule('xw_src_v4', '198.51.100.0/25', 74)]),
  withRules(drop('destination /27 through the destination block', ether(v4(dns)), 'deny_dst_cidr'), [rule('xw_dst_v4', '192.0.2.0/27', 75)], [75]),
  // The /0 is xw_config's default, not 2^24 slot writes: it applies wherever no longer prefix decides.
  withRules(pass('an allow /25 inside a deny /0 passes (block over the default)', ether(v4(syn)), SYN4), [rule('xw_src_v4', '0.0.0.0/0', 76), rule('xw_src_v4', '198.51.100.0/25', 77, { action: Action.allow })]),
  withRules(drop('a deny /0 catches a block slot no /25 covers', ether(v4(syn)), 'deny_src_cidr'), [rule('xw_src_v4', '0.0.0.0/0', 78), rule('xw_src_v4', '198.51.100.128/25', 79)], [78]),
  withRules(pass('an allow /16 inside a deny /0 passes', ether(v4(syn)), SYN4), [rule('xw_src_v4', '0.0.0.0/0', 80), rule('xw_src_v4', '198.51.0.0/16', 81, { action: Action.allow })]),
  withRules(drop('deny destination v4 /0', ether(v4(dns)), 'deny_dst_cidr'), [rule('xw_dst_v4', '0.0.0.0/0', 82)], [82]),
  withRules(
    pass('v4 deny prefix does not match the v6 family', ether(ipv6({ src: '::ffff:c633:6407', dst: B6 }, dns)), { ...DNS6, src: '::ffff:c633:6407' }), // ::ffff:198.51.100.7
    [SRC_A4],
  ),
  withRules(pass('neighbouring v6 prefix does not match', ether(v6(dns)), DNS6), [rule('xw_src_v6', '2001:db8:aaab::/48', 34)]),
  withRules(drop('malformed packets are dropped before lookups (no rule counted)', ether(v4(syn, { ihl: 4 })), 'malformed_ipv4'), [rule('xw_src_v4', '198.0.0.0/8', 35)]),
  withRules(pass('ARP passes a deny covering its sender', ether(arp({ senderIp: A4, targetIp: B4 }))), [rule('xw_src_v4', '198.0.0.0/8', 36)]),
];

// Egress: the packet leaves this host, so the flow key swaps to remote -> local.
const out4 = (l4: Parameters<typeof ipv4>[1], extra: Partial<Parameters<typeof ipv4>[0]> = {}) =>
  ipv4({ src: B4, dst: A4, ...extra }, l4);
const egressCases: Fixture[] = [
  { ...pass('egress IPv4 TCP SYN-ACK (key swapped)', ether(out4(tcp({ sport: 443, dport: 40000, flags: TCP.syn | TCP.ack }))), flow4(40000, 443, IPPROTO.tcp, TCP.syn | TCP.ack)), hook: 'egress' },
  { ...pass('egress IPv6 UDP (key swapped)', ether(ipv6({ src: B6, dst: A6 }, udp({ sport: 53, dport: 53000 }))), DNS6), hook: 'egress' },
  { ...pass('egress ARP', ether(arp({ senderIp: B4, targetIp: A4 }))), hook: 'egress' },
  // ICMP type and code are not endpoints: they keep their places in the key.
  { ...pass('egress 802.1Q IPv4 ICMP host unreachable', ether(out4(icmp({ type: 3, code: 1 })), { vlans: [q(10)] }), flow4(3, 1, IPPROTO.icmp)), hook: 'egress' },
  { name: 'egress malformed IPv4 passes, counted as malformed', frame: ether(out4(syn, { ihl: 4 })), hook: 'egress', verdict: 'pass', reason: 'malformed_ipv4' },
  { name: 'egress IPv6 extension limit passes, counted', frame: ether(ipv6({ src: B6, dst: A6, ext: Array.from({ length: 7 }, () => ext('dstopts')) }, dns)), hook: 'egress', verdict: 'pass', reason: 'ipv6_ext_limit' },
  { name: 'egress three VLAN tags pass, counted', frame: ether(out4(dns), { vlans: [q(1), q(2), q(3)] }), hook: 'egress', verdict: 'pass', reason: 'malformed_l2' },
  { name: 'egress truncated UDP passes, counted', frame: ether(out4(rawL4(IPPROTO.udp, Buffer.alloc(5)))), hook: 'egress', verdict: 'pass', reason: 'malformed_l4' },
  { ...withRules(pass('egress does not filter: a deny rule matching the peer', ether(out4(syn)), flow4(443, 40000, IPPROTO.tcp, TCP.syn)), [rule('xw_dst_v4', '198.51.100.0/24', 41)]), hook: 'egress' },
  {
    name: 'egress GSO super-packet with IPv4 total length 0 (BIG TCP)',
    frame: ether(out4(syn, { totalLength: 0 })),
    hook: 'egress',
    gsoSize: 1448,
    verdict: 'pass',
    reason: 'pass_no_match',
    flow: flow4(443, 40000, IPPROTO.tcp, TCP.syn),
  },
  { name: 'egress IPv4 total length 0 without GSO is malformed', frame: ether(out4(syn, { totalLength: 0 })), hook: 'egress', verdict: 'pass', reason: 'malformed_ipv4' },
  {
    name: 'ingress IPv4 total length 0 is malformed (no GSO before XDP)',
    frame: ether(v4(syn, { totalLength: 0 })),
    verdict: 'drop',
    reason: 'malformed_ipv4',
  },
];

// ---------------------------------------------------------------- harness

let object: BpfObject;
let progs: Record<Hook, BpfProgram>;
let maps: Record<string, BpfMap>;

beforeAll(async () => {
  object = BpfObject.open(OBJECT_PATH);
  for (const name of [MAPS.srcV4, MAPS.dstV4, MAPS.srcV6, MAPS.dstV6]) object.setMapMaxEntries(name, 1024);
  object.setMapMaxEntries(MAPS.ruleStats, 1024);
  object.setMapMaxEntries(MAPS.flows, 4096);
  await object.load();
  progs = { ingress: object.program(PROGRAMS.ingress), egress: object.program(PROGRAMS.egress) };
  maps = Object.fromEntries(Object.values(MAPS).map((name) => [name, object.map(name)]));
  // The loopback device counts in interface slot 1, as attach assigns slots.
  maps[MAPS.ifslots]!.update(encodeRuleId(LO), encodeRuleId(LO_SLOT));
});

afterAll(() => object?.close());

beforeEach(async () => {
  for (const [name, map] of Object.entries(maps)) if (!KEPT_MAPS.has(name)) await clearMap(map);
  // Every lookup on, as when rules of every kind exist (the control plane sets these bits).
  const config = Buffer.alloc(Layout.config.size);
  config.writeUInt32LE(ALL_FEATURES, Layout.config.features);
  maps[MAPS.config]!.update(encodeRuleId(0), config);
  for (const [name, slots] of dir24Touched) {
    const { keys, count } = packSlotPairs(new Dir24Index(), [...slots]);
    if (count > 0) await maps[name]!.updateBatch(keys, Buffer.alloc(count * 8), count);
    slots.clear();
  }
  dir24Indexes = new Map();
});

const LO_SLOT = 1;
const ALL_FEATURES = Feature.srcV4 | Feature.dstV4 | Feature.srcV6 | Feature.dstV6;
// The DIR-24 tables have 2^24 slots: zero only those a test wrote. Blocks are
// reachable only through a first-level slot, and are rewritten whole when
// given out. The interface slots are set once.
const KEPT_MAPS = new Set<string>([MAPS.srcDir24, MAPS.dstDir24, MAPS.srcDir24L2, MAPS.dstDir24L2, MAPS.ifslots]);
const dir24Touched = new Map<string, Set<number>>([[MAPS.srcDir24, new Set()], [MAPS.dstDir24, new Set()]]);
let dir24Indexes = new Map<string, Dir24Index>();

async function clearMap(map: BpfMap): Promise<void> {
  if (map.type.includes('array')) {
    // Array slots cannot be deleted: zero them, in one batch.
    const keys = new Uint32Array(map.maxEntries).map((_, i) => i);
    await map.updateBatch(Buffer.from(keys.buffer), Buffer.alloc(map.maxEntries * map.valueStride), map.maxEntries);
    return;
  }
  for (let key = map.nextKey(null); key; key = map.nextKey(null)) map.delete(key);
}

/**
 * Flow times come from bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC as of the
 * last tick, so up to one tick (4 ms at HZ=250; 10 ms covers HZ=100) behind
 * process.hrtime(), never ahead.
 */
const COARSE_CLOCK_SLACK_NS = 10_000_000n;

/** struct xdp_md with ingress_ifindex set; data_end must equal the frame length. */
function xdpCtx(frameLength: number, ifindex: number): Buffer {
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(frameLength, 4); // data_end
  ctx.writeUInt32LE(ifindex, 12); // ingress_ifindex
  return ctx;
}

/** struct __sk_buff (192 bytes, uapi layout) with only gso_size set. */
function skbCtx(gsoSize: number): Buffer {
  const ctx = Buffer.alloc(192);
  ctx.writeUInt16LE(1, 164); // gso_segs: a GSO skb has at least one
  ctx.writeUInt32LE(gsoSize, 176); // gso_size
  return ctx;
}

function run(hook: Hook, frame: Buffer, gsoSize?: number): number {
  const ctxIn = hook === 'ingress' ? xdpCtx(frame.length, LO) : gsoSize ? skbCtx(gsoSize) : undefined;
  return progs[hook].testRunSync({ data: frame, ctxIn, dataSizeOut: 0 }).retval;
}

function lpmKey(cidr: string): Buffer {
  const [addr = '', len = ''] = cidr.split('/');
  const family = addr.includes(':') ? 6 : 4;
  return encodeLpmKey(family, family === 4 ? ipv4Bytes(addr) : ipv6Bytes(addr), Number(len));
}

/** Host hashes are keyed by the bare address. */
function hostKey(cidr: string): Buffer {
  const [addr = ''] = cidr.split('/');
  return addr.includes(':') ? ipv6Bytes(addr) : ipv4Bytes(addr);
}

/** One value per possible CPU: what user space writes into a per-CPU map. */
function perCpu(map: BpfMap, value: Buffer): Buffer {
  const out = Buffer.alloc(map.valueStride);
  const slot = map.valueStride / cpusOf(map);
  for (let i = 0; i < cpusOf(map); i++) value.copy(out, i * slot);
  return out;
}

/** Installs rules as the control plane does (the feature bits stay all set: see ALL_FEATURES). */
async function installRules(rules: Rule[]): Promise<void> {
  for (const rule of rules) {
    const value = encodeRuleValue({ ruleId: rule.ruleId, action: rule.action ?? Action.deny, flags: 0 });
    const prefixLen = Number(rule.cidr.split('/')[1]);
    const v4Prefix = rule.map === 'xw_src_v4' || rule.map === 'xw_dst_v4';
    // IPv4 prefixes up to /24 live only in the DIR-24 table; /25../31 in the trie, flagged there.
    if (!v4Prefix || !Dir24Index.holds(prefixLen)) {
      maps[rule.map]!.update(rule.map.includes('_host_') ? hostKey(rule.cidr) : lpmKey(rule.cidr), value);
    }
    if (v4Prefix) await placeInDir24(rule.map === 'xw_src_v4' ? MAPS.srcDir24 : MAPS.dstDir24, rule, prefixLen);
    if (rule.counted ?? true) {
      const stats = maps[MAPS.ruleStats]!;
      stats.update(encodeRuleId(rule.ruleId), perCpu(stats, Buffer.alloc(Layout.counter.size)));
    }
  }
}

/**
 * Places an IPv4 prefix rule in the DIR-24-8 table the way the control plane
 * does, through its index: blocks, then first-level slots, then the /0
 * default in xw_config.
 */
async function placeInDir24(mapName: string, rule: Rule, prefixLen: number): Promise<void> {
  const l2 = maps[mapName === MAPS.srcDir24 ? MAPS.srcDir24L2 : MAPS.dstDir24L2]!;
  const index = dir24Indexes.get(mapName) ?? new Dir24Index(l2.maxEntries / DIR24_BLOCK_PAIRS);
  dir24Indexes.set(mapName, index);
  const network = ipv4Bytes(rule.cidr.split('/')[0]!).readUInt32BE(0);
  const slots = index.add({ network, prefixLen, ruleId: rule.ruleId, allow: rule.action === Action.allow });
  const blocks = packBlocks(index.takeBlockWrites());
  if (blocks.count > 0) await l2.updateBatch(blocks.keys, blocks.values, blocks.count);
  const pairs = packSlotPairs(index, slots);
  if (pairs.count > 0) await maps[mapName]!.updateBatch(pairs.keys, pairs.values, pairs.count);
  index.commitReleased();
  for (const slot of slots) dir24Touched.get(mapName)!.add(slot);
  const config = maps[MAPS.config]!;
  const value = config.lookup(encodeRuleId(0))!;
  value.writeUInt32LE(index.defaultValue(), mapName === MAPS.srcDir24 ? Layout.config.v4Default : Layout.config.v4Default + 4);
  config.update(encodeRuleId(0), value);
}

interface StatsRow {
  ifindex: number;
  direction: number;
  verdict: number;
  reason: number;
  packets: bigint;
  bytes: bigint;
}

async function statsRows(): Promise<StatsRow[]> {
  const map = maps[MAPS.stats]!;
  const { keys, values, count } = await map.lookupAll();
  const rows: StatsRow[] = [];
  for (let i = 0; i < count; i++) {
    const counter = sumCounters(values, i * map.valueStride, map.valueStride, cpusOf(map));
    if (counter.packets === 0n && counter.bytes === 0n) continue;
    const { ifslot, ...key } = statsIndexParts(keys.readUInt32LE(i * 4));
    rows.push({ ifindex: ifslot === LO_SLOT ? LO : -ifslot, ...key, ...counter });
  }
  return rows;
}

function ruleCounter(ruleId: number): Counter | null {
  const map = maps[MAPS.ruleStats]!;
  return map.lookup(encodeRuleId(ruleId)) ? readRuleHits(map, maps[MAPS.ruleHitCache]!, ruleId) : null;
}

function addr16(addr: string): Buffer {
  return addr.includes(':') ? ipv6Bytes(addr) : ipv4Mapped(addr);
}

function flowKey(flow: ExpectedFlow): Buffer {
  const family = flow.src.includes(':') ? 6 : 4;
  return encodeFlowKey({ src: addr16(flow.src), dst: addr16(flow.dst), sport: flow.sport, dport: flow.dport, ifindex: LO, proto: flow.proto, family });
}

interface FlowRead {
  packets: [bigint, bigint];
  bytes: [bigint, bigint];
  tcpFlags: [number, number];
  /** OR over CPUs of the unused cached verdict (enum xw_cache) and the largest unused generation: both stay 0. */
  cachedVerdict: number;
  rulesGen: number;
  firstSeenNs: bigint;
  lastSeenNs: bigint;
}

/** The flow's value summed over CPUs, per direction; null when absent. */
function readFlow(flow: ExpectedFlow): FlowRead | null {
  const map = maps[MAPS.flows]!;
  const value = map.lookup(flowKey(flow));
  if (!value) return null;
  const L = Layout.flowValue;
  const cpus = cpusOf(map);
  const slot = map.valueStride / cpus;
  const dir = (d: number) => sumCounters(value, 0, map.valueStride, cpus, L.dir + d * Layout.counter.size);
  const read: FlowRead = {
    packets: [dir(Direction.ingress).packets, dir(Direction.egress).packets],
    bytes: [dir(Direction.ingress).bytes, dir(Direction.egress).bytes],
    tcpFlags: [0, 0],
    cachedVerdict: Cache.none,
    rulesGen: 0,
    firstSeenNs: 0n,
    lastSeenNs: 0n,
  };
  for (let cpu = 0; cpu < cpus; cpu++) {
    const base = cpu * slot;
    const first = value.readBigUInt64LE(base + L.firstSeenNs);
    if (first === 0n) continue;
    if (read.firstSeenNs === 0n || first < read.firstSeenNs) read.firstSeenNs = first;
    const last = value.readBigUInt64LE(base + L.lastSeenNs);
    if (last > read.lastSeenNs) read.lastSeenNs = last;
    read.tcpFlags[0] |= value.readUInt8(base + L.tcpFlags + Direction.ingress);
    read.tcpFlags[1] |= value.readUInt8(base + L.tcpFlags + Direction.egress);
    read.cachedVerdict |= value.readUInt8(base + L.cachedVerdict);
    read.rulesGen = Math.max(read.rulesGen, value.readUInt32LE(base + L.rulesGen));
  }
  return read;
}

async function flowCount(): Promise<number> {
  return (await maps[MAPS.flows]!.lookupAll()).count;
}

// ---------------------------------------------------------------- the tables

async function check(f: Fixture): Promise<void> {
  const hook = f.hook ?? 'ingress';
  await installRules(f.rules ?? []);
  const before = process.hrtime.bigint(); // CLOCK_MONOTONIC, the clock flow times come from
  const retval = run(hook, f.frame, f.gsoSize);
  const after = process.hrtime.bigint();

  if (hook === 'ingress') expect(retval).toBe(f.verdict === 'drop' ? XDP_DROP : XDP_PASS);
  else expect(retval).toBe(TC_ACT_OK);

  // Exactly one counter moved: this packet, its verdict and reason.
  expect(await statsRows()).toEqual([
    {
      ifindex: LO,
      direction: Direction[hook],
      verdict: Verdict[f.verdict],
      reason: Reason[f.reason],
      packets: 1n,
      bytes: BigInt(f.frame.length),
    },
  ]);

  // Counters of rules that did not decide stay as the control plane left them.
  const counted = new Set(f.counts ?? []);
  for (const rule of f.rules ?? []) {
    const untouched = (rule.counted ?? true) ? { packets: 0n, bytes: 0n } : null;
    const hit = { packets: 1n, bytes: BigInt(f.frame.length) };
    expect(ruleCounter(rule.ruleId)).toEqual(counted.has(rule.ruleId) ? hit : untouched);
  }

  if (!f.flow) {
    expect(await flowCount()).toBe(0);
    return;
  }
  expect(await flowCount()).toBe(1);
  const read = readFlow(f.flow);
  expect(read).not.toBeNull();
  const d = Direction[hook];
  const expected: FlowRead = {
    packets: [0n, 0n],
    bytes: [0n, 0n],
    tcpFlags: [0, 0],
    // Nothing is cached in the flow: every packet is decided before the flow table.
    cachedVerdict: Cache.none,
    rulesGen: 0,
    firstSeenNs: read!.firstSeenNs,
    lastSeenNs: read!.firstSeenNs,
  };
  expected.packets[d] = 1n;
  expected.bytes[d] = BigInt(f.frame.length);
  expected.tcpFlags[d] = f.flow.tcpFlags ?? 0;
  expect(read).toEqual(expected);
  expect(read!.firstSeenNs >= before - COARSE_CLOCK_SLACK_NS && read!.firstSeenNs <= after).toBe(true);
}

const tables: Record<string, Fixture[]> = {
  'parse paths': parsePaths,
  'IPv4 options, fragments and lengths': ipv4Cases,
  'IPv6 extension chains': ipv6Cases,
  'VLAN tags': vlanCases,
  truncation: truncationCases,
  'deny lists': denyCases,
  'TC egress': egressCases,
};

for (const [title, fixtures] of Object.entries(tables)) {
  describe(title, () => {
    it.each(fixtures.map((f) => [f.name, f] as const))('%s', async (_name, f) => check(f));
  });
}

it('has at least 60 named fixtures with unique names', () => {
  const names = Object.values(tables).flat().map((f) => f.name);
  expect(names.length).toBeGreaterThanOrEqual(60);
  expect(new Set(names).size).toBe(names.length);
});

// ---------------------------------------------------------------- flows over time

describe('flow accounting across packets', () => {
  it('a TCP handshake seen both ways ends in one entry', async () => {
    const t0 = process.hrtime.bigint();
    const synFrame = ether(v4(syn));
    const synAck = ether(out4(tcp({ sport: 443, dport: 40000, flags: TCP.syn | TCP.ack })));
    const ackFrame = ether(v4(tcp({ sport: 40000, dport: 443, flags: TCP.ack, payload: Buffer.from('hello') })));
    expect(run('ingress', synFrame)).toBe(XDP_PASS);
    expect(run('egress', synAck)).toBe(TC_ACT_OK);
    expect(run('ingress', ackFrame)).toBe(XDP_PASS);
    const t1 = process.hrtime.bigint();

    expect(await flowCount()).toBe(1);
    const read = readFlow(SYN4)!;
    expect(read.packets).toEqual([2n, 1n]);
    expect(read.bytes).toEqual([BigInt(synFrame.length + ackFrame.length), BigInt(synAck.length)]);
    expect(read.tcpFlags).toEqual([TCP.syn | TCP.ack, TCP.syn | TCP.ack]);
    expect(t0 - COARSE_CLOCK_SLACK_NS <= read.firstSeenNs && read.firstSeenNs <= read.lastSeenNs && read.lastSeenNs <= t1).toBe(true);

    const rows = await statsRows();
    const count = (direction: number) => rows.find((r) => r.direction === direction && r.reason === Reason.pass_no_match)?.packets;
    expect(count(Direction.ingress)).toBe(2n);
    expect(count(Direction.egress)).toBe(1n);
  });

  it('a SYN of an existing flow (a retransmit, either way) counts into its entry', async () => {
    const synFrame = ether(v4(syn));
    const outSyn = ether(out4(tcp({ sport: 443, dport: 40000, flags: TCP.syn })));
    expect(run('ingress', synFrame)).toBe(XDP_PASS);
    expect(run('ingress', synFrame)).toBe(XDP_PASS);
    expect(run('egress', outSyn)).toBe(TC_ACT_OK);
    expect(run('ingress', ether(v6(syn)))).toBe(XDP_PASS);
    expect(run('ingress', ether(v6(syn)))).toBe(XDP_PASS);
    expect(await flowCount()).toBe(2);
    const read = readFlow(SYN4)!;
    expect(read.packets).toEqual([2n, 1n]);
    expect(read.bytes).toEqual([BigInt(2 * synFrame.length), BigInt(outSyn.length)]);
    expect(read.tcpFlags).toEqual([TCP.syn, TCP.syn]);
    expect(readFlow(flow6(40000, 443, IPPROTO.tcp))!.packets).toEqual([2n, 0n]);
  });

  it('a ping and its reply end in one entry, v4 and v6', async () => {
    const reply = ether(out4(icmp({ type: 0, rest: 0x00010001 })));
    expect(run('ingress', ether(v4(ping)))).toBe(XDP_PASS);
    expect(run('egress', reply)).toBe(TC_ACT_OK);
    expect(readFlow(flow4(1, 1, IPPROTO.icmp))!.packets).toEqual([1n, 1n]);
    expect(run('ingress', ether(v6(ping6)))).toBe(XDP_PASS);
    expect(run('egress', ether(ipv6({ src: B6, dst: A6 }, icmpv6({ type: 129, rest: 0x00010001 }))))).toBe(TC_ACT_OK);
    expect(readFlow(flow6(1, 1, IPPROTO.icmpv6))!.packets).toEqual([1n, 1n]);
    expect(await flowCount()).toBe(2);
  });

  it('IPv6 denies are decided before the flow table: a new rule applies to an established flow at once', async () => {
    const frame = ether(v6(syn));
    expect(run('ingress', frame)).toBe(XDP_PASS);
    await installRules([rule('xw_src_host_v6', `${A6}/128`, 31)]);
    expect(run('ingress', frame)).toBe(XDP_DROP);
    expect(readFlow(flow6(40000, 443, IPPROTO.tcp))!.packets).toEqual([1n, 0n]);
    expect(ruleCounter(31)?.packets).toBe(1n);
  });

  it('IPv4 denies are decided before the flow table: a new rule applies to an established flow at once', async () => {
    const frame = ether(v4(syn));
    expect(run('ingress', frame)).toBe(XDP_PASS);
    await installRules([rule('xw_src_v4', `${A4}/32`, 33)]);
    expect(run('ingress', frame)).toBe(XDP_DROP);
    expect(readFlow(SYN4)!.packets).toEqual([1n, 0n]);
    expect(ruleCounter(33)?.packets).toBe(1n);
  });

  it('a kind of rule whose feature bit is clear is not looked up (the control plane sets it once the rule exists)', async () => {
    await installRules([rule('xw_dst_host_v4', `${B4}/32`, 89), rule('xw_src_v6', '2001:db8:aaaa::/48', 90)]);
    const config = maps[MAPS.config]!;
    const value = config.lookup(encodeRuleId(0))!;
    value.writeUInt32LE(Feature.srcV4 | Feature.dstV6, Layout.config.features);
    config.update(encodeRuleId(0), value);
    expect(run('ingress', ether(v4(dns)))).toBe(XDP_PASS);
    expect(run('ingress', ether(v6(syn)))).toBe(XDP_PASS);
    value.writeUInt32LE(ALL_FEATURES, Layout.config.features);
    config.update(encodeRuleId(0), value);
    expect(run('ingress', ether(v4(dns)))).toBe(XDP_DROP);
    expect(run('ingress', ether(v6(syn)))).toBe(XDP_DROP);
  });

  it('a /24 left without a second-level block asks the trie (the blocks ran out)', async () => {
    dir24Indexes.set(MAPS.srcDir24, new Dir24Index(0));
    await installRules([rule('xw_src_v4', '198.51.100.0/24', 84), rule('xw_src_v4', '198.51.100.0/29', 85)]);
    expect(run('ingress', ether(v4(syn)))).toBe(XDP_DROP);
    expect(run('ingress', ether(ipv4({ src: '198.51.100.9', dst: B4 }, syn)))).toBe(XDP_DROP);
    expect(ruleCounter(85)?.packets).toBe(1n);
    expect(ruleCounter(84)?.packets).toBe(1n);
  });

  it('removing the last /25../31 of a /24 frees its block and the /24 answers alone', async () => {
    const index = new Dir24Index(1);
    dir24Indexes.set(MAPS.srcDir24, index);
    await installRules([rule('xw_src_v4', '198.51.100.0/24', 86), rule('xw_src_v4', '198.51.100.0/29', 87)]);
    expect(index.blocksUsed).toBe(1);
    expect(run('ingress', ether(v4(syn)))).toBe(XDP_DROP);
    expect(ruleCounter(87)?.packets).toBe(1n);
    const slots = index.remove({ network: ipv4Bytes('198.51.100.0').readUInt32BE(0), prefixLen: 29, ruleId: 87 });
    const pairs = packSlotPairs(index, slots);
    await maps[MAPS.srcDir24]!.updateBatch(pairs.keys, pairs.values, pairs.count);
    index.commitReleased();
    maps[MAPS.srcV4]!.delete(lpmKey('198.51.100.0/29'));
    expect(index.blocksUsed).toBe(0);
    expect(run('ingress', ether(v4(syn)))).toBe(XDP_DROP);
    expect(ruleCounter(86)?.packets).toBe(1n);
    // The freed block goes to the next /24 that needs one.
    await installRules([rule('xw_src_v4', '203.0.113.0/30', 88)]);
    expect(index.blocksUsed).toBe(1);
    expect(run('ingress', ether(ipv4({ src: '203.0.113.2', dst: B4 }, syn)))).toBe(XDP_DROP);
    expect(ruleCounter(88)?.packets).toBe(1n);
  });

  it('a flow first seen leaving the host has no cached verdict for what comes in', async () => {
    expect(run('egress', ether(out4(tcp({ sport: 443, dport: 40000, flags: TCP.syn | TCP.ack }))))).toBe(TC_ACT_OK);
    await installRules([rule('xw_src_v4', `${A4}/32`, 32)]);
    expect(run('ingress', ether(v4(syn)))).toBe(XDP_DROP);
  });

  it('different addresses, ports and protocols are different flows', async () => {
    run('ingress', ether(v4(syn)));
    run('ingress', ether(v4(tcp({ sport: 40001, dport: 443 }))));
    run('ingress', ether(v4(udp({ sport: 40000, dport: 443 }))));
    run('ingress', ether(ipv4({ src: '198.51.100.8', dst: B4 }, syn)));
    run('ingress', ether(v4(syn))); // the first one again
    expect(await flowCount()).toBe(4);
    expect(readFlow(SYN4)!.packets).toEqual([2n, 0n]);
  });

  it('denied packets never create or touch a flow', async () => {
    run('ingress', ether(v4(syn)));
    const before = readFlow(SYN4)!;
    await installRules([rule('xw_src_v4', `${A4}/32`, 7, { counted: false })]);
    for (let i = 0; i < 5; i++) expect(run('ingress', ether(v4(syn)))).toBe(XDP_DROP);
    expect(readFlow(SYN4)).toEqual(before);
    expect(ruleCounter(7)?.packets).toBe(5n);
  });

  it('counts repeated runs once each', async () => {
    const frame = ether(v6(dns));
    progs.ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, LO), dataSizeOut: 0, repeat: 100 });
    expect(readFlow(DNS6)!.packets).toEqual([100n, 0n]);
    const rows = await statsRows();
    expect(rows.map((r) => r.packets)).toEqual([100n]);
  });
});

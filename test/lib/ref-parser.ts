// A reference parser and classifier in TypeScript, written from the rules in
// xdp/lib/parse.h and xdp/lib/cidr.h, for the differential fuzz of the data
// plane (test/parser-fuzz.test.ts): what the XDP program must say about any
// frame, given deny rules and an empty policy. Deliberately plain (no cursor
// struct, no shared code with src/): a second, independent reading of the
// same rules.
import { Reason, type ReasonName } from '../../src/datapath/abi.js';

const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const TPIDS = new Set([0x8100, 0x88a8]);
const MAX_VLAN_DEPTH = 2;
const MAX_IPV6_EXT = 6;
const IPV6_EXT = new Set([0, 43, 44, 51, 60]); // hop-by-hop, routing, fragment, AH, destination options
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;

/** What the parser extracts, in packet order (not flow order). */
export interface Parsed {
  reason: ReasonName;
  family?: 4 | 6;
  proto?: number;
  /** 16 bytes; IPv4 as IPv4-mapped IPv6. */
  saddr?: Buffer;
  daddr?: Buffer;
  sport?: number;
  dport?: number;
  tcpFlags?: number;
}

const mapped = (v4: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), v4]);

/** Parses a frame as xw_parse() does with a frame fully in linear data (XDP, BPF_PROG_TEST_RUN). */
export function referenceParse(frame: Buffer): Parsed {
  // `limit` ends the current datagram; every header must fit before it.
  let limit = frame.length;
  let off = 0;
  const fits = (size: number) => size <= limit - off;

  if (!fits(14)) return { reason: 'malformed_l2' };
  let ethertype = frame.readUInt16BE(12);
  off = 14;
  for (let i = 0; i < MAX_VLAN_DEPTH && TPIDS.has(ethertype); i++) {
    if (!fits(4)) return { reason: 'malformed_l2' };
    ethertype = frame.readUInt16BE(off + 2);
    off += 4;
  }
  if (TPIDS.has(ethertype)) return { reason: 'malformed_l2' };

  const out: Parsed = { reason: 'pass_no_match' };
  let proto: number;
  let nonFirst = false;
  if (ethertype === ETH_P_IP) {
    const l3 = off;
    if (!fits(20) || frame[l3]! >> 4 !== 4) return { reason: 'malformed_ipv4' };
    off += 20;
    const headerLength = (frame[l3]! & 0x0f) * 4;
    const totalLength = frame.readUInt16BE(l3 + 2);
    if (headerLength < 20 || totalLength < headerLength || totalLength > limit - l3) return { reason: 'malformed_ipv4' };
    limit = l3 + totalLength;
    if (!fits(headerLength - 20)) return { reason: 'malformed_ipv4' };
    off += headerLength - 20;
    out.family = 4;
    out.saddr = mapped(frame.subarray(l3 + 12, l3 + 16));
    out.daddr = mapped(frame.subarray(l3 + 16, l3 + 20));
    nonFirst = (frame.readUInt16BE(l3 + 6) & 0x1fff) !== 0;
    proto = frame[l3 + 9]!;
  } else if (ethertype === ETH_P_IPV6) {
    const l3 = off;
    if (!fits(40) || frame[l3]! >> 4 !== 6) return { reason: 'malformed_ipv6' };
    off += 40;
    const payloadLength = frame.readUInt16BE(l3 + 4);
    if (payloadLength > limit - off) return { reason: 'malformed_ipv6' };
    limit = l3 + 40 + payloadLength;
    out.family = 6;
    out.saddr = Buffer.from(frame.subarray(l3 + 8, l3 + 24));
    out.daddr = Buffer.from(frame.subarray(l3 + 24, l3 + 40));
    proto = frame[l3 + 6]!;
    for (let i = 0; i < MAX_IPV6_EXT && IPV6_EXT.has(proto); i++) {
      if (!fits(8)) return { reason: 'malformed_ipv6' };
      const ext = off;
      off += 8;
      let length: number;
      if (proto === 44) {
        if (frame.readUInt16BE(ext + 2) & 0xfff8) {
          nonFirst = true;
          proto = frame[ext]!;
          break;
        }
        length = 8;
      } else if (proto === 51) {
        length = (frame[ext + 1]! + 2) * 4;
      } else {
        length = (frame[ext + 1]! + 1) * 8;
      }
      proto = frame[ext]!;
      if (!fits(length - 8)) return { reason: 'malformed_ipv6' };
      off += length - 8;
    }
    if (!nonFirst && IPV6_EXT.has(proto)) return { reason: 'ipv6_ext_limit' };
  } else {
    return { reason: 'pass_non_ip' };
  }

  out.proto = proto;
  out.sport = 0;
  out.dport = 0;
  out.tcpFlags = 0;
  if (nonFirst) return out;
  if (proto === IPPROTO_TCP) {
    if (!fits(20)) return { reason: 'malformed_l4' };
    const dataOffset = frame[off + 12]! >> 4;
    if (dataOffset < 5 || !fits(dataOffset * 4)) return { reason: 'malformed_l4' };
    out.sport = frame.readUInt16BE(off);
    out.dport = frame.readUInt16BE(off + 2);
    out.tcpFlags = frame[off + 13]!;
  } else if (proto === IPPROTO_UDP) {
    if (!fits(8)) return { reason: 'malformed_l4' };
    out.sport = frame.readUInt16BE(off);
    out.dport = frame.readUInt16BE(off + 2);
  } else if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    if (!fits(8)) return { reason: 'malformed_l4' };
    const type = frame[off]!;
    const echo = proto === IPPROTO_ICMP ? type === 8 || type === 0 : type === 128 || type === 129;
    if (echo) {
      out.sport = out.dport = frame.readUInt16BE(off + 4);
    } else {
      out.sport = type;
      out.dport = frame[off + 1]!;
    }
  }
  return out;
}

/** A deny rule as the classifier sees it. */
export interface DenyRule {
  id: number;
  direction: 'src' | 'dst';
  family: 4 | 6;
  /** Network address: 4 or 16 bytes. */
  network: Buffer;
  prefixLen: number;
}

function contains(rule: DenyRule, addr16: Buffer): boolean {
  const addr = rule.family === 4 ? addr16.subarray(12) : addr16;
  const whole = rule.prefixLen >> 3;
  for (let i = 0; i < whole; i++) if (addr[i] !== rule.network[i]) return false;
  const rest = rule.prefixLen & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((addr[whole]! ^ rule.network[whole]!) & mask) === 0;
}

/** The most specific deny rule of this direction containing the address, if any. */
function longestMatch(rules: readonly DenyRule[], direction: 'src' | 'dst', family: 4 | 6, addr: Buffer): DenyRule | undefined {
  let best: DenyRule | undefined;
  for (const rule of rules) {
    if (rule.direction !== direction || rule.family !== family || !contains(rule, addr)) continue;
    if (!best || rule.prefixLen > best.prefixLen) best = rule;
  }
  return best;
}

/** The ingress verdict: parse, then the source deny rules, then the destination ones (an empty policy accepts). */
export interface Classified extends Parsed {
  verdict: 'pass' | 'drop';
  ruleId: number;
}

export function referenceClassify(frame: Buffer, rules: readonly DenyRule[]): Classified {
  const parsed = referenceParse(frame);
  if (parsed.reason !== 'pass_no_match') {
    return { ...parsed, verdict: Reason[parsed.reason] >= 16 ? 'drop' : 'pass', ruleId: 0 };
  }
  const family = parsed.family!;
  const src = longestMatch(rules, 'src', family, parsed.saddr!);
  if (src) return { ...parsed, reason: 'deny_src_cidr', verdict: 'drop', ruleId: src.id };
  const dst = longestMatch(rules, 'dst', family, parsed.daddr!);
  if (dst) return { ...parsed, reason: 'deny_dst_cidr', verdict: 'drop', ruleId: dst.id };
  return { ...parsed, verdict: 'pass', ruleId: 0 };
}

/** The flow key the data plane files a packet under: remote -> local, ports swapped on egress (not for ICMP). */
export function referenceFlowKey(parsed: Parsed, hook: 'ingress' | 'egress', ifindex: number) {
  const egress = hook === 'egress';
  const icmp = parsed.proto === IPPROTO_ICMP || parsed.proto === IPPROTO_ICMPV6;
  const swapPorts = egress && !icmp;
  return {
    src: egress ? parsed.daddr! : parsed.saddr!,
    dst: egress ? parsed.saddr! : parsed.daddr!,
    sport: swapPorts ? parsed.dport! : parsed.sport!,
    dport: swapPorts ? parsed.sport! : parsed.dport!,
    ifindex,
    proto: parsed.proto!,
    family: parsed.family!,
  };
}

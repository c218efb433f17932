// The reference classifier: the evaluation order of xdp/lib/policy.h written
// plainly, rule by rule, for the differential test and for anyone who wants
// to know what a packet will meet. Pure: no I/O, no clock (the caller says
// what time it is and which flows this host opened).
//
//   ingress: a block that matches drops (deny_src_cidr, then deny_dst_cidr);
//   else the hook's rules in order, first match decides:
//     drop -> drop_rule (dryRun: would_drop, passes), pass -> pass_rule,
//     log -> pass_log; ratelimit (ingress only) -> pass_rule under the
//     rate, else ratelimit (dryRun: would_ratelimit, passes);
//   else the hook's default (the interface's own, an ifaceDefault entry,
//     where the configuration gives one): accept -> pass_no_match;
//     drop -> drop_policy, except ingress packets of a flow this host
//     opened -> pass_reply;
//   finally, a packet headed for a drop (or a would_drop/would_ratelimit)
//   that matches a failsafe entry passes as pass_failsafe (on egress with
//   its addresses and ports swapped: entries name the remote peer and the
//   local port).
import type { ReasonName } from '../datapath/abi.js';
import type { PortRange, RuleAction, TcpFlagsMatch } from './model.js';
import type { RateConf } from '../ratelimit/model.js';

export interface Prefix {
  family: 4 | 6;
  /** Network address, 4 or 16 bytes. */
  bytes: Uint8Array;
  prefixLen: number;
}

/**
 * A named list's entries as a rule references them ("src": "list:NAME"):
 * the address matches when some entry contains it (an empty list: never).
 * `version` names the list's content (its id and revision) for change
 * detection; classification reads only `prefixes`.
 */
export interface PrefixList {
  name: string;
  version: string;
  prefixes: readonly Prefix[];
}

/** A rule as both classifiers see it; its position in the list is its priority. */
export interface ClassRule {
  /** The rule's kernel id: events and rate-limit buckets name it (0: none, e.g. failsafe entries). */
  kernelId: number;
  /**
   * Its dense slot (src/policy/slots.ts): the index of its hits and rate
   * parameters in the kernel's arrays. 0 or absent: counted under kernelId
   * in xw_rule_stats instead (tables written without the engine).
   */
  slot?: number;
  action: RuleAction;
  dryRun: boolean;
  /** null: any interface; an ifindex no packet carries (0) for an interface not attached. */
  ifindex: number | null;
  src: Prefix | null;
  dst: Prefix | null;
  /** Instead of src / dst: a named list's entries. */
  srcList?: PrefixList | null;
  dstList?: PrefixList | null;
  proto: number | null;
  srcPort: PortRange | null;
  dstPort: PortRange | null;
  tcpFlags: TcpFlagsMatch | null;
  icmpType: number | null;
  icmpCode: number | null;
  vlan: number | null;
  /** Coarse CLOCK_MONOTONIC nanoseconds; 0n: never. */
  expiresNs: bigint;
  /** Action ratelimit: the kernel's bucket parameters. */
  rate?: RateConf | null;
  /**
   * An interface's own default policy (from the configuration), placed after
   * every real rule of its hook with only `ifindex` set: when it is the first
   * match it decides as the default would (drop: drop_policy, replies pass;
   * pass: pass_no_match), counted under no rule.
   */
  ifaceDefault?: boolean;
}

export interface ClassBlock {
  kernelId: number;
  prefix: Prefix;
  direction: 'src' | 'dst';
}

export type DefaultAction = 'accept' | 'drop';

export interface ReferencePolicy {
  ingress: readonly ClassRule[];
  egress: readonly ClassRule[];
  failsafe: readonly ClassRule[];
  blocks: readonly ClassBlock[];
  defaults: { ingress: DefaultAction; egress: DefaultAction };
}

/** What the parser extracts from a well-formed IP packet. */
export interface PacketFields {
  ifindex: number;
  family: 4 | 6;
  /** 4 or 16 bytes. */
  src: Uint8Array;
  dst: Uint8Array;
  proto: number;
  /** The upper-layer header was parsed: false for non-first fragments. */
  l4: boolean;
  /** Meaningful for TCP and UDP with l4. */
  sport: number;
  dport: number;
  /** Meaningful for TCP with l4. */
  tcpFlags: number;
  /** Meaningful for ICMP and ICMPv6 with l4. */
  icmpType: number;
  icmpCode: number;
  /** Innermost VLAN id, or null when untagged. */
  vlan: number | null;
}

export interface Decision {
  verdict: 'pass' | 'drop';
  reason: ReasonName;
  /** The counted rule or block; 0 when none. */
  ruleId: number;
}

export interface Environment {
  nowNs: bigint;
  /** Whether this host sent traffic of the packet's flow recently (egress recorded it). */
  isReply(packet: PacketFields): boolean;
  /** A ratelimit rule matched: whether its bucket admits the packet (src/ratelimit/reference.ts). Absent: admits. */
  rateLimit?(rule: ClassRule, packet: PacketFields): boolean;
}

export function prefixContains(prefix: Prefix, family: 4 | 6, addr: Uint8Array): boolean {
  if (prefix.family !== family) return false;
  const full = prefix.prefixLen >> 3;
  for (let i = 0; i < full; i++) if (prefix.bytes[i] !== addr[i]) return false;
  const rest = prefix.prefixLen & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((prefix.bytes[full]! ^ addr[full]!) & mask) === 0;
}

const hasPorts = (p: PacketFields) => p.l4 && (p.proto === 6 || p.proto === 17);
const isIcmp = (p: PacketFields) => p.l4 && (p.proto === 1 || p.proto === 58);
const inRange = (range: PortRange, port: number) => port >= range.lo && port <= range.hi;

export function ruleMatches(rule: ClassRule, p: PacketFields): boolean {
  if (rule.ifindex !== null && rule.ifindex !== p.ifindex) return false;
  if (rule.src && !prefixContains(rule.src, p.family, p.src)) return false;
  if (rule.dst && !prefixContains(rule.dst, p.family, p.dst)) return false;
  if (rule.srcList && !rule.srcList.prefixes.some((prefix) => prefixContains(prefix, p.family, p.src))) return false;
  if (rule.dstList && !rule.dstList.prefixes.some((prefix) => prefixContains(prefix, p.family, p.dst))) return false;
  if (rule.proto !== null && rule.proto !== p.proto) return false;
  if (rule.srcPort && !(hasPorts(p) && inRange(rule.srcPort, p.sport))) return false;
  if (rule.dstPort && !(hasPorts(p) && inRange(rule.dstPort, p.dport))) return false;
  if (rule.tcpFlags && !(p.l4 && p.proto === 6 && (p.tcpFlags & rule.tcpFlags.mask) === rule.tcpFlags.set)) return false;
  if (rule.icmpType !== null && !(isIcmp(p) && p.icmpType === rule.icmpType)) return false;
  if (rule.icmpCode !== null && !(isIcmp(p) && p.icmpCode === rule.icmpCode)) return false;
  if (rule.vlan !== null && p.vlan !== rule.vlan) return false;
  return true;
}

/** The first rule in order that matches and has not expired. */
export function firstMatch(rules: readonly ClassRule[], p: PacketFields, nowNs: bigint): ClassRule | undefined {
  return rules.find((r) => (r.expiresNs === 0n || r.expiresNs > nowNs) && ruleMatches(r, p));
}

/** The longest deny block containing the packet's source, else its destination. */
function blockMatch(blocks: readonly ClassBlock[], p: PacketFields): Decision | undefined {
  for (const direction of ['src', 'dst'] as const) {
    const addr = direction === 'src' ? p.src : p.dst;
    let best: ClassBlock | undefined;
    for (const block of blocks) {
      if (block.direction !== direction || !prefixContains(block.prefix, p.family, addr)) continue;
      if (!best || block.prefix.prefixLen > best.prefix.prefixLen) best = block;
    }
    if (best) return { verdict: 'drop', reason: direction === 'src' ? 'deny_src_cidr' : 'deny_dst_cidr', ruleId: best.kernelId };
  }
  return undefined;
}

export function classify(policy: ReferencePolicy, hook: 'ingress' | 'egress', p: PacketFields, env: Environment): Decision {
  const ingress = hook === 'ingress';
  let decision: Decision = { verdict: 'pass', reason: 'pass_no_match', ruleId: 0 };
  const blocked = ingress ? blockMatch(policy.blocks, p) : undefined;
  const rule = blocked ? undefined : firstMatch(policy[hook], p, env.nowNs);
  if (blocked) {
    decision = blocked;
  } else if (rule && !rule.ifaceDefault) {
    const ruleId = rule.kernelId;
    if (rule.action === 'drop') {
      decision = rule.dryRun ? { verdict: 'pass', reason: 'would_drop', ruleId } : { verdict: 'drop', reason: 'drop_rule', ruleId };
    } else if (rule.action === 'ratelimit' && ingress) {
      const admitted = env.rateLimit?.(rule, p) ?? true;
      decision = admitted
        ? { verdict: 'pass', reason: 'pass_rule', ruleId }
        : rule.dryRun ? { verdict: 'pass', reason: 'would_ratelimit', ruleId } : { verdict: 'drop', reason: 'ratelimit', ruleId };
    } else {
      decision = { verdict: 'pass', reason: rule.action === 'log' ? 'pass_log' : 'pass_rule', ruleId };
    }
  } else if (rule ? rule.action === 'drop' : policy.defaults[hook] === 'drop') {
    decision = ingress && env.isReply(p)
      ? { verdict: 'pass', reason: 'pass_reply', ruleId: 0 }
      : { verdict: 'drop', reason: 'drop_policy', ruleId: 0 };
  }
  // Failsafe entries are written from this host's side (remote peer, local port): an outgoing packet is looked up with its ends swapped.
  const asIncoming = ingress ? p : { ...p, src: p.dst, dst: p.src, sport: p.dport, dport: p.sport };
  const wouldDrop = decision.reason === 'would_drop' || decision.reason === 'would_ratelimit';
  if ((decision.verdict === 'drop' || wouldDrop) && firstMatch(policy.failsafe, asIncoming, env.nowNs)) {
    return { verdict: 'pass', reason: 'pass_failsafe', ruleId: 0 };
  }
  return decision;
}

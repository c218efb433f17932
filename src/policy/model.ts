// Policy rules (`/v1/rules`): the request form, validation into the
// canonical form that is stored and reported, and the field names the API
// promises. A rule that cannot match anything as written (ports without
// tcp/udp, an IPv4 source with an IPv6 destination, a range lo > hi) is
// refused with INVALID_RULE naming the field, never stored.
import { parseCidr, type Cidr } from '../rules/cidr.js';
import { InvalidRuleError } from '../errors.js';
import { isPrintableText } from '../text.js';
import { LIST_NAME } from '../lists/model.js';
import { parseBan, parseRate, rateView, type BanInput, type BanSpec, type RateInput, type RateSpec } from '../ratelimit/model.js';

export const RULE_ACTIONS = ['drop', 'pass', 'log', 'ratelimit'] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];
export const RULE_HOOKS = ['ingress', 'egress'] as const;
export type RuleHook = (typeof RULE_HOOKS)[number];

export const DEFAULT_PRIORITY = 1000;
export const MAX_PRIORITY = 65535;
export const MAX_RULE_COMMENT_LENGTH = 1024;
/** Seconds; ten years is long enough to mean "until I remember". */
export const MAX_TTL_SECONDS = 10 * 365 * 24 * 3600;

export const PROTOCOLS = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 } as const;
export type ProtocolName = keyof typeof PROTOCOLS;

/** TCP flag bits, in the order of the header's flag byte (FIN is bit 0). */
export const TCP_FLAG_BITS = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20, ece: 0x40, cwr: 0x80 } as const;
export type TcpFlagName = keyof typeof TCP_FLAG_BITS;

export interface PortRange {
  lo: number;
  hi: number;
}

/** Flags in `mask` must have the values they have in `set`. */
export interface TcpFlagsMatch {
  mask: number;
  set: number;
}

/** A rule as a client sends it (POST and PUT bodies). */
export interface RuleInput {
  action: RuleAction;
  priority?: number;
  hook?: RuleHook;
  iface?: string | null;
  /** A CIDR, a bare address, or "list:NAME" (a named list's entries). */
  src?: string | null;
  dst?: string | null;
  proto?: string | number | null;
  srcPort?: number | string | null;
  dstPort?: number | string | null;
  tcpFlags?: string | null;
  icmpType?: number | null;
  icmpCode?: number | null;
  vlan?: number | null;
  ttl?: number | null;
  expiresAt?: string | null;
  dryRun?: boolean;
  comment?: string | null;
  /** Action ratelimit only (src/ratelimit/model.ts). */
  rate?: RateInput | null;
  ban?: BanInput | null;
}

/** The canonical rule: what the store holds and the classifier compiles. */
export interface RuleSpec {
  action: RuleAction;
  priority: number;
  hook: RuleHook;
  iface: string | null;
  src: Cidr | null;
  dst: Cidr | null;
  /** The list named by "src": "list:NAME" (then src is null). */
  srcList: string | null;
  dstList: string | null;
  proto: number | null;
  srcPort: PortRange | null;
  dstPort: PortRange | null;
  tcpFlags: TcpFlagsMatch | null;
  icmpType: number | null;
  icmpCode: number | null;
  vlan: number | null;
  /** ISO 8601, or null: never expires. */
  expiresAt: string | null;
  dryRun: boolean;
  comment: string | null;
  /** Action ratelimit: its rate (null otherwise); ban optional. */
  rate: RateSpec | null;
  ban: BanSpec | null;
}

export interface PolicyRule extends RuleSpec {
  id: number;
  createdAt: string;
}

const invalid = (field: string, message: string): InvalidRuleError => new InvalidRuleError(field, `${field}: ${message}`);

const isInteger = (value: unknown, lo: number, hi: number): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= lo && value <= hi;

export function parseProto(value: string | number, field = 'proto'): number {
  if (typeof value === 'number') {
    if (!isInteger(value, 0, 255)) throw invalid(field, 'must be tcp, udp, icmp, icmpv6 or a protocol number 0..255');
    return value;
  }
  const lower = value.toLowerCase();
  if (lower in PROTOCOLS) return PROTOCOLS[lower as ProtocolName];
  if (/^\d{1,3}$/.test(value) && Number(value) <= 255) return Number(value);
  throw invalid(field, `"${value}" is not tcp, udp, icmp, icmpv6 or a protocol number 0..255`);
}

export function formatProto(proto: number): ProtocolName | number {
  const name = (Object.keys(PROTOCOLS) as ProtocolName[]).find((n) => PROTOCOLS[n] === proto);
  return name ?? proto;
}

export function parsePorts(value: number | string, field: string): PortRange {
  if (typeof value === 'number') {
    if (!isInteger(value, 0, 65535)) throw invalid(field, 'a port is an integer 0..65535');
    return { lo: value, hi: value };
  }
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(value);
  if (!m) throw invalid(field, `"${value}" is not a port or an inclusive range "LO-HI"`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > 65535 || hi > 65535) throw invalid(field, 'ports are 0..65535');
  if (lo > hi) throw invalid(field, `range ${lo}-${hi} has lo > hi`);
  return { lo, hi };
}

export const formatPorts = ({ lo, hi }: PortRange): number | string => (lo === hi ? lo : `${lo}-${hi}`);

export function parseTcpFlags(text: string, field = 'tcpFlags'): TcpFlagsMatch {
  let mask = 0;
  let set = 0;
  const parts = text.split(',').map((p) => p.trim().toLowerCase());
  if (parts.length === 0 || parts.some((p) => p === '' || p === '!')) throw invalid(field, 'a comma-separated list like "syn,!ack"');
  for (const part of parts) {
    const negated = part.startsWith('!');
    const name = negated ? part.slice(1) : part;
    if (!(name in TCP_FLAG_BITS)) throw invalid(field, `unknown flag "${name}" (fin, syn, rst, psh, ack, urg, ece, cwr)`);
    const bit = TCP_FLAG_BITS[name as TcpFlagName];
    if (mask & bit) throw invalid(field, `flag "${name}" named twice`);
    mask |= bit;
    if (!negated) set |= bit;
  }
  return { mask, set };
}

export function formatTcpFlags({ mask, set }: TcpFlagsMatch): string {
  return (Object.keys(TCP_FLAG_BITS) as TcpFlagName[])
    .filter((n) => mask & TCP_FLAG_BITS[n])
    .map((n) => (set & TCP_FLAG_BITS[n] ? n : `!${n}`))
    .join(',');
}

function parseAddress(value: string, field: string): Cidr {
  try {
    return parseCidr(value);
  } catch (error) {
    throw invalid(field, (error as Error).message);
  }
}

/** "list:NAME" in src or dst: the rule matches the addresses of a named list (src/lists). */
export const LIST_REF_PREFIX = 'list:';

/** The list a src/dst text references, or null for a CIDR. */
export function listRefOf(value: string): string | null {
  return value.startsWith(LIST_REF_PREFIX) ? value.slice(LIST_REF_PREFIX.length) : null;
}

export const listRef = (name: string): string => `${LIST_REF_PREFIX}${name}`;

/** A src or dst: a CIDR, or a list reference (whose name must be well formed; existence is checked when stored). */
function parseAddressOrList(value: string, field: 'src' | 'dst'): { cidr: Cidr | null; list: string | null } {
  const list = listRefOf(value);
  if (list === null) return { cidr: parseAddress(value, field), list: null };
  if (!LIST_NAME.test(list)) throw invalid(field, `"${value}": a list name is 1-64 letters, digits, "_", "." and "-", starting with a letter or digit`);
  return { cidr: null, list };
}

const IFACE = /^(?:[A-Za-z0-9_.-]{1,64}\/)?[A-Za-z0-9_.@:-]{1,15}$/;

/**
 * Validates a request into the canonical rule. `now` dates a ttl. Fields
 * that are null or absent leave the packet's field open.
 */
export function parseRule(input: RuleInput, now: Date): RuleSpec {
  if (!(RULE_ACTIONS as readonly string[]).includes(input.action)) throw invalid('action', 'must be drop, pass, log or ratelimit');
  const priority = input.priority ?? DEFAULT_PRIORITY;
  if (!isInteger(priority, 1, MAX_PRIORITY)) throw invalid('priority', `an integer 1..${MAX_PRIORITY} (lower is evaluated first)`);
  const hook = input.hook ?? 'ingress';
  if (!(RULE_HOOKS as readonly string[]).includes(hook)) throw invalid('hook', 'must be ingress or egress');
  const iface = input.iface ?? null;
  if (iface !== null && (!IFACE.test(iface) || iface.split('/').some((p) => p.startsWith('.')))) {
    throw invalid('iface', 'must be IFNAME or NETNS/IFNAME');
  }
  const { cidr: src, list: srcList } = input.src == null ? { cidr: null, list: null } : parseAddressOrList(input.src, 'src');
  const { cidr: dst, list: dstList } = input.dst == null ? { cidr: null, list: null } : parseAddressOrList(input.dst, 'dst');
  // A list may hold both families: only CIDRs written in the rule are checked against each other.
  if (src && dst && src.family !== dst.family) throw invalid('dst', `IPv${dst.family} while src is IPv${src.family}: no packet matches both`);
  const proto = input.proto == null ? null : parseProto(input.proto);
  const family = src?.family ?? dst?.family;
  if (proto === PROTOCOLS.icmp && family === 6) throw invalid('proto', 'icmp with IPv6 addresses: use icmpv6');
  if (proto === PROTOCOLS.icmpv6 && family === 4) throw invalid('proto', 'icmpv6 with IPv4 addresses: use icmp');
  const srcPort = input.srcPort == null ? null : parsePorts(input.srcPort, 'srcPort');
  const dstPort = input.dstPort == null ? null : parsePorts(input.dstPort, 'dstPort');
  const hasPorts = proto === PROTOCOLS.tcp || proto === PROTOCOLS.udp;
  if (srcPort && !hasPorts) throw invalid('srcPort', 'ports need proto tcp or udp');
  if (dstPort && !hasPorts) throw invalid('dstPort', 'ports need proto tcp or udp');
  const tcpFlags = input.tcpFlags == null ? null : parseTcpFlags(input.tcpFlags);
  if (tcpFlags && proto !== PROTOCOLS.tcp) throw invalid('tcpFlags', 'flags need proto tcp');
  const isIcmp = proto === PROTOCOLS.icmp || proto === PROTOCOLS.icmpv6;
  const icmpType = input.icmpType ?? null;
  const icmpCode = input.icmpCode ?? null;
  if (icmpType !== null && !isInteger(icmpType, 0, 255)) throw invalid('icmpType', 'an integer 0..255');
  if (icmpCode !== null && !isInteger(icmpCode, 0, 255)) throw invalid('icmpCode', 'an integer 0..255');
  if (icmpType !== null && !isIcmp) throw invalid('icmpType', 'needs proto icmp or icmpv6');
  if (icmpCode !== null && !isIcmp) throw invalid('icmpCode', 'needs proto icmp or icmpv6');
  const vlan = input.vlan ?? null;
  if (vlan !== null && !isInteger(vlan, 0, 4095)) throw invalid('vlan', 'a VLAN id 0..4095');
  const expiresAt = parseExpiry(input, now);
  const dryRun = input.dryRun ?? false;
  if (typeof dryRun !== 'boolean') throw invalid('dryRun', 'true or false');
  const comment = input.comment ?? null;
  if (comment !== null && (comment.length > MAX_RULE_COMMENT_LENGTH || !isPrintableText(comment))) {
    throw invalid('comment', `at most ${MAX_RULE_COMMENT_LENGTH} printable characters`);
  }
  let rate: RateSpec | null = null;
  let ban: BanSpec | null = null;
  if (input.action === 'ratelimit') {
    // Ingress only: limits are per remote source, and leaving them out of the TC program keeps its verification cheap.
    if (hook !== 'ingress') throw invalid('hook', 'ratelimit rules are ingress only');
    rate = parseRate(input.rate);
    ban = parseBan(input.ban, rate.per, MAX_TTL_SECONDS);
  } else if (input.rate != null || input.ban != null) {
    throw invalid(input.rate != null ? 'rate' : 'ban', 'only with action ratelimit');
  }
  return { action: input.action, priority, hook, iface, src, dst, srcList, dstList, proto, srcPort, dstPort, tcpFlags, icmpType, icmpCode, vlan, expiresAt, dryRun, comment, rate, ban };
}

function parseExpiry(input: RuleInput, now: Date): string | null {
  const { ttl, expiresAt } = input;
  if (ttl != null && expiresAt != null) throw invalid('ttl', 'give ttl or expiresAt, not both');
  if (ttl != null) {
    if (!isInteger(ttl, 1, MAX_TTL_SECONDS)) throw invalid('ttl', `whole seconds 1..${MAX_TTL_SECONDS}`);
    return new Date(now.getTime() + ttl * 1000).toISOString();
  }
  if (expiresAt == null) return null;
  const ms = Date.parse(expiresAt);
  if (!/^\d{4}-\d\d-\d\dT/.test(expiresAt) || Number.isNaN(ms)) throw invalid('expiresAt', 'an ISO 8601 date and time');
  if (ms <= now.getTime()) throw invalid('expiresAt', 'is not in the future');
  return new Date(ms).toISOString();
}

/** The rule as the API reports it (without counters). */
export function ruleView(rule: PolicyRule) {
  return {
    id: rule.id,
    action: rule.action,
    priority: rule.priority,
    hook: rule.hook,
    iface: rule.iface,
    src: rule.srcList !== null ? listRef(rule.srcList) : (rule.src?.text ?? null),
    dst: rule.dstList !== null ? listRef(rule.dstList) : (rule.dst?.text ?? null),
    proto: rule.proto === null ? null : formatProto(rule.proto),
    srcPort: rule.srcPort && formatPorts(rule.srcPort),
    dstPort: rule.dstPort && formatPorts(rule.dstPort),
    tcpFlags: rule.tcpFlags && formatTcpFlags(rule.tcpFlags),
    icmpType: rule.icmpType,
    icmpCode: rule.icmpCode,
    vlan: rule.vlan,
    dryRun: rule.dryRun,
    comment: rule.comment,
    createdAt: rule.createdAt,
    expiresAt: rule.expiresAt,
    ...(rule.rate && { rate: rateView(rule.rate) }),
    ...(rule.ban && { ban: { ...rule.ban } }),
  };
}
export type RuleView = ReturnType<typeof ruleView>;

/** The request form of a stored rule (PUT round trips, CLI). */
export function ruleInputOf(rule: RuleSpec): RuleInput {
  const view = ruleView({ ...rule, id: 0, createdAt: '' });
  const { id: _id, createdAt: _c, ...input } = view;
  return input;
}

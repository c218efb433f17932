// CIDR parsing and canonicalisation. ip-cidr validates IPv4 text; IPv6 is
// parsed here, and the canonical form and the byte layout the kernel tries
// use are derived here, because ip-cidr silently accepts host bits, prints
// IPv6 uncompressed and reads an IPv6 address with a dotted tail as IPv4.
import IPCIDR from 'ip-cidr';
import { InvalidCidrError } from '../errors.js';

export type IpFamily = 4 | 6;

export interface Cidr {
  readonly family: IpFamily;
  readonly prefixLen: number;
  /** Network address in network byte order: 4 or 16 bytes, host bits zero. */
  readonly bytes: Buffer;
  /** Canonical text: lowercase, IPv6 compressed (RFC 5952), e.g. "fd00:198::/48". */
  readonly text: string;
}

export interface IpAddress {
  readonly family: IpFamily;
  readonly bytes: Uint8Array;
  readonly text: string;
}

function bigintToBytes(value: bigint, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = length - 1; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return bytes;
}

/**
 * Parses "ADDR/LEN"; a bare address means a single host (/32 or /128), as
 * fail2ban-style tools send them. Host bits set are an error, not silently
 * cleared: "198.18.1.2/15" is far more likely a typo than an intent.
 */
export function parseCidr(input: string): Cidr {
  const text = input.trim();
  const v4 = parseCidrV4Fast(text, input);
  if (v4) return v4;
  return parseCidrGeneral(text, input);
}

// Dotted quad without leading zeros, optional /0-/32: exactly the IPv4 forms
// ip-cidr accepts (test/cidr.test.ts checks both paths agree). Bulk imports
// of a million prefixes spend their time here, hence no object churn.
const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4_CIDR = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}(?:/(3[0-2]|[12]?\\d))?$`);

function parseCidrV4Fast(text: string, input: string): Cidr | undefined {
  const m = IPV4_CIDR.exec(text);
  if (!m) return undefined;
  const address = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
  const prefixLen = m[5] === undefined ? 32 : Number(m[5]);
  const mask = prefixLen === 0 ? 0 : (0xffff_ffff << (32 - prefixLen)) >>> 0;
  const network = (address & mask) >>> 0;
  // A pooled Buffer (also a Uint8Array): cheap to allocate by the million
  // and bound to SQLite without a copy.
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(network);
  const canonical = `${bytes.join('.')}/${prefixLen}`;
  if (network !== address) throw new InvalidCidrError(`"${input}" has host bits set; did you mean ${canonical}?`);
  return { family: 4, prefixLen, bytes, text: canonical };
}

/**
 * Any IPv4 form ip-cidr accepts, and IPv6 (RFC 4291 text, dotted IPv4 tail
 * included) parsed here: ip-cidr turns "2001:db8::198.19.42.1" into the IPv4
 * address 198.19.42.1, which would block the wrong host.
 */
export function parseCidrGeneral(text: string, input: string = text): Cidr {
  if (text.includes('%')) throw new InvalidCidrError(`"${input}" has a zone index; use a plain address`);
  const parsed = text.includes(':') ? parseV6Cidr(text) : parseV4Cidr(text);
  if (!parsed) throw new InvalidCidrError(`"${input}" is not an IPv4 or IPv6 CIDR`);
  const { family, bytes, prefixLen } = unmapV4(parsed);
  const network = networkOf(bytes, prefixLen);
  if (!network.equals(bytes)) {
    throw new InvalidCidrError(`"${input}" has host bits set; did you mean ${formatCidr(family, network, prefixLen)}?`);
  }
  return { family, prefixLen, bytes, text: formatCidr(family, bytes, prefixLen) };
}

interface ParsedCidr {
  family: IpFamily;
  bytes: Buffer;
  prefixLen: number;
}

function parseV4Cidr(text: string): ParsedCidr | undefined {
  const withLen = text.includes('/') ? text : `${text}/32`;
  if (!IPCIDR.isValidCIDR(withLen)) return undefined;
  const cidr = new IPCIDR(withLen);
  if (!cidr.address.v4) return undefined;
  // ip-address returns a jsbn BigInteger here.
  return { family: 4, bytes: bigintToBytes(BigInt(cidr.address.bigInteger().toString()), 4), prefixLen: cidr.address.subnetMask };
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const DOTTED_QUAD = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);
const PREFIX_LEN = /^(0|[1-9]\d{0,2})$/;

/** RFC 4291 section 2.2 text, with an optional "/LEN" (0-128, no leading zeros). */
function parseV6Cidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  let prefixLen = 128;
  if (slash >= 0) {
    const len = text.slice(slash + 1);
    if (!PREFIX_LEN.test(len) || Number(len) > 128) return undefined;
    prefixLen = Number(len);
  }
  const bytes = parseV6Address(address);
  return bytes && { family: 6, bytes, prefixLen };
}

function parseV6Address(text: string): Buffer | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (half: string) => (half === '' ? [] : half.split(':'));
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  // A dotted IPv4 tail stands for the last two groups.
  const last = (halves.length === 2 ? tail : head).at(-1);
  let v4Tail: number[] = [];
  if (last !== undefined && last.includes('.')) {
    const m = DOTTED_QUAD.exec(last);
    if (!m) return undefined;
    const [a, b, c, d] = m.slice(1, 5).map(Number) as [number, number, number, number];
    v4Tail = [(a << 8) | b, (c << 8) | d];
    (halves.length === 2 ? tail : head).pop();
  }
  if (![...head, ...tail].every((g) => HEX_GROUP.test(g))) return undefined;
  const given = head.length + tail.length + v4Tail.length;
  // "::" stands for at least one zero group; without it there must be eight.
  if (halves.length === 2 ? given > 7 : given !== 8) return undefined;
  const groups = [...head.map(hex), ...Array<number>(8 - given).fill(0), ...tail.map(hex), ...v4Tail];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(group, i * 2));
  return bytes;
}

const hex = (group: string) => parseInt(group, 16);

const V4_MAPPED_PREFIX = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/**
 * The IPv4-mapped range ::ffff:0:0/96 and its sub-prefixes are IPv4 (the
 * data plane sees those packets as IPv4): "::ffff:192.0.2.0/120" is
 * 192.0.2.0/24. Every other IPv6 prefix, NAT64 and IPv4-compatible forms
 * included, stays IPv6.
 */
function unmapV4(cidr: ParsedCidr): ParsedCidr {
  if (cidr.family === 4 || cidr.prefixLen < 96 || !V4_MAPPED_PREFIX.every((b, i) => cidr.bytes[i] === b)) return cidr;
  return { family: 4, bytes: Buffer.from(cidr.bytes.subarray(12, 16)), prefixLen: cidr.prefixLen - 96 };
}

/** The bytes with every bit past prefixLen cleared. */
function networkOf(bytes: Buffer, prefixLen: number): Buffer {
  const network = Buffer.from(bytes);
  for (let bit = prefixLen; bit < network.length * 8; bit++) network[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return network;
}

/** Parses a single IPv4 or IPv6 address; an IPv4-mapped IPv6 address is IPv4. */
export function parseIp(input: string): IpAddress {
  const text = input.trim();
  if (text.includes('/')) throw new InvalidCidrError(`"${input}" is not an IPv4 or IPv6 address`);
  let cidr: Cidr;
  try {
    cidr = parseCidr(text);
  } catch {
    throw new InvalidCidrError(`"${input}" is not an IPv4 or IPv6 address`);
  }
  return { family: cidr.family, bytes: cidr.bytes, text: formatIp(cidr.bytes) };
}

export function formatCidr(family: IpFamily, bytes: Uint8Array, prefixLen: number): string {
  return `${formatIp(family === 4 ? bytes.subarray(0, 4) : bytes)}/${prefixLen}`;
}

/** Formats 4 bytes as dotted quad, 16 bytes as RFC 5952 IPv6. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // RFC 5952: compress the longest run of two or more zero groups, the first on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** The data plane stores IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d) in flow keys. */
export function toMappedV6(ip: { family: IpFamily; bytes: Uint8Array }): Uint8Array {
  if (ip.family === 6) return ip.bytes;
  const mapped = new Uint8Array(16);
  mapped.set(V4_MAPPED_PREFIX, 0);
  mapped.set(ip.bytes, 12);
  return mapped;
}

/** Inverse of toMappedV6: an IPv4-mapped address comes back as IPv4. */
export function fromMappedV6(bytes: Uint8Array): IpAddress {
  const isMapped = V4_MAPPED_PREFIX.every((b, i) => bytes[i] === b);
  const plain = isMapped ? bytes.slice(12, 16) : bytes.slice(0, 16);
  return { family: isMapped ? 4 : 6, bytes: plain, text: formatIp(plain) };
}

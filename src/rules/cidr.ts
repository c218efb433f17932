// CIDR parsing and canonicalisation. ip-cidr validates the text; the
// canonical form and the byte layout the kernel tries use are derived here,
// because ip-cidr silently accepts host bits and prints IPv6 uncompressed.
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

/** Any form ip-cidr accepts, IPv6 included. */
export function parseCidrGeneral(text: string, input: string = text): Cidr {
  if (text.includes('%')) throw new InvalidCidrError(`"${input}" has a zone index; use a plain address`);
  let withLen = text;
  if (!text.includes('/')) {
    if (!IPCIDR.isValidAddress(text)) throw new InvalidCidrError(`"${input}" is not an IPv4 or IPv6 CIDR`);
    withLen = `${text}/${text.includes(':') ? 128 : 32}`;
  }
  if (!IPCIDR.isValidCIDR(withLen)) throw new InvalidCidrError(`"${input}" is not an IPv4 or IPv6 CIDR`);
  const cidr = new IPCIDR(withLen);
  const family: IpFamily = cidr.address.v4 ? 4 : 6;
  const prefixLen = cidr.address.subnetMask;
  // ip-address returns a jsbn BigInteger here, ip-cidr a native bigint below.
  const given = BigInt(cidr.address.bigInteger().toString());
  const network = cidr.start<bigint>({ type: 'bigInteger' });
  if (given !== network) {
    const canonical = formatCidr(family, bigintToBytes(network, family === 4 ? 4 : 16), prefixLen);
    throw new InvalidCidrError(`"${input}" has host bits set; did you mean ${canonical}?`);
  }
  const bytes = bigintToBytes(network, family === 4 ? 4 : 16);
  return { family, prefixLen, bytes, text: formatCidr(family, bytes, prefixLen) };
}

/** Parses a single IPv4 or IPv6 address. */
export function parseIp(input: string): IpAddress {
  const text = input.trim();
  if (text.includes('/') || text.includes('%') || !IPCIDR.isValidAddress(text)) {
    throw new InvalidCidrError(`"${input}" is not an IPv4 or IPv6 address`);
  }
  const { family, bytes } = parseCidr(text);
  return { family, bytes, text: formatIp(bytes) };
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

const V4_MAPPED_PREFIX = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

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

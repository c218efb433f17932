// Seeded sets of distinct deny prefixes, and addresses inside or outside them.
//
// Real packets (veth suite) may only carry addresses from 198.18.0.0/15 and
// fd00:198::/48. The first `labCount` IPv4 prefixes (/24../32) lie inside
// 198.18.0.0/15, outside the /24 that the veth link addresses use; traffic
// sources are drawn from those. A /15 holds at most 2^18 prefixes, so a
// million cannot all be lab prefixes: the rest (/16../32) are spread over
// the whole IPv4 space outside 198.18.0.0/15, where no packet ever goes.
// IPv6 prefixes (/56../128) all lie inside fd00:198::/48.
import { Prng } from './prng.js';
import { Action, Layout } from '../../src/datapath/abi.js';
import type { BlockRule } from '../../src/rules/model.js';

export const LAB_V4_NET = ipv4ToU32('198.18.0.0');
export const LAB_V4_BITS = 15;
/** The veth link addresses live here; no deny prefix covers it. */
export const LINK_V4_NET = ipv4ToU32('198.19.255.0');
const LINK_V4_BITS = 24;
export const LAB_V6_PREFIX = Buffer.from([0xfd, 0x00, 0x01, 0x98, 0x00, 0x00]); // fd00:198::/48

export interface V4Prefixes {
  readonly count: number;
  /** Network addresses, host bits zero. */
  readonly addrs: Uint32Array;
  readonly lens: Uint8Array;
  /** The first labCount prefixes lie in 198.18.0.0/15. */
  readonly labCount: number;
}

export interface V6Prefixes {
  readonly count: number;
  /** count * 16 bytes, host bits zero. */
  readonly addrs: Buffer;
  readonly lens: Uint8Array;
}

export function ipv4ToU32(text: string): number {
  const parts = text.split('.').map(Number);
  return (((parts[0] ?? 0) << 24) | ((parts[1] ?? 0) << 16) | ((parts[2] ?? 0) << 8) | (parts[3] ?? 0)) >>> 0;
}

export function u32ToIpv4(addr: number): string {
  return [addr >>> 24, (addr >>> 16) & 0xff, (addr >>> 8) & 0xff, addr & 0xff].join('.');
}

export function v4Mask(len: number): number {
  return len === 0 ? 0 : (0xffff_ffff << (32 - len)) >>> 0;
}

const inNet = (addr: number, net: number, bits: number): boolean => ((addr & v4Mask(bits)) >>> 0) === net;
const v4Id = (addr: number, len: number): number => addr * 64 + len; // exact in a double

/** Prefix lengths of a set: for the lab prefixes (inside 198.18.0.0/15, so >= /16) and the others. */
export interface V4Lengths {
  lab(prng: Prng): number;
  other(prng: Prng): number;
}

/** The uniform set: /24../32 in the lab, /20../32 elsewhere. */
export const UNIFORM_V4: V4Lengths = { lab: (prng) => prng.int(24, 32), other: (prng) => prng.int(20, 32) };

/**
 * A set shaped like real blocklists (CrowdSec and fail2ban decisions): 90%
 * host routes, 7% /24s, 2.7% short prefixes (/16../23 in the lab, /12../23
 * elsewhere) and 0.3% /25../31.
 */
export const REALISTIC_V4: V4Lengths = {
  lab: (prng) => realisticV4(prng, 16),
  other: (prng) => realisticV4(prng, 12),
};

function realisticV4(prng: Prng, shortest: number): number {
  const r = prng.u32() / 2 ** 32;
  if (r < 0.9) return 32;
  if (r < 0.97) return 24;
  if (r < 0.997) return prng.int(shortest, 23);
  return prng.int(25, 31);
}

export function generateV4(count: number, seed: number, labCount = 2048, lengths: V4Lengths = UNIFORM_V4): V4Prefixes {
  const prng = new Prng(seed);
  const addrs = new Uint32Array(count);
  const lens = new Uint8Array(count);
  const seen = new Set<number>();
  const lab = Math.min(labCount, count);
  for (let i = 0; i < count; ) {
    const inLab = i < lab;
    const len = inLab ? lengths.lab(prng) : lengths.other(prng);
    const raw = inLab ? (LAB_V4_NET | (prng.u32() & ~v4Mask(LAB_V4_BITS))) >>> 0 : prng.u32();
    const addr = (raw & v4Mask(len)) >>> 0;
    if (inLab && (inNet(addr, LINK_V4_NET, LINK_V4_BITS) || inNet(LINK_V4_NET, addr, len))) continue;
    if (!inLab && (inNet(addr, LAB_V4_NET, LAB_V4_BITS) || inNet(LAB_V4_NET, addr, len))) continue;
    if (addr >>> 28 >= 0xe) continue; // multicast and reserved: not realistic sources
    const id = v4Id(addr, len);
    if (seen.has(id)) continue;
    seen.add(id);
    addrs[i] = addr;
    lens[i] = len;
    i++;
  }
  return { count, addrs, lens, labCount: lab };
}

/** A random address inside prefix `index`. */
export function v4AddressIn(p: V4Prefixes, index: number, prng: Prng): number {
  const len = p.lens[index] as number;
  return ((p.addrs[index] as number) | (prng.u32() & ~v4Mask(len))) >>> 0;
}

/** A lab address (198.18.0.0/15, off the link /24) that no prefix covers. */
export function v4Uncovered(p: V4Prefixes, prng: Prng): number {
  const ids = new Set<number>();
  for (let i = 0; i < p.labCount; i++) ids.add(v4Id(p.addrs[i] as number, p.lens[i] as number));
  for (;;) {
    const addr = (LAB_V4_NET | (prng.u32() & ~v4Mask(LAB_V4_BITS))) >>> 0;
    if (inNet(addr, LINK_V4_NET, LINK_V4_BITS)) continue;
    let covered = false;
    for (let len = 0; len <= 32 && !covered; len++) covered = ids.has(v4Id((addr & v4Mask(len)) >>> 0, len));
    if (!covered) return addr;
  }
}

/** Packed struct xw_lpm_v4_key of prefixes [from, to). */
export function v4Keys(p: V4Prefixes, from: number, to: number): Buffer {
  const size = Layout.lpmV4Key.size;
  const keys = Buffer.alloc((to - from) * size);
  for (let i = from; i < to; i++) {
    const at = (i - from) * size;
    keys.writeUInt32LE(p.lens[i] as number, at + Layout.lpmV4Key.prefixlen);
    keys.writeUInt32BE(p.addrs[i] as number, at + Layout.lpmV4Key.addr);
  }
  return keys;
}

export function v4Cidr(p: V4Prefixes, index: number): string {
  return `${u32ToIpv4(p.addrs[index] as number)}/${p.lens[index] as number}`;
}

function maskV6(bytes: Buffer, len: number): void {
  for (let bit = len; bit < 128; bit++) bytes[bit >> 3] = (bytes[bit >> 3] as number) & ~(0x80 >> (bit & 7));
}

/** The uniform IPv6 set: /64../128. */
export const UNIFORM_V6 = (prng: Prng): number => prng.int(64, 128);

/**
 * IPv6 shaped like real blocklists: 90% /128, 6% /64, 3% /48, 1% /32../47.
 * Only the lab prefixes (inside fd00:198::/48, /64../128 there) can be
 * packet sources; the rest lie in 2000::/3.
 */
export const REALISTIC_V6 = (prng: Prng): number => {
  const r = prng.u32() / 2 ** 32;
  if (r < 0.9) return 128;
  if (r < 0.96) return 64;
  if (r < 0.99) return 48;
  return prng.int(32, 47);
};

/** labCount: how many prefixes lie in fd00:198::/48 (default all, /64../128 there); the others in 2000::/3. */
export function generateV6(count: number, seed: number, length: (prng: Prng) => number = UNIFORM_V6, labCount = count): V6Prefixes {
  const prng = new Prng(seed);
  const addrs = Buffer.alloc(count * 16);
  const lens = new Uint8Array(count);
  const seen = new Set<string>();
  const addr = Buffer.alloc(16);
  for (let i = 0; i < count; ) {
    const inLab = i < labCount;
    const len = inLab ? Math.max(64, length(prng)) : length(prng);
    for (let b = 0; b < 16; b += 2) addr.writeUInt16BE(prng.u32() & 0xffff, b);
    if (inLab) LAB_V6_PREFIX.copy(addr, 0);
    else addr[0] = 0x20 | ((addr[0] as number) & 0x1f);
    maskV6(addr, len);
    const id = `${addr.toString('hex')}/${len}`;
    if (seen.has(id)) continue;
    seen.add(id);
    addr.copy(addrs, i * 16);
    lens[i] = len;
    i++;
  }
  return { count, addrs, lens };
}

/** A random address inside prefix `index`. */
export function v6AddressIn(p: V6Prefixes, index: number, prng: Prng): Buffer {
  const out = Buffer.from(p.addrs.subarray(index * 16, index * 16 + 16));
  const len = p.lens[index] as number;
  for (let bit = len; bit < 128; bit++) {
    if (prng.u32() & 1) out[bit >> 3] = (out[bit >> 3] as number) | (0x80 >> (bit & 7));
  }
  return out;
}

/** An address in fd00:198::/48 that no prefix covers. */
export function v6Uncovered(p: V6Prefixes, prng: Prng): Buffer {
  const ids = new Set<string>();
  for (let i = 0; i < p.count; i++) ids.add(`${p.addrs.subarray(i * 16, i * 16 + 16).toString('hex')}/${p.lens[i] as number}`);
  for (;;) {
    const addr = Buffer.alloc(16);
    LAB_V6_PREFIX.copy(addr, 0);
    for (let b = 6; b < 16; b += 2) addr.writeUInt16BE(prng.u32() & 0xffff, b);
    let covered = false;
    for (let len = 0; len <= 128 && !covered; len++) {
      const net = Buffer.from(addr);
      maskV6(net, len);
      covered = ids.has(`${net.toString('hex')}/${len}`);
    }
    if (!covered) return addr;
  }
}

/** Packed struct xw_lpm_v6_key of prefixes [from, to). */
export function v6Keys(p: V6Prefixes, from: number, to: number): Buffer {
  const size = Layout.lpmV6Key.size;
  const keys = Buffer.alloc((to - from) * size);
  for (let i = from; i < to; i++) {
    const at = (i - from) * size;
    keys.writeUInt32LE(p.lens[i] as number, at + Layout.lpmV6Key.prefixlen);
    p.addrs.copy(keys, at + Layout.lpmV6Key.addr, i * 16, i * 16 + 16);
  }
  return keys;
}

/** Packed deny struct xw_rule_value for rule ids [firstId, firstId + count). */
export function denyValues(firstId: number, count: number): Buffer {
  const size = Layout.ruleValue.size;
  const values = Buffer.alloc(count * size);
  for (let i = 0; i < count; i++) {
    values.writeUInt32LE(firstId + i, i * size + Layout.ruleValue.ruleId);
    values.writeUInt8(Action.deny, i * size + Layout.ruleValue.action);
  }
  return values;
}

/** IPv6 text of 16 bytes (uncompressed groups, valid for every parser). */
export function formatV6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/** Prefixes [from, to) as source deny rules with ids from firstId, as the daemon holds them. */
export function v4Rules(p: V4Prefixes, from: number, to: number, firstId: number): BlockRule[] {
  const rules: BlockRule[] = [];
  for (let i = from; i < to; i++) {
    const network = Buffer.alloc(4);
    network.writeUInt32BE(p.addrs[i] as number);
    rules.push(denyRule(firstId + i - from, v4Cidr(p, i), 4, p.lens[i] as number, network));
  }
  return rules;
}

export function v6Rules(p: V6Prefixes, from: number, to: number, firstId: number): BlockRule[] {
  const rules: BlockRule[] = [];
  for (let i = from; i < to; i++) {
    const network = Buffer.from(p.addrs.subarray(i * 16, i * 16 + 16));
    rules.push(denyRule(firstId + i - from, `${formatV6(network)}/${p.lens[i] as number}`, 6, p.lens[i] as number, network));
  }
  return rules;
}

function denyRule(id: number, cidr: string, family: 4 | 6, prefixLen: number, network: Buffer): BlockRule {
  return { id, cidr, family, prefixLen, network, direction: 'src', comment: null, createdAt: '' };
}

/**
 * Reorders so that prefix #k satisfies wanted[k], each drawn from the first
 * `within` prefixes: the ladder's denied packets need one prefix of each
 * kind loaded at every size from wanted.length on.
 */
export function arrange(lens: Uint8Array, swap: (a: number, b: number) => void, within: number, wanted: Array<(len: number) => boolean>): void {
  wanted.forEach((fits, k) => {
    let i = k;
    while (i < within && !fits(lens[i] as number)) i++;
    if (i === within) throw new Error(`no prefix of kind #${k} among the first ${within} prefixes`);
    swap(k, i);
  });
}

export function swapV4(p: V4Prefixes, a: number, b: number): void {
  [p.addrs[a], p.addrs[b]] = [p.addrs[b] as number, p.addrs[a] as number];
  [p.lens[a], p.lens[b]] = [p.lens[b] as number, p.lens[a] as number];
}

export function swapV6(p: V6Prefixes, a: number, b: number): void {
  const tmp = Buffer.from(p.addrs.subarray(a * 16, a * 16 + 16));
  p.addrs.copy(p.addrs, a * 16, b * 16, b * 16 + 16);
  tmp.copy(p.addrs, b * 16);
  [p.lens[a], p.lens[b]] = [p.lens[b] as number, p.lens[a] as number];
}

/**
 * The control suite's mixed import as NDJSON: `count` blocks, IPv4 /32s in 10.0.0.0/8 and IPv6
 * /128s (destination) in fd00:198::/48 alternating, encoded once.
 */
export function mixedImportNdjson(count: number): Buffer {
  const lines: string[] = [];
  for (let n = 0; n < count; n++) {
    const a = n >>> 1;
    lines.push(n % 2 === 0
      ? `{"cidr":"10.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/32"}`
      : `{"cidr":"fd00:198::${(a >>> 16).toString(16)}:${(a & 0xffff).toString(16)}/128","direction":"dst"}`);
  }
  return Buffer.from(lines.join('\n'));
}

// Compiles one table of ordered rules into the data plane's per-field
// bitmaps (xdp/lib/rules.h). Pure: the writer (tables.ts) puts the result
// into a buffer of the kernel's maps.
//
// Position i of `rules` is bit i. For every field some rule constrains:
//   - the wildcard bitmap: the rules that leave the field open;
//   - one bitmap per value a packet can bring that some constraining rule
//     accepts: those rules, plus the wildcard ones.
// A packet's value without an entry gets the wildcard bitmap. Ports go
// through elementary intervals (a port -> interval array, then one bitmap
// per interval); address prefixes (a rule's own, or every entry of the list
// it references) through an LPM trie whose longest match's bitmap holds
// every rule with a prefix containing it.
import { PolDefault, PolField, PolFlags, POL_MAX_ADDRS, POL_MAX_RULES, POL_WILDCARD, type PolFieldName } from '../datapath/abi.js';
import { CapacityError } from '../errors.js';
import type { ClassRule, DefaultAction, Prefix } from './reference.js';

export const BITMAP_BYTES = POL_MAX_RULES / 8;

export interface CompiledAddr {
  field: 'src' | 'dst';
  prefix: Prefix;
  /** xw_pol_bitmap_key.value of its bitmap. */
  value: number;
}

export interface CompiledTable {
  words: number;
  /** Bit per PolField some rule constrains. */
  fields: number;
  defaultAction: number;
  flags: number;
  rules: readonly ClassRule[];
  /** Bitmaps by field and value (POL_WILDCARD for the wildcard). */
  bitmaps: Array<{ field: number; value: number; bits: Uint8Array }>;
  /** All-ones over the rules: what an unconstrained field stands for. */
  all: Uint8Array;
  addrs: CompiledAddr[];
  /** Per port field constrained: each port's interval (0: none, the wildcard). */
  ports: { sport?: Uint16Array; dport?: Uint16Array };
  /**
   * With PolFlags.portFirst: per destination-port interval, the position + 1
   * of the first rule a TCP packet (index 2i) and a UDP packet (2i + 1) of
   * it matches, 0 for none (the writer puts copies of those rules into struct
   * xw_pol_port_first).
   */
  portFirst?: Uint16Array;
}

const newBits = () => new Uint8Array(BITMAP_BYTES);
const setBit = (bits: Uint8Array, i: number) => {
  bits[i >> 3]! |= 1 << (i & 7);
};
const clearBit = (bits: Uint8Array, i: number) => {
  bits[i >> 3]! &= ~(1 << (i & 7));
};
const orInto = (target: Uint8Array, source: Uint8Array) => {
  for (let i = 0; i < target.length; i++) target[i]! |= source[i]!;
};
const isEmpty = (bits: Uint8Array) => bits.every((b) => b === 0);

type ScalarField = 'iface' | 'proto' | 'tcpFlags' | 'icmpType' | 'icmpCode' | 'vlan';

/** The values a rule accepts in a scalar field, or null when it leaves the field open. */
function scalarValues(rule: ClassRule, field: ScalarField): number[] | null {
  switch (field) {
    case 'iface':
      return rule.ifindex === null ? null : [rule.ifindex];
    case 'proto':
      return rule.proto === null ? null : [rule.proto];
    case 'icmpType':
      return rule.icmpType === null ? null : [rule.icmpType];
    case 'icmpCode':
      return rule.icmpCode === null ? null : [rule.icmpCode];
    case 'vlan':
      return rule.vlan === null ? null : [rule.vlan];
    case 'tcpFlags': {
      const match = rule.tcpFlags;
      if (!match) return null;
      const out: number[] = [];
      for (let b = 0; b < 256; b++) if ((b & match.mask) === match.set) out.push(b);
      return out;
    }
  }
}

/**
 * A key for `p` cut to its first `len` bits (len <= p.prefixLen): a number
 * for IPv4 (len * 2^32 + network; lists of 100k entries make this the hot
 * path), a string for IPv6.
 */
function prefixKey(p: Prefix, len: number): number | string {
  const b = p.bytes;
  if (p.family === 4) {
    const addr = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    return len * 0x1_0000_0000 + (len === 0 ? 0 : (addr & (0xffff_ffff << (32 - len))) >>> 0);
  }
  const bytes = Uint8Array.from(b);
  for (let bit = len; bit < 128; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return `${len}/${Buffer.from(bytes.buffer, bytes.byteOffset, 16).toString('hex')}`;
}

const TCP = 6;
const UDP = 17;
const PORT_FIELDS = (1 << PolField.proto) | (1 << PolField.dport);

/** The position + 1 of the lowest bit set in both a and b, 0 when none is. */
function firstCommon(a: Uint8Array, b: Uint8Array): number {
  for (let k = 0; k < a.length; k++) {
    const x = a[k]! & b[k]!;
    if (x !== 0) return k * 8 + (31 - Math.clz32(x & -x)) + 1;
  }
  return 0;
}

/**
 * The bitmaps of the two fields the data plane reads from arrays
 * (xw_pol_bm), by index: a protocol's (its own, else the wildcard's) and a
 * destination-port interval's (0: the wildcard's); undefined where no rule
 * passes. Meaningful only for a field the table constrains.
 */
export interface ArrayFields {
  proto(p: number): Uint8Array | undefined;
  /** Destination-port intervals, the wildcard's 0 included. */
  dportIntervals: number;
  dport(interval: number): Uint8Array | undefined;
}

export function arrayFields(c: CompiledTable): ArrayFields {
  const byValue = (field: number) => new Map(c.bitmaps.filter((b) => b.field === field).map((b) => [b.value, b.bits]));
  const protos = byValue(PolField.proto);
  const dports = byValue(PolField.dport);
  return {
    proto: (p) => protos.get(p) ?? protos.get(POL_WILDCARD),
    dportIntervals: Math.max(0, ...[...dports.keys()].filter((v) => v !== POL_WILDCARD)) + 1,
    dport: (i) => dports.get(i === 0 ? POL_WILDCARD : i),
  };
}

/**
 * A table whose rules constrain protocol and destination port only: a
 * TCP/UDP packet's first rule is the lowest bit of its protocol's bitmap
 * AND its port interval's, computed here once per interval.
 */
function portFirstOf(c: CompiledTable): Uint16Array {
  const fields = arrayFields(c);
  const empty = newBits();
  const constrained = (field: number) => (c.fields & (1 << field)) !== 0;
  const protoBits = (p: number) => (constrained(PolField.proto) ? fields.proto(p) ?? empty : c.all);
  const intervals = constrained(PolField.dport) ? fields.dportIntervals : 1;
  const out = new Uint16Array(intervals * 2);
  const [tcp, udp] = [protoBits(TCP), protoBits(UDP)];
  for (let i = 0; i < intervals; i++) {
    const port = constrained(PolField.dport) ? fields.dport(i) ?? empty : c.all;
    out[2 * i] = firstCommon(tcp, port);
    out[2 * i + 1] = firstCommon(udp, port);
  }
  return out;
}

/** Whether a TCP or UDP packet can match `rule` only through its destination port (PolFlags.dportAll). */
const needsDport = (rule: ClassRule) => !!rule.dstPort || (rule.proto !== null && rule.proto !== TCP && rule.proto !== UDP);

export interface CompileOptions {
  defaultAction?: DefaultAction;
  flags?: number;
}

/** Refuses more rules than one table holds. */
export function checkTableSize(count: number): void {
  if (count > POL_MAX_RULES) throw new CapacityError(`${count} rules in one hook exceed the data plane's ${POL_MAX_RULES}`);
}

export function compileTable(rules: readonly ClassRule[], options: CompileOptions = {}): CompiledTable {
  checkTableSize(rules.length);
  const n = rules.length;
  const all = newBits();
  for (let i = 0; i < n; i++) setBit(all, i);
  const out: CompiledTable = {
    words: Math.ceil(n / 64),
    fields: 0,
    defaultAction: PolDefault[options.defaultAction ?? 'accept'],
    flags: (options.flags ?? 0) | (rules.length > 0 && rules.every(needsDport) ? PolFlags.dportAll : 0),
    rules,
    bitmaps: [],
    all,
    addrs: [],
    ports: {},
  };
  let addrCount = 0;
  const emit = (field: PolFieldName, value: number, bits: Uint8Array) => {
    if (!isEmpty(bits)) out.bitmaps.push({ field: PolField[field], value, bits });
  };

  for (const field of ['iface', 'proto', 'tcpFlags', 'icmpType', 'icmpCode', 'vlan'] as const) {
    const accepted = rules.map((r) => scalarValues(r, field));
    if (accepted.every((v) => v === null)) continue;
    out.fields |= 1 << PolField[field];
    const wildcard = newBits();
    accepted.forEach((v, i) => v === null && setBit(wildcard, i));
    emit(field, POL_WILDCARD, wildcard);
    const byValue = new Map<number, Uint8Array>();
    accepted.forEach((values, i) => {
      for (const value of values ?? []) {
        let bits = byValue.get(value);
        if (!bits) byValue.set(value, (bits = Uint8Array.from(wildcard)));
        setBit(bits, i);
      }
    });
    for (const [value, bits] of byValue) emit(field, value, bits);
  }

  for (const field of ['sport', 'dport'] as const) {
    const ranges = rules.map((r) => (field === 'sport' ? r.srcPort : r.dstPort));
    if (ranges.every((r) => r === null)) continue;
    out.fields |= 1 << PolField[field];
    const wildcard = newBits();
    ranges.forEach((r, i) => r === null && setBit(wildcard, i));
    emit(field, POL_WILDCARD, wildcard);
    // Sweep the port line: rules start covering at lo, stop after hi.
    const starts = new Map<number, number[]>();
    const ends = new Map<number, number[]>();
    ranges.forEach((r, i) => {
      if (!r) return;
      (starts.get(r.lo) ?? starts.set(r.lo, []).get(r.lo)!).push(i);
      (ends.get(r.hi + 1) ?? ends.set(r.hi + 1, []).get(r.hi + 1)!).push(i);
    });
    const points = [...new Set([0, ...starts.keys(), ...ends.keys()])].filter((p) => p <= 65535).sort((a, b) => a - b);
    const covering = newBits();
    let active = 0;
    const intervals = new Uint16Array(65536);
    let next = 1;
    for (let k = 0; k < points.length; k++) {
      const point = points[k]!;
      for (const i of ends.get(point) ?? []) {
        clearBit(covering, i);
        active--;
      }
      for (const i of starts.get(point) ?? []) {
        setBit(covering, i);
        active++;
      }
      if (active === 0) continue;
      const end = k + 1 < points.length ? points[k + 1]! : 65536;
      const id = next++;
      intervals.fill(id, point, end);
      const bits = Uint8Array.from(covering);
      orInto(bits, wildcard);
      out.bitmaps.push({ field: PolField[field], value: id, bits });
    }
    out.ports[field] = intervals;
  }

  for (const field of ['src', 'dst'] as const) {
    const listField = field === 'src' ? 'srcList' : 'dstList';
    const constrained = rules.map((r) => r[field] !== null || !!r[listField]);
    if (!constrained.some(Boolean)) continue;
    out.fields |= 1 << PolField[field];
    const wildcard = newBits();
    constrained.forEach((c, i) => !c && setBit(wildcard, i));
    emit(field, POL_WILDCARD, wildcard);
    // Rules by exact prefix (a rule's own prefix or its list's entries).
    const byPrefix = new Map<number | string, { prefix: Prefix; rules: number[] }>();
    const lengths: Record<4 | 6, Set<number>> = { 4: new Set(), 6: new Set() };
    const add = (p: Prefix, i: number) => {
      const key = prefixKey(p, p.prefixLen);
      const entry = byPrefix.get(key);
      if (!entry) byPrefix.set(key, { prefix: p, rules: [i] });
      else if (entry.rules[entry.rules.length - 1] !== i) entry.rules.push(i);
      lengths[p.family].add(p.prefixLen);
    };
    rules.forEach((r, i) => {
      const own = r[field];
      if (own) add(own, i);
      for (const p of r[listField]?.prefixes ?? []) add(p, i);
    });
    addrCount += byPrefix.size;
    if (addrCount > POL_MAX_ADDRS) {
      throw new CapacityError(
        `the rules of one hook name ${addrCount.toLocaleString('en-US')} or more distinct source and destination prefixes ` +
          `(their own and their lists' entries); the data plane holds ${POL_MAX_ADDRS.toLocaleString('en-US')} per hook`,
      );
    }
    // Each distinct prefix's bitmap: the rules of every prefix containing it
    // (the trie's longest match stands for all of them). Prefixes with the
    // same rules share one bitmap: a list's entries usually all do.
    const bySignature = new Map<string, number>();
    const sortedLengths = { 4: [...lengths[4]].sort((a, b) => a - b), 6: [...lengths[6]].sort((a, b) => a - b) };
    for (const { prefix, rules: own } of byPrefix.values()) {
      let sorted = own; // ascending and unique as collected
      for (const len of sortedLengths[prefix.family]) {
        if (len >= prefix.prefixLen) break;
        const rulesThere = byPrefix.get(prefixKey(prefix, len))?.rules;
        if (rulesThere) sorted = sorted.concat(rulesThere);
      }
      if (sorted !== own) sorted = [...new Set(sorted)].sort((a, b) => a - b);
      const signature = sorted.length === 1 ? String(sorted[0]) : sorted.join(',');
      let value = bySignature.get(signature);
      if (value === undefined) {
        value = bySignature.size + 1;
        bySignature.set(signature, value);
        const bits = Uint8Array.from(wildcard);
        for (const i of sorted) setBit(bits, i);
        out.bitmaps.push({ field: PolField[field], value, bits });
      }
      out.addrs.push({ field, prefix, value });
    }
  }
  if (n > 0 && (out.fields & ~PORT_FIELDS) === 0) {
    out.flags |= PolFlags.portFirst;
    out.portFirst = portFirstOf(out);
  }
  return out;
}

// Keeps the flat IPv6 tables (see "IPv6 prefixes by length" in
// xdp/include/xdpwall_abi.h) in step with the IPv6 network prefixes
// CidrMaps writes to the tries: one hash entry per prefix (/64s inside
// their /64 entry), a /64 entry listing the longer lengths inside it, and
// per direction the lengths below /64. The tries keep every prefix and stay
// the fallback (too many lengths, or a table not filled yet).
//
// Write order, so a packet sees the old or the new answer and never a
// half-made one: prefix entries, then the /64 entries that list them, then
// the lengths entry (a listed length without its entry is only a miss).
// State is kept per kernel map (every CidrMaps over the same maps shares
// it), so it always describes what the kernel holds.
import type { BpfMap } from '@xdpwall/addon';
import {
  Action, Layout, V6Flags, V6Layout, V6NetFlags, V6_FILTER_BITS, V6_FILTER_WORDS, V6_MAPS, V6_PROBES, v4HostBit, v6HostBit, v6NetBit, writeRuleValue,
} from './abi.js';
import { syncPacked, type PackedRules } from './reconcile.js';
import type { Slicer } from '../event-loop.js';
import type { BlockDirection } from '../rules/model.js';

export interface V6Maps {
  srcLen: BpfMap;
  dstLen: BpfMap;
  srcNet: BpfMap;
  dstNet: BpfMap;
  lengths: BpfMap;
  filter: BpfMap;
}

/** The flat IPv6 maps of a loaded object. */
export function v6MapsOf(object: { map(name: string): BpfMap }): V6Maps {
  return {
    srcLen: object.map(V6_MAPS.srcLen), dstLen: object.map(V6_MAPS.dstLen), srcNet: object.map(V6_MAPS.srcNet), dstNet: object.map(V6_MAPS.dstNet),
    lengths: object.map(V6_MAPS.lengths), filter: object.map(V6_MAPS.filter),
  };
}

/** Sizes the flat tables for `cidrV6` prefixes (an entry each, at most one /64 entry each); before load(). */
export function applyV6Capacity(object: { setMapMaxEntries(name: string, entries: number): void }, cidrV6: number): void {
  for (const name of [V6_MAPS.srcLen, V6_MAPS.dstLen, V6_MAPS.srcNet, V6_MAPS.dstNet]) object.setMapMaxEntries(name, cidrV6);
}

/** An IPv6 prefix: a /128 only sets its filter bit (CidrMaps writes the host hash), the others have flat entries. */
export interface V6Prefix {
  id: number;
  prefixLen: number;
  network: Uint8Array;
  direction: BlockDirection;
  allow?: boolean;
}

/** One change: new prefixes, prefixes whose rule changes (same key), removed prefixes. */
export interface V6Change {
  install: readonly V6Prefix[];
  replace: ReadonlyArray<{ from: V6Prefix; to: V6Prefix }>;
  remove: readonly V6Prefix[];
}

interface Net64 {
  /** The /64 prefix's own rule (0: none) and whether it allows. */
  ruleId: number;
  allow: boolean;
  /** Prefixes inside this /64 by length (65..127). */
  longer: Map<number, number>;
  /** The prefixes inside, by their last 64 bits and length. */
  subs: Map<string, V6Prefix>;
  /** Whether the kernel holds (or is about to hold) this /64's entry, which its filter bit counts. */
  present: boolean;
}

/** An IPv4 host route (/32): only its bit in the shared filter (XW_FEATURE_V4_HOST_FILTER); CidrMaps writes the host hash. */
export interface V4Host {
  /** The address as a u32, host order. */
  host: number;
  direction: BlockDirection;
}

/** What one direction's tables hold. */
class Side {
  /** Prefixes by length (0..127). */
  readonly lengths = new Uint32Array(128);
  readonly nets = new Map<bigint, Net64>();
  written: Buffer | null = null;
  /** Entries per filter bit (host routes and /64 entries), saturating; allocated on first use. */
  private counts: Uint16Array | null = null;
  /** The filter as the kernel should hold it, two u32 halves (low, high) per 64-bit word. */
  private bits: Uint32Array | null = null;
  /** Per filter word, whether it is in `dirty`. */
  private marked: Uint8Array | null = null;
  /** Filter words whose value changed since they were last written (a million host routes bump as many bits: no Set). */
  private dirty: number[] = [];

  bump(bit: number, delta: 1 | -1): void {
    const counts = (this.counts ??= new Uint16Array(1 << V6_FILTER_BITS));
    const n = counts[bit]!;
    if (n === 0xffff) return; // saturated: stays set
    if (delta < 0 && n === 0) throw new Error('v6 filter count below zero');
    counts[bit] = n + delta;
    if (n !== 0 && n + delta !== 0) return;
    // The bit turns on (0 -> 1) or off (1 -> 0).
    const bits = (this.bits ??= new Uint32Array(2 * V6_FILTER_WORDS));
    bits[bit >>> 5] = bits[bit >>> 5]! ^ (1 << (bit & 31));
    this.mark(bit >>> 6);
  }

  /** Takes the dirty words, leaving none. */
  takeDirty(): number[] {
    const words = this.dirty;
    this.dirty = [];
    for (const word of words) this.marked![word] = 0;
    return words;
  }

  /** Puts words back among the dirty ones (their write failed). */
  markDirty(words: readonly number[]): void {
    for (const word of words) this.mark(word);
  }

  /** Adds a word to `dirty` unless it is there. */
  private mark(word: number): void {
    const marked = (this.marked ??= new Uint8Array(V6_FILTER_WORDS));
    if (marked[word] === 0) {
      marked[word] = 1;
      this.dirty.push(word);
    }
  }

  /** A filter word as the kernel should hold it, little-endian. */
  word(index: number, into: Buffer, offset: number): void {
    const bits = this.bits;
    into.writeUInt32LE(bits ? bits[2 * index]! : 0, offset);
    into.writeUInt32LE(bits ? bits[2 * index + 1]! : 0, offset + 4);
  }
}

/** Prefixes counted between two questions to the slicer in reconcile(): 4096 /128s held the loop 46 ms. */
const RECONCILE_SLICE = 512;

const KEY = Layout.lpmV6Key;
const RULE = Layout.ruleValue;
const NET = V6Layout.v6Net;
const SUB = V6Layout.v6Sub;
const LENGTHS = V6Layout.v6Lengths;

/** The kernel's flat tables and what they hold: one per set of maps. */
export class V6Lengths {
  private static readonly byMaps = new WeakMap<BpfMap, V6Lengths>();

  /** The state of these maps, shared by everyone who writes them. */
  static of(maps: V6Maps): V6Lengths {
    let tables = V6Lengths.byMaps.get(maps.srcLen);
    if (!tables) V6Lengths.byMaps.set(maps.srcLen, (tables = new V6Lengths(maps)));
    return tables;
  }

  private readonly sides: Record<BlockDirection, Side> = { src: new Side(), dst: new Side() };
  /** Cleared only to measure the trie alone (bench); the data plane then asks the trie for every prefix. */
  private flat = true;

  private constructor(private readonly maps: V6Maps) {}

  /**
   * Applies a change, all or nothing: if a kernel write fails, the state
   * goes back and the tables are brought back to it before the error is
   * rethrown.
   */
  async apply(change: V6Change): Promise<void> {
    if (change.install.length + change.replace.length + change.remove.length === 0) return;
    const touched = this.account(change);
    try {
      for (const direction of ['src', 'dst'] as const) await this.write(direction, change, touched[direction]);
      await this.writeFilter(false);
      for (const direction of ['src', 'dst'] as const) this.writeLengths(direction, false);
    } catch (error) {
      this.account({ install: change.remove, replace: change.replace.map((r) => ({ from: r.to, to: r.from })), remove: change.install });
      // The kernel's other entries are as they were: only this change's keys are put back as they were.
      const entries = { src: await this.prefixEntries('src'), dst: await this.prefixEntries('dst') };
      for (const prefix of change.install) entries[prefix.direction].delete(keyText(prefix));
      for (const prefix of [...change.remove, ...change.replace.map((r) => r.from)]) {
        if (hasEntry(prefix)) entries[prefix.direction].set(keyText(prefix), prefix);
      }
      await this.sync(entries);
      throw error;
    }
  }

  /**
   * Makes the tables hold exactly `prefixes`, and the filter the bits of
   * `prefixes` and the IPv4 host routes `v4Hosts` (start-up, or after a
   * failed change), counting them a slice at a time between turns `slicer`
   * allows.
   */
  async reconcile(prefixes: Iterable<V6Prefix>, v4Hosts: Iterable<V4Host> = [], slicer?: Slicer): Promise<void> {
    this.sides.src = new Side();
    this.sides.dst = new Side();
    const entries: Record<BlockDirection, Map<string, V6Prefix>> = { src: new Map(), dst: new Map() };
    const each = (prefix: V6Prefix) => {
      if (hasEntry(prefix)) entries[prefix.direction].set(keyText(prefix), prefix);
    };
    let slice: V6Prefix[] = [];
    for (const prefix of prefixes) {
      slice.push(prefix);
      if (slice.length < RECONCILE_SLICE) continue;
      this.account({ install: slice, replace: [], remove: [] }, each);
      slice = [];
      if (slicer?.due) await slicer.next();
    }
    this.account({ install: slice, replace: [], remove: [] }, each);
    let counted = 0;
    for (const { host, direction } of v4Hosts) {
      this.sides[direction].bump(v4HostBit(host), +1);
      if (++counted % RECONCILE_SLICE === 0 && slicer?.due) await slicer.next();
    }
    await this.sync(entries);
  }

  /**
   * Sets the filter bits of IPv4 host routes just written to the host
   * hashes and clears those of host routes just deleted from them, so the
   * data plane probes the hash only for addresses that may be there. All or
   * nothing: if the write fails the counts go back. With `hold` the changed
   * words wait for the next call without it (a list's change, written a
   * chunk at a time: a million random hosts touch every word of the filter
   * in each chunk, and one write per pass replaces dozens); until then the
   * held hosts are not probed for, and held removals still are.
   */
  async applyV4Hosts(install: readonly V4Host[], remove: readonly V4Host[], hold = false): Promise<void> {
    const bump = (hosts: readonly V4Host[], delta: 1 | -1) => {
      for (const { host, direction } of hosts) this.sides[direction].bump(v4HostBit(host), delta);
    };
    bump(install, +1);
    bump(remove, -1);
    if (hold) return;
    try {
      await this.writeFilter(false);
    } catch (error) {
      bump(remove, +1);
      bump(install, -1);
      throw error;
    }
  }

  /** Bench only: whether packets use the flat tables (true) or the trie alone (false). */
  setFlat(flat: boolean): void {
    this.flat = flat;
    for (const direction of ['src', 'dst'] as const) this.writeLengths(direction, true);
  }

  /**
   * Updates the counts, the /64 lists and the filter counts (a /64 entry's
   * bit counts while the entry exists); returns the /64s touched per
   * direction. `each` sees every installed prefix.
   */
  private account(change: V6Change, each?: (prefix: V6Prefix) => void): Record<BlockDirection, Set<bigint>> {
    const touched: Record<BlockDirection, Set<bigint>> = { src: new Set(), dst: new Set() };
    const count = (prefix: V6Prefix, delta: 1 | -1) => {
      const side = this.sides[prefix.direction];
      if (prefix.prefixLen === 128) return side.bump(hostBit(prefix.network), delta);
      side.lengths[prefix.prefixLen]! += delta;
      if (prefix.prefixLen >= 64) touched[prefix.direction].add(addToNet(side, prefix, delta));
    };
    for (const prefix of change.install) {
      count(prefix, +1);
      each?.(prefix);
    }
    for (const { to } of change.replace) if (to.prefixLen >= 64 && to.prefixLen < 128) touched[to.direction].add(addToNet(this.sides[to.direction], to, 0));
    for (const prefix of change.remove) count(prefix, -1);
    for (const direction of ['src', 'dst'] as const) {
      const side = this.sides[direction];
      for (const top of touched[direction]) {
        const net = side.nets.get(top)!;
        const present = net.ruleId !== 0 || net.longer.size > 0;
        if (!present && !net.present) {
          // Never in the kernel: nothing to write or delete.
          side.nets.delete(top);
          touched[direction].delete(top);
          continue;
        }
        if (present !== net.present) side.bump(netBit(top), present ? 1 : -1);
        net.present = present;
      }
    }
    return touched;
  }

  /** Writes one direction's part of a change in the order the data plane needs. */
  private async write(direction: BlockDirection, change: V6Change, touched: Set<bigint>): Promise<void> {
    const table = direction === 'src' ? this.maps.srcLen : this.maps.dstLen;
    const netTable = direction === 'src' ? this.maps.srcNet : this.maps.dstNet;
    const mine = (p: V6Prefix) => p.direction === direction && hasEntry(p);
    const writes = [...change.install.filter(mine), ...change.replace.map((r) => r.to).filter(mine)];
    const removes = change.remove.filter(mine);
    if (writes.length > 0) {
      const packed = packPrefixes(writes);
      await table.updateBatch(packed.keys, packed.values, packed.count);
    }
    if (removes.length > 0) {
      const packed = packPrefixes(removes);
      await table.deleteBatch(packed.keys, packed.count);
    }
    const side = this.sides[direction];
    const live: Array<[bigint, Net64]> = [];
    const gone: bigint[] = [];
    for (const top of touched) {
      const net = side.nets.get(top);
      if (net?.present) live.push([top, net]);
      else {
        side.nets.delete(top);
        gone.push(top);
      }
    }
    if (live.length > 0) {
      const packed = packNets(live);
      await netTable.updateBatch(packed.keys, packed.values, packed.count);
    }
    if (gone.length > 0) {
      const keys = Buffer.alloc(gone.length * 8);
      gone.forEach((top, i) => keys.writeBigUInt64BE(top, i * 8));
      await netTable.deleteBatch(keys, gone.length);
    }
  }

  /** Writes the filter words that changed (all of them with `all`). */
  private async writeFilter(all: boolean): Promise<void> {
    for (const [slot, direction] of [[0, 'src'], [1, 'dst']] as const) {
      const side = this.sides[direction];
      const dirty = side.takeDirty();
      const words = all ? Array.from({ length: V6_FILTER_WORDS }, (_, i) => i) : dirty;
      if (words.length === 0) continue;
      const keys = Buffer.alloc(words.length * 4);
      const values = Buffer.alloc(words.length * 8);
      words.forEach((word, i) => {
        keys.writeUInt32LE(slot * V6_FILTER_WORDS + word, i * 4);
        side.word(word, values, i * 8);
      });
      try {
        await this.maps.filter.updateBatch(keys, values, words.length);
      } catch (error) {
        side.markDirty(dirty);
        throw error;
      }
    }
  }

  /**
   * Brings both tables to `entries` (the prefix entries, by key) and the
   * state's /64 entries, a diff against what the kernel holds, then writes
   * the lengths entries.
   */
  private async sync(entries: Record<BlockDirection, Map<string, V6Prefix>>): Promise<void> {
    for (const direction of ['src', 'dst'] as const) {
      const side = this.sides[direction];
      const report = { added: 0, removed: 0, kept: 0 };
      await syncPacked(direction === 'src' ? this.maps.srcLen : this.maps.dstLen, packPrefixes([...entries[direction].values()]), report);
      await syncPacked(direction === 'src' ? this.maps.srcNet : this.maps.dstNet, packNets([...side.nets].filter(([, net]) => net.present)), report);
    }
    await this.writeFilter(true);
    for (const direction of ['src', 'dst'] as const) this.writeLengths(direction, true);
  }

  /** The prefix entries (not /64 entries) one direction's table holds. */
  private async prefixEntries(direction: BlockDirection): Promise<Map<string, V6Prefix>> {
    const table = direction === 'src' ? this.maps.srcLen : this.maps.dstLen;
    const { keys, values, count } = await table.lookupAll();
    const out = new Map<string, V6Prefix>();
    for (let i = 0; i < count; i++) {
      const prefixLen = keys.readUInt32LE(i * KEY.size + KEY.prefixlen);
      const network = Buffer.from(keys.subarray(i * KEY.size + KEY.addr, i * KEY.size + KEY.addr + 16));
      const at = i * table.valueStride;
      const prefix: V6Prefix = { id: values.readUInt32LE(at + RULE.ruleId), prefixLen, network, direction };
      if (values[at + RULE.action] === Action.allow) prefix.allow = true;
      out.set(keyText(prefix), prefix);
    }
    return out;
  }

  /** xw_v6_lengths[direction]: the lengths below /64 longest first, and the flags. */
  private writeLengths(direction: BlockDirection, force: boolean): void {
    const side = this.sides[direction];
    const value = Buffer.alloc(LENGTHS.size);
    let count = 0;
    let has64 = false;
    for (let len = 127; len >= 0; len--) {
      if (side.lengths[len] === 0) continue;
      if (len >= 64) has64 = true;
      else {
        if (count < V6_PROBES) value[LENGTHS.shorter + count] = len;
        count++;
      }
    }
    value.writeUInt32LE(count, LENGTHS.count);
    const flags = (this.flat ? V6Flags.flat : 0) | (has64 ? V6Flags.has64 : 0) | (count > V6_PROBES ? V6Flags.shortTrie : 0);
    value.writeUInt32LE(flags, LENGTHS.flags);
    if (!force && side.written?.equals(value)) return;
    const slot = Buffer.alloc(4);
    slot.writeUInt32LE(direction === 'src' ? 0 : 1);
    this.maps.lengths.update(slot, value);
    side.written = value;
  }
}

/** Counts a prefix of /64 or longer in its /64's entry (delta 0: the /64's rule changed); returns the /64. */
function addToNet(side: Side, prefix: V6Prefix, delta: 1 | 0 | -1): bigint {
  const top = Buffer.from(prefix.network.buffer, prefix.network.byteOffset, 8).readBigUInt64BE(0);
  let net = side.nets.get(top);
  if (!net) side.nets.set(top, (net = { ruleId: 0, allow: false, longer: new Map(), subs: new Map(), present: false }));
  if (prefix.prefixLen === 64) {
    net.ruleId = delta < 0 ? 0 : prefix.id;
    net.allow = delta >= 0 && prefix.allow === true;
  } else {
    const n = (net.longer.get(prefix.prefixLen) ?? 0) + delta;
    if (n > 0) net.longer.set(prefix.prefixLen, n);
    else net.longer.delete(prefix.prefixLen);
    const sub = keyText(prefix);
    if (delta < 0) net.subs.delete(sub);
    else net.subs.set(sub, prefix);
  }
  return top;
}

/** Prefixes with an entry of their own in the flat table: not /64s (in their /64 entry) nor /128s (in the host hash). */
const hasEntry = (prefix: V6Prefix): boolean => prefix.prefixLen !== 64 && prefix.prefixLen !== 128;

const word32 = (bytes: Uint8Array, at: number): number => ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;

function hostBit(network: Uint8Array): number {
  return v6HostBit(word32(network, 0), word32(network, 4), word32(network, 8), word32(network, 12));
}

function netBit(top: bigint): number {
  return v6NetBit(Number(top >> 32n), Number(top & 0xffff_ffffn));
}

function keyText(prefix: V6Prefix): string {
  return `${prefix.prefixLen}/${Buffer.from(prefix.network.buffer, prefix.network.byteOffset, 16).toString('hex')}`;
}

/** A flat-table key: the prefix length and the address cut to it. */
function writeKey(target: Buffer, offset: number, network: Uint8Array, prefixLen: number): void {
  target.writeUInt32LE(prefixLen, offset + KEY.prefixlen);
  const full = prefixLen >> 3;
  target.set(network.subarray(0, full), offset + KEY.addr);
  if (prefixLen & 7) target[offset + KEY.addr + full] = network[full]! & (0xff << (8 - (prefixLen & 7)));
}

function packPrefixes(prefixes: readonly V6Prefix[]): PackedRules {
  const keys = Buffer.alloc(prefixes.length * KEY.size);
  const values = Buffer.alloc(prefixes.length * RULE.size);
  prefixes.forEach((prefix, i) => {
    writeKey(keys, i * KEY.size, prefix.network, prefix.prefixLen);
    writeRuleValue(values, i * RULE.size, { ruleId: prefix.id, action: prefix.allow ? Action.allow : Action.deny, flags: 0 });
  });
  return { keys, values, count: prefixes.length };
}

/**
 * /64 entries: the /64's own rule, and its prefixes in place (up to
 * V6_PROBES, longest first), else their lengths listed, else the trie.
 */
function packNets(nets: ReadonlyArray<[bigint, Net64]>): PackedRules {
  const keys = Buffer.alloc(nets.length * 8);
  const values = Buffer.alloc(nets.length * NET.size);
  nets.forEach(([top, net], i) => {
    keys.writeBigUInt64BE(top, i * 8);
    const at = i * NET.size;
    if (net.ruleId !== 0) writeRuleValue(values, at + NET.rule, { ruleId: net.ruleId, action: net.allow ? Action.allow : Action.deny, flags: 0 });
    if (net.subs.size <= V6_PROBES) {
      const subs = [...net.subs.values()].sort((a, b) => b.prefixLen - a.prefixLen);
      values.writeUInt32LE(subs.length, at + NET.count);
      subs.forEach((sub, k) => {
        const s = at + NET.sub + k * SUB.size;
        const low = Buffer.from(sub.network.buffer, sub.network.byteOffset + 8, 8).readBigUInt64BE(0) & (((1n << 64n) - 1n) << BigInt(128 - sub.prefixLen)) & ((1n << 64n) - 1n);
        values.writeBigUInt64LE(low, s + SUB.low);
        values.writeUInt32LE(sub.id, s + SUB.ruleId);
        values[s + SUB.action] = sub.allow ? Action.allow : Action.deny;
        values[s + SUB.len] = sub.prefixLen;
      });
      return;
    }
    const longer = [...net.longer.keys()].sort((a, b) => b - a);
    longer.slice(0, V6_PROBES).forEach((len, k) => (values[at + NET.longer + k] = len));
    values.writeUInt32LE(longer.length > V6_PROBES ? V6NetFlags.deeper : V6NetFlags.listed, at + NET.flags);
  });
  return { keys, values, count: nets.length };
}

// The flat IPv6 tables (a hash per prefix length, src/datapath/v6-lengths.ts)
// against a longest-prefix-match reference written in TypeScript: seeded
// random sets of nested deny and allow prefixes go in through CidrMaps (the
// control plane's write path), packets through BPF_PROG_TEST_RUN on the real
// program, and every verdict and rule counter must agree with the reference,
// after every change (adds, removals, allow/deny swaps, a reconcile). Two
// shapes: few lengths below /64 (the flat probes decide), many (the trie
// decides those); both with /64s holding more than XW_V6_PROBES lengths.
// Needs root.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CidrMaps, type KernelRule } from '../src/datapath/cidr-maps.js';
import { assignIfslot } from '../src/datapath/datapath.js';
import { V6Flags, V6Layout, V6NetFlags, V6_PROBES } from '../src/datapath/abi.js';
import type { Firewall } from '../src/firewall.js';
import { ether, ipv6, udp } from './lib/packets.js';
import { openTestFirewall, quietLog } from './lib/firewall.js';
import { prng } from './lib/prng.js';
import { RuleColumns } from '../src/rules/rule-columns.js';

const XDP_DROP = 1;
const XDP_PASS = 2;
const ALL = (1n << 128n) - 1n;

let firewall: Firewall;
let cidr: CidrMaps;

beforeAll(async () => {
  firewall = await openTestFirewall({ cidrV4: 1024, cidrV6: 8192, flows: 1024 });
  assignIfslot(firewall.datapath.maps, firewall.datapath.ifslots, 1, quietLog);
  cidr = new CidrMaps(firewall.datapath.maps);
});
afterAll(() => firewall?.close());

const mask = (len: number): bigint => (len === 0 ? 0n : (ALL << BigInt(128 - len)) & ALL);
const toBytes = (value: bigint): Buffer => {
  const out = Buffer.alloc(16);
  out.writeBigUInt64BE(value >> 64n, 0);
  out.writeBigUInt64BE(value & 0xffff_ffff_ffff_ffffn, 8);
  return out;
};
const text = (value: bigint): string => toBytes(value).toString('hex').replace(/(.{4})(?!$)/g, '$1:');

interface Prefix {
  id: number;
  net: bigint;
  len: number;
  allow: boolean;
}

function kernelRule(p: Prefix): KernelRule {
  const rule: KernelRule = {
    id: p.id, cidr: `${text(p.net)}/${p.len}`, family: 6, prefixLen: p.len, network: toBytes(p.net), direction: 'src', comment: null, createdAt: '',
  };
  if (p.allow) rule.allow = true;
  return rule;
}

/** The reference: the longest prefix holding `addr`, or none. */
function longest(prefixes: Iterable<Prefix>, addr: bigint): Prefix | undefined {
  let best: Prefix | undefined;
  for (const p of prefixes) if ((addr & mask(p.len)) === p.net && (!best || p.len > best.len)) best = p;
  return best;
}

/**
 * A seeded generator of nested prefixes inside fd00:198::/32: roots at the
 * short lengths given, children extending a random existing prefix, and a
 * few /64s crowded with more than XW_V6_PROBES longer lengths.
 */
class Generator {
  readonly random: () => number;
  private nextId = 1000;

  constructor(seed: number, private readonly shortLens: readonly number[]) {
    this.random = prng(seed);
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.random() * (max - min + 1));
  }

  bits(n: number): bigint {
    let v = 0n;
    for (let i = 0; i < n; i += 16) v = (v << 16n) | BigInt(this.int(0, 0xffff));
    return v & ((1n << BigInt(n)) - 1n);
  }

  /** A prefix of `len` under `parent` (or the lab /32), not one of `taken`. */
  child(parent: Prefix | undefined, len: number, taken: Map<string, Prefix>): Prefix | undefined {
    const base = parent ? parent.net : 0xfd000198n << 96n;
    const from = parent ? parent.len : 32;
    if (len <= from) return undefined;
    const net = (base | (this.bits(128 - from) & ~mask(from) & ALL)) & mask(len);
    if (taken.has(`${net}/${len}`)) return undefined;
    return { id: this.nextId++, net, len, allow: this.random() < 0.25 };
  }

  /** `count` new prefixes, nested in `existing` and each other. */
  more(existing: Map<string, Prefix>, count: number): Prefix[] {
    const out: Prefix[] = [];
    const all = () => [...existing.values(), ...out];
    const taken = new Map(existing);
    const add = (p: Prefix | undefined) => {
      if (!p) return;
      taken.set(`${p.net}/${p.len}`, p);
      out.push(p);
    };
    while (out.length < count) {
      const pool = all();
      const roll = this.random();
      if (roll < 0.15 || pool.length === 0) {
        add(this.child(undefined, this.shortLens[this.int(0, this.shortLens.length - 1)]!, taken));
      } else if (roll < 0.3) {
        // Crowd one /64 (made if needed) with many longer lengths.
        const parent = pool[this.int(0, pool.length - 1)]!;
        const top = parent.len >= 64 ? { ...parent, net: parent.net & mask(64), len: 64 } : this.child(parent, 64, taken);
        if (!top) continue;
        if (!taken.has(`${top.net}/64`) && this.random() < 0.5) add(top);
        for (let i = 0; i < 4; i++) add(this.child(top, this.int(65, 127), taken));
      } else {
        const parent = pool[this.int(0, pool.length - 1)]!;
        if (parent.len === 128) continue;
        const len = parent.len < 64 && this.random() < 0.5
          ? this.shortLens.find((l) => l > parent.len) ?? 64
          : this.int(Math.max(parent.len + 1, 64), 128);
        add(this.child(parent, len, taken));
      }
    }
    return out;
  }

  /** Addresses worth asking about: inside each prefix, at its first and last address, just past it, and nowhere. */
  probes(prefixes: readonly Prefix[], count: number): bigint[] {
    const out: bigint[] = [];
    for (let i = 0; i < count; i++) {
      const p = prefixes[this.int(0, prefixes.length - 1)]!;
      const size = 1n << BigInt(128 - p.len);
      const roll = this.int(0, 4);
      if (roll === 0) out.push(p.net);
      else if (roll === 1) out.push(p.net + size - 1n);
      else if (roll === 2) out.push((p.net + size) & ALL);
      else if (roll === 3) out.push(p.net | (this.bits(128 - p.len) & (size - 1n)));
      else out.push((0xfd000198n << 96n) | this.bits(96));
    }
    return out;
  }
}

/** What the program does with a packet from each address, against the reference: the mismatches. */
function check(prefixes: Map<string, Prefix>, addrs: readonly bigint[]): string[] {
  const mismatches: string[] = [];
  const ingress = firewall.datapath.ingress;
  for (const addr of addrs) {
    const want = longest(prefixes.values(), addr);
    const deny = want && !want.allow ? want.id : 0;
    const before = deny ? cidr.hits(deny).packets : 0n;
    const frame = ether(ipv6({ src: text(addr), dst: 'fd00:198:ffff::2' }, udp({ sport: 40000, dport: 53 })));
    const action = ingress.testRunSync({ data: frame, dataSizeOut: 0 }).retval;
    const counted = deny ? cidr.hits(deny).packets - before : 0n;
    const expected = deny ? XDP_DROP : XDP_PASS;
    if (action !== expected || counted !== (deny ? 1n : 0n)) {
      mismatches.push(`${text(addr)}: got ${action === XDP_DROP ? 'drop' : 'pass'} (counter +${counted}), want ${want ? `${want.allow ? 'allow' : 'deny'} ${text(want.net)}/${want.len} #${want.id}` : 'no match'}`);
    }
  }
  return mismatches;
}

function lengthsEntry(): { count: number; flags: number; shorter: number[] } {
  const slot = Buffer.alloc(4);
  const value = firewall.datapath.maps.v6.lengths.lookup(slot)!;
  const L = V6Layout.v6Lengths;
  const count = value.readUInt32LE(L.count);
  return { count, flags: value.readUInt32LE(L.flags), shorter: [...value.subarray(L.shorter, L.shorter + Math.min(count, V6_PROBES))] };
}

/** The /64 entries of the source table: how each holds its longer prefixes. */
async function netEntries(): Promise<Array<'in place' | 'listed' | 'trie'>> {
  const table = firewall.datapath.maps.v6.srcNet;
  const { values, count } = await table.lookupAll();
  const out: Array<'in place' | 'listed' | 'trie'> = [];
  for (let i = 0; i < count; i++) {
    const flags = values.readUInt32LE(i * table.valueStride + V6Layout.v6Net.flags);
    out.push(flags & V6NetFlags.deeper ? 'trie' : flags & V6NetFlags.listed ? 'listed' : 'in place');
  }
  return out;
}

async function clear(prefixes: Map<string, Prefix>): Promise<void> {
  await cidr.applyDiff({ install: [], replace: [], remove: [...prefixes.values()].map(kernelRule) });
  prefixes.clear();
}

describe.each([
  { shape: 'few lengths below /64 (flat probes)', seed: 61, shortLens: [32, 40, 44, 48, 52, 56, 60], shortTrie: false },
  { shape: 'many lengths below /64 (the trie decides those)', seed: 62, shortLens: [33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 61, 63], shortTrie: true },
])('flat IPv6 lookups, $shape: 0 mismatches with a reference LPM', ({ seed, shortLens, shortTrie }) => {
  it('across adds, removals, allow/deny swaps and a reconcile', async () => {
    const gen = new Generator(seed, shortLens);
    const prefixes = new Map<string, Prefix>();
    const keyOf = (p: Prefix) => `${p.net}/${p.len}`;
    let checked = 0;
    const verify = (what: string) => {
      const addrs = gen.probes([...prefixes.values()], 600);
      checked += addrs.length;
      expect(check(prefixes, addrs), what).toEqual([]);
    };
    try {
      // A first set through installMany (deny blocks), then allow entries through applyDiff.
      const first = gen.more(prefixes, 500).map((p) => ({ ...p, allow: false }));
      await cidr.installMany(first.map(kernelRule));
      for (const p of first) prefixes.set(keyOf(p), p);
      const allows = gen.more(prefixes, 150).map((p) => ({ ...p, allow: true }));
      await cidr.applyDiff({ install: allows.map(kernelRule), replace: [], remove: [] });
      for (const p of allows) prefixes.set(keyOf(p), p);
      verify('after the first set');
      expect((lengthsEntry().flags & V6Flags.shortTrie) !== 0).toBe(shortTrie);
      expect(lengthsEntry().flags & V6Flags.flat).toBe(V6Flags.flat);
      // Every kind of /64 entry exists: prefixes in place, lengths listed, the trie asked.
      expect(new Set(await netEntries())).toEqual(new Set(['in place', 'listed', 'trie']));

      for (let round = 0; round < 4; round++) {
        const all = [...prefixes.values()];
        const gone = all.filter(() => gen.random() < 0.2);
        const swapped = all.filter((p) => !gone.includes(p) && gen.random() < 0.1);
        const added = gen.more(prefixes, 120);
        for (const p of gone) prefixes.delete(keyOf(p));
        const replace = swapped.map((p) => {
          const to = { ...p, id: p.id + 100_000, allow: !p.allow };
          prefixes.set(keyOf(to), to);
          return { from: kernelRule(p), to: kernelRule(to) };
        });
        for (const p of added) prefixes.set(keyOf(p), p);
        await cidr.applyDiff({ install: added.map(kernelRule), replace, remove: gone.map(kernelRule) });
        verify(`after round ${round}`);
      }

      // Blocks removed through removeMany, then the whole set again through reconcile.
      const denies = [...prefixes.values()].filter((p) => !p.allow).slice(0, 100);
      await cidr.removeMany(denies.map(kernelRule));
      for (const p of denies) prefixes.delete(keyOf(p));
      verify('after removeMany');
      const columns = new RuleColumns();
      for (const p of [...prefixes.values()].sort((a, b) => a.id - b.id)) columns.push(p.id, 6, p.len, toBytes(p.net), false, p.allow);
      await cidr.reconcile(columns);
      verify('after reconcile');
      expect(checked).toBe(600 * 7);
    } finally {
      await clear(prefixes);
    }
    // Nothing left: no lengths, and the tables are empty.
    expect(lengthsEntry()).toEqual({ count: 0, flags: V6Flags.flat, shorter: [] });
    expect((await firewall.datapath.maps.v6.srcLen.lookupAll()).count).toBe(0);
    expect((await firewall.datapath.maps.v6.srcNet.lookupAll()).count).toBe(0);
    const filter = await firewall.datapath.maps.v6.filter.lookupAll();
    expect(filter.values.every((byte) => byte === 0)).toBe(true);
  }, 120_000);
});

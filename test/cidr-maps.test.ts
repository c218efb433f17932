// CidrMaps on the real data plane: rules go through the control plane's
// write path into the kernel's DIR-24-8 table, host hashes and tries, and
// packets through BPF_PROG_TEST_RUN say what the kernel decides. Exact
// verdicts and rule ids at the /25../31 boundaries, after removals, and
// after a change that failed halfway (its undo must leave the kernel as it
// was). Needs root.
import { readRuleHits } from '../src/datapath/rule-hits.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BpfError, type BpfMap } from '@xdpwall/addon';
import { CidrMaps } from '../src/datapath/cidr-maps.js';
import { DIR24_BLOCK, DIR24_MAX_RULE_ID, readDir24Slot } from '../src/datapath/dir24.js';
import { assignIfslot, type DatapathMaps } from '../src/datapath/datapath.js';
import { Action, Feature, Layout, encodeRuleId, encodeRuleValue, sumCounters, cpusOf, v4HostBit } from '../src/datapath/abi.js';
import { parseCidr } from '../src/rules/cidr.js';
import type { BlockDirection, BlockRule } from '../src/rules/model.js';
import type { Firewall } from '../src/firewall.js';
import { ether, ipv4, udp } from './lib/packets.js';
import { openTestFirewall, quietLog } from './lib/firewall.js';

const XDP_DROP = 1;
const XDP_PASS = 2;

const rule = (id: number, cidr: string, direction: BlockDirection = 'src'): BlockRule => {
  const c = parseCidr(cidr);
  return { id, cidr: c.text, family: c.family, prefixLen: c.prefixLen, network: c.bytes, direction, comment: null, createdAt: '' };
};

/** One map whose named method fails (once armed), as the kernel would. */
function faulty(map: BpfMap, method: 'updateBatch' | 'deleteBatch') {
  const state = { armed: false };
  const proxy = new Proxy(map, {
    get(target, property) {
      if (property === method && state.armed) return () => Promise.reject(new BpfError('injected EIO', 5, 'EIO', `bpf_map_${method}`));
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { proxy, state };
}

let firewall: Firewall;
let maps: DatapathMaps;

beforeAll(async () => {
  firewall = await openTestFirewall();
  maps = firewall.datapath.maps;
  assignIfslot(maps, firewall.datapath.ifslots, 1, quietLog);
});
afterAll(() => firewall?.close());

/** What ingress does with a UDP packet from `src`: the action, and the rule whose counter moved (0: none). */
function verdictFor(src: string): { action: number; ruleId: number } {
  const before = ruleHits();
  const frame = ether(ipv4({ src, dst: '198.19.255.2' }, udp({ sport: 40000, dport: 53 })));
  const action = firewall.datapath.ingress.testRunSync({ data: frame, dataSizeOut: 0 }).retval;
  const after = ruleHits();
  const moved = [...after].filter(([id, n]) => n !== (before.get(id) ?? 0n)).map(([id]) => id);
  return { action, ruleId: moved[0] ?? 0 };
}

function ruleHits(): Map<number, bigint> {
  const out = new Map<number, bigint>();
  for (let key = maps.ruleStats.nextKey(null); key; key = maps.ruleStats.nextKey(key)) {
    const id = key.readUInt32LE(0);
    out.set(id, readRuleHits(maps.ruleStats, maps.ruleHitCache, id).packets);
  }
  return out;
}

const drop = (ruleId: number) => ({ action: XDP_DROP, ruleId });
const pass = { action: XDP_PASS, ruleId: 0 };
const slot24 = (a: string) => parseCidr(`${a}/24`).bytes.readUInt32BE(0) >>> 8;
const v4Default = () => maps.config.lookup(encodeRuleId(0))!.readUInt32LE(Layout.config.v4Default);
/** The kernel's host filter bit of an IPv4 address (source side). */
const hostFilterBit = (address: string): number => {
  const bit = v4HostBit(parseCidr(`${address}/32`).bytes.readUInt32BE(0));
  const word = maps.v6.filter.lookup(encodeRuleId(bit >>> 6))!.readBigUInt64LE(0);
  return Number((word >> BigInt(bit & 63)) & 1n);
};

describe('CidrMaps: IPv4 through the DIR-24-8 table', () => {
  let cidr: CidrMaps;
  beforeEach(async () => {
    cidr = new CidrMaps(maps);
    await cidr.reconcile([]);
  });

  it('answers /25../31 through a second-level block, exactly at their boundaries', async () => {
    await cidr.installMany([rule(1, '198.18.5.0/24'), rule(2, '198.18.5.0/25'), rule(3, '198.18.5.64/26'), rule(4, '198.18.5.70/31')]);
    expect(readDir24Slot(maps.srcDir24, slot24('198.18.5.0')) & DIR24_BLOCK).toBe(DIR24_BLOCK);
    expect(verdictFor('198.18.5.0')).toEqual(drop(2));
    expect(verdictFor('198.18.5.63')).toEqual(drop(2));
    expect(verdictFor('198.18.5.64')).toEqual(drop(3));
    expect(verdictFor('198.18.5.69')).toEqual(drop(3));
    expect(verdictFor('198.18.5.70')).toEqual(drop(4));
    expect(verdictFor('198.18.5.71')).toEqual(drop(4));
    expect(verdictFor('198.18.5.72')).toEqual(drop(3));
    expect(verdictFor('198.18.5.127')).toEqual(drop(3)); // the /26 ends the /25
    expect(verdictFor('198.18.5.128')).toEqual(drop(1));
    expect(verdictFor('198.18.6.1')).toEqual(pass);
    // The /24 is removed: the block's fall-through slots are rewritten, the /25../31 stay.
    await cidr.removeMany([rule(1, '198.18.5.0/24')]);
    expect(verdictFor('198.18.5.128')).toEqual(pass);
    expect(verdictFor('198.18.5.70')).toEqual(drop(4));
    // The last /25../31 goes: the block is freed and the /24 slot answers alone.
    await cidr.removeMany([rule(2, '198.18.5.0/25'), rule(3, '198.18.5.64/26'), rule(4, '198.18.5.70/31')]);
    expect(readDir24Slot(maps.srcDir24, slot24('198.18.5.0'))).toBe(0);
    expect(verdictFor('198.18.5.70')).toEqual(pass);
    expect((await maps.srcV4.lookupAll()).count).toBe(0);
  });

  it('holds a /0 as the default, not in 2^24 slots, under longer prefixes and blocks', async () => {
    await cidr.installMany([rule(10, '0.0.0.0/0'), rule(11, '198.18.7.128/25'), rule(12, '198.18.0.0/16', 'dst')]);
    expect(v4Default()).toBe(10);
    expect(readDir24Slot(maps.srcDir24, slot24('9.9.9.0'))).toBe(0);
    expect(verdictFor('9.9.9.9')).toEqual(drop(10));
    expect(verdictFor('198.18.7.200')).toEqual(drop(11));
    expect(verdictFor('198.18.7.1')).toEqual(drop(10)); // a block slot no /25 covers
    await cidr.removeMany([rule(10, '0.0.0.0/0')]);
    expect(v4Default()).toBe(0);
    expect(verdictFor('9.9.9.9')).toEqual(pass);
  });

  it('sets a feature bit once a kind of rule exists and clears it with the last one, so other lookups cost nothing', async () => {
    const config = () => maps.config.lookup(encodeRuleId(0))!.readUInt32LE(Layout.config.features);
    // The host-route filter bit says who keeps the filter: always set once CidrMaps wrote the config.
    expect(config() & Feature.v4HostFilter).toBe(Feature.v4HostFilter);
    const features = () => config() & ~Feature.v4HostFilter;
    expect(features()).toBe(0);
    await cidr.installMany([rule(40, '198.18.20.0/24'), rule(41, '198.19.255.2/32', 'dst')]);
    expect(features()).toBe(Feature.srcV4 | Feature.dstV4);
    await cidr.installMany([rule(42, 'fd00:198::/64')]);
    expect(features()).toBe(Feature.srcV4 | Feature.dstV4 | Feature.srcV6);
    await cidr.removeMany([rule(41, '198.19.255.2/32', 'dst')]);
    expect(features()).toBe(Feature.srcV4 | Feature.srcV6);
    await cidr.reconcile([rule(42, 'fd00:198::/64')]);
    expect(features()).toBe(Feature.srcV6);
  });

  it('keeps a filter bit per IPv4 host route: an address without one skips the host hash', async () => {
    const host = '198.18.30.7';
    const other = '198.18.30.9';
    const bitOf = hostFilterBit;
    expect(bitOf(host)).toBe(0);
    await cidr.installMany([rule(50, `${host}/32`), rule(51, '198.18.30.0/24')]);
    expect(bitOf(host)).toBe(1);
    expect(verdictFor(host)).toEqual(drop(50));
    expect(verdictFor(other)).toEqual(drop(51));
    // A host entry written behind the control plane's back, without its bit, is not probed:
    // proof that the data plane reads the filter (the /24 answers instead).
    expect(bitOf(other)).toBe(0);
    maps.srcHostV4.update(parseCidr(`${other}/32`).bytes, encodeRuleValue({ ruleId: 52, action: Action.deny, flags: 0 }));
    expect(verdictFor(other)).toEqual(drop(51));
    maps.srcHostV4.delete(parseCidr(`${other}/32`).bytes);
    await cidr.removeMany([rule(50, `${host}/32`)]);
    expect(bitOf(host)).toBe(0);
    expect(verdictFor(host)).toEqual(drop(51));
    // Start-up rebuilds the bits from the rules.
    await cidr.reconcile([rule(50, `${host}/32`)]);
    expect(bitOf(host)).toBe(1);
    expect(verdictFor(host)).toEqual(drop(50));
  });

  it('a list change\'s held chunks (applyDiff holdFilter) write host routes the data plane probes for from the next call without it', async () => {
    const host = '198.18.32.7';
    const other = '198.18.32.9';
    const change = (install: BlockRule[], remove: BlockRule[], holdFilter?: boolean) =>
      cidr.applyDiff({ install, replace: [], remove }, holdFilter === undefined ? {} : { holdFilter });
    await cidr.installMany([rule(71, '198.18.32.0/24')]);
    await change([rule(70, `${host}/32`)], [], true);
    // In the host hash, but its bit is held: the /24 still answers.
    expect(hostFilterBit(host)).toBe(0);
    expect(verdictFor(host)).toEqual(drop(71));
    await change([rule(72, `${other}/32`)], []);
    expect([hostFilterBit(host), hostFilterBit(other)]).toEqual([1, 1]);
    expect(verdictFor(host)).toEqual(drop(70));
    expect(verdictFor(other)).toEqual(drop(72));
    // A held removal: the entry goes at once; its bit stays until the next write, a probe that misses.
    await change([], [rule(70, `${host}/32`)], true);
    expect(hostFilterBit(host)).toBe(1);
    expect(verdictFor(host)).toEqual(drop(71));
    await change([], [rule(72, `${other}/32`)]);
    expect([hostFilterBit(host), hostFilterBit(other)]).toEqual([0, 0]);
    expect(verdictFor(other)).toEqual(drop(71));
    await cidr.removeMany([rule(71, '198.18.32.0/24')]);
  });

  it('a start over host routes an earlier one wrote (a restart: new programs, a filter with no bits) probes the host hash until its reconcile', async () => {
    const features = () => maps.config.lookup(encodeRuleId(0))!.readUInt32LE(Layout.config.features);
    const host = '198.18.31.7';
    await cidr.installMany([rule(60, `${host}/32`)]);
    expect(features() & Feature.v4HostFilter).toBe(Feature.v4HostFilter);
    // What a restart's programs see: the pinned host hash and xw_config, their own filter, empty.
    const word = encodeRuleId(v4HostBit(parseCidr(`${host}/32`).bytes.readUInt32BE(0)) >>> 6);
    maps.v6.filter.update(word, Buffer.alloc(8));
    const restarted = new CidrMaps(maps);
    expect(features() & Feature.v4HostFilter).toBe(0);
    expect(features() & Feature.srcV4).toBe(Feature.srcV4); // the rest of the config keeps enforcing
    expect(verdictFor(host)).toEqual(drop(60));
    await restarted.reconcile([rule(60, `${host}/32`)]);
    expect(features() & Feature.v4HostFilter).toBe(Feature.v4HostFilter);
    expect(verdictFor(host)).toEqual(drop(60));
    await restarted.removeMany([rule(60, `${host}/32`)]);
  });

  it('a change failing halfway through the index leaves slots, blocks and tries as they were', async () => {
    await cidr.installMany([rule(20, '198.18.9.0/24')]);
    const before = { slot: readDir24Slot(maps.srcDir24, slot24('198.18.9.0')), trie: (await maps.srcV4.lookupAll()).count };
    // The third rule's id does not fit a slot: the first two are already in the index (and a block given out).
    const batch = [rule(21, '198.18.9.0/26'), rule(22, '198.18.10.0/24'), rule(DIR24_MAX_RULE_ID + 1, '198.18.11.0/27')];
    await expect(cidr.installMany(batch)).rejects.toThrow(/does not fit a DIR-24 slot/);
    expect(readDir24Slot(maps.srcDir24, slot24('198.18.9.0'))).toBe(before.slot);
    expect(readDir24Slot(maps.srcDir24, slot24('198.18.10.0'))).toBe(0);
    expect((await maps.srcV4.lookupAll()).count).toBe(before.trie);
    expect(verdictFor('198.18.9.1')).toEqual(drop(20));
    expect(verdictFor('198.18.10.1')).toEqual(pass);
    // The index is consistent again: the same /26 installs and is answered by a block.
    await cidr.installMany([rule(21, '198.18.9.0/26')]);
    expect(verdictFor('198.18.9.1')).toEqual(drop(21));
    expect(verdictFor('198.18.9.64')).toEqual(drop(20));
  });

  it('a failed block write is undone: the /24 keeps answering from its first-level slot', async () => {
    const l2 = faulty(maps.srcDir24L2, 'updateBatch');
    const broken = new CidrMaps({ ...maps, srcDir24L2: l2.proxy });
    await broken.reconcile([rule(30, '198.18.12.0/24')]);
    l2.state.armed = true;
    await expect(broken.installMany([rule(31, '198.18.12.128/25')])).rejects.toThrow(/EIO/);
    expect(readDir24Slot(maps.srcDir24, slot24('198.18.12.0'))).toBe(30);
    expect((await maps.srcV4.lookupAll()).count).toBe(0);
    expect(verdictFor('198.18.12.200')).toEqual(drop(30));
    l2.state.armed = false;
    await broken.installMany([rule(31, '198.18.12.128/25')]);
    expect(verdictFor('198.18.12.200')).toEqual(drop(31));
    expect(verdictFor('198.18.12.1')).toEqual(drop(30));
  });

  it('a /1 gives the event loop back between steps and is whole in the kernel once installMany resolves', async () => {
    // A slicer that is always due: every step ends in a turn of the event loop, and
    // the turns see how often other work (an immediate that re-arms itself) ran.
    let ticks = 0;
    let ticking = true;
    const tick = () => {
      ticks++;
      if (ticking) setImmediate(tick);
    };
    const ticksAtTurns: number[] = [];
    const counting = new CidrMaps(maps, {
      slicer: () => ({
        due: true,
        next: async () => {
          await new Promise((resolve) => setImmediate(resolve));
          ticksAtTurns.push(ticks);
        },
      }),
    });
    await counting.reconcile([rule(40, '10.0.0.0/8')]);
    ticksAtTurns.length = 0;
    setImmediate(tick);
    try {
      await counting.installMany([rule(41, '0.0.0.0/1')]);
      // A turn before the first step (which would otherwise run on after whatever came first), then one per step.
      expect(ticksAtTurns).toHaveLength(1 + 2 ** 23 / 65_536);
      // The other work ran between every two steps.
      expect(ticksAtTurns.every((n, i) => n > (ticksAtTurns[i - 1] ?? 0))).toBe(true);
      for (const [at, id] of [['0.0.0.0', 41], ['10.1.2.3', 40], ['127.255.255.254', 41]] as const) {
        expect(verdictFor(at), at).toEqual(drop(id));
      }
      expect(verdictFor('128.0.0.1')).toEqual(pass);
      expect(readDir24Slot(maps.srcDir24, slot24('127.255.255.0'))).toBe(41);
      ticksAtTurns.length = 0;
      await counting.removeMany([rule(41, '0.0.0.0/1')]);
      expect(ticksAtTurns).toHaveLength(1 + 128);
      expect(ticksAtTurns.every((n, i) => n > (ticksAtTurns[i - 1] ?? 0))).toBe(true);
    } finally {
      ticking = false;
    }
    expect(verdictFor('1.2.3.4')).toEqual(pass);
    expect(verdictFor('127.255.255.254')).toEqual(pass);
    expect(verdictFor('10.1.2.3')).toEqual(drop(40));
    await counting.removeMany([rule(40, '10.0.0.0/8')]);
  });

  it('changes that arrive while a /1 is being applied wait for it: the result is as if one ran after the other', async () => {
    const yielding = new CidrMaps(maps, { slicer: () => ({ due: true, next: () => new Promise((resolve) => setImmediate(resolve)) }) });
    await yielding.reconcile([]);
    const half = rule(50, '0.0.0.0/1');
    const order: string[] = [];
    await Promise.all([
      yielding.installMany([half]).then(() => order.push('add /1')),
      yielding.installMany([rule(51, '10.0.0.0/8')]).then(() => order.push('add /8')),
      yielding.removeMany([half]).then(() => order.push('remove /1')),
    ]);
    expect(order).toEqual(['add /1', 'add /8', 'remove /1']);
    expect(verdictFor('10.9.9.9')).toEqual(drop(51));
    expect(verdictFor('11.0.0.1')).toEqual(pass);
    expect(readDir24Slot(maps.srcDir24, slot24('11.0.0.0'))).toBe(0);
    expect(readDir24Slot(maps.srcDir24, slot24('10.255.255.0'))).toBe(51);
    await yielding.removeMany([rule(51, '10.0.0.0/8')]);
  });
});

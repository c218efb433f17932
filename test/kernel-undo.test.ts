// CidrMaps on real kernel maps, watched through proxies: xw_config (the
// feature bits that let ingress skip the lookups of kinds without rules) is
// written only after every table write of a change (a bit set first would
// send packets to tables that do not hold their rules yet), and a DIR-24
// batch that the kernel applies only in part is rolled back slot by slot, to
// the rule that covered each slot before (not to zero).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BpfError, type BpfMap } from '@xdpwall/addon';
import type { Firewall } from '../src/firewall.js';
import { CidrMaps } from '../src/datapath/cidr-maps.js';
import type { DatapathMaps } from '../src/datapath/datapath.js';
import { Feature, Layout } from '../src/datapath/abi.js';
import { DIR24_MAX_RULE_ID, readDir24Slot } from '../src/datapath/dir24.js';
import { parseCidr } from '../src/rules/cidr.js';
import type { BlockDirection, BlockRule } from '../src/rules/model.js';
import { openTestFirewall } from './lib/firewall.js';

const rule = (id: number, cidr: string, direction: BlockDirection = 'src'): BlockRule => {
  const c = parseCidr(cidr);
  return { id, cidr: c.text, family: c.family, prefixLen: c.prefixLen, network: c.bytes, direction, comment: null, createdAt: '' };
};

const MUTATIONS = new Set(['update', 'updateBatch', 'delete', 'deleteBatch']);

/** Every map wrapped so that its writes are logged as "mapName.method", in order. */
function recorded(maps: DatapathMaps): { maps: DatapathMaps; log: string[] } {
  const log: string[] = [];
  const wrap = (name: string, map: BpfMap): BpfMap =>
    new Proxy(map, {
      get(target, property) {
        const value = Reflect.get(target, property, target) as unknown;
        if (typeof value !== 'function') return value;
        if (typeof property === 'string' && MUTATIONS.has(property)) {
          return (...args: unknown[]) => {
            log.push(`${name}.${property}`);
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        return value.bind(target);
      },
    });
  const wrapped = Object.fromEntries(Object.entries(maps).map(([name, map]) => [name, wrap(name, map as BpfMap)])) as unknown as DatapathMaps;
  return { maps: wrapped, log };
}

/** A map whose updateBatch, once armed, writes only the first half of the batch for real and then fails. */
function halfWriting(map: BpfMap) {
  const state = { armed: false, partialWrites: 0 };
  const proxy = new Proxy(map, {
    get(target, property) {
      if (property === 'updateBatch' && state.armed) {
        return async (keys: Buffer, values: Buffer, count: number) => {
          state.armed = false;
          state.partialWrites++;
          const half = Math.floor(count / 2);
          await target.updateBatch(keys.subarray(0, half * target.keySize), values.subarray(0, half * target.valueStride), half);
          throw new BpfError(`injected: batch stopped after ${half} of ${count}`, 5, 'EIO', 'bpf_map_update_batch');
        };
      }
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { proxy, state };
}

let firewall: Firewall;
beforeAll(async () => {
  firewall = await openTestFirewall();
});
afterAll(() => firewall?.close());
// Each test starts from empty tables.
beforeEach(async () => {
  await new CidrMaps(firewall.datapath.maps).reconcile([]);
});

/** The rule id in the DIR-24 slot of a.b.c.0/24. */
function slotRule(map: BpfMap, a: number, b: number, c: number): number {
  return readDir24Slot(map, (a << 16) | (b << 8) | c) & DIR24_MAX_RULE_ID;
}

/** Rule ids of every /24 slot from 198.18.0.0 to 198.19.255.0 (a /15). */
function slots15(map: BpfMap): number[] {
  return Array.from({ length: 512 }, (_, i) => slotRule(map, 198, 18 + (i >> 8), i & 255));
}

describe('xw_config is written after the tables, never before', () => {
  const rules = [
    rule(11, '198.18.1.0/25'), // IPv4 trie, and a flag in its DIR-24 slot
    rule(12, '198.18.2.2/32'), // host hash
    rule(13, '198.18.3.0/24'), // DIR-24
    rule(14, 'fd00:198::/48', 'dst'), // IPv6 trie
    rule(15, '198.20.0.0/16', 'dst'), // DIR-24, other direction
  ];

  it.each(['installMany', 'removeMany'] as const)('%s: one config write, after the last table write', async (change) => {
    const { maps, log } = recorded(firewall.datapath.maps);
    const cidrMaps = new CidrMaps(maps);
    if (change === 'removeMany') {
      await cidrMaps.installMany(rules);
      log.length = 0;
    }
    const config = () => firewall.datapath.maps.config.lookup(Buffer.alloc(4))!;
    const genBefore = config().readUInt32LE(Layout.config.rulesGen);
    await cidrMaps[change](rules);
    expect(log.filter((entry) => entry.startsWith('config.'))).toEqual(['config.update']);
    expect(log.at(-1)).toBe('config.update');
    // Every table the rules live in was written before it.
    const written = new Set(log.slice(0, -1).map((entry) => entry.split('.')[0]));
    expect([...written]).toEqual(expect.arrayContaining(['srcV4', 'srcHostV4', 'srcDir24', 'dstV6', 'dstDir24']));
    const kinds = Feature.srcV4 | Feature.dstV4 | Feature.dstV6;
    expect(config().readUInt32LE(Layout.config.features) & (kinds | Feature.srcV6)).toBe(change === 'installMany' ? kinds : 0);
    // Nothing reads rules_gen any more (struct xw_config): it stays as it was.
    expect(config().readUInt32LE(Layout.config.rulesGen)).toBe(genBefore);
  });
});

describe('a DIR-24 batch the kernel applies only in part is rolled back', () => {
  const covering = rule(21, '198.18.0.0/15');
  const inner = rule(22, '198.18.0.0/16');
  const trieRule = rule(23, '198.19.7.0/25');

  it('installMany: the slots already written go back to the rule that covered them, the trie entry comes out', async () => {
    const maps = firewall.datapath.maps;
    const dir24 = halfWriting(maps.srcDir24);
    const cidrMaps = new CidrMaps({ ...maps, srcDir24: dir24.proxy });
    await cidrMaps.installMany([covering]);
    const before = slots15(maps.srcDir24);
    expect(new Set(before)).toEqual(new Set([21]));

    dir24.state.armed = true;
    await expect(cidrMaps.installMany([inner, trieRule])).rejects.toThrow(
      expect.objectContaining({ code: 'DATAPATH_ERROR', message: expect.stringMatching(/injected: batch stopped after/) }),
    );
    expect(dir24.state.partialWrites).toBe(1);
    expect(slots15(maps.srcDir24)).toEqual(before);
    expect((await maps.srcV4.lookupAll()).count).toBe(0);

    // The index forgot the failed rules too: removing the covering rule now clears every slot.
    await cidrMaps.removeMany([covering]);
    expect(new Set(slots15(maps.srcDir24))).toEqual(new Set([0]));
  });

  it('removeMany: the slots already rewritten get the removed rule back', async () => {
    const maps = firewall.datapath.maps;
    const dir24 = halfWriting(maps.srcDir24);
    const cidrMaps = new CidrMaps({ ...maps, srcDir24: dir24.proxy });
    await cidrMaps.installMany([covering, inner]);
    const before = slots15(maps.srcDir24);
    expect(before.slice(0, 256)).toEqual(new Array(256).fill(22));
    expect(before.slice(256)).toEqual(new Array(256).fill(21));

    dir24.state.armed = true;
    await expect(cidrMaps.removeMany([inner])).rejects.toThrow(/injected: batch stopped after/);
    expect(slots15(maps.srcDir24)).toEqual(before);

    // And the index still holds the rule: a second removal succeeds and hands the slots to the covering rule.
    await cidrMaps.removeMany([inner]);
    expect(new Set(slots15(maps.srcDir24))).toEqual(new Set([21]));
  });
});

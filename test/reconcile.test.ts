// Start-up reconcile on real maps: the kernel tables are seeded with extra,
// missing and changed entries and stale counters, then reconciled against
// the store's columns; afterwards every table holds exactly the stored
// rules, counters of kept rules survive, and packets through the ingress
// program (BPF_PROG_TEST_RUN) are dropped or passed accordingly. Also the
// store's paged column scan against its row API, and the packed-key index.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BpfMap } from '@xdpwall/addon';
import { CidrMaps } from '../src/datapath/cidr-maps.js';
import { Action, encodeRuleId, encodeRuleValue, encodeLpmKey } from '../src/datapath/abi.js';
import { DIR24_BLOCK, readDir24Slot } from '../src/datapath/dir24.js';
import { PackedKeyIndex } from '../src/datapath/reconcile.js';
import type { Firewall } from '../src/firewall.js';
import { parseCidr } from '../src/rules/cidr.js';
import type { BlockDirection, BlockRule } from '../src/rules/model.js';
import { RuleColumns } from '../src/rules/rule-columns.js';
import { RuleStore } from '../src/rules/store.js';
import { openTestFirewall } from './lib/firewall.js';
import { ether, ipv4, ipv6, udp } from './lib/packets.js';
import { prng } from './lib/prng.js';

const XDP_DROP = 1;
const XDP_PASS = 2;

const rule = (id: number, cidr: string, direction: BlockDirection = 'src'): BlockRule => {
  const c = parseCidr(cidr);
  return { id, cidr: c.text, family: c.family, prefixLen: c.prefixLen, network: Buffer.from(c.bytes), direction, comment: null, createdAt: '' };
};
const hostKey = (cidr: string): Buffer => Buffer.from(parseCidr(cidr).bytes);
const lpmKey = (cidr: string): Buffer => {
  const c = parseCidr(cidr);
  return encodeLpmKey(c.family, c.bytes, c.prefixLen);
};
const deny = (ruleId: number): Buffer => encodeRuleValue({ ruleId, action: Action.deny, flags: 0 });

/** A table's contents as hex key -> hex value. */
async function contents(map: BpfMap): Promise<Record<string, string>> {
  const { keys, values, count } = await map.lookupAll();
  const out: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    out[keys.subarray(i * map.keySize, (i + 1) * map.keySize).toString('hex')] = values
      .subarray(i * map.valueStride, i * map.valueStride + map.valueSize)
      .toString('hex');
  }
  return out;
}

const entries = (pairs: Array<[Buffer, Buffer]>): Record<string, string> =>
  Object.fromEntries(pairs.map(([k, v]) => [k.toString('hex'), v.toString('hex')]));

describe('CidrMaps.reconcile on real maps', () => {
  let firewall: Firewall;
  beforeAll(async () => {
    firewall = await openTestFirewall();
  });
  afterAll(() => firewall?.close());
  beforeEach(async () => {
    await new CidrMaps(firewall.datapath.maps).reconcile([]);
  });

  // What the store holds after the daemon was down.
  const stored = [
    rule(10, '198.18.1.1/32'), // kept: the kernel has it with this value
    rule(11, '198.18.1.2/32'), // changed: the kernel has this key under rule 99
    rule(12, '198.18.1.3/32'), // missing from the kernel
    rule(13, '198.18.2.0/25'), // a DIR-24-8 second-level block
    rule(14, '198.18.3.0/24'), // DIR-24 only
    rule(15, 'fd00:198::1/128', 'dst'), // IPv6 host, destination
    rule(16, 'fd00:198:1::/48'), // IPv6 trie, kept
    rule(17, '198.18.1.1/32', 'dst'), // same address, other direction
  ];

  async function seedKernel(): Promise<void> {
    const { maps } = firewall.datapath;
    maps.srcHostV4.update(hostKey('198.18.1.1/32'), deny(10));
    maps.srcHostV4.update(hostKey('198.18.1.2/32'), deny(99));
    maps.srcHostV4.update(hostKey('198.18.9.9/32'), deny(20)); // extra: rule 20 was deleted
    maps.srcV4.update(lpmKey('198.18.8.0/26'), deny(21)); // extra
    maps.srcV6.update(lpmKey('fd00:198:1::/48'), deny(16));
    maps.dstHostV6.update(hostKey('fd00:198::2/128'), deny(22)); // extra
    const counter = (packets: number): Buffer => {
      const value = Buffer.alloc(maps.ruleStats.valueStride);
      value.writeBigUInt64LE(BigInt(packets), 0);
      value.writeBigUInt64LE(BigInt(packets * 100), 8);
      return value;
    };
    maps.ruleStats.update(encodeRuleId(10), counter(7)); // kept rule: survives
    maps.ruleStats.update(encodeRuleId(16), counter(3)); // kept rule: survives
    maps.ruleStats.update(encodeRuleId(20), counter(5)); // deleted rule: dropped
  }

  it('leaves exactly the stored rules in every table and keeps counters of kept rules', async () => {
    await seedKernel();
    const cidrMaps = new CidrMaps(firewall.datapath.maps);
    const report = await cidrMaps.reconcile(RuleColumns.fromRules(stored));
    // kept: 10, 16; removed: 20, 21, 22; added: 11 (rewritten), 12, 13 (trie and a DIR-24-8 block), 14 (DIR-24), 15, 17
    expect(report).toEqual({ kept: 2, removed: 3, added: 6 });

    const { maps } = firewall.datapath;
    expect(await contents(maps.srcHostV4)).toEqual(
      entries([[hostKey('198.18.1.1/32'), deny(10)], [hostKey('198.18.1.2/32'), deny(11)], [hostKey('198.18.1.3/32'), deny(12)]]),
    );
    expect(await contents(maps.dstHostV4)).toEqual(entries([[hostKey('198.18.1.1/32'), deny(17)]]));
    // The /25 is answered by a DIR-24-8 block; the trie keeps it too (the fallback when blocks run out).
    expect(await contents(maps.srcV4)).toEqual(entries([[lpmKey('198.18.2.0/25'), deny(13)]]));
    expect(await contents(maps.dstV4)).toEqual({});
    expect(await contents(maps.srcV6)).toEqual(entries([[lpmKey('fd00:198:1::/48'), deny(16)]]));
    expect(await contents(maps.dstHostV6)).toEqual(entries([[hostKey('fd00:198::1/128'), deny(15)]]));
    expect(await contents(maps.srcHostV6)).toEqual({});

    const slot = (a: number, b: number, c: number) => readDir24Slot(maps.srcDir24, (a << 16) | (b << 8) | c);
    expect(slot(198, 18, 3)).toBe(14);
    expect(slot(198, 18, 2) & DIR24_BLOCK).toBe(DIR24_BLOCK); // the /25 is in a second-level block

    expect(cidrMaps.hits(10)).toEqual({ packets: 7n, bytes: 700n });
    expect(cidrMaps.hits(16)).toEqual({ packets: 3n, bytes: 300n });
    expect(maps.ruleStats.lookup(encodeRuleId(20))).toBeNull();
  });

  it('drops what the store holds and passes what it no longer does (BPF_PROG_TEST_RUN)', async () => {
    await seedKernel();
    await new CidrMaps(firewall.datapath.maps).reconcile(RuleColumns.fromRules(stored));
    const { ingress } = firewall.datapath;
    const v4 = (src: string, dst = '198.18.200.1') => ingress.testRunSync({ data: ether(ipv4({ src, dst }, udp({ sport: 1, dport: 53 }))) }).retval;
    const v6 = (src: string, dst: string) => ingress.testRunSync({ data: ether(ipv6({ src, dst }, udp({ sport: 1, dport: 53 }))) }).retval;
    expect(v4('198.18.1.1')).toBe(XDP_DROP);
    expect(v4('198.18.1.2')).toBe(XDP_DROP);
    expect(v4('198.18.1.3')).toBe(XDP_DROP);
    expect(v4('198.18.2.100')).toBe(XDP_DROP); // the /25
    expect(v4('198.18.2.200')).toBe(XDP_PASS); // same /24, outside the /25
    expect(v4('198.18.3.77')).toBe(XDP_DROP); // the /24
    expect(v4('198.18.9.9')).toBe(XDP_PASS); // deleted while down
    expect(v4('198.18.8.1')).toBe(XDP_PASS); // deleted while down
    expect(v4('198.18.200.2', '198.18.1.1')).toBe(XDP_DROP); // dst rule 17
    expect(v6('fd00:198:1::5', 'fd00:198::9')).toBe(XDP_DROP); // the /48
    expect(v6('fd00:198:2::5', 'fd00:198::1')).toBe(XDP_DROP); // dst host 15
    expect(v6('fd00:198:2::5', 'fd00:198::2')).toBe(XDP_PASS); // deleted while down
    expect(new CidrMaps(firewall.datapath.maps).hits(13)).toEqual({ packets: 1n, bytes: expect.any(BigInt) });
  });

  it('is idempotent: a second reconcile keeps everything', async () => {
    const cidrMaps = new CidrMaps(firewall.datapath.maps);
    await cidrMaps.reconcile(stored);
    // Everything but the DIR-24-only /24 has a table entry the second pass keeps.
    expect(await cidrMaps.reconcile(stored)).toEqual({ kept: 7, removed: 0, added: 1 });
  });

  it('takes BlockRule arrays and columns alike', async () => {
    const a = new CidrMaps(firewall.datapath.maps);
    await a.reconcile(stored);
    const fromRules = await contents(firewall.datapath.maps.srcHostV4);
    await a.reconcile([]);
    expect(await contents(firewall.datapath.maps.srcHostV4)).toEqual({});
    await a.reconcile(RuleColumns.fromRules(stored));
    expect(await contents(firewall.datapath.maps.srcHostV4)).toEqual(fromRules);
  });
});

describe('RuleStore.readColumns', () => {
  it('reads every rule as the row API does, across pages, in id order', async () => {
    const store = new RuleStore(':memory:');
    try {
      const random = prng(42);
      const texts = new Set<string>();
      await store.transaction('seed', () => {
        for (let n = 0; n < 40_000; n++) {
          const v6 = random() < 0.3;
          const len = v6 ? [48, 64, 128][n % 3]! : [16, 24, 28, 32][n % 4]!;
          const text = v6
            ? `fd00:198:${(n % 65536).toString(16)}::${len === 128 ? (n + 1).toString(16) : ''}/${len}`
            : `${10 + (n % 200)}.${(n >>> 8) & 255}.${len >= 24 ? n & 255 : 0}.${len >= 32 ? (n * 7) & 255 : 0}/${len}`;
          const direction: BlockDirection = random() < 0.5 ? 'src' : 'dst';
          if (texts.has(text + direction)) continue;
          texts.add(text + direction);
          store.insertRow(parseCidr(text), direction, n % 5 === 0 ? 'c' : null, '2026-01-01T00:00:00.000Z');
        }
      });
      // A gap in the ids, as deletes leave.
      for (let id = 100; id < 200; id++) store.delete(id);
      const rows = store.all();
      const columns = await store.readColumns();
      expect(columns.count).toBe(rows.length);
      expect(columns.perFamily).toEqual(store.countByFamily());
      expect(Array.from(columns.sortedIds())).toEqual(rows.map((r) => r.id));
      const got = rows.map((r, i) =>
        [columns.ids[i], columns.families[i], columns.prefixLens[i], columns.direction(i), columns.networks.subarray(i * 16, i * 16 + r.network.length).toString('hex')].join(' '),
      );
      expect(got).toEqual(rows.map((r) => [r.id, r.family, r.prefixLen, r.direction, r.network.toString('hex')].join(' ')));
    } finally {
      store.close();
    }
  });

  it('reads an empty store', async () => {
    const store = new RuleStore(':memory:');
    expect((await store.readColumns()).count).toBe(0);
    store.close();
  });
});

describe('PackedKeyIndex', () => {
  it('finds every key it holds and none it does not (20-byte keys)', () => {
    const random = prng(7);
    const count = 5000;
    const keys = Buffer.alloc(count * 20);
    for (let i = 0; i < keys.length; i++) keys[i] = Math.floor(random() * 4); // few values: many near-collisions
    // Make keys distinct by writing the row number into the first bytes.
    for (let i = 0; i < count; i++) keys.writeUInt32LE(i * 2, i * 20);
    const index = new PackedKeyIndex(keys, 20, count);
    for (let i = 0; i < count; i++) expect(index.find(keys, i * 20)).toBe(i);
    const other = Buffer.from(keys.subarray(0, 20));
    other.writeUInt32LE(1, 0); // odd: not held
    expect(index.find(other, 0)).toBe(-1);
  });
});

// Blocks' hits through the block hit cache (xw_rule_hit_cache in front of
// xw_rule_stats, see "block hit cache" in xdp/include/xdpwall_abi.h) on the
// real program: exact packets and bytes across cache hits, misses that only
// lower the element's score, evictions (hits moved into the hash), deletes,
// an id handed out again, and a restart (a new CidrMaps over the same maps,
// as a daemon over its pinned maps). The process is pinned to one CPU so the
// per-CPU cache sees every packet; the last case runs unpinned. Needs root.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CidrMaps } from '../src/datapath/cidr-maps.js';
import { assignIfslot, type DatapathMaps } from '../src/datapath/datapath.js';
import { HIT_CACHE_SCORE_NEW, HIT_CACHE_SLOTS, Layout, cpusOf, encodeRuleId, hitCacheIndex, sumCounters } from '../src/datapath/abi.js';
import { readRuleHits } from '../src/datapath/rule-hits.js';
import { parseCidr } from '../src/rules/cidr.js';
import type { BlockRule } from '../src/rules/model.js';
import type { Firewall } from '../src/firewall.js';
import { ether, ipv4, udp } from './lib/packets.js';
import { openTestFirewall, quietLog } from './lib/firewall.js';

const XDP_DROP = 1;

const block = (id: number, cidr: string): BlockRule => {
  const c = parseCidr(cidr);
  return { id, cidr: c.text, family: c.family, prefixLen: c.prefixLen, network: c.bytes, direction: 'src', comment: null, createdAt: '' };
};
const frameFrom = (src: string) => ether(ipv4({ src, dst: '198.19.255.2' }, udp({ sport: 40000, dport: 53, payload: Buffer.alloc(18) })));
const FRAME_BYTES = BigInt(frameFrom('198.18.0.1').length);
const hits = (packets: number) => ({ packets: BigInt(packets), bytes: BigInt(packets) * FRAME_BYTES });

/** Two ids with one cache index, and one with another. */
function collidingIds(): [number, number, number] {
  const first = 101;
  let second = first + 1;
  while (hitCacheIndex(second) !== hitCacheIndex(first)) second++;
  let other = first + 1;
  while (hitCacheIndex(other) === hitCacheIndex(first)) other++;
  return [first, second, other];
}

let firewall: Firewall;
let maps: DatapathMaps;
let affinity: string;

beforeAll(async () => {
  affinity = execFileSync('taskset', ['-p', '-c', String(process.pid)], { encoding: 'utf8' }).split(':').pop()!.trim();
  execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)]);
  firewall = await openTestFirewall();
  maps = firewall.datapath.maps;
  assignIfslot(maps, firewall.datapath.ifslots, 1, quietLog);
});
afterAll(() => {
  firewall?.close();
  if (affinity) execFileSync('taskset', ['-a', '-p', '-c', affinity, String(process.pid)]);
});

/** Sends `count` packets from `src` in one BPF_PROG_TEST_RUN call (one CPU). */
function send(src: string, count = 1): void {
  expect(firewall.datapath.ingress.testRunSync({ data: frameFrom(src), repeat: count, dataSizeOut: 0 }).retval).toBe(XDP_DROP);
}

/** The hash entry alone, summed over CPUs; null when it does not exist. */
function inHash(id: number) {
  const value = maps.ruleStats.lookup(encodeRuleId(id));
  return value ? sumCounters(value, 0, maps.ruleStats.valueStride, cpusOf(maps.ruleStats)) : null;
}

/** The rule ids the cache element of `id` names, per CPU, and their scores. */
function element(id: number): Array<{ ruleId: number; score: number }> {
  const value = maps.ruleHitCache.lookup(encodeRuleId(hitCacheIndex(id)))!;
  const stride = maps.ruleHitCache.valueStride / cpusOf(maps.ruleHitCache);
  return Array.from({ length: cpusOf(maps.ruleHitCache) }, (_, cpu) => ({
    ruleId: value.readUInt32LE(cpu * stride + Layout.hitCache.ruleId),
    score: value.readUInt32LE(cpu * stride + Layout.hitCache.score),
  }));
}
const holders = (id: number) => element(id).map((e) => e.ruleId).filter((r) => r !== 0);

describe('block hit cache', () => {
  const [a, b, c] = collidingIds();
  const srcA = '198.18.1.1';
  const srcB = '198.18.2.1';
  const srcC = '198.18.3.1';
  const rules = [block(a, '198.18.1.0/24'), block(b, '198.18.2.0/24'), block(c, '198.18.3.0/24')];
  let cidr: CidrMaps;
  const hitsOf = (id: number) => readRuleHits(maps.ruleStats, maps.ruleHitCache, id);

  beforeEach(async () => {
    cidr = new CidrMaps(maps);
    await cidr.reconcile([]);
    await cidr.installMany(rules);
  });

  it('counts exactly through hits, score-only misses and an eviction', () => {
    expect(hitCacheIndex(a)).toBe(hitCacheIndex(b));
    expect(hitCacheIndex(a)).not.toBe(hitCacheIndex(c));
    expect(hitsOf(a)).toEqual(hits(0));
    expect(inHash(a)).toBeNull(); // made on the first hit

    send(srcA); // first hit: counted in the hash, then A takes the element
    expect(inHash(a)).toEqual(hits(1));
    expect(holders(a)).toEqual([a]);
    send(srcA, 4); // cache hits: the hash does not move
    expect(inHash(a)).toEqual(hits(1));
    expect(hitsOf(a)).toEqual(hits(5));
    expect(cidr.hits(a)).toEqual(hits(5));

    // A's score is SCORE_NEW + 4: B's packets count in the hash and lower it, down to 1.
    const misses = HIT_CACHE_SCORE_NEW + 4 - 1;
    send(srcB, misses);
    expect(holders(a)).toEqual([a]);
    expect(element(a).find((e) => e.ruleId === a)!.score).toBe(1);
    expect(inHash(b)).toEqual(hits(misses));
    expect(hitsOf(a)).toEqual(hits(5));
    // The next one evicts A: its 4 cached hits move to the hash, B takes the element.
    send(srcB);
    expect(holders(a)).toEqual([b]);
    expect(inHash(a)).toEqual(hits(5));
    expect(hitsOf(a)).toEqual(hits(5));
    expect(hitsOf(b)).toEqual(hits(misses + 1));
    send(srcB, 3);
    expect(inHash(b)).toEqual(hits(misses + 1));
    expect(hitsOf(b)).toEqual(hits(misses + 4));
    // Another index is untouched.
    send(srcC, 2);
    expect(hitsOf(c)).toEqual(hits(2));
    expect(hitsOf(a)).toEqual(hits(5));
  });

  it('a deleted block leaves no hits behind, not even for its id given out again', async () => {
    send(srcB, 3);
    expect(holders(b)).toEqual([b]);
    await cidr.removeMany([rules[1]!]);
    expect(inHash(b)).toBeNull();
    expect(holders(b)).toEqual([]); // purged with the hash entry
    expect(hitsOf(b)).toEqual(hits(0));
    await cidr.installMany([rules[1]!]); // the same id again (a store that starts over)
    expect(hitsOf(b)).toEqual(hits(0));
    send(srcB, 2);
    expect(hitsOf(b)).toEqual(hits(2));
  });

  it('drops, never adds, an evicted element whose hash entry is gone', () => {
    send(srcA, 3); // 1 in the hash, 2 cached
    maps.ruleStats.delete(encodeRuleId(a)); // what a delete does first
    send(srcB, HIT_CACHE_SCORE_NEW + 2); // lowers A's score to 1, then evicts it
    expect(holders(a)).toEqual([b]);
    expect(inHash(a)).toBeNull(); // not made again by the flush
    expect(hitsOf(a)).toEqual(hits(0));
    expect(hitsOf(b)).toEqual(hits(HIT_CACHE_SCORE_NEW + 2));
  });

  it('keeps hits over a restart and purges those of blocks deleted while it was down', async () => {
    send(srcA, 6); // 1 in the hash, 5 cached
    send(srcC, 4);
    const restarted = new CidrMaps(maps);
    await restarted.reconcile([rules[0]!, rules[2]!]);
    expect(restarted.hits(a)).toEqual(hits(6));
    expect(restarted.hits(c)).toEqual(hits(4));
    send(srcA);
    expect(restarted.hits(a)).toEqual(hits(7));

    const again = new CidrMaps(maps);
    await again.reconcile([rules[2]!]); // A was deleted while the daemon was down
    expect(inHash(a)).toBeNull();
    expect(holders(a)).toEqual([]);
    expect(again.hits(c)).toEqual(hits(4));
    await again.installMany([rules[0]!]); // its id given out again
    expect(again.hits(a)).toEqual(hits(0));
    send(srcA);
    expect(again.hits(a)).toEqual(hits(1));
  });

  it('stays exact when a flood spreads over hundreds of blocks sharing elements', async () => {
    const many = Array.from({ length: 900 }, (_, i) => block(1000 + i, `198.18.${16 + (i >> 8)}.${i & 255}/32`));
    await cidr.installMany(many);
    const sent = new Map<number, number>();
    let x = 12345;
    for (let n = 0; n < 3000; n++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const pick = many[(x >>> 8) % many.length]!;
      const burst = 1 + ((x >>> 4) % 3);
      send(pick.cidr.split('/')[0]!, burst);
      sent.set(pick.id, (sent.get(pick.id) ?? 0) + burst);
    }
    const indexes = new Set(many.map((r) => hitCacheIndex(r.id)));
    expect(indexes.size).toBeLessThan(many.length); // 900 ids over HIT_CACHE_SLOTS elements: many share one
    expect(HIT_CACHE_SLOTS).toBe(1024);
    for (const r of many) expect(cidr.hits(r.id)).toEqual(hits(sent.get(r.id) ?? 0));
  });
});

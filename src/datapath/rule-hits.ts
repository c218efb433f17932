// Hits of blocks and lists: xw_rule_stats (per-CPU hash by rule id) plus the
// per-CPU write-back cache in front of it, xw_rule_hit_cache ("block hit
// cache" in xdp/include/xdpwall_abi.h). A rule's hits are its hash entry,
// summed over CPUs, plus each CPU's cache element at hitCacheIndex(id) while
// that element names the rule. The data plane makes the hash entry before an
// element names the rule, and drops (never adds) an evicted element whose
// rule's entry is gone, so a deleted rule's leftovers are never counted.
import type { BpfMap } from '@xdpwall/addon';
import { Layout, cpusOf, encodeRuleId, hitCacheIndex, sumCounters, type Counter } from './abi.js';

/** Attempts at a snapshot no eviction ran through before settling for the last one. */
const READ_ATTEMPTS = 4;

const ZERO = (): Counter => ({ packets: 0n, bytes: 0n });

/** One cache element on every CPU: the rule it names and its packets, per CPU. */
function readElement(cache: BpfMap, index: number): { ids: number[]; packets: bigint[]; value: Buffer } | null {
  const value = cache.lookup(encodeRuleId(index));
  if (!value) return null;
  const cpus = cpusOf(cache);
  const stride = cache.valueStride / cpus;
  const ids: number[] = [];
  const packets: bigint[] = [];
  for (let cpu = 0; cpu < cpus; cpu++) {
    ids.push(value.readUInt32LE(cpu * stride + Layout.hitCache.ruleId));
    packets.push(value.readBigUInt64LE(cpu * stride + Layout.hitCache.hits + Layout.counter.packets));
  }
  return { ids, packets, value };
}

/**
 * Packets and bytes of one block or list, summed over CPUs (zero before its
 * first hit). Reads the cache element, the hash entry, and the element
 * again: if some CPU evicted the rule's element in between (its hits moved
 * into the hash, counted twice or not at all), it reads again. Exact when no
 * packet of the rule's element arrives during the read; under traffic a
 * snapshot of some instant of the read.
 */
export function readRuleHits(stats: BpfMap, cache: BpfMap, ruleId: number): Counter {
  const index = hitCacheIndex(ruleId);
  let total = ZERO();
  for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
    const before = readElement(cache, index);
    const entry = stats.lookup(encodeRuleId(ruleId));
    const after = readElement(cache, index);
    if (!entry) return ZERO(); // no hash entry: never hit, or deleted (an element left behind is not its hits)
    total = sumCounters(entry, 0, stats.valueStride, cpusOf(stats));
    if (!before || !after) return total;
    const cpus = cpusOf(cache);
    const stride = cache.valueStride / cpus;
    let evicted = false;
    for (let cpu = 0; cpu < cpus; cpu++) {
      if (before.ids[cpu] === ruleId && (after.ids[cpu] !== ruleId || (after.packets[cpu] as bigint) < (before.packets[cpu] as bigint))) evicted = true;
      if (after.ids[cpu] !== ruleId) continue;
      const base = cpu * stride + Layout.hitCache.hits;
      total.packets += after.value.readBigUInt64LE(base + Layout.counter.packets);
      total.bytes += after.value.readBigUInt64LE(base + Layout.counter.bytes);
    }
    if (!evicted) return total;
  }
  return total;
}

/**
 * Empties the cache elements that name a rule `keep` rejects (deleted
 * rules, after their hash entries), so an id handed out again can never
 * count into an old element. Only elements naming such a rule are written;
 * a write replaces the element on every CPU, so a packet that another CPU
 * counts into the same index between the read and the write (a live rule
 * sharing the index, at most XW_HIT_CACHE_SLOTS elements per delete) is
 * lost: the price of purging without a data-plane round trip. Returns how
 * many CPU elements it emptied. `indexes`: only these elements (a rule's
 * hits can only be at hitCacheIndex(its id): deleting a few rules reads a
 * few elements, not all of them); all by default.
 */
export function purgeHitCache(cache: BpfMap, keep: (ruleId: number) => boolean, indexes?: Iterable<number>): number {
  const cpus = cpusOf(cache);
  const stride = cache.valueStride / cpus;
  let purged = 0;
  for (const index of indexes ?? Array.from({ length: cache.maxEntries }, (_, i) => i)) {
    const element = readElement(cache, index);
    if (!element) continue;
    const stale = element.ids.map((id, cpu) => (id !== 0 && !keep(id) ? cpu : -1)).filter((cpu) => cpu >= 0);
    if (stale.length === 0) continue;
    for (const cpu of stale) element.value.fill(0, cpu * stride, cpu * stride + Layout.hitCache.size);
    cache.update(encodeRuleId(index), element.value);
    purged += stale.length;
  }
  return purged;
}

// Keeps the kernel's CIDR tries and per-rule counters in step with the rule
// store: one rule at a time as the API changes them, and all at once when
// the daemon starts (adopted pinned maps may hold stale or missing entries).
import { BpfError, type BpfMap } from '@xdpwall/addon';
import { Action, cpusOf, encodeLpmKey, encodeRuleId, encodeRuleValue, sumCounters, type Counter } from './abi.js';
import type { DatapathMaps } from './datapath.js';
import { describe } from './datapath.js';
import type { RuleEnforcer } from '../rules/blocks.js';
import type { BlockRule } from '../rules/model.js';
import { CapacityError, DatapathError } from '../errors.js';

export interface ReconcileReport {
  added: number;
  removed: number;
  kept: number;
}

export class CidrMaps implements RuleEnforcer {
  constructor(private readonly maps: DatapathMaps) {}

  private trie(rule: Pick<BlockRule, 'family' | 'direction'>): BpfMap {
    if (rule.family === 4) return rule.direction === 'src' ? this.maps.srcV4 : this.maps.dstV4;
    return rule.direction === 'src' ? this.maps.srcV6 : this.maps.dstV6;
  }

  install(rule: BlockRule): void {
    const ruleKey = encodeRuleId(rule.id);
    try {
      // Counter first, so the first dropped packet is already counted.
      this.maps.ruleStats.update(ruleKey, Buffer.alloc(this.maps.ruleStats.valueStride));
      this.trie(rule).update(lpmKey(rule), ruleValue(rule));
    } catch (error) {
      this.maps.ruleStats.delete(ruleKey);
      throw kernelError(error, `cannot install ${rule.cidr} (${rule.direction})`);
    }
  }

  async installMany(rules: readonly BlockRule[]): Promise<void> {
    if (rules.length === 0) return;
    const { ruleStats } = this.maps;
    const byTrie = new Map<BpfMap, BlockRule[]>();
    for (const rule of rules) {
      const trie = this.trie(rule);
      const group = byTrie.get(trie);
      if (group) group.push(rule);
      else byTrie.set(trie, [rule]);
    }
    const ruleKeys = Buffer.concat(rules.map((r) => encodeRuleId(r.id)));
    const written: Array<[BpfMap, Buffer, number]> = [[ruleStats, ruleKeys, rules.length]];
    try {
      await ruleStats.updateBatch(ruleKeys, Buffer.alloc(rules.length * ruleStats.valueStride), rules.length);
      for (const [trie, group] of byTrie) {
        const keys = Buffer.concat(group.map(lpmKey));
        written.push([trie, keys, group.length]);
        await trie.updateBatch(keys, Buffer.concat(group.map(ruleValue)), group.length);
      }
    } catch (error) {
      // All or nothing: these rules are new, so removing every key restores the kernel.
      for (const [map, keys, count] of written) await map.deleteBatch(keys, count).catch(() => 0);
      throw kernelError(error, `cannot install ${rules.length} rules`);
    }
  }

  remove(rule: BlockRule): void {
    try {
      this.trie(rule).delete(lpmKey(rule));
      this.maps.ruleStats.delete(encodeRuleId(rule.id));
    } catch (error) {
      throw kernelError(error, `cannot remove ${rule.cidr} (${rule.direction})`);
    }
  }

  /** Packets and bytes dropped by one rule, summed over CPUs; undefined if the kernel has no counter. */
  hits(ruleId: number): Counter | undefined {
    const { ruleStats } = this.maps;
    const value = ruleStats.lookup(encodeRuleId(ruleId));
    return value ? sumCounters(value, 0, ruleStats.valueStride, cpusOf(ruleStats)) : undefined;
  }

  /** Makes the kernel hold exactly `rules`, keeping counters of rules it already had. */
  async reconcile(rules: readonly BlockRule[]): Promise<ReconcileReport> {
    const report: ReconcileReport = { added: 0, removed: 0, kept: 0 };
    const tries: Array<[BpfMap, BlockRule[]]> = [
      [this.maps.srcV4, []],
      [this.maps.dstV4, []],
      [this.maps.srcV6, []],
      [this.maps.dstV6, []],
    ];
    for (const rule of rules) tries.find(([map]) => map === this.trie(rule))![1].push(rule);
    try {
      await syncMap(this.maps.ruleStats, rules.map((r) => [encodeRuleId(r.id), null]), report);
      for (const [map, wanted] of tries) {
        await syncMap(map, wanted.map((r) => [lpmKey(r), ruleValue(r)]), report);
      }
    } catch (error) {
      throw kernelError(error, 'cannot restore rules into the kernel');
    }
    return report;
  }
}

/**
 * Brings `map` to exactly the wanted entries with batch calls. A null value
 * means "any value is fine; create zeroed if missing" (counters).
 */
async function syncMap(map: BpfMap, wanted: Array<[Buffer, Buffer | null]>, report: ReconcileReport): Promise<void> {
  const current = await map.lookupAll();
  const have = new Map<string, Buffer>();
  for (let i = 0; i < current.count; i++) {
    const key = current.keys.subarray(i * map.keySize, (i + 1) * map.keySize);
    have.set(key.toString('hex'), current.values.subarray(i * map.valueStride, (i + 1) * map.valueStride));
  }
  const toWrite: Array<[Buffer, Buffer]> = [];
  for (const [key, value] of wanted) {
    const hex = key.toString('hex');
    const existing = have.get(hex);
    have.delete(hex);
    if (existing && (value === null || existing.equals(value))) {
      report.kept++;
      continue;
    }
    toWrite.push([key, value ?? Buffer.alloc(map.valueStride)]);
  }
  const stale = [...have.keys()];
  if (stale.length > 0) {
    await map.deleteBatch(Buffer.concat(stale.map((hex) => Buffer.from(hex, 'hex'))), stale.length);
    report.removed += stale.length;
  }
  if (toWrite.length > 0) {
    await map.updateBatch(
      Buffer.concat(toWrite.map(([k]) => k)),
      Buffer.concat(toWrite.map(([, v]) => v)),
      toWrite.length,
    );
    report.added += toWrite.length;
  }
}

function lpmKey(rule: BlockRule): Buffer {
  return encodeLpmKey(rule.family, rule.network, rule.prefixLen);
}

function ruleValue(rule: BlockRule): Buffer {
  return encodeRuleValue({ ruleId: rule.id, action: Action.deny, flags: 0 });
}

/** E2BIG (full hash) and ENOSPC (full trie) are capacity errors the API maps to 507. */
export function kernelError(error: unknown, what: string): Error {
  if (error instanceof BpfError && (error.code === 'E2BIG' || error.code === 'ENOSPC')) {
    return new CapacityError(`${what}: the kernel map is full (${error.code}); raise capacity in the configuration`, { cause: error });
  }
  return new DatapathError(`${what}: ${describe(error)}`, { cause: error });
}

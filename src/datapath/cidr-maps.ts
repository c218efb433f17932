// Keeps the kernel's CIDR tries in step with the rule store: one rule at a
// time as the API changes them, a batch for bulk imports, and all at once
// when the daemon starts (adopted pinned maps may hold stale or missing
// entries). After every change the rule-set generation is bumped, which
// retires the pass verdicts flows cached under the old rules (xw_config).
// Per-rule counters (xw_rule_stats) are created by the data plane
// on a rule's first hit, so their per-CPU memory follows the rules that
// actually drop traffic; this side only deletes them with their rule.
import { BpfError, type BpfMap } from '@xdpwall/addon';
import { Action, cpusOf, encodeLpmKey, encodeRuleId, encodeRuleValue, lpmKeySize, sumCounters, writeLpmKey, writeRuleValue, Layout, type Counter } from './abi.js';
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

/** Keys and values of many rules, packed for one batch call. */
interface PackedRules {
  keys: Buffer;
  values: Buffer;
  count: number;
}

export class CidrMaps implements RuleEnforcer {
  constructor(private readonly maps: DatapathMaps) {}

  private trie(rule: Pick<BlockRule, 'family' | 'direction'>): BpfMap {
    if (rule.family === 4) return rule.direction === 'src' ? this.maps.srcV4 : this.maps.dstV4;
    return rule.direction === 'src' ? this.maps.srcV6 : this.maps.dstV6;
  }

  install(rule: BlockRule): void {
    try {
      this.trie(rule).update(lpmKey(rule), ruleValue(rule));
      this.bumpRulesGen();
    } catch (error) {
      throw kernelError(error, `cannot install ${rule.cidr} (${rule.direction})`);
    }
  }

  async installMany(rules: readonly BlockRule[]): Promise<void> {
    const written: Array<[BpfMap, PackedRules]> = [];
    try {
      for (const [trie, group] of this.groupByTrie(rules)) {
        const packed = pack(group);
        written.push([trie, packed]);
        await trie.updateBatch(packed.keys, packed.values, packed.count);
      }
      this.bumpRulesGen();
    } catch (error) {
      // All or nothing: these rules are new, so removing every key restores the kernel.
      for (const [trie, { keys, count }] of written) await trie.deleteBatch(keys, count).catch(() => 0);
      throw kernelError(error, `cannot install ${rules.length} rules`);
    }
  }

  remove(rule: BlockRule): void {
    try {
      this.trie(rule).delete(lpmKey(rule));
      this.maps.ruleStats.delete(encodeRuleId(rule.id));
      this.bumpRulesGen();
    } catch (error) {
      throw kernelError(error, `cannot remove ${rule.cidr} (${rule.direction})`);
    }
  }

  /** Packets and bytes dropped by one rule, summed over CPUs (zero before its first hit). */
  hits(ruleId: number): Counter {
    const { ruleStats } = this.maps;
    const value = ruleStats.lookup(encodeRuleId(ruleId));
    return value ? sumCounters(value, 0, ruleStats.valueStride, cpusOf(ruleStats)) : { packets: 0n, bytes: 0n };
  }

  /** Makes the kernel hold exactly `rules`, keeping counters of rules it already had. */
  async reconcile(rules: readonly BlockRule[]): Promise<ReconcileReport> {
    const report: ReconcileReport = { added: 0, removed: 0, kept: 0 };
    const byTrie = this.groupByTrie(rules);
    try {
      for (const trie of [this.maps.srcV4, this.maps.dstV4, this.maps.srcV6, this.maps.dstV6]) {
        await syncTrie(trie, pack(byTrie.get(trie) ?? []), report);
      }
      await dropStaleCounters(this.maps.ruleStats, new Set(rules.map((r) => r.id)));
      this.bumpRulesGen();
    } catch (error) {
      throw kernelError(error, 'cannot restore rules into the kernel');
    }
    return report;
  }

  /**
   * Called after the tries changed, never before: ingress reads the
   * generation before its lookups, so a pass it caches under the old
   * generation was decided without the new rules and is retired here.
   */
  private bumpRulesGen(): void {
    const { config } = this.maps;
    const slot = Buffer.alloc(4);
    const value = config.lookup(slot) ?? Buffer.alloc(Layout.config.size);
    value.writeUInt32LE((value.readUInt32LE(Layout.config.rulesGen) + 1) >>> 0, Layout.config.rulesGen);
    config.update(slot, value);
  }

  /** The current rule-set generation. */
  rulesGen(): number {
    return this.maps.config.lookup(Buffer.alloc(4))?.readUInt32LE(Layout.config.rulesGen) ?? 0;
  }

  private groupByTrie(rules: readonly BlockRule[]): Map<BpfMap, BlockRule[]> {
    const byTrie = new Map<BpfMap, BlockRule[]>();
    for (const rule of rules) {
      const trie = this.trie(rule);
      const group = byTrie.get(trie);
      if (group) group.push(rule);
      else byTrie.set(trie, [rule]);
    }
    return byTrie;
  }
}

/** Rules of one family, packed as that family's LPM keys and rule values. */
function pack(rules: readonly BlockRule[]): PackedRules {
  const keySize = rules[0] ? lpmKeySize(rules[0].family) : 0;
  const valueSize = Layout.ruleValue.size;
  const keys = Buffer.alloc(rules.length * keySize);
  const values = Buffer.alloc(rules.length * valueSize);
  rules.forEach((rule, i) => {
    writeLpmKey(keys, i * keySize, rule.network, rule.prefixLen);
    writeRuleValue(values, i * valueSize, { ruleId: rule.id, action: Action.deny, flags: 0 });
  });
  return { keys, values, count: rules.length };
}

/** Brings a trie to exactly the wanted entries with batch calls. */
async function syncTrie(trie: BpfMap, wanted: PackedRules, report: ReconcileReport): Promise<void> {
  const { keySize, valueSize } = trie;
  const current = await trie.lookupAll();
  const have = new Map<string, Buffer>();
  for (let i = 0; i < current.count; i++) {
    const key = current.keys.subarray(i * keySize, (i + 1) * keySize);
    have.set(key.toString('latin1'), current.values.subarray(i * valueSize, (i + 1) * valueSize));
  }
  const toWrite: number[] = [];
  for (let i = 0; i < wanted.count; i++) {
    const key = wanted.keys.subarray(i * keySize, (i + 1) * keySize).toString('latin1');
    const existing = have.get(key);
    have.delete(key);
    if (existing?.equals(wanted.values.subarray(i * valueSize, (i + 1) * valueSize))) report.kept++;
    else toWrite.push(i);
  }
  if (have.size > 0) {
    await trie.deleteBatch(Buffer.concat([...have.keys()].map((k) => Buffer.from(k, 'latin1'))), have.size);
    report.removed += have.size;
  }
  if (toWrite.length > 0) {
    const pick = (buf: Buffer, size: number) => Buffer.concat(toWrite.map((i) => buf.subarray(i * size, (i + 1) * size)));
    await trie.updateBatch(pick(wanted.keys, keySize), pick(wanted.values, valueSize), toWrite.length);
    report.added += toWrite.length;
  }
}

/** Deletes counters of rules that no longer exist (removed while the daemon was down). */
async function dropStaleCounters(ruleStats: BpfMap, ruleIds: ReadonlySet<number>): Promise<void> {
  const { keys, count } = await ruleStats.lookupAll();
  const stale: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const key = keys.subarray(i * 4, (i + 1) * 4);
    if (!ruleIds.has(key.readUInt32LE(0))) stale.push(key);
  }
  if (stale.length > 0) await ruleStats.deleteBatch(Buffer.concat(stale), stale.length);
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

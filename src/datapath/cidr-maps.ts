// Keeps the kernel's rule tables in step with the rule store: one rule at a
// time as the API changes them, a batch for bulk imports, and all at once
// when the daemon starts (adopted pinned maps may hold stale or missing
// entries). Host routes (/32, /128) go to exact-match hashes, other prefixes
// to LPM tries; the data plane looks in the hash first. After every change
// the rule-set generation is bumped, which retires the pass verdicts flows
// cached under the old rules (xw_config). Per-rule counters (xw_rule_stats)
// are created by the data plane on a rule's first hit, so their per-CPU
// memory follows the rules that actually drop traffic; this side only
// deletes them with their rule.
import { BpfError, type BpfMap } from '@xdpwall/addon';
import { Action, cpusOf, encodeRuleId, encodeRuleValue, lpmKeySize, sumCounters, writeLpmKey, writeRuleValue, Layout, type Counter } from './abi.js';
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

  /** The map that holds this rule: a host hash or an LPM trie, by family and direction. */
  private table(rule: Pick<BlockRule, 'family' | 'direction' | 'prefixLen'>): BpfMap {
    const { maps } = this;
    const src = rule.direction === 'src';
    if (isHostRoute(rule)) {
      if (rule.family === 4) return src ? maps.srcHostV4 : maps.dstHostV4;
      return src ? maps.srcHostV6 : maps.dstHostV6;
    }
    if (rule.family === 4) return src ? maps.srcV4 : maps.dstV4;
    return src ? maps.srcV6 : maps.dstV6;
  }

  private tables(): BpfMap[] {
    const { maps } = this;
    return [maps.srcV4, maps.dstV4, maps.srcV6, maps.dstV6, maps.srcHostV4, maps.dstHostV4, maps.srcHostV6, maps.dstHostV6];
  }

  install(rule: BlockRule): void {
    try {
      this.table(rule).update(ruleKey(rule), ruleValue(rule));
      this.bumpRulesGen();
    } catch (error) {
      throw kernelError(error, `cannot install ${rule.cidr} (${rule.direction})`);
    }
  }

  async installMany(rules: readonly BlockRule[]): Promise<void> {
    const written: Array<[BpfMap, PackedRules]> = [];
    try {
      for (const [table, group] of this.groupByTable(rules)) {
        const packed = pack(group);
        written.push([table, packed]);
        await table.updateBatch(packed.keys, packed.values, packed.count);
      }
      this.bumpRulesGen();
    } catch (error) {
      // All or nothing: these rules are new, so removing every key restores the kernel.
      for (const [table, { keys, count }] of written) await table.deleteBatch(keys, count).catch(() => 0);
      throw kernelError(error, `cannot install ${rules.length} rules`);
    }
  }

  remove(rule: BlockRule): void {
    try {
      this.table(rule).delete(ruleKey(rule));
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
    const byTable = this.groupByTable(rules);
    try {
      for (const table of this.tables()) await syncTable(table, pack(byTable.get(table) ?? []), report);
      await dropStaleCounters(this.maps.ruleStats, new Set(rules.map((r) => r.id)));
      this.bumpRulesGen();
    } catch (error) {
      throw kernelError(error, 'cannot restore rules into the kernel');
    }
    return report;
  }

  /**
   * Called after the rule tables changed, never before: ingress reads the
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

  private groupByTable(rules: readonly BlockRule[]): Map<BpfMap, BlockRule[]> {
    const byTable = new Map<BpfMap, BlockRule[]>();
    for (const rule of rules) {
      const table = this.table(rule);
      const group = byTable.get(table);
      if (group) group.push(rule);
      else byTable.set(table, [rule]);
    }
    return byTable;
  }
}

const isHostRoute = (rule: Pick<BlockRule, 'family' | 'prefixLen'>): boolean =>
  rule.prefixLen === (rule.family === 4 ? 32 : 128);

/** A host hash is keyed by the bare address, a trie by prefix length and address. */
function ruleKeySize(rule: BlockRule): number {
  return isHostRoute(rule) ? rule.network.length : lpmKeySize(rule.family);
}

function writeRuleKey(target: Buffer, offset: number, rule: BlockRule): void {
  if (isHostRoute(rule)) target.set(rule.network, offset);
  else writeLpmKey(target, offset, rule.network, rule.prefixLen);
}

function ruleKey(rule: BlockRule): Buffer {
  const key = Buffer.alloc(ruleKeySize(rule));
  writeRuleKey(key, 0, rule);
  return key;
}

/** Rules of one table, packed as its keys and rule values. */
function pack(rules: readonly BlockRule[]): PackedRules {
  const keySize = rules[0] ? ruleKeySize(rules[0]) : 0;
  const valueSize = Layout.ruleValue.size;
  const keys = Buffer.alloc(rules.length * keySize);
  const values = Buffer.alloc(rules.length * valueSize);
  rules.forEach((rule, i) => {
    writeRuleKey(keys, i * keySize, rule);
    writeRuleValue(values, i * valueSize, { ruleId: rule.id, action: Action.deny, flags: 0 });
  });
  return { keys, values, count: rules.length };
}

/** Brings a table to exactly the wanted entries with batch calls. */
async function syncTable(table: BpfMap, wanted: PackedRules, report: ReconcileReport): Promise<void> {
  const { keySize, valueSize } = table;
  const current = await table.lookupAll();
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
    await table.deleteBatch(Buffer.concat([...have.keys()].map((k) => Buffer.from(k, 'latin1'))), have.size);
    report.removed += have.size;
  }
  if (toWrite.length > 0) {
    const pick = (buf: Buffer, size: number) => Buffer.concat(toWrite.map((i) => buf.subarray(i * size, (i + 1) * size)));
    await table.updateBatch(pick(wanted.keys, keySize), pick(wanted.values, valueSize), toWrite.length);
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

// Keeps the kernel's rule tables in step with the rule store: as the API
// changes rules, and all at once when the daemon starts (adopted pinned maps
// may hold stale or missing entries). Where a rule goes:
//   /32, /128                 exact-match host hashes
//   IPv4 /1../24              the DIR-24 table (dir24.ts keeps its contents)
//   IPv4 /25../31             the DIR-24 second level (a block per /24), and the
//                             IPv4 trie, asked only for /24s left without a block
//   IPv4 /0                   xw_config.v4_default, written with the feature bits
//   other IPv6                the IPv6 trie
// The data plane asks the hash first, then the table or trie. Every change
// is applied in batches (a /8 rewrites 65,536 slots) and then rewrites
// xw_config (the feature bits of the kinds that have rules, the /0
// defaults). A /1 changes 2^23 slots: the index changes and
// the slot writes run in steps that give the event loop back between them
// (event-loop.ts); block changes are serialised here (the lock), list
// changes and reconcile by their callers, so no change sees another's
// half-done index. The caller's promise settles once every step is in the
// kernel. Per-rule counters (xw_rule_stats) are created
// by the data plane on a rule's first hit, so their per-CPU memory follows
// the rules that drop traffic; this side only deletes them with their rule.
import { BpfError, type BpfMap } from '@xdpwall/addon';
import {
  Action, Feature, Layout, cpusOf, encodeRuleId, hitCacheIndex, lpmKeySize, sumCounters, writeLpmKey, writeRuleValue, type Counter, POLICY_RULE_ID_BASE,
  LIST_RULE_ID_BASE,
} from './abi.js';
import { DIR24_BLOCK_PAIRS, DIR24_MAX_RULE_ID, DIR24_STEP_SLOTS, Dir24Index, SlotSet, packBlocks, packPairs, type Dir24Rule } from './dir24.js';
import type { DatapathMaps } from './datapath.js';
import { describe } from './datapath.js';
import type { RuleEnforcer } from '../rules/blocks.js';
import type { BlockDirection, BlockRule } from '../rules/model.js';
import { CapacityError, DatapathError, collectFailures, withUndoFailures } from '../errors.js';
import { ADDRESS_BYTES, RuleColumns } from '../rules/rule-columns.js';
import { WriteLock } from '../rules/write-lock.js';
import { dropStaleIds, sortedHas, packRows, planRows, syncPacked, type PackedRules } from './reconcile.js';
import { purgeHitCache, readRuleHits } from './rule-hits.js';
import { TimeSlicer, type Slicer } from '../event-loop.js';
import { V6Lengths, type V4Host, type V6Prefix } from './v6-lengths.js';

/**
 * A rule as the kernel's block tables hold it: blocks deny; list entries may
 * allow (src/lists). A list entry also gives its IPv4 network as a number
 * (`v4Network`, host order), so a million of them are written without a
 * `network` buffer made for each.
 */
export type KernelRule = BlockRule & { allow?: boolean; readonly v4Network?: number };

/** An IPv4 rule's network address as a u32, host order. */
const v4NetworkOf = (rule: KernelRule): number => rule.v4Network ?? rule.network.readUInt32BE(0);

/**
 * The list entry (src/lists) the kernel must hold for a key when no block
 * holds it, if any: a block added on that key replaces it, and the entry
 * comes back when the block goes.
 */
export type ListClaims = (direction: BlockDirection, cidr: string) => KernelRule | undefined;

/** One change of the block tables: installs and replacements first, removals after. */
export interface KernelDiff {
  install: readonly KernelRule[];
  replace: ReadonlyArray<{ from: KernelRule; to: KernelRule }>;
  remove: readonly KernelRule[];
}

export interface ReconcileReport {
  added: number;
  removed: number;
  kept: number;
}


const isHostRoute = (rule: Pick<BlockRule, 'family' | 'prefixLen'>): boolean =>
  rule.prefixLen === (rule.family === 4 ? 32 : 128);

/** IPv4 network prefixes: the DIR-24 table holds or flags them. */
const inDir24 = (rule: BlockRule): boolean => rule.family === 4 && !isHostRoute(rule);

/** IPv6 rules: the flat IPv6 tables hold the network prefixes too, and filter bits of all (v6-lengths.ts). */
const inV6Flat = (rule: BlockRule): boolean => rule.family === 6;
const isV4Host = (rule: BlockRule): boolean => rule.family === 4 && rule.prefixLen === 32;
/** The IPv4 host routes among `rules`, for the shared filter. */
const v4HostsOf = (rules: readonly KernelRule[]): V4Host[] =>
  rules.filter(isV4Host).map((r) => ({ host: v4NetworkOf(r), direction: r.direction }));

/** Rules that need a trie or hash entry (all but IPv4 prefixes up to /24). */
const hasTableEntry = (rule: BlockRule): boolean => !(inDir24(rule) && Dir24Index.holds(rule.prefixLen));

function dir24Rule(rule: KernelRule): Dir24Rule {
  if (rule.id > DIR24_MAX_RULE_ID) throw new DatapathError(`rule id ${rule.id} does not fit a DIR-24 slot`);
  const value: Dir24Rule = { network: v4NetworkOf(rule), prefixLen: rule.prefixLen, ruleId: rule.id };
  if (rule.allow) value.allow = true;
  return value;
}

/** The xw_config.features bits this class owns: which kinds of CIDR rules exist, and whether the IPv4 host filter is whole. */
const RULE_FEATURES = Feature.srcV4 | Feature.dstV4 | Feature.srcV6 | Feature.dstV6 | Feature.v4HostFilter;

export interface CidrMapsOptions {
  /** A slicer per change, asked between DIR-24 steps (default: TimeSlicer); tests count the turns. */
  slicer?: () => Slicer;
}

export class CidrMaps implements RuleEnforcer {
  private dir24: Record<BlockDirection, Dir24Index>;
  /** Rules in the kernel per lookup the data plane makes (xw_config.features says which exist). */
  private readonly kinds = new Map<number, number>();

  /** See ListClaims; none until the list service registers. */
  private claims: ListClaims = () => undefined;

  private readonly slicer: () => Slicer;

  private readonly v6: V6Lengths;

  constructor(private readonly maps: DatapathMaps, options: CidrMapsOptions = {}) {
    this.dir24 = this.emptyDir24();
    this.v6 = V6Lengths.of(maps.v6);
    this.slicer = options.slicer ?? (() => new TimeSlicer());
    // The filter (not pinned) is new with these programs, the host hashes and xw_config (pinned)
    // may hold an earlier start's: until a reconcile has put their routes' bits in this filter,
    // XW_FEATURE_V4_HOST_FILTER stays clear and every IPv4 address probes the host hash. Cleared
    // here, before the programs attach: a start that serves first (FirewallOptions.restoreLater)
    // attaches them before its reconcile, over a filter with no bits yet.
    this.hostFilterWhole = maps.srcHostV4.nextKey(null) === null && maps.dstHostV4.nextKey(null) === null;
    if (!this.hostFilterWhole) {
      // Only that bit: the others describe what the pinned tables hold, and keep them enforced.
      this.updateConfig((value) => value.writeUInt32LE(value.readUInt32LE(Layout.config.features) & ~Feature.v4HostFilter, Layout.config.features));
    }
  }

  /** Whether the filter holds the bit of every IPv4 host route in the host hashes (see the constructor). */
  private hostFilterWhole: boolean;

  /**
   * False from adoptUnindexed() until a reconcile succeeds: the pinned tables
   * hold rules this object has not indexed, and a change applied over its
   * empty DIR-24 index would rewrite slots those rules share. Changes are
   * refused meanwhile (DATAPATH_ERROR; the store keeps nothing of them).
   */
  private indexed = true;

  /** The tables hold an earlier start's rules, not reconciled yet (a start that serves first). */
  adoptUnindexed(): void {
    this.indexed = false;
  }

  private assertIndexed(): void {
    if (!this.indexed) {
      throw new DatapathError('the kernel rule tables are not reconciled with the store yet (the restore at start-up failed; the periodic check retries it)');
    }
  }

  setListClaims(claims: ListClaims): void {
    this.claims = claims;
  }

  private readonly lock = new WriteLock();

  /**
   * Runs `work` with no block change in between (installMany and removeMany
   * wait for it): a list change reads which keys blocks hold, then writes.
   */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.lock.run(work);
  }

  private emptyDir24(): Record<BlockDirection, Dir24Index> {
    const blocks = (map: BpfMap) => Math.floor(map.maxEntries / DIR24_BLOCK_PAIRS);
    return { src: new Dir24Index(blocks(this.maps.srcDir24L2)), dst: new Dir24Index(blocks(this.maps.dstDir24L2)) };
  }

  /** The hash or trie that holds this rule's entry. */
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

  private dir24Maps(direction: BlockDirection): { first: BpfMap; second: BpfMap } {
    const { maps } = this;
    return direction === 'src' ? { first: maps.srcDir24, second: maps.srcDir24L2 } : { first: maps.dstDir24, second: maps.dstDir24L2 };
  }

  /** All or nothing: on failure none of `rules` is left in the kernel. */
  async installMany(rules: readonly BlockRule[]): Promise<void> {
    return this.lock.run(() => this.installClaimed(rules));
  }

  private async installClaimed(rules: readonly BlockRule[]): Promise<void> {
    this.assertIndexed();
    const { plain, claimed } = this.splitClaimed(rules);
    await this.installPlain(plain);
    if (claimed.length === 0) return;
    try {
      await this.applyDiff({ install: [], replace: claimed.map(([rule, entry]) => ({ from: entry, to: rule })), remove: [] });
    } catch (error) {
      const undo = await collectFailures([() => this.removePlain(plain)]);
      throw withUndoFailures(kernelError(error, `cannot install ${plural(rules.length)}`), undo);
    }
  }

  /** All or nothing: on failure every one of `rules` is back in the kernel. */
  async removeMany(rules: readonly BlockRule[]): Promise<void> {
    return this.lock.run(() => this.removeClaimed(rules));
  }

  private async removeClaimed(rules: readonly BlockRule[]): Promise<void> {
    this.assertIndexed();
    const { plain, claimed } = this.splitClaimed(rules);
    await this.removePlain(plain);
    if (claimed.length === 0) return;
    try {
      await this.applyDiff({ install: [], replace: claimed.map(([rule, entry]) => ({ from: rule, to: entry })), remove: [] });
    } catch (error) {
      const undo = await collectFailures([() => this.installPlain(plain)]);
      throw withUndoFailures(kernelError(error, `cannot remove ${plural(rules.length)}`), undo);
    }
  }

  /** Blocks on keys a list entry also claims (the kernel swaps one value for the other) apart from the rest. */
  private splitClaimed(rules: readonly BlockRule[]): { plain: readonly BlockRule[]; claimed: Array<[BlockRule, KernelRule]> } {
    const claimed: Array<[BlockRule, KernelRule]> = [];
    const plain: BlockRule[] = [];
    for (const rule of rules) {
      const entry = this.claims(rule.direction, rule.cidr);
      if (entry) claimed.push([rule, entry]);
      else plain.push(rule);
    }
    return claimed.length === 0 ? { plain: rules, claimed } : { plain, claimed };
  }

  /**
   * Applies a change of list entries (src/lists) as one diff: new and
   * replaced values first (a replaced key goes straight from its old value to
   * its new one), removals last, then one xw_config write. A key both old and
   * new is never missing; an address leaves or joins once. On failure the
   * kernel may hold part of the change: the caller reconciles. With
   * `holdFilter` the host filter's words wait for the next call without it
   * (V6Lengths.applyV4Hosts): the IPv4 host routes this installs are
   * enforced from then on.
   */
  async applyDiff(diff: KernelDiff, options: { holdFilter?: boolean } = {}): Promise<void> {
    this.assertIndexed();
    const slicer = this.slicer();
    try {
      const writes = [...diff.install, ...diff.replace.map((r) => r.to)];
      for (const [table, group] of this.groupByTable(writes.filter(hasTableEntry))) {
        const packed = pack(group);
        await table.updateBatch(packed.keys, packed.values, packed.count);
      }
      const firstSlots = await this.changeDir24(diff.replace.map((r) => r.from).filter(inDir24), 'remove', [], slicer);
      mergeSlots(firstSlots, await this.changeDir24(writes.filter(inDir24), 'add', [], slicer));
      await this.writeSlots(firstSlots);
      for (const [table, group] of this.groupByTable(diff.remove.filter(hasTableEntry))) {
        const packed = pack(group);
        await table.deleteBatch(packed.keys, packed.count);
      }
      await this.v6.apply({ install: diff.install.filter(inV6Flat), replace: diff.replace.filter((r) => inV6Flat(r.to)), remove: diff.remove.filter(inV6Flat) });
      await this.v6.applyV4Hosts(v4HostsOf(diff.install), v4HostsOf(diff.remove), options.holdFilter);
      await this.writeSlots(await this.changeDir24(diff.remove.filter(inDir24), 'remove', [], slicer));
      const gone = diff.replace.filter((r) => r.from.id < LIST_RULE_ID_BASE && r.from.id !== r.to.id).map((r) => r.from);
      if (gone.length > 0) {
        await this.maps.ruleStats.deleteBatch(Buffer.concat(gone.map((r) => encodeRuleId(r.id))), gone.length);
        this.dropCachedHits(gone);
      }
      this.countKinds(diff.install, +1);
      this.countKinds(diff.remove, -1);
      this.writeConfig();
    } catch (error) {
      throw kernelError(error, 'cannot apply the list change');
    }
  }

  private async installPlain(rules: readonly BlockRule[]): Promise<void> {
    if (rules.length === 0) return;
    const slicer = this.slicer();
    const written: Array<[BpfMap, PackedRules]> = [];
    const indexed: BlockRule[] = [];
    const hosts = v4HostsOf(rules);
    let hostsAdded = false;
    try {
      for (const [table, group] of this.groupByTable(rules.filter(hasTableEntry))) {
        const packed = pack(group);
        written.push([table, packed]);
        await table.updateBatch(packed.keys, packed.values, packed.count);
      }
      const slots = await this.changeDir24(rules.filter(inDir24), 'add', indexed, slicer);
      await this.writeSlots(slots);
      await this.v6.apply({ install: rules.filter(inV6Flat), replace: [], remove: [] });
      await this.v6.applyV4Hosts(hosts, []);
      hostsAdded = true;
      this.countKinds(rules, +1);
      this.writeConfig();
    } catch (error) {
      // These rules are new, so taking every entry out again restores the kernel.
      const undo = await collectFailures([
        ...written.map(([table, { keys, count }]) => () => table.deleteBatch(keys, count)),
        async () => hostsAdded && this.v6.applyV4Hosts([], hosts),
        async () => this.writeSlots(await this.changeDir24(indexed.reverse(), 'remove', [], slicer)),
        async () => this.writeConfig(),
      ]);
      throw withUndoFailures(kernelError(error, `cannot install ${plural(rules.length)}`), undo);
    }
  }

  private async removePlain(rules: readonly BlockRule[]): Promise<void> {
    if (rules.length === 0) return;
    const slicer = this.slicer();
    const deleted: Array<[BpfMap, PackedRules]> = [];
    const unindexed: BlockRule[] = [];
    const v6 = rules.filter(inV6Flat);
    const hosts = v4HostsOf(rules);
    let v6Removed = false;
    let hostsRemoved = false;
    try {
      for (const [table, group] of this.groupByTable(rules.filter(hasTableEntry))) {
        const packed = pack(group);
        deleted.push([table, packed]);
        await table.deleteBatch(packed.keys, packed.count);
      }
      await this.v6.apply({ install: [], replace: [], remove: v6 });
      v6Removed = true;
      await this.v6.applyV4Hosts([], hosts);
      hostsRemoved = true;
      await this.writeSlots(await this.changeDir24(rules.filter(inDir24), 'remove', unindexed, slicer));
      const counters = Buffer.concat(rules.map((r) => encodeRuleId(r.id)));
      await this.maps.ruleStats.deleteBatch(counters, rules.length);
      this.dropCachedHits(rules);
      this.countKinds(rules, -1);
      this.writeConfig();
    } catch (error) {
      // Put back what was taken out (counters of these rules may be lost),
      // then write xw_config for the rules that are back.
      const undo = await collectFailures([
        ...deleted.map(([table, { keys, values, count }]) => () => table.updateBatch(keys, values, count)),
        async () => v6Removed && this.v6.apply({ install: v6, replace: [], remove: [] }),
        async () => hostsRemoved && this.v6.applyV4Hosts(hosts, []),
        async () => this.writeSlots(await this.changeDir24(unindexed.reverse(), 'add', [], slicer)),
        async () => this.writeConfig(),
      ]);
      throw withUndoFailures(kernelError(error, `cannot remove ${plural(rules.length)}`), undo);
    }
  }

  /**
   * Empties the hit-cache elements of deleted rules (their hash entries
   * are gone already), so an id given out again never counts into them.
   */
  private dropCachedHits(rules: readonly { id: number }[]): void {
    const gone = new Set(rules.map((r) => r.id));
    purgeHitCache(this.maps.ruleHitCache, (id) => !gone.has(id), new Set(rules.map((r) => hitCacheIndex(r.id))));
  }

  /** Packets and bytes dropped by one rule, summed over CPUs (zero before its first hit). */
  hits(ruleId: number): Counter {
    return readRuleHits(this.maps.ruleStats, this.maps.ruleHitCache, ruleId);
  }

  /**
   * Makes the kernel hold exactly `rules`, keeping counters of rules it
   * already had. The DIR-24 tables are not pinned: they start empty with
   * every load and are written whole here. Start-up passes the store's
   * columns (a million rules without an object each); see reconcile.ts.
   */
  async reconcile(input: RuleColumns | readonly BlockRule[]): Promise<ReconcileReport> {
    const slicer = this.slicer();
    const rules = input instanceof RuleColumns ? input : RuleColumns.fromRules(input);
    const report: ReconcileReport = { added: 0, removed: 0, kept: 0 };
    try {
      const plan = await planRows(rules, (family, prefixLen, dst) => {
        const probe = probeRule(family, prefixLen, dst ? 'dst' : 'src');
        const table = hasTableEntry(probe) ? this.table(probe) : null;
        return { table, hostKey: isHostRoute(probe), dir24: inDir24(probe) };
      }, slicer);
      for (const table of this.tables()) {
        const group = plan.byTable.get(table);
        const wanted = group ? await packRows(rules, group.rows, group.hostKey, table.keySize, slicer) : pack([]);
        await syncPacked(table, wanted, report, slicer);
      }
      await this.v6.reconcile(v6Prefixes(rules), v4Hosts(rules), slicer);
      // Set in xw_config by the writeConfig below, once the host hashes are synced too.
      this.hostFilterWhole = true;
      this.dir24 = this.emptyDir24();
      // In chunks of short-lived rules, so the index code stays the one installMany uses.
      const slots = new Map<BlockDirection, SlotSet>();
      for (let from = 0; from < plan.dir24Rows.length; from += DIR24_CHUNK) {
        const chunk = rulesAt(rules, plan.dir24Rows.subarray(from, from + DIR24_CHUNK));
        for (const [direction, set] of await this.changeDir24(chunk, 'add', [], slicer)) {
          let all = slots.get(direction);
          if (!all) slots.set(direction, (all = new SlotSet()));
          all.addAll(set.slots());
        }
      }
      await this.writeSlots(slots);
      report.added += plan.dir24Only;
      await dropStaleCounters(this.maps.ruleStats, this.maps.ruleHitCache, rules.sortedIds());
      this.kinds.clear();
      for (let i = 0; i < rules.count; i++) {
        if ((i & 4095) === 0 && slicer.due) await slicer.next();
        this.countKind(rules.families[i] as 4 | 6, rules.direction(i), +1);
      }
      this.writeConfig();
      this.indexed = true;
    } catch (error) {
      throw kernelError(error, 'cannot restore rules into the kernel');
    }
    return report;
  }

  /**
   * Applies rules to the DIR-24 indexes, a step of at most DIR24_STEP_SLOTS
   * slots at a time, giving the event loop back whenever `slicer` says so;
   * returns the changed slots per direction. `done` collects the rules
   * applied, for undoing a failure.
   */
  private async changeDir24(
    rules: readonly KernelRule[], change: 'add' | 'remove', done: KernelRule[], slicer: Slicer,
  ): Promise<Map<BlockDirection, SlotSet>> {
    const changed = new Map<BlockDirection, SlotSet>();
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      const index = this.dir24[rule.direction];
      let set = changed.get(rule.direction);
      if (!set) changed.set(rule.direction, (set = new SlotSet()));
      const value = dir24Rule(rule);
      // Most rules are one step, applied at once; every 64th asks the slicer.
      if (index.changeInto(value, change, set)) {
        done.push(rule);
        if ((i & 63) === 63 && slicer.due) await slicer.next();
        continue;
      }
      // A change of many steps starts with a slice of its own: its first step runs as the loop begins.
      if (slicer.due) await slicer.next();
      const steps = change === 'add' ? index.addSteps(value) : index.removeSteps(value);
      if (rule.prefixLen <= 24) set.reserve(2 ** (24 - rule.prefixLen));
      for (const slots of steps) {
        set.addAll(slots);
        if (slicer.due) await slicer.next();
      }
      done.push(rule);
    }
    return changed;
  }

  /**
   * Writes what a change touched, per direction: the second-level blocks
   * first, then the first-level slots (two to an array element) that point
   * to them, so a packet never follows a slot into an unwritten block.
   */
  private async writeSlots(changed: Map<BlockDirection, SlotSet>): Promise<void> {
    for (const direction of ['src', 'dst'] as const) {
      const index = this.dir24[direction];
      const { first, second } = this.dir24Maps(direction);
      const blocks = packBlocks(index.takeBlockWrites());
      if (blocks.count > 0) await second.updateBatch(blocks.keys, blocks.values, blocks.count);
      // A chunk at a time: each write is awaited, so the event loop runs between chunks.
      const set = changed.get(direction);
      if (set && set.size > 0) {
        // The addon copies its inputs before it returns, so one buffer serves every chunk.
        const into = { keys: new Uint32Array(DIR24_STEP_SLOTS), values: new Uint32Array(DIR24_STEP_SLOTS * 2) };
        for (const chunk of set.ascendingPairs()) {
          const pairs = packPairs(index, chunk, into);
          await first.updateBatch(pairs.keys, pairs.values, pairs.count);
        }
        set.release();
      }
      index.commitReleased();
    }
  }

  /**
   * Writes which kinds of rules exist (xw_config.features: the data plane
   * skips the lookups of kinds without rules) and the IPv4 /0 rules (the
   * DIR-24 default). Called after the rule tables changed, never before, so
   * a feature bit is set only once its tables hold the rules. rules_gen is
   * left as it is: nothing reads it (see struct xw_config).
   */
  private writeConfig(): void {
    this.updateConfig((value) => {
      // Bits of other stages (Feature.events, set while someone listens) stay as they are.
      let features = value.readUInt32LE(Layout.config.features) & ~RULE_FEATURES;
      if (this.hostFilterWhole) features |= Feature.v4HostFilter;
      for (const [feature, count] of this.kinds) if (count > 0) features |= feature;
      value.writeUInt32LE(features, Layout.config.features);
      value.writeUInt32LE(this.dir24.src.defaultValue(), Layout.config.v4Default);
      value.writeUInt32LE(this.dir24.dst.defaultValue(), Layout.config.v4Default + 4);
    });
  }

  /** Reads xw_config, lets `edit` change its value, writes it back. */
  private updateConfig(edit: (value: Buffer) => void): void {
    const { config } = this.maps;
    const slot = Buffer.alloc(4);
    const value = config.lookup(slot) ?? Buffer.alloc(Layout.config.size);
    edit(value);
    config.update(slot, value);
  }

  private countKinds(rules: readonly KernelRule[], delta: 1 | -1): void {
    for (const rule of rules) this.countKind(rule.family, rule.direction, delta);
  }

  private countKind(family: 4 | 6, direction: BlockDirection, delta: 1 | -1): void {
    const feature = family === 4 ? (direction === 'src' ? Feature.srcV4 : Feature.dstV4) : direction === 'src' ? Feature.srcV6 : Feature.dstV6;
    this.kinds.set(feature, (this.kinds.get(feature) ?? 0) + delta);
  }

  private groupByTable<R extends KernelRule>(rules: readonly R[]): Map<BpfMap, R[]> {
    const byTable = new Map<BpfMap, R[]>();
    for (const rule of rules) {
      const table = this.table(rule);
      const group = byTable.get(table);
      if (group) group.push(rule);
      else byTable.set(table, [rule]);
    }
    return byTable;
  }
}

/** A host hash is keyed by the bare address, a trie by prefix length and address. */
function ruleKeySize(rule: BlockRule): number {
  return isHostRoute(rule) ? (rule.family === 4 ? 4 : 16) : lpmKeySize(rule.family);
}

function writeRuleKey(target: Buffer, offset: number, rule: KernelRule): void {
  if (isV4Host(rule)) target.writeUInt32BE(v4NetworkOf(rule), offset);
  else if (isHostRoute(rule)) target.set(rule.network, offset);
  else writeLpmKey(target, offset, rule.network, rule.prefixLen);
}

/** Rules of one table, packed as its keys and rule values. */
function pack(rules: readonly KernelRule[]): PackedRules {
  const keySize = rules[0] ? ruleKeySize(rules[0]) : 0;
  const valueSize = Layout.ruleValue.size;
  const keys = Buffer.alloc(rules.length * keySize);
  const values = Buffer.alloc(rules.length * valueSize);
  rules.forEach((rule, i) => {
    writeRuleKey(keys, i * keySize, rule);
    writeRuleValue(values, i * valueSize, { ruleId: rule.id, action: rule.allow ? Action.allow : Action.deny, flags: 0 });
  });
  return { keys, values, count: rules.length };
}


/**
 * Deletes counters of rules that no longer exist (removed while the daemon
 * was down), in the hash and the hit cache; `ruleIds` ascending. Policy
 * rules' counters are src/policy's.
 */
async function dropStaleCounters(ruleStats: BpfMap, ruleHitCache: BpfMap, ruleIds: Uint32Array): Promise<void> {
  await dropStaleIds(ruleStats, ruleIds, POLICY_RULE_ID_BASE);
  purgeHitCache(ruleHitCache, (id) => id >= POLICY_RULE_ID_BASE || sortedHas(ruleIds, id));
}

/** Rules handed to DIR-24 per changeDir24 call at start-up. */
const DIR24_CHUNK = 4096;

/** A rule with only the fields that decide where it is stored. */
function probeRule(family: 4 | 6, prefixLen: number, direction: BlockDirection): BlockRule {
  const network = Buffer.alloc(family === 4 ? 4 : 16);
  return { id: 1, cidr: '', family, prefixLen, network, direction, comment: null, createdAt: '' };
}

/** Adds the slots of `more` to `into`, per direction. */
function mergeSlots(into: Map<BlockDirection, SlotSet>, more: Map<BlockDirection, SlotSet>): void {
  for (const [direction, set] of more) {
    const target = into.get(direction);
    if (target) target.addAll(set.slots());
    else into.set(direction, set);
  }
}

/** The IPv6 rules among the columns, for the flat tables. */
function* v6Prefixes(rules: RuleColumns): Generator<V6Prefix> {
  for (let i = 0; i < rules.count; i++) {
    if (rules.families[i] !== 6) continue;
    const start = i * ADDRESS_BYTES;
    yield {
      id: rules.ids[i]!, prefixLen: rules.prefixLens[i]!, network: rules.networks.subarray(start, start + 16),
      direction: rules.direction(i), ...(rules.allows[i] && { allow: true }),
    };
  }
}

/** The IPv4 host routes among the columns, for the filter. */
function* v4Hosts(rules: RuleColumns): Generator<V4Host> {
  for (let i = 0; i < rules.count; i++) {
    if (rules.families[i] !== 4 || rules.prefixLens[i] !== 32) continue;
    yield { host: rules.networks.readUInt32BE(i * ADDRESS_BYTES), direction: rules.direction(i) };
  }
}

/** Short-lived rules for the given rows (their addresses are views into the columns). */
function rulesAt(rules: RuleColumns, rows: Uint32Array): KernelRule[] {
  const out: KernelRule[] = [];
  for (const i of rows) {
    const family = rules.families[i] as 4 | 6;
    const start = i * ADDRESS_BYTES;
    out.push({
      id: rules.ids[i]!, cidr: '', family, prefixLen: rules.prefixLens[i]!,
      network: rules.networks.subarray(start, start + (family === 4 ? 4 : 16)),
      direction: rules.direction(i), comment: null, createdAt: '', ...(rules.allows[i] && { allow: true }),
    });
  }
  return out;
}

const plural = (n: number): string => `${n} rule${n === 1 ? '' : 's'}`;


/** E2BIG (full hash) and ENOSPC (full trie) are capacity errors the API maps to 507. */
export function kernelError(error: unknown, what: string): Error {
  if (error instanceof BpfError && (error.code === 'E2BIG' || error.code === 'ENOSPC')) {
    return new CapacityError(`${what}: the kernel map is full (${error.code}); raise capacity in the configuration`, { cause: error });
  }
  return new DatapathError(`${what}: ${describe(error)}`, { cause: error });
}

// The firewall as one object: rule store, data plane, map sync and counter
// reads wired together. The daemon and the API tests both build it; the API
// sees only this.
import { join } from 'node:path';
import { Datapath, type AttachedInterface, type AttachOptions, type Logger } from './datapath/datapath.js';
import { CidrMaps, type ReconcileReport } from './datapath/cidr-maps.js';
import { readFlows, readStats, type FlowTable, type StatsEntry } from './datapath/counters.js';
import type { Counter } from './datapath/abi.js';
import { BlockService } from './rules/blocks.js';
import { RuleStore } from './rules/store.js';
import { SnapshotCache } from './counters-cache.js';
import { queryFlows, type FlowQuery, type FlowRecord } from './flows/query.js';
import { buildStatsReport, type StatsReport } from './stats/report.js';
import { systemClock, type Clock } from './clock.js';
import type { Config, InterfaceConfig } from './config.js';
import { PolicyTables } from './policy/tables.js';
import { PolicyEngine } from './policy/engine.js';
import { POLICY_SETTING, RuleService } from './policy/rules.js';
import type { PolicyDefaults } from './policy/engine.js';
import { BlockMetaService, type BlockExtras } from './policy/block-meta.js';
import type { BlockInput } from './rules/blocks.js';
import type { BlockRule } from './rules/model.js';
import { RateLimitTables } from './ratelimit/tables.js';
import { RateLimitView, type RuleRateStats, type LimitedSourceView } from './ratelimit/view.js';
import { BanService, type ReportReader } from './ratelimit/bans.js';
import * as addon from '@xdpwall/addon';
import { checkFailsafeCidr, checkFailsafeRule, failsafeRules, type FailsafeEntry } from './policy/failsafe.js';

export interface FirewallOptions {
  objectPath: string;
  /** SQLite file, or ":memory:". */
  storePath: string;
  /** Where to pin maps; null keeps them unpinned (tests). */
  pin: { bpffsRoot: string; dir: string } | null;
  capacity: Config['capacity'];
  countersCacheMs: number;
  clock?: Clock;
  /** The configuration's default policy; one stored through PUT /v1/policy wins. Default accept. */
  policy?: PolicyDefaults;
  /** The failsafe list (configuration file only). Default none. */
  failsafe?: FailsafeEntry[];
}

export interface TableUsage {
  table: 'cidr_v4' | 'cidr_v6' | 'flows';
  entries: number;
  capacity: number;
}

export class Firewall {
  readonly blocks: BlockService;
  /** ttl and dryRun of blocks. */
  readonly blockMeta: BlockMetaService;
  /** Policy rules (`/v1/rules`). */
  readonly rules: RuleService;
  private readonly flowSnapshots: SnapshotCache<FlowTable>;
  private readonly statsSnapshots: SnapshotCache<StatsEntry[]>;
  private readonly startedAt: number;
  /** Rate limits' counters, buckets and sweeps (absent only without a rate-limit-capable engine). */
  readonly rateLimits: RateLimitView | undefined;
  /** Turns the kernel's ban reports into auto blocks; the daemon starts it. Absent while the addon has no ring buffer reader. */
  readonly bans: BanService | undefined;

  private constructor(
    private readonly store: RuleStore,
    readonly datapath: Datapath,
    private readonly cidrMaps: CidrMaps,
    readonly policy: PolicyEngine,
    private readonly clock: Clock,
    countersCacheMs: number,
    capacity: Config['capacity'],
    log: Logger,
    readonly failsafe: readonly FailsafeEntry[],
    blockMeta: BlockMetaService,
    counts?: Record<4 | 6, number>,
  ) {
    this.rules = new RuleService(store, policy, {
      now: () => new Date(clock.wallMs()),
      check: (rule) => checkFailsafeRule(failsafe, rule),
      log: { error: (details, message) => (log.error ?? log.warn).call(log, details, message) },
    });
    this.blockMeta = blockMeta;
    this.blocks = new BlockService(store, blockMeta.enforcer(cidrMaps), {
      counts,
      now: () => new Date(clock.wallMs()),
      limits: { 4: capacity.cidrV4, 6: capacity.cidrV6 },
      check: (cidr) => checkFailsafeCidr(failsafe, cidr, 'block'),
      log: { error: (details, message) => (log.error ?? log.warn).call(log, details, message) },
    });
    this.flowSnapshots = new SnapshotCache(() => readFlows(datapath.maps.flows), countersCacheMs);
    this.statsSnapshots = new SnapshotCache(() => readStats(datapath.maps.stats, (slot) => datapath.ifslots.ifindexOf(slot)), countersCacheMs);
    this.startedAt = clock.wallMs();
    const tables = policy.rateLimits;
    this.rateLimits = tables && new RateLimitView(tables, clock, countersCacheMs);
    // The ring buffer reader (BpfRingBuffer) comes with the sampled-events work; until the
    // addon has it, bans are reported by the kernel but not acted on.
    const RingBuffer = (addon as unknown as { BpfRingBuffer?: new (fd: number) => ReportReader }).BpfRingBuffer;
    const view = this.rateLimits;
    this.bans = RingBuffer && view && new BanService({
      reader: new RingBuffer(datapath.maps.rateLimits.reports.fd),
      rule: (id) => store.getPolicyRule(id) ?? undefined,
      // origin "auto" is stored where the block origin column exists (the integrations work)
      block: ({ origin, ...input }) => this.addBlock({ ...input, ...({ origin } as object) }),
      banned: (id) => view.recordBan(id),
      log: { info: (d, m) => log.info(d, m), warn: (d, m) => log.warn(d, m) },
    });
  }

  /** Loads the data plane and makes its maps hold exactly the stored rules. */
  static async open(options: FirewallOptions, log: Logger): Promise<{ firewall: Firewall; restored: ReconcileReport }> {
    const store = new RuleStore(options.storePath);
    let datapath: Datapath | undefined;
    try {
      datapath = await Datapath.load(options, log);
      const cidrMaps = new CidrMaps(datapath.maps);
      const clock = options.clock ?? systemClock;
      const opened = datapath;
      const policy = new PolicyEngine(await PolicyTables.open(datapath.maps.policy), {
        clock,
        ifindexOf: (iface) => opened.interfaces().find((i) => i.iface === iface)?.ifindex,
        ruleStats: datapath.maps.ruleStats,
        rateLimits: new RateLimitTables(datapath.maps.rateLimits, () => clock.monotonicNs()),
      });
      const blockMeta = new BlockMetaService(store, datapath.maps.policy.blockMeta, (at) => policy.expiresNs(at), () => new Date(clock.wallMs()));
      // Before the prefixes: a dry-run block never drops.
      await blockMeta.restore(store.blocksWithMeta());
      // Columns, not BlockRule objects: a million rules restore in seconds
      // and are garbage (a few typed arrays) once the kernel holds them.
      const rules = await store.readColumns();
      const restored = await cidrMaps.reconcile(rules);
      const failsafe = options.failsafe ?? [];
      policy.setDefaults(store.getSetting<PolicyDefaults>(POLICY_SETTING) ?? options.policy ?? { ingress: 'accept', egress: 'accept' });
      await policy.installFailsafe(failsafeRules(failsafe));
      const firewall = new Firewall(
        store, datapath, cidrMaps, policy, clock, options.countersCacheMs, options.capacity, log, failsafe, blockMeta, rules.perFamily,
      );
      await firewall.rules.installAll();
      return { firewall, restored };
    } catch (error) {
      datapath?.close();
      store.close();
      throw error;
    }
  }

  attach(iface: InterfaceConfig, options?: AttachOptions): AttachedInterface {
    return this.datapath.attach(iface, options);
  }

  /**
   * Removes expired rules from the store and the kernel (the daemon calls it
   * every second), and now and then idle rate-limit buckets.
   */
  async sweepExpired(): Promise<{ rules: number[]; blocks: number }> {
    const swept = { rules: await this.rules.sweepExpired(), blocks: await this.blockMeta.sweepExpired(this.blocks) };
    await this.rateLimits?.sweepIfDue();
    return swept;
  }

  /** A ratelimit rule's counters, active buckets and bans. */
  async ruleRateStats(id: number): Promise<RuleRateStats | undefined> {
    return this.rateLimits?.ruleStats(id);
  }

  /** The sources (or prefixes) being limited now, most drops in their current window first. */
  async rateLimitTop(limit: number): Promise<LimitedSourceView[]> {
    return (await this.rateLimits?.top(limit)) ?? [];
  }

  /** Blocks a CIDR, with an optional ttl/expiresAt and dryRun (see policy/block-meta.ts). */
  addBlock(input: BlockInput & BlockExtras): Promise<{ rule: BlockRule; created: boolean }> {
    return this.blockMeta.add(this.blocks, input);
  }

  /** Recompiles the policy (after interfaces attach: rules naming one resolve to its ifindex). */
  async refreshPolicy(): Promise<void> {
    await this.rules.installAll();
  }

  /** Re-checks the interfaces, re-attaching where our programs are gone; see Datapath.verify. */
  verifyInterfaces(): AttachedInterface[] {
    return this.datapath.verify();
  }

  interfaces(): AttachedInterface[] {
    return this.datapath.interfaces();
  }

  ruleHits(ruleId: number): Counter | undefined {
    return this.cidrMaps.hits(ruleId);
  }

  async flows(query: FlowQuery): Promise<FlowRecord[]> {
    const table = await this.flowSnapshots.get();
    return queryFlows(table, query, this.clock, (ifindex) => this.datapath.ifaceName(ifindex));
  }

  /** Entries in the kernel's flow table. */
  async flowCount(): Promise<number> {
    return (await this.flowSnapshots.get()).count;
  }

  async stats(): Promise<StatsReport> {
    return buildStatsReport(await this.statsSnapshots.get(), (ifindex) => this.datapath.ifaceName(ifindex));
  }

  /**
   * Entries and capacity of the tables an operator sizes: CIDR rules per
   * family (capacity.cidrV4 / cidrV6, all prefix lengths and directions) and
   * the flow table (an LRU: full means the oldest flows are being evicted).
   */
  async tableUsage(): Promise<TableUsage[]> {
    const rules = this.blocks.usage();
    return [
      { table: 'cidr_v4', entries: rules[4].count, capacity: rules[4].limit },
      { table: 'cidr_v6', entries: rules[6].count, capacity: rules[6].limit },
      { table: 'flows', entries: await this.flowCount(), capacity: this.datapath.maps.flows.maxEntries },
    ];
  }

  uptimeSeconds(): number {
    return Math.floor((this.clock.wallMs() - this.startedAt) / 1000);
  }

  /** Frees kernel handles; the pinned links and maps stay, enforcing (see Datapath.close). */
  close(): void {
    this.bans?.close();
    this.datapath.close();
    this.store.close();
  }
}

export const storePathIn = (stateDir: string): string => join(stateDir, 'rules.sqlite');
export const pinDirFor = (bpffsRoot: string, instance: string): string => join(bpffsRoot, 'xdpwall', instance);

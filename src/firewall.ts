// The firewall as one object: rule store, data plane, map sync and counter
// reads wired together. The daemon and the API tests both build it; the API
// sees only this.
import { dirname, join } from 'node:path';
import { Datapath, type AttachedInterface, type AttachOptions, type Logger } from './datapath/datapath.js';
import { CidrMaps, type ReconcileReport } from './datapath/cidr-maps.js';
import { readStats, type StatsEntry } from './datapath/counters.js';
import { POLICY_RULE_ID_BASE, cpusOf, type Counter } from './datapath/abi.js';
import { BlockService } from './rules/blocks.js';
import { RuleStore } from './rules/store.js';
import { SnapshotCache } from './counters-cache.js';
import type { FlowQuery } from './flows/query.js';
import { FlowSnapshots, SNAPSHOT_PAGE, type FlowAnswer } from './flows/snapshot.js';
import { buildStatsReport, type StatsReport } from './stats/report.js';
import { systemClock, type Clock } from './clock.js';
import type { Config, InterfaceConfig } from './config.js';
import { PolicyTables } from './policy/tables.js';
import { PolicyEngine } from './policy/engine.js';
import { POLICY_SETTING, RuleService } from './policy/rules.js';
import type { InterfaceDefaults, PolicyDefaults } from './policy/engine.js';
import { BlockMetaService, type AddManyOptions, type BlockExtras, type BlockWithExtras } from './policy/block-meta.js';
import type { BlockInput } from './rules/blocks.js';
import type { BlockDirection, BlockRule } from './rules/model.js';
import { parseCidr } from './rules/cidr.js';
import { DatapathError, TooBroadError } from './errors.js';
import { Integrations } from './integrations/status.js';
import { ListStore } from './lists/store.js';
import { ListService } from './lists/service.js';
import { ListPrefixes } from './policy/list-refs.js';
import type { FeedState } from './lists/feeds.js';
import { FileManaged } from './fleet/managed.js';
import { RateLimitTables } from './ratelimit/tables.js';
import { RateLimitView, type RuleRateStats, type LimitedSourceView } from './ratelimit/view.js';
import { BanService } from './ratelimit/bans.js';
import { BpfRingBuffer } from '@xdpwall/addon';
import { checkFailsafeCidr, checkFailsafeRule, failsafeRules, type FailsafeEntry } from './policy/failsafe.js';
import { EventHub } from './events/hub.js';
import { DEFAULT_EVENT_SETTINGS, type EventSettings } from './events/settings.js';
import { RESTORE_MARKER, markRestored, markedMapsExist, restoredBefore } from './datapath/restore-marker.js';
import type { RuleColumns } from './rules/rule-columns.js';

export interface FirewallOptions {
  objectPath: string;
  /** Store large plain bulk imports while their body is read (see BlockMetaService.stageBulkImports); default off. */
  stageBulkImports?: boolean;
  /** SQLite file, or ":memory:". */
  storePath: string;
  /** Where to pin maps; null keeps them unpinned (tests). */
  pin: { bpffsRoot: string; dir: string } | null;
  capacity: Config['capacity'];
  countersCacheMs: number;
  /** Default DEFAULT_SNAPSHOT_MAX_AGE_MS (src/flows/snapshot.ts). */
  flowSnapshotMaxAgeMs?: number;
  clock?: Clock;
  /** The configuration's default policy; one stored through PUT /v1/policy wins. Default accept. */
  policy?: PolicyDefaults;
  /** The failsafe list (configuration file only). Default none. */
  failsafe?: FailsafeEntry[];
  /** Sampling and the kernel's cap for sampled packet events (`events:`). */
  events?: EventSettings;
  /** Interfaces' own default policies (configuration file only). */
  ifaceDefaults?: InterfaceDefaults[];
  /**
   * When the pinned maps were filled from this store by an earlier start
   * (restore-marker.ts), open() returns before reconciling them and the
   * reconcile runs behind the kernel write lock: every change waits for it,
   * reads do not (see Firewall.restore). The daemon sets it; default false.
   */
  restoreLater?: boolean;
}

/** The kernel restore of a start that served first (FirewallOptions.restoreLater). */
export type RestoreState = { state: 'done' } | { state: 'running' } | { state: 'failed'; reason: string };

/** See Firewall.originBlocks. */
export interface OriginBlocks {
  /** Throws when the firewall refuses to block this CIDR (/0, the failsafe list). */
  check(cidr: string): void;
  addMany(items: BlockWithExtras[]): Promise<{ created: number; existing: number }>;
  owned(): Array<{ cidr: string; direction: BlockDirection; expiresAt: string | null }>;
  /** The source block of this CIDR in force, whoever owns it (expiresAt null: permanent); undefined when none. */
  block(cidr: string): { cidr: string; direction: BlockDirection; expiresAt: string | null } | undefined;
  removeMany(keys: Array<{ cidr: string; direction: BlockDirection }>): Promise<BlockRule[]>;
}

/** What Firewall.open has built and the constructor wires together. */
interface FirewallParts {
  store: RuleStore;
  datapath: Datapath;
  cidrMaps: CidrMaps;
  policy: PolicyEngine;
  clock: Clock;
  countersCacheMs: number;
  flowSnapshotMaxAgeMs: number | undefined;
  capacity: Config['capacity'];
  log: Logger;
  failsafe: readonly FailsafeEntry[];
  /** ttl, dryRun and origin of blocks. */
  blockMeta: BlockMetaService;
  events: EventSettings;
  lists: ListService;
  /** Stored blocks per family, counted while restoring them. */
  counts?: Record<4 | 6, number>;
  /** Reads the store again and reconciles the kernel with it under the kernel write lock (a failed deferred restore's retry). */
  restoreAgain: () => Promise<ReconcileReport>;
  /** Starts (or abandons) a deferred restore. */
  gate: RestoreGate;
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
  /** Sampled packets for /v1/events and /v1/capture.pcap. */
  readonly events: EventHub;
  /** What integrations (the CrowdSec bouncer) report about themselves. */
  readonly integrations = new Integrations();
  /** Named lists (`/v1/lists`). */
  readonly lists: ListService;
  /** What the --rules file manages (src/fleet): the API gets 409 MANAGED_BY_FILE for those. */
  readonly fileManaged = new FileManaged();
  /** The --rules file's state, once the daemon follows one (healthz reads it). */
  rulesFile: { status(): { path: string; ok: boolean; reason?: string } } | undefined;
  /** The feeds filling lists, once the daemon starts them (healthz and metrics read their state). */
  feeds: { states(): FeedState[] } | undefined;
  /** Flow queries and the flow count, from a snapshot on a worker thread (src/flows/snapshot.ts). */
  readonly flowSnapshots: FlowSnapshots;
  private readonly statsSnapshots: SnapshotCache<StatsEntry[]>;
  private readonly startedAt: number;
  /** Rate limits' counters, buckets and sweeps (absent only without a rate-limit-capable engine). */
  readonly rateLimits: RateLimitView | undefined;
  /** Turns the kernel's ban reports into auto blocks; the daemon starts it. */
  readonly bans: BanService | undefined;

  private readonly store: RuleStore;
  readonly datapath: Datapath;
  private readonly cidrMaps: CidrMaps;
  readonly policy: PolicyEngine;
  private readonly clock: Clock;
  readonly failsafe: readonly FailsafeEntry[];
  private restoreState: RestoreState = { state: 'done' };
  /** Settles when no restore runs (never rejects). */
  private restoreSettled: Promise<void> = Promise.resolve();
  private readonly restoreAgain: () => Promise<ReconcileReport>;
  private readonly gate: RestoreGate;
  private readonly log: Logger;

  private constructor({
    store, datapath, cidrMaps, policy, clock, countersCacheMs, flowSnapshotMaxAgeMs, capacity, log, failsafe, blockMeta, events, lists, counts, restoreAgain,
    gate,
  }: FirewallParts) {
    this.restoreAgain = restoreAgain;
    this.gate = gate;
    this.log = log;
    this.store = store;
    this.datapath = datapath;
    this.cidrMaps = cidrMaps;
    this.policy = policy;
    this.clock = clock;
    this.failsafe = failsafe;
    this.events = new EventHub(datapath.maps.events, events, { clock, ifaceName: (ifindex) => datapath.ifaceName(ifindex) });
    this.lists = lists;
    this.rules = new RuleService(store, policy, {
      now: () => new Date(clock.wallMs()),
      check: (rule) => checkFailsafeRule(failsafe, rule),
      log: { error: (details, message) => (log.error ?? log.warn).call(log, details, message) },
      listExists: (name) => lists.has(name),
    });
    lists.useRules(this.rules.listUsers);
    this.blockMeta = blockMeta;
    this.blocks = new BlockService(store, blockMeta.enforcer(cidrMaps), {
      counts,
      now: () => new Date(clock.wallMs()),
      limits: { 4: capacity.cidrV4, 6: capacity.cidrV6 },
      check: (cidr) => checkFailsafeCidr(failsafe, cidr, 'block'),
      log: { error: (details, message) => (log.error ?? log.warn).call(log, details, message) },
    });
    const flowMap = datapath.maps.flows;
    this.flowSnapshots = new FlowSnapshots({
      read: (cursor) => flowMap.lookupBatch(cursor, SNAPSHOT_PAGE),
      layout: { stride: flowMap.valueStride, cpus: cpusOf(flowMap) },
      clock,
      ifaceName: (ifindex) => datapath.ifaceName(ifindex),
      maxAgeMs: flowSnapshotMaxAgeMs,
      countMaxAgeMs: countersCacheMs,
      log,
    });
    this.statsSnapshots = new SnapshotCache(() => readStats(datapath.maps.stats, (slot) => datapath.ifslots.ifindexOf(slot)), countersCacheMs);
    this.startedAt = clock.wallMs();
    const tables = policy.rateLimits;
    this.rateLimits = tables && new RateLimitView(tables, clock, countersCacheMs);
    const view = this.rateLimits;
    this.bans = view && new BanService({
      reader: new BpfRingBuffer(datapath.maps.rateLimits.reports.fd),
      rule: (id) => store.getPolicyRule(id) ?? undefined,
      block: (input) => this.addBlock(input),
      banned: (id) => view.recordBan(id),
      log: { info: (d, m) => log.info(d, m), warn: (d, m) => log.warn(d, m) },
    });
  }

  /**
   * Loads the data plane and makes its maps hold exactly the stored rules:
   * before it returns (`restored`), or, with options.restoreLater and maps
   * an earlier start filled, after (`restoring`; see FirewallOptions).
   */
  static async open(options: FirewallOptions, log: Logger): Promise<OpenedFirewall> {
    const store = new RuleStore(options.storePath);
    const phases = new StartPhases();
    const marker = options.pin && options.storePath !== ':memory:' ? join(dirname(options.storePath), RESTORE_MARKER) : undefined;
    // Maps an earlier start filled need only the counts before serving (confirmed once loaded).
    const later = options.restoreLater === true && marker !== undefined && markedMapsExist(marker, options.pin!.dir);
    // Otherwise the stored rules are read while the kernel verifies and loads the programs (the
    // addon's thread): the two took about a second each, one after the other, at a million rules.
    // Columns, not BlockRule objects: a million rules restore in seconds and are garbage (a
    // few typed arrays) once the kernel holds them.
    let reading = later ? undefined : readRules(store, phases);
    let datapath: Datapath | undefined;
    let loading: Promise<Datapath> | undefined;
    try {
      loading = Datapath.load(options, log);
      loading.catch(() => undefined); // awaited just below
      // Counting a million rows holds the loop most of a second: done while the kernel loads.
      const counted = later ? store.countByFamily() : undefined;
      datapath = await loading;
      phases.mark('programs loaded');
      const deferred = later && restoredBefore(marker!, datapath);
      if (!deferred) reading ??= readRules(store, phases);
      const cidrMaps = new CidrMaps(datapath.maps);
      const clock = options.clock ?? systemClock;
      const opened = datapath;
      const listPrefixes = new ListPrefixes((name) => (lists.has(name) ? lists.get(name) : undefined));
      const policy = new PolicyEngine(await PolicyTables.open(datapath.maps.policy), {
        clock,
        ifindexOf: (iface) => opened.interfaces().find((i) => i.iface === iface)?.ifindex,
        slotHits: datapath.maps.slotHits,
        rateLimits: new RateLimitTables(datapath.maps.rateLimits, () => clock.monotonicNs()),
        ifaceDefaults: options.ifaceDefaults ?? [],
        listPrefixes: (name) => listPrefixes.of(name),
      });
      const blockMeta = new BlockMetaService(store, datapath.maps.policy.blockMeta, datapath.maps.config, (at) => policy.expiresNs(at), () => new Date(clock.wallMs()));
      blockMeta.stageBulkImports = options.stageBulkImports ?? false;
      // Before the prefixes: a dry-run block never drops.
      await blockMeta.restore(store.blocksWithMeta());
      const rules = await reading;
      const blockCounts = rules ? { ...rules.perFamily } : counted!;
      const listStore = new ListStore(store);
      const lists: ListService = new ListService(listStore, {
        exclusive: (work) => cidrMaps.exclusive(work),
        applyDiff: (diff, options) => cidrMaps.applyDiff(diff, options),
        resync: async () => {
          const columns = await store.readColumns();
          lists.appendKernelRows(columns, (direction, cidrs) => listStore.blockedAmong(direction, cidrs));
          await cidrMaps.reconcile(columns);
        },
        hits: (ruleId) => cidrMaps.hits(ruleId),
      }, {
        now: () => new Date((options.clock ?? systemClock).wallMs()),
        log: { error: (details, message) => (log.error ?? log.warn).call(log, details, message) },
      });
      cidrMaps.setListClaims((direction, cidr) => lists.claim(direction, cidr));
      const restoreKernel = async (columns: RuleColumns): Promise<ReconcileReport> => {
        lists.appendKernelRows(columns, (direction, cidrs) => listStore.blockedAmong(direction, cidrs));
        const report = await cidrMaps.reconcile(columns);
        if (marker) markRestored(marker, opened);
        return report;
      };
      // A deferred restore and its retries read the store when they run. Lists add their entries
      // to the columns: some room beyond the blocks.
      const restoreFromStore = async (): Promise<ReconcileReport> =>
        restoreKernel(await store.readColumns(blockCounts[4] + blockCounts[6] + 1024));
      let restored: ReconcileReport | undefined;
      let restoring: Promise<ReconcileReport> | undefined;
      const gate = new RestoreGate();
      if (rules) {
        restored = await restoreKernel(rules);
        phases.mark('kernel reconciled');
      } else {
        // Takes the kernel write lock now, before anyone can ask for a change; starts when
        // the caller has done what serving needs (beginRestore), so it does not compete with that.
        // Until it succeeds, changes are refused rather than applied over an empty index.
        cidrMaps.adoptUnindexed();
        restoring = cidrMaps.exclusive(async () => {
          if (!(await gate.opened)) throw new DatapathError('the restore was abandoned: the start failed');
          return restoreFromStore();
        });
        restoring.catch(() => undefined); // the firewall tracks it below
      }
      const failsafe = options.failsafe ?? [];
      policy.setDefaults(store.getSetting<PolicyDefaults>(POLICY_SETTING) ?? options.policy ?? { ingress: 'accept', egress: 'accept' });
      await policy.installFailsafe(failsafeRules(failsafe));
      const firewall = new Firewall({
        store, datapath, cidrMaps, policy, clock, countersCacheMs: options.countersCacheMs, flowSnapshotMaxAgeMs: options.flowSnapshotMaxAgeMs,
        capacity: options.capacity, log, failsafe,
        blockMeta, events: options.events ?? DEFAULT_EVENT_SETTINGS, lists, counts: blockCounts,
        restoreAgain: () => cidrMaps.exclusive(restoreFromStore),
        gate,
      });
      if (restoring) firewall.track(restoring);
      await firewall.rules.installAll();
      phases.mark('policy installed');
      return { firewall, restored, restoring, phasesMs: phases.done() };
    } catch (error) {
      // The read may still be going on: it ends (or fails) before the store closes.
      await reading?.catch(() => undefined);
      datapath ??= await loading?.catch(() => undefined);
      datapath?.close();
      store.close();
      throw error;
    }
  }

  /** Whether the kernel holds the stored rules yet (FirewallOptions.restoreLater); healthz reports it. */
  restore(): RestoreState {
    return this.restoreState;
  }

  /**
   * Starts a deferred restore (FirewallOptions.restoreLater): the daemon calls
   * it once it listens. close() abandons one never started.
   */
  beginRestore(): void {
    this.gate.open(true);
  }

  /** Drops a deferred restore not begun (a start failing before it serves), so restoreEnded() settles. */
  abandonRestore(): void {
    this.gate.open(false);
  }

  /** Runs a failed deferred restore again (the daemon's periodic check calls it); a no-op otherwise. */
  retryRestore(): void {
    if (this.restoreState.state === 'failed') this.track(this.restoreAgain());
  }

  /** Waits for a restore in progress to end, successful or not. */
  restoreEnded(): Promise<void> {
    return this.restoreSettled;
  }

  private track(restoring: Promise<ReconcileReport>): void {
    this.restoreState = { state: 'running' };
    this.restoreSettled = restoring.then(
      () => {
        this.restoreState = { state: 'done' };
      },
      (error: unknown) => {
        this.restoreState = { state: 'failed', reason: error instanceof Error ? error.message : String(error) };
        if (this.gate.abandoned) return; // the start failed, and says why
        (this.log.error ?? this.log.warn).call(this.log, { err: error }, 'restoring the stored rules into the kernel failed; the maps keep what an earlier start put in, and the periodic check retries');
      },
    );
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

  /**
   * Blocks many CIDRs, each with the extras POST /v1/blocks takes (ttl or
   * expiresAt, dryRun, origin), in one all-or-nothing bulk change; `items`
   * may arrive in chunks as a body is read (see BlockMetaService.addMany).
   */
  addBlocks(
    items: Iterable<BlockWithExtras> | AsyncIterable<readonly BlockWithExtras[]>,
    options?: AddManyOptions,
  ): Promise<{ created: number; existing: number }> {
    return this.blockMeta.addMany(this.blocks, items, options);
  }

  /** The blocks an integration keeps, as it sees them: it adds in bulk and removes only what it owns. */
  originBlocks(origin: string): OriginBlocks {
    return {
      check: (text) => {
        const cidr = parseCidr(text);
        if (cidr.prefixLen === 0) throw new TooBroadError(`${cidr.text} blocks everything`);
        checkFailsafeCidr(this.failsafe, cidr, 'block');
      },
      // An integration's items carry no dryRun: they never flip an operator's dry run.
      addMany: (items) => this.addBlocks(items.map((item) => ({ ...item, origin })), { keepDryRun: true }),
      owned: () => this.blockMeta.ownedBy(origin),
      block: (cidr) => {
        const rule = this.store.findByCidr(cidr, 'src')[0];
        return rule && { cidr: rule.cidr, direction: rule.direction, expiresAt: this.blockMeta.meta(rule).expiresAt };
      },
      removeMany: (keys) => this.blocks.removeMany(keys.filter((key) => this.blockMeta.origin(key) === origin)),
    };
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

  /** Hits of a block or list (xw_rule_stats), or of a policy rule by its kernel id (its slot's counters). */
  ruleHits(ruleId: number): Counter | undefined {
    return ruleId >= POLICY_RULE_ID_BASE ? this.policy.hits(ruleId) : this.cidrMaps.hits(ruleId);
  }

  /** The flows and the time of the snapshot they come from; 503 QUERY_QUEUE_FULL when too many distinct queries wait (see FlowSnapshots). */
  async flows(query: FlowQuery): Promise<FlowAnswer> {
    return this.flowSnapshots.query(query);
  }

  /** Entries in the kernel's flow table. */
  async flowCount(): Promise<number> {
    return this.flowSnapshots.count();
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

  storeSetting<T>(key: string): T | undefined {
    return this.store.getSetting<T>(key);
  }

  setStoreSetting(key: string, value: unknown): void {
    this.store.setSetting(key, value);
  }

  uptimeSeconds(): number {
    return Math.floor((this.clock.wallMs() - this.startedAt) / 1000);
  }

  /** Frees kernel handles; the pinned links and maps stay, enforcing (see Datapath.close). */
  close(): void {
    this.gate.open(false);
    void this.flowSnapshots.close();
    this.bans?.close();
    this.events.close();
    this.datapath.close();
    this.store.close();
  }
}

/** Reads every stored rule as columns, marking when the read ended; a failure is handled where it is awaited. */
function readRules(store: RuleStore, phases: StartPhases): Promise<RuleColumns> {
  const reading = store.readColumns().then((columns) => {
    phases.mark('rules read');
    return columns;
  });
  reading.catch(() => undefined);
  return reading;
}

/** Holds a deferred restore until the start has done what serving needs. */
class RestoreGate {
  private release!: (go: boolean) => void;
  /** True: restore; false: abandon. */
  readonly opened = new Promise<boolean>((resolve) => (this.release = resolve));
  /** Whether it was abandoned before it opened. */
  abandoned = false;
  private decided = false;

  open(go: boolean): void {
    if (this.decided) return;
    this.decided = true;
    this.abandoned = !go;
    this.release(go);
  }
}

export interface OpenedFirewall {
  firewall: Firewall;
  /** What the restore changed in the kernel, when open() waited for it. */
  restored?: ReconcileReport;
  /** The restore running behind the kernel write lock, when open() did not wait (FirewallOptions.restoreLater). */
  restoring?: Promise<ReconcileReport>;
  /** When each step of open() ended, in ms since it began. */
  phasesMs: Record<string, number>;
}

/** When each step of Firewall.open ended, in ms since it began (the daemon logs them). */
class StartPhases {
  private readonly startedAt = performance.now();
  private readonly marks: Record<string, number> = {};

  mark(phase: string): void {
    this.marks[phase] = Math.round(performance.now() - this.startedAt);
  }

  done(): Record<string, number> {
    return { ...this.marks };
  }
}

export const storePathIn = (stateDir: string): string => join(stateDir, 'rules.sqlite');
export const pinDirFor = (bpffsRoot: string, instance: string): string => join(bpffsRoot, 'xdpwall', instance);

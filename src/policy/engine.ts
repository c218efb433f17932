// The one place that decides what the kernel's rule tables hold: the stored
// rules of each hook (in evaluation order), the default policy and the
// failsafe list, compiled and written with PolicyTables. Every change
// recompiles the whole hook it touches (at most 4,096 rules) and flips it in
// atomically; nothing else writes the policy maps.
import type { Clock } from '../clock.js';
import { POLICY_RULE_ID_BASE, PolFlags, PolTable, type Counter } from '../datapath/abi.js';
import { RuleSlots } from './slots.js';
import { checkTableSize, compileTable } from './compile.js';
import type { PolicyRule, RuleHook } from './model.js';
import type { ClassRule, DefaultAction, Prefix, PrefixList } from './reference.js';
import type { PolicyTables } from './tables.js';
import type { BpfMap } from '@xdpwall/addon';
import type { Cidr } from '../rules/cidr.js';
import { rateConf } from '../ratelimit/model.js';
import type { RateLimitTables, RateRule } from '../ratelimit/tables.js';

export const kernelRuleId = (id: number): number => POLICY_RULE_ID_BASE + id;

export interface PolicyDefaults {
  ingress: DefaultAction;
  egress: DefaultAction;
}

export interface PolicyEngineOptions {
  clock: Clock;
  /** The ifindex of an attached interface by its configured name; undefined when not attached. */
  ifindexOf(iface: string): number | undefined;
  /** Policy rules' hits by slot (xw_slot_hits): zeroed when a slot is given to a rule, read by hits(). */
  slotHits?: BpfMap;
  /** Rate limits' parameters and buckets (written around each install). */
  rateLimits?: RateLimitTables;
  /** Interfaces' own default policies, from the configuration (by configured name). */
  ifaceDefaults?: readonly InterfaceDefaults[];
  /** The entries of a named list rules reference ("list:NAME"); none: every list is empty. */
  listPrefixes?: (name: string) => PrefixList;
}

export interface InterfaceDefaults {
  iface: string;
  policy: Partial<PolicyDefaults>;
}

const prefixOf = (c: Cidr | null): Prefix | null => c && { family: c.family, bytes: new Uint8Array(c.bytes), prefixLen: c.prefixLen };

export class PolicyEngine {
  private defaults: PolicyDefaults = { ingress: 'accept', egress: 'accept' };
  private failsafe: ClassRule[] = [];
  private readonly slots: RuleSlots;

  constructor(
    private readonly tables: PolicyTables,
    private readonly options: PolicyEngineOptions,
  ) {
    this.slots = new RuleSlots(
      { hits: options.slotHits ?? options.rateLimits?.maps.hits, rateStats: options.rateLimits?.maps.stats, rateBuckets: options.rateLimits?.maps.ruleBuckets },
      tables.installedSlots([PolTable.ingress, PolTable.egress]),
    );
  }

  /** The rate limiter's tables, when this engine has them. */
  get rateLimits(): RateLimitTables | undefined {
    return this.options.rateLimits;
  }

  get defaultPolicy(): PolicyDefaults {
    return { ...this.defaults };
  }

  /** The kernel expiry of an ISO time: coarse CLOCK_MONOTONIC ns (1: already past; 0: never). */
  expiresNs(expiresAt: string | null): bigint {
    if (expiresAt === null) return 0n;
    const { clock } = this.options;
    const remainingNs = BigInt(Date.parse(expiresAt) - clock.wallMs()) * 1_000_000n;
    const at = clock.monotonicNs() + remainingNs;
    return at > 0n && remainingNs > 0n ? at : 1n;
  }

  private listPrefixes(name: string): PrefixList {
    return this.options.listPrefixes?.(name) ?? { name, version: 'absent', prefixes: [] };
  }

  /** A stored rule as the classifiers see it. */
  classRule(rule: PolicyRule): ClassRule {
    return {
      kernelId: kernelRuleId(rule.id),
      action: rule.action,
      dryRun: rule.dryRun,
      ifindex: rule.iface === null ? null : (this.options.ifindexOf(rule.iface) ?? 0),
      src: prefixOf(rule.src),
      dst: prefixOf(rule.dst),
      srcList: rule.srcList === null ? null : this.listPrefixes(rule.srcList),
      dstList: rule.dstList === null ? null : this.listPrefixes(rule.dstList),
      proto: rule.proto,
      srcPort: rule.srcPort,
      dstPort: rule.dstPort,
      tcpFlags: rule.tcpFlags,
      icmpType: rule.icmpType,
      icmpCode: rule.icmpCode,
      vlan: rule.vlan,
      expiresNs: this.expiresNs(rule.expiresAt),
      rate: rule.action === 'ratelimit' && rule.rate ? rateConf(rule.rate, rule.ban) : null,
    };
  }

  /** The interfaces' own default policies from the configuration. */
  get interfaceDefaults(): InterfaceDefaults[] {
    return (this.options.ifaceDefaults ?? []).map((d) => ({ iface: d.iface, policy: { ...d.policy } }));
  }

  /**
   * Entries after every rule of the hook for attached interfaces whose own
   * default differs from the hook's: first matches only when no rule did.
   */
  private ifaceDefaultRules(hook: RuleHook): ClassRule[] {
    const out: ClassRule[] = [];
    for (const { iface, policy } of this.options.ifaceDefaults ?? []) {
      const action = policy[hook];
      const ifindex = this.options.ifindexOf(iface);
      if (action === undefined || action === this.defaults[hook] || !ifindex) continue;
      out.push({
        kernelId: 0, action: action === 'drop' ? 'drop' : 'pass', dryRun: false, ifindex, src: null, dst: null, proto: null,
        srcPort: null, dstPort: null, tcpFlags: null, icmpType: null, icmpCode: null, vlan: null, expiresNs: 0n, ifaceDefault: true,
      });
    }
    return out;
  }

  /** Some ingress default (the hook's or an interface's) drops: egress records flows for pass_reply. */
  private ingressMayDrop(): boolean {
    return this.defaults.ingress === 'drop' || (this.options.ifaceDefaults ?? []).some((d) => d.policy.ingress === 'drop');
  }

  /** Writes one hook's rules, given in evaluation order (priority, then id). */
  async install(hook: RuleHook, rules: readonly PolicyRule[]): Promise<void> {
    const table = PolTable[hook];
    const flags = hook === 'egress' && this.ingressMayDrop() ? PolFlags.replies : 0;
    const classRules = rules.map((r) => this.classRule(r));
    checkTableSize(classRules.length); // before slots are given to rules that cannot be installed
    const ids = classRules.map((r) => r.kernelId);
    const slots = await this.slots.assign(table, ids);
    for (const r of classRules) r.slot = slots.get(r.kernelId);
    const entries = [...classRules, ...this.ifaceDefaultRules(hook)];
    const compiled = compileTable(entries, { defaultAction: this.defaults[hook], flags });
    const rated: RateRule[] = classRules.flatMap((r) => (r.rate ? [{ kernelId: r.kernelId, slot: r.slot!, conf: r.rate }] : []));
    this.options.rateLimits?.prepare(rated); // before the flip: a packet always finds its rule's rate
    await this.tables.apply(table, compiled);
    this.options.rateLimits?.committed(hook, rated);
    this.slots.committed(table, ids);
  }

  /**
   * A policy rule's hits (by its kernel id), from its slot's counters; a
   * ratelimit rule's over-limit packets are counted apart (xw_rl_stats).
   */
  hits(kernelId: number): Counter {
    const hits = this.slots.hits(kernelId);
    const limits = this.options.rateLimits;
    if (!limits?.confOf(kernelId)) return hits;
    const { dropped } = limits.ruleStats(kernelId);
    return { packets: hits.packets + dropped.packets, bytes: hits.bytes + dropped.bytes };
  }

  /** Slots of rules the tables hold (or held until their flip synced). */
  get slotsUsed(): number {
    return this.slots.used;
  }

  /** Sets the default policy; the caller reinstalls both hooks. */
  setDefaults(defaults: PolicyDefaults): void {
    this.defaults = { ...defaults };
  }

  /** Sets and installs the failsafe list (entries are pass rules in their own table). */
  async installFailsafe(entries: readonly ClassRule[]): Promise<void> {
    this.failsafe = [...entries];
    await this.tables.apply(PolTable.failsafe, compileTable(this.failsafe));
  }
}

/** Sorts rules into evaluation order: priority, then id. */
export const byEvaluationOrder = (a: PolicyRule, b: PolicyRule): number => a.priority - b.priority || a.id - b.id;

// The veth suite's rate-limit rows: a flood in which every packet is over
// its source's limit (512 sources, each with a bucket of 1 pps, burst 1, on
// the UDP port the frames go to), the same flood against one bucket for the
// whole rule (per rule: no state per source), and the suite's block row again with the
// rate-limit rules loaded (the earlier drop-rate target must hold with
// them). Rules go in through PolicyEngine and RateLimitTables, as the
// daemon writes them.
import { Reason, Verdict, cpusOf, statsIndexParts, sumCounters } from '../../src/datapath/abi.js';
import type { Datapath } from '../../src/datapath/datapath.js';
import { PolicyEngine, byEvaluationOrder } from '../../src/policy/engine.js';
import { parseRule, type RuleInput } from '../../src/policy/model.js';
import { PolicyTables } from '../../src/policy/tables.js';
import { RateLimitTables } from '../../src/ratelimit/tables.js';
import { systemClock } from '../../src/clock.js';
import { prefixCount } from '../lib/context.js';
import { RULED_PORT } from './veth-rules.js';

export const VETH_RL_RULES = 100;
/** "xdpwall rate-limited flood, every packet over the limit (per source, 1M blocks loaded)" */
export const vethRlFloodCase = (blocks: string): string => `xdpwall rate-limited flood, every packet over the limit (per source, ${blocks} blocks loaded)`;
export const VETH_RL_FLOOD = vethRlFloodCase('1M');
/** "xdpwall rate-limited flood, every packet over the limit (per rule, 1M blocks loaded)": context, no target. */
export const vethRlFloodPerRuleCase = (blocks: string): string => `xdpwall rate-limited flood, every packet over the limit (per rule, ${blocks} blocks loaded)`;
/** "xdpwall deny src CIDR (1M prefixes), 100 rate-limit rules loaded" */
export const vethRlLoadedCase = (prefixes: number): string => `xdpwall deny src CIDR (${prefixCount(prefixes)}), ${VETH_RL_RULES} rate-limit rules loaded`;
export const VETH_RL_LOADED = vethRlLoadedCase(1_000_000);

/**
 * 99 ratelimit rules on TCP ports no frame goes to (per source and per
 * prefix with bans, per rule), then the flood's rule: UDP to RULED_PORT,
 * 1 pps, burst 1, per source (or per rule).
 */
function rateRules(per: 'source' | 'rule'): RuleInput[] {
  const pers = ['source', 'source-prefix', 'rule'] as const;
  const others = Array.from({ length: VETH_RL_RULES - 1 }, (_, i): RuleInput => ({
    action: 'ratelimit', proto: 'tcp', dstPort: 20_000 + i, priority: 50,
    rate: { pps: 1000 + i, per: pers[i % 3] },
    ...(pers[i % 3] === 'rule' ? {} : { ban: { afterDrops: 1000, within: 10, ttl: 600 } }),
  }));
  return [...others, { action: 'ratelimit', proto: 'udp', dstPort: RULED_PORT, rate: { pps: 1, burst: 1, per } }];
}

/** Installs the rules in the ingress table; returns their removal (the buckets go with it). */
export async function installRateRules(datapath: Datapath, per: 'source' | 'rule' = 'source'): Promise<() => Promise<void>> {
  const limits = new RateLimitTables(datapath.maps.rateLimits, () => systemClock.monotonicNs());
  const engine = new PolicyEngine(await PolicyTables.open(datapath.maps.policy), { clock: systemClock, ifindexOf: () => undefined, rateLimits: limits });
  const created = '2026-12-02T12:00:00.000Z';
  const rules = rateRules(per).map((input, i) => ({ ...parseRule(input, new Date(created)), id: 1 + i, createdAt: created }));
  await engine.install('ingress', [...rules].sort(byEvaluationOrder));
  return async () => {
    await engine.install('ingress', []);
    await limits.sweep(0n);
  };
}

/** Packets xw_stats counts as dropped over their rate, over all interfaces and CPUs. */
export async function droppedByRate(datapath: Datapath): Promise<number> {
  const { stats } = datapath.maps;
  const { keys, values, count } = await stats.lookupAll();
  let packets = 0n;
  for (let i = 0; i < count; i++) {
    const key = statsIndexParts(keys.readUInt32LE(i * 4));
    if (key.verdict !== Verdict.drop || key.reason !== Reason.ratelimit) continue;
    packets += sumCounters(values, i * stats.valueStride, stats.valueStride, cpusOf(stats)).packets;
  }
  return Number(packets);
}

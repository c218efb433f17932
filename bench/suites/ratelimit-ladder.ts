// The rate limiter's rungs of the ladder: ns per packet under
// BPF_PROG_TEST_RUN through xw_ingress with ratelimit rules installed
// through the control plane's PolicyEngine and RateLimitTables, as the
// daemon does, interleaved round by round with a bare XDP_DROP so every
// ratio stands on its own rounds. Run by the ladder suite after its rule
// rows, with its block tables loaded (the packets' sources are in none).
//
// - A rate-limited drop whose bucket exists, per source, per source-prefix
//   and per rule (rate 1 pps, burst 1: the first call spends the token, the
//   rest drop), and under the limit (pass); beside it a drop rule with the
//   same match, the classifier's share.
// - A new source every packet (bucket insert): the new-source churn driver
//   in front of xw_ingress, beside the kernel's floor for inserting such a
//   key and value into an LRU hash and into a preallocated hash (the type
//   of xw_rl_buckets), measured behind the same driver. The bucket table and
//   the floors' maps are emptied between calls, so every insert finds room.
// - The ladder's block, established and new-flow rows again with the
//   rate-limit rules loaded: the earlier targets must hold with them.
import type { BpfMap, BpfObject, BpfProgram } from '@xdpwall/addon';
import type { Datapath } from '../../src/datapath/datapath.js';
import { PolicyEngine, byEvaluationOrder } from '../../src/policy/engine.js';
import { parseRule, type PolicyRule, type RuleInput } from '../../src/policy/model.js';
import { PolicyTables } from '../../src/policy/tables.js';
import { RateLimitTables, clearSourceBuckets } from '../../src/ratelimit/tables.js';
import { systemClock } from '../../src/clock.js';
import { ether, ipv4, udp } from '../../test/lib/packets.js';
import { prefixCount, type SuiteContext } from '../lib/context.js';
import { median } from '../lib/stats.js';

export const RL_BARE = 'bare XDP_DROP (rate-limit ladder rounds)';
export const RL_DROP_SOURCE = 'xdpwall rate-limited drop, bucket exists (per source)';
export const RL_DROP_PREFIX = 'xdpwall rate-limited drop, bucket exists (per source-prefix /24)';
export const RL_DROP_RULE = 'xdpwall rate-limited drop, bucket exists (per rule)';
export const RL_PASS_SOURCE = 'xdpwall rate-limited pass, under the limit (per source)';
export const RL_DROP_RULE_ONLY = 'xdpwall drop rule, the same match (no rate limit)';
export const RL_NEW_SOURCE = 'xdpwall rate-limited, new source every packet (bucket insert, per source)';
export const RL_CHURN_DRIVER = 'new-source churn driver + bare XDP_DROP';
export const RL_LRU_FLOOR = 'new-source churn driver + kernel LRU-insert floor (xw_rl_buckets key and value sizes)';
export const RL_HASH_FLOOR = 'new-source churn driver + kernel hash-insert floor (preallocated hash, as xw_rl_buckets)';
/** How many ratelimit rules are loaded (the measured ones and the rest on other ports). */
export const RL_LOADED_RULES = 100;
export type RlLoadedKind = 'deny v4' | 'established v4' | 'new flow v4';
/** "xdpwall deny v4 (1M prefixes), 100 rate-limit rules loaded" */
export const rlLoadedCase = (kind: RlLoadedKind, v4: number): string =>
  `xdpwall ${kind} (${prefixCount(v4)}), ${RL_LOADED_RULES} rate-limit rules loaded`;

/** Destination ports of the measured rules. */
export const PORT = { source: 5301, rule: 5302, prefix: 5303, pass: 5304, drop: 5305, insert: 5306 } as const;
const XDP_DROP = 1;
const XDP_PASS = 2;

export interface RateLadderArgs {
  ctx: SuiteContext;
  datapath: Datapath;
  ingress: BpfProgram;
  bare: BpfProgram;
  rounds: number;
  /** The churn driver's object (bench_churn, bench_churn_src; slot 0 of churn_target is the program under test). */
  churn: BpfObject;
  floor: BpfObject;
  /** Prefixes loaded in the block tables (for the case names). */
  v4Loaded: number;
  /** A source in no block. */
  passedSource: string;
  /** A packet in a block. */
  deniedFrame: Buffer;
  /** A packet from passedSource whose flow exists. */
  establishedFrame: Buffer;
  timed: (program: BpfProgram, data: Buffer, expect: number) => () => number;
}

/** The ladder's rule set (also driven by scripts/rl-ab.ts). */
export function rateLadderRules(): RuleInput[] {
  const measured: RuleInput[] = [
    { action: 'ratelimit', proto: 'udp', dstPort: PORT.source, rate: { pps: 1, burst: 1, per: 'source' } },
    { action: 'ratelimit', proto: 'udp', dstPort: PORT.rule, rate: { pps: 1, burst: 1, per: 'rule' } },
    { action: 'ratelimit', proto: 'udp', dstPort: PORT.prefix, rate: { pps: 1, burst: 1, per: 'source-prefix', prefixV4: 24 } },
    { action: 'ratelimit', proto: 'udp', dstPort: PORT.pass, rate: { pps: 1_000_000_000, burst: 1_000_000_000, per: 'source' } },
    { action: 'drop', proto: 'udp', dstPort: PORT.drop },
    { action: 'ratelimit', proto: 'udp', dstPort: PORT.insert, rate: { pps: 1, burst: 1, per: 'source' } },
  ];
  const pers = ['source', 'source-prefix', 'rule'] as const;
  // The rest: ratelimit rules (bans on the per-source ones) on TCP ports no bench packet goes to, evaluated first.
  const others = Array.from({ length: RL_LOADED_RULES - (measured.length - 1) }, (_, i): RuleInput => ({
    action: 'ratelimit', proto: 'tcp', dstPort: 20_000 + i, priority: 50,
    rate: { pps: 1000 + i, per: pers[i % 3] },
    ...(pers[i % 3] === 'rule' ? {} : { ban: { afterDrops: 1000, within: 10, ttl: 600 } }),
  }));
  return [...others, ...measured];
}

/** Deletes every entry of a hash map (between calls, untimed). */
async function empty(map: BpfMap): Promise<void> {
  const { keys, count } = await map.lookupAll();
  if (count > 0) await map.deleteBatch(keys, count);
}

export async function runRateLimitLadder(a: RateLadderArgs): Promise<void> {
  const { ctx, timed, datapath } = a;
  const limits = new RateLimitTables(datapath.maps.rateLimits, () => systemClock.monotonicNs());
  const engine = new PolicyEngine(await PolicyTables.open(datapath.maps.policy), { clock: systemClock, ifindexOf: () => undefined, rateLimits: limits });
  const created = '2026-12-02T12:00:00.000Z';
  const installed: PolicyRule[] = rateLadderRules().map((input, i) => ({ ...parseRule(input, new Date(created)), id: 1 + i, createdAt: created }));
  const frame = (dport: number, src = a.passedSource) => ether(ipv4({ src, dst: '198.19.255.2' }, udp({ sport: 40003, dport, payload: Buffer.alloc(18) })));
  const insertRepeat = ctx.quick ? 1 << 14 : 1 << 16;
  const churnSrc = a.churn.program('bench_churn_src');
  const churnTarget = a.churn.map('churn_target');
  const floorMaps = [a.floor.map('floor_rl_lru'), a.floor.map('floor_rl_hash')];
  const slot = Buffer.alloc(4);
  // A new source every repetition, tables emptied before each call.
  const inserting = (target: BpfProgram, expect: number) => async (): Promise<number> => {
    await clearSourceBuckets(datapath.maps.rateLimits);
    for (const map of floorMaps) await empty(map);
    const fd = Buffer.alloc(4);
    fd.writeUInt32LE(target.fd);
    churnTarget.update(slot, fd);
    const result = churnSrc.testRunSync({ data: frame(PORT.insert), repeat: insertRepeat, dataSizeOut: 0 });
    if (result.retval !== expect) throw new Error(`${target.name} behind bench_churn_src: XDP action ${result.retval}, expected ${expect}`);
    return result.durationNs;
  };
  ctx.note(
    `ladder: rate-limit rows: ${RL_LOADED_RULES} rules in the ingress table through PolicyEngine + RateLimitTables (${RL_LOADED_RULES - 5} ratelimit ` +
      `rules, per source with bans, per prefix with bans, per rule, on TCP ports 20000+, evaluated first, then the measured UDP ones); "bucket exists" rows send UDP from ${a.passedSource} ` +
      `to a rule of 1 pps, burst 1 (the first packet spends the token, every repetition after drops as ratelimit); "under the limit" to ` +
      `a rule of 1e9 pps; new-source rows run bench_churn_src (IPv4 source 240.0.0.0/8 + 24 bits of a counter, never in a block), ` +
      `${insertRepeat.toLocaleString('en-US')} repetitions per call, the bucket table and floor maps emptied before each call; ` +
      `every new source's first packet is admitted, so that row also inserts a flow; interleaved with "${RL_BARE}"; ${a.rounds} rounds`,
  );

  const samples = new Map<string, number[]>();
  const record = (name: string, ns: number): void => {
    samples.set(name, [...(samples.get(name) ?? []), ns]);
  };
  try {
    await engine.install('ingress', [...installed].sort(byEvaluationOrder));
    // The first packet of each fixed source spends its bucket's only token.
    for (const port of [PORT.source, PORT.rule, PORT.prefix]) a.ingress.testRunSync({ data: frame(port), dataSizeOut: 0 });
    const cases: Array<{ name: string; run: () => number | Promise<number> }> = [
      { name: RL_BARE, run: timed(a.bare, a.deniedFrame, XDP_DROP) },
      { name: RL_DROP_SOURCE, run: timed(a.ingress, frame(PORT.source), XDP_DROP) },
      { name: RL_DROP_PREFIX, run: timed(a.ingress, frame(PORT.prefix), XDP_DROP) },
      { name: RL_DROP_RULE, run: timed(a.ingress, frame(PORT.rule), XDP_DROP) },
      { name: RL_PASS_SOURCE, run: timed(a.ingress, frame(PORT.pass), XDP_PASS) },
      { name: RL_DROP_RULE_ONLY, run: timed(a.ingress, frame(PORT.drop), XDP_DROP) },
      { name: rlLoadedCase('deny v4', a.v4Loaded), run: timed(a.ingress, a.deniedFrame, XDP_DROP) },
      { name: rlLoadedCase('established v4', a.v4Loaded), run: timed(a.ingress, a.establishedFrame, XDP_PASS) },
      { name: rlLoadedCase('new flow v4', a.v4Loaded), run: () => {
        const fd = Buffer.alloc(4);
        fd.writeUInt32LE(a.ingress.fd);
        churnTarget.update(slot, fd);
        return timed(a.churn.program('bench_churn'), a.establishedFrame, XDP_PASS)();
      } },
      { name: RL_CHURN_DRIVER, run: inserting(a.bare, XDP_DROP) },
      { name: RL_LRU_FLOOR, run: inserting(a.floor.program('bench_lru_floor_rl'), XDP_PASS) },
      { name: RL_HASH_FLOOR, run: inserting(a.floor.program('bench_hash_floor_rl'), XDP_PASS) },
      { name: RL_NEW_SOURCE, run: inserting(a.ingress, XDP_PASS) },
    ];
    for (let round = 0; round < a.rounds; round++) {
      for (const c of cases) record(c.name, await c.run());
    }
  } finally {
    await engine.install('ingress', []);
    await clearSourceBuckets(datapath.maps.rateLimits);
    const baselines: Record<string, string> = { [RL_NEW_SOURCE]: RL_LRU_FLOOR, [RL_HASH_FLOOR]: RL_LRU_FLOOR };
    for (const [name, ns] of samples) {
      ctx.results.add({
        suite: 'ladder', case: name, metric: 'time', value: median(ns), unit: 'ns/packet',
        ...(name === RL_BARE ? {} : { baseline: baselines[name] ?? RL_BARE }),
      });
    }
  }
}

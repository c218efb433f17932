// The rate-limit rungs of the ladder on their own, for A/B work and profiles:
//   tsx scripts/rl-ab.ts [--rounds N] [--repeat N] [--loop SECONDS] [--object PATH] [--prefixes N]
// Loads the data plane (unpinned), with --prefixes N the ladder's uniform
// IPv4 blocks (the packets' source in none, as the ladder's), installs the ladder's rule set
// (bench/suites/ratelimit-ladder.ts) through PolicyEngine + RateLimitTables,
// spends each fixed source's token, then times each case against bare
// XDP_DROP, interleaved round by round on the last CPU, and prints medians
// and ratios. --loop runs the per-source drop case alone for that long (for
// `perf record -a -g` with net.core.bpf_jit_kallsyms=1). To compare builds,
// run this from each worktree in turn: every ratio stands on its own rounds.
import { cpus } from 'node:os';
import { BpfObject, type BpfProgram } from '@xdpwall/addon';
import { Datapath } from '../src/datapath/datapath.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { PolicyEngine, byEvaluationOrder } from '../src/policy/engine.js';
import { parseRule, type PolicyRule } from '../src/policy/model.js';
import { PolicyTables } from '../src/policy/tables.js';
import { RateLimitTables } from '../src/ratelimit/tables.js';
import { systemClock } from '../src/clock.js';
import { ether, ipv4, udp } from '../test/lib/packets.js';
import { buildBenchPrograms, requireObject } from '../bench/lib/bpf.js';
import { pinProcess } from '../bench/lib/cpu.js';
import { median } from '../bench/lib/stats.js';
import { Prng } from '../bench/lib/prng.js';
import { generateV4, u32ToIpv4, v4Rules, v4Uncovered } from '../bench/lib/prefixes.js';
import { CidrMaps } from '../src/datapath/cidr-maps.js';
import { PORT, rateLadderRules } from '../bench/suites/ratelimit-ladder.js';

const XDP_DROP = 1;
const XDP_PASS = 2;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}
const objectIndex = process.argv.indexOf('--object');
const objectPath = objectIndex < 0 ? BPF_OBJECT_PATH : (process.argv[objectIndex + 1] as string);
const rounds = arg('--rounds', 9);
const repeat = arg('--repeat', 200_000);
const loopSeconds = arg('--loop', 0);
const prefixes = arg('--prefixes', 0);

const quiet = { info: () => {}, warn: () => {} };
await pinProcess(process.pid, String(cpus().length - 1));
const bareObject = BpfObject.open(requireObject(await buildBenchPrograms(), 'xdp_drop'));
await bareObject.load();
const bare = bareObject.program('bench_drop');
const datapath = await Datapath.load(
  { objectPath, pin: null, capacity: { cidrV4: Math.max(1 << 16, prefixes), cidrV6: 1 << 12, flows: 1 << 16, rateBuckets: 1 << 16 } },
  quiet,
);
try {
  const limits = new RateLimitTables(datapath.maps.rateLimits, () => systemClock.monotonicNs());
  const engine = new PolicyEngine(await PolicyTables.open(datapath.maps.policy), { clock: systemClock, ifindexOf: () => undefined, rateLimits: limits });
  const created = '2026-12-02T12:00:00.000Z';
  const installed: PolicyRule[] = rateLadderRules().map((input, i) => ({ ...parseRule(input, new Date(created)), id: 1 + i, createdAt: created }));
  await engine.install('ingress', [...installed].sort(byEvaluationOrder));
  let source = '198.18.7.9';
  if (prefixes > 0) {
    const v4 = generateV4(prefixes, 20261125);
    await new CidrMaps(datapath.maps).installMany(v4Rules(v4, 0, prefixes, 1));
    source = u32ToIpv4(v4Uncovered(v4, new Prng(7)));
  }
  const frame = (dport: number) => ether(ipv4({ src: source, dst: '198.19.255.2' }, udp({ sport: 40003, dport, payload: Buffer.alloc(18) })));
  for (const port of [PORT.source, PORT.rule, PORT.prefix]) datapath.ingress.testRunSync({ data: frame(port), dataSizeOut: 0 });
  const timed = (program: BpfProgram, data: Buffer, expect: number) => (): number => {
    const result = program.testRunSync({ data, repeat, dataSizeOut: 0 });
    if (result.retval !== expect) throw new Error(`${program.name}: XDP action ${result.retval}, expected ${expect}`);
    return result.durationNs;
  };
  if (loopSeconds > 0) {
    const run = timed(datapath.ingress, frame(PORT.source), XDP_DROP);
    const end = Date.now() + loopSeconds * 1000;
    let calls = 0;
    while (Date.now() < end) {
      run();
      calls++;
    }
    process.stdout.write(`looped ${calls} calls of ${repeat}\n`);
  } else {
    const cases: Array<[string, () => number]> = [
      ['bare XDP_DROP', timed(bare, frame(PORT.drop), XDP_DROP)],
      ['rl drop per source', timed(datapath.ingress, frame(PORT.source), XDP_DROP)],
      ['rl drop per prefix', timed(datapath.ingress, frame(PORT.prefix), XDP_DROP)],
      ['rl drop per rule', timed(datapath.ingress, frame(PORT.rule), XDP_DROP)],
      ['rl pass per source', timed(datapath.ingress, frame(PORT.pass), XDP_PASS)],
      ['drop rule, same match', timed(datapath.ingress, frame(PORT.drop), XDP_DROP)],
    ];
    const samples = new Map<string, number[]>();
    for (let r = 0; r < rounds; r++) {
      for (const [name, run] of cases) samples.set(name, [...(samples.get(name) ?? []), run()]);
    }
    const bareNs = median(samples.get('bare XDP_DROP') ?? []);
    for (const [name, ns] of samples) {
      const m = median(ns);
      process.stdout.write(`${name.padEnd(24)} ${m.toFixed(1).padStart(7)} ns  ${(m / bareNs).toFixed(2).padStart(6)}x\n`);
    }
  }
  await engine.install('ingress', []);
} finally {
  datapath.close();
  bareObject.close();
}

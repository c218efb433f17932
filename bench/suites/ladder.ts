// Data-plane cost ladder: ns per packet under BPF_PROG_TEST_RUN, from a bare
// XDP_DROP through xdpwall's parser alone to xw_ingress with 1 .. 1M
// prefixes loaded. Nothing is sent anywhere: packets exist only in the
// test run. The process is pinned to one CPU; the cases of one size are
// interleaved round by round, and each figure is the median over rounds.
import { BpfObject, type BpfProgram } from '@xdpwall/addon';
import type { BlockRule } from '../../src/rules/model.js';
import { Datapath } from '../../src/datapath/datapath.js';
import { TCP, ether, ipv4, ipv6, tcp, udp } from '../../test/lib/packets.js';
import { BPF_OBJECT_PATH, requireObject } from '../lib/bpf.js';
import { BENCH_CPU, allCpus, pinProcess } from '../lib/cpu.js';
import { prefixCount, sizeLabel, type SuiteContext } from '../lib/context.js';
import { Prng } from '../lib/prng.js';
import {
  REALISTIC_V4, REALISTIC_V6, type V4Prefixes, arrange, formatV6, generateV4, generateV6, swapV4, swapV6, u32ToIpv4, v4AddressIn,
  v4Keys, v4Rules, v4Uncovered, v6AddressIn, v6Rules, v6Uncovered,
} from '../lib/prefixes.js';
import { CidrMaps } from '../../src/datapath/cidr-maps.js';
import { V6Lengths } from '../../src/datapath/v6-lengths.js';
import { median } from '../lib/stats.js';
import { EventHub } from '../../src/events/hub.js';
import { DEFAULT_EVENT_SETTINGS } from '../../src/events/settings.js';
import { systemClock } from '../../src/clock.js';
import { runRuleLadder } from './rules-ladder.js';
import { runRateLimitLadder } from './ratelimit-ladder.js';

export const LADDER_SIZES_V4 = [1, 1000, 100_000, 1_000_000];
export const LADDER_SIZES_V6 = [1, 1000, 100_000, 256_000];
export const BARE = 'bare XDP_DROP';
export const PARSE = 'parse-only (xdpwall parser) + XDP_DROP';
export const CHURN_DRIVER = 'churn driver + bare XDP_DROP';
export const textbookCase = (v4: number): string => `textbook parse + LPM trie + XDP_DROP (${prefixCount(v4)})`;
export const LRU_FLOOR = 'churn driver + kernel LRU-insert floor (xw_flows type and size)';
/** New-flow attempts measured beside the floor, as floors of their own. */
export const LRU_FLOOR_ATTEMPTS = {
  common: 'churn driver + LRU-insert floor, common LRU list',
  percpu: 'churn driver + LRU-insert floor, per-CPU values (the old xw_flows)',
  v4key: 'churn driver + LRU-insert floor, IPv4-only 20-byte key',
  lookup: 'churn driver + LRU lookup miss + insert floor (what a packet of unknown flow needs)',
} as const;
export const REALISTIC = 'realistic';
export type LadderKind =
  | 'deny v4' | 'deny v6' | 'deny v4 host route' | 'deny v6 host route' | 'deny v4 /25../31' | 'deny v4 clean /24'
  | 'established v4' | 'established v6' | 'new flow v4' | 'new flow v6';
export const ladderCase = (kind: LadderKind, v4: number, v6: number, set = ''): string => {
  const count = prefixCount(kind.includes('v6') ? v6 : v4);
  return `xdpwall ${kind} (${set ? count.replace(/ prefix(es)?$/, ` ${set} prefix$1`) : count})`;
};

/** A new TCP connection every packet: a SYN, whose flow xdpwall inserts without the lookup miss first. */
export const synCase = (v4: number, v6: number): string => ladderCase('new flow v4', v4, v6).replace('new flow v4', 'new flow v4 TCP SYN');

/** The same IPv6 case with the flat tables switched off: the trie answers every prefix lookup (the baseline of issue 6). */
export const trieOnlyCase = (kind: LadderKind, v4: number, v6: number, set = ''): string => `${ladderCase(kind, v4, v6, set)}, trie only`;

/** Blocks' hit counters when the per-CPU hit cache misses every packet: a different /32 block per repetition. */
export const HIT_CACHE_MISS = (v4: number): string => `xdpwall deny v4, a different block every packet (block hit cache misses) (${prefixCount(v4)})`;
export const HIT_CACHE_MISS_DRIVER = 'churn_src driver + bare XDP_DROP (block hit cache miss rounds)';
/** /32 blocks the miss row sends from: 240.0.0.0 + 1..HIT_CACHE_MISS_BLOCKS, one per repetition of a call. */
const HIT_CACHE_MISS_BLOCKS = 4096;

/** The same case while a /v1/events client listens (default sampling: drops 1 in 100, at most 1000 events/s). */
export const listeningCase = (kind: LadderKind, v4: number, v6: number): string => `${ladderCase(kind, v4, v6)} + event listener`;

const FLOW_CAPACITY = 1 << 18;
const quietLog = { info: () => {}, warn: () => {} };

interface Case {
  name: string;
  run(): number; // ns per packet of one call
}

export async function runLadder(ctx: SuiteContext): Promise<void> {
  const rounds = ctx.quick ? 3 : 10;
  const repeat = ctx.quick ? 200_000 : 1_000_000;
  const sizesV4 = ctx.quick ? LADDER_SIZES_V4.slice(0, 3) : LADDER_SIZES_V4;
  const sizesV6 = ctx.quick ? LADDER_SIZES_V6.slice(0, 3) : LADDER_SIZES_V6;

  await pinProcess(process.pid, String(BENCH_CPU));
  ctx.cleanup.add('unpin the bench process', () => pinProcess(process.pid, allCpus()));

  const bare = await loadProgram(requireObject(ctx.bpf, 'xdp_drop'), 'bench_drop', ctx);
  const churnObject = await loadObject(requireObject(ctx.bpf, 'churn'), ctx);
  const churn = churnObject.program('bench_churn');
  const textbookObject = await loadObject(requireObject(ctx.bpf, 'textbook_lpm'), ctx);
  const textbook = textbookObject.program('bench_textbook');
  const textbookTrie = textbookObject.map('textbook_v4');
  const floorObject = await loadObject(requireObject(ctx.bpf, 'lru_floor'), ctx);
  const floors = {
    floor: floorObject.program('bench_lru_floor'),
    common: floorObject.program('bench_lru_floor_common'),
    percpu: floorObject.program('bench_lru_floor_percpu'),
    v4key: floorObject.program('bench_lru_floor_v4key'),
    lookup: floorObject.program('bench_lru_floor_lookup'),
  };
  const parsePath = ctx.bpf.objects.parse_drop;
  const parse = parsePath ? await loadProgram(parsePath, 'bench_parse_drop', ctx) : null;
  if (!parse) ctx.note(`ladder: no parse-only rung, bench/bpf/parse_drop.bpf.c did not compile against xdp/lib: ${ctx.bpf.failures.parse_drop ?? '?'}`);

  const datapath = await Datapath.load(
    {
      objectPath: BPF_OBJECT_PATH,
      pin: null,
      // rateBuckets: room for one call of the rate-limit ladder's new-source rows (65,536 sources fill a quarter of the slots)
      capacity: { cidrV4: 1 << 20, cidrV6: 1 << 18, flows: FLOW_CAPACITY, rateBuckets: 1 << 18 },
    },
    quietLog,
  );
  ctx.cleanup.add('close the ladder data plane', () => datapath.close());
  const ruleTables = new CidrMaps(datapath.maps);
  const ingress = datapath.ingress;
  const v6Tables = V6Lengths.of(datapath.maps.v6);
  const trieOnly = (run: () => number) => (): number => {
    v6Tables.setFlat(false);
    try {
      return run();
    } finally {
      v6Tables.setFlat(true);
    }
  };
  // The timer never fires: each listening case drains the ring itself, untimed.
  const events = new EventHub(datapath.maps.events, DEFAULT_EVENT_SETTINGS, { clock: systemClock, ifaceName: () => undefined, pollMs: 3_600_000 });
  ctx.cleanup.add('close the ladder event hub', () => events.close());
  const listening = (run: () => number) => (): number => {
    const stop = events.subscribe({ filter: () => false, deliver: () => undefined });
    try {
      return run();
    } finally {
      while (events.poll() > 0);
      stop();
    }
  };

  const maxV4 = sizesV4[sizesV4.length - 1] as number;
  const maxV6 = sizesV6[sizesV6.length - 1] as number;
  ctx.log(`ladder: generating ${maxV4} IPv4 and ${maxV6} IPv6 prefixes (seed ${ctx.seed})`);
  const v4 = generateV4(maxV4, ctx.seed);
  const v6 = generateV6(maxV6, ctx.seed + 1);
  // #0 a prefix up to /24 (DIR-24 table), #1 a host route (hash), #2 a /25../31 (trie behind a flagged slot).
  arrange(v4.lens, (a, b) => swapV4(v4, a, b), v4.labCount, [(l) => l <= 24, (l) => l === 32, (l) => l > 24 && l < 32]);
  arrange(v6.lens, (a, b) => swapV6(v6, a, b), v6.count, [(l) => l < 128, (l) => l === 128]);
  // #3: a prefix up to /24 with a /24 that holds no longer prefix, so its DIR-24 slot answers alone: the
  // common shape of real blocklists, and rare in this dense lab set, where most /24s hold a /25../32 too.
  const cleanV4 = placeCleanPrefix(v4, 3);
  const prng = new Prng(ctx.seed + 2);
  const deniedV4 = u32ToIpv4(v4AddressIn(v4, 0, prng));
  const deniedHostV4 = u32ToIpv4(v4AddressIn(v4, 1, prng));
  const deniedDeepV4 = u32ToIpv4(v4AddressIn(v4, 2, prng));
  const deniedCleanV4 = u32ToIpv4(cleanV4);
  const passedV4 = u32ToIpv4(v4Uncovered(v4, prng));
  const deniedV6 = formatV6(v6AddressIn(v6, 0, prng));
  const deniedHostV6 = formatV6(v6AddressIn(v6, 1, prng));
  const passedV6 = formatV6(v6Uncovered(v6, prng));
  const payload = Buffer.alloc(18);
  const packet = {
    deniedV4: ether(ipv4({ src: deniedV4, dst: '198.19.255.2' }, udp({ sport: 40000, dport: 53, payload }))),
    passedV4: ether(ipv4({ src: passedV4, dst: '198.19.255.2' }, udp({ sport: 40001, dport: 53, payload }))),
    deniedV6: ether(ipv6({ src: deniedV6, dst: 'fd00:198:0:ffff::2' }, udp({ sport: 40000, dport: 53, payload }))),
    deniedHostV4: ether(ipv4({ src: deniedHostV4, dst: '198.19.255.2' }, udp({ sport: 40000, dport: 53, payload }))),
    deniedDeepV4: ether(ipv4({ src: deniedDeepV4, dst: '198.19.255.2' }, udp({ sport: 40000, dport: 53, payload }))),
    deniedCleanV4: ether(ipv4({ src: deniedCleanV4, dst: '198.19.255.2' }, udp({ sport: 40000, dport: 53, payload }))),
    deniedHostV6: ether(ipv6({ src: deniedHostV6, dst: 'fd00:198:0:ffff::2' }, udp({ sport: 40000, dport: 53, payload }))),
    synV4: ether(ipv4({ src: passedV4, dst: '198.19.255.3' }, tcp({ sport: 40002, dport: 443, flags: TCP.syn }))),
    passedV6: ether(ipv6({ src: passedV6, dst: 'fd00:198:0:ffff::2' }, udp({ sport: 40001, dport: 53, payload }))),
  };
  ctx.note(
    `ladder: packets are 60-byte UDP frames; denied sources ${deniedV4} in a /${v4.lens[0]} (IPv4 DIR-24 table) and ` +
      `${deniedV6} in a /${v6.lens[0]} (IPv6 /64 entry, flat tables; the "trie only" rows switch them off), ${deniedHostV4} / ${deniedHostV6} in a host route (exact-match hash, ` +
      `from 2 prefixes on), ${deniedDeepV4} in a /${v4.lens[2]} (IPv4 trie behind a flagged DIR-24 slot, from 3 prefixes on), ` +
      `${deniedCleanV4} in a /${v4.lens[3]} whose /24 holds no longer prefix (DIR-24 slot alone, from 4 prefixes on); ` +
      `passed sources ${passedV4} / ${passedV6} in none; repeat ${repeat.toLocaleString('en-US')} per call, ${rounds} rounds, CPU ${BENCH_CPU}`,
  );
  ctx.note(
    `ladder: IPv4 prefixes: the first 2048 (/24../32) inside 198.18.0.0/15, the rest (/20../32) elsewhere (a /15 holds < 2^18 prefixes); ` +
      `IPv6 /64../128 inside fd00:198::/48; loaded through the control plane's CidrMaps.installMany (host routes to the ` +
      `hashes, the rest to the tries and, for IPv6, the flat tables by prefix length; rule counters created on first hit), as the daemon does`,
  );
  ctx.note(
    `ladder: "+ event listener" cases run with the events gate open (XW_FEATURE_EVENTS), default sampling and cap, the ring drained between calls`,
  );
  ctx.note(
    `ladder: "${synCase(maxV4, maxV6)}": the same churn on a TCP SYN (the driver rewrites the TCP source port in the same place); ` +
      `xdpwall inserts a SYN's flow without looking it up first (xdp/lib/flow.h)`,
  );
  ctx.note(
    `ladder: new-flow cases run the churn driver (bench/bpf/churn.bpf.c), which rewrites the UDP source port and the low 16 bits ` +
      `of the destination per repetition and tail-calls xw_ingress: every packet is a new flow, in an LRU flow table of ` +
      `${FLOW_CAPACITY.toLocaleString('en-US')} entries that stays full (evicting); "${CHURN_DRIVER}" is the driver's own cost`,
  );

  const slot = Buffer.alloc(4);
  const setChurnTarget = (program: BpfProgram): void => {
    const fd = Buffer.alloc(4);
    fd.writeUInt32LE(program.fd);
    churnObject.map('churn_target').update(slot, fd);
  };
  const timed = (program: BpfProgram, data: Buffer, expect: number) => (): number => {
    const result = program.testRunSync({ data, repeat, dataSizeOut: 0 });
    if (result.retval !== expect) throw new Error(`${program.name}: XDP action ${result.retval}, expected ${expect}`);
    return result.durationNs;
  };
  const XDP_DROP = 1;
  const XDP_PASS = 2;
  const churnVia = (target: BpfProgram, data: Buffer, expect: number) => (): number => {
    setChurnTarget(target);
    return timed(churn, data, expect)();
  };

  const samples = new Map<string, number[]>();
  const record = (name: string, ns: number): void => {
    samples.set(name, [...(samples.get(name) ?? []), ns]);
  };

  let loadedV4 = 0;
  let loadedV6 = 0;
  for (let step = 0; step < sizesV4.length; step++) {
    const nV4 = sizesV4[step] as number;
    const nV6 = sizesV6[step] as number;
    const started = performance.now();
    await ruleTables.installMany(v4Rules(v4, loadedV4, nV4, 1 + loadedV4));
    await ruleTables.installMany(v6Rules(v6, loadedV6, nV6, 2_000_001 + loadedV6));
    await textbookTrie.updateBatch(v4Keys(v4, loadedV4, nV4), Buffer.alloc((nV4 - loadedV4) * 4), nV4 - loadedV4);
    loadedV4 = nV4;
    loadedV6 = nV6;
    ctx.log(`ladder: ${sizeLabel(nV4)} IPv4 + ${sizeLabel(nV6)} IPv6 prefixes loaded in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    // The established flows exist before their cases are timed.
    ingress.testRunSync({ data: packet.passedV4, dataSizeOut: 0 });
    ingress.testRunSync({ data: packet.passedV6, dataSizeOut: 0 });

    const cases: Case[] = [
      { name: BARE, run: timed(bare, packet.deniedV4, XDP_DROP) },
      ...(parse ? [{ name: PARSE, run: timed(parse, packet.deniedV4, XDP_DROP) }] : []),
      { name: ladderCase('deny v4', nV4, nV6), run: timed(ingress, packet.deniedV4, XDP_DROP) },
      { name: ladderCase('deny v6', nV4, nV6), run: timed(ingress, packet.deniedV6, XDP_DROP) },
      { name: trieOnlyCase('deny v6', nV4, nV6), run: trieOnly(timed(ingress, packet.deniedV6, XDP_DROP)) },
      ...(nV4 >= 2 ? [{ name: ladderCase('deny v4 host route', nV4, nV6), run: timed(ingress, packet.deniedHostV4, XDP_DROP) }] : []),
      ...(nV6 >= 2 ? [{ name: ladderCase('deny v6 host route', nV4, nV6), run: timed(ingress, packet.deniedHostV6, XDP_DROP) }] : []),
      ...(nV4 >= 3 ? [{ name: ladderCase('deny v4 /25../31', nV4, nV6), run: timed(ingress, packet.deniedDeepV4, XDP_DROP) }] : []),
      ...(nV4 >= 4 ? [{ name: ladderCase('deny v4 clean /24', nV4, nV6), run: timed(ingress, packet.deniedCleanV4, XDP_DROP) }] : []),
      { name: ladderCase('established v4', nV4, nV6), run: timed(ingress, packet.passedV4, XDP_PASS) },
      { name: ladderCase('established v6', nV4, nV6), run: timed(ingress, packet.passedV6, XDP_PASS) },
      { name: trieOnlyCase('established v6', nV4, nV6), run: trieOnly(timed(ingress, packet.passedV6, XDP_PASS)) },
      ...(step === 0
        ? [
            { name: listeningCase('deny v4', nV4, nV6), run: listening(timed(ingress, packet.deniedV4, XDP_DROP)) },
            { name: listeningCase('established v4', nV4, nV6), run: listening(timed(ingress, packet.passedV4, XDP_PASS)) },
          ]
        : []),
      { name: textbookCase(nV4), run: timed(textbook, packet.deniedV4, XDP_DROP) },
      { name: CHURN_DRIVER, run: churnVia(bare, packet.passedV4, XDP_DROP) },
      { name: LRU_FLOOR, run: churnVia(floors.floor, packet.passedV4, XDP_PASS) },
      ...(nV4 === maxV4
        ? (Object.keys(LRU_FLOOR_ATTEMPTS) as Array<keyof typeof LRU_FLOOR_ATTEMPTS>).map((k) => ({
            name: LRU_FLOOR_ATTEMPTS[k], run: churnVia(floors[k], packet.passedV4, XDP_PASS),
          }))
        : []),
      { name: ladderCase('new flow v4', nV4, nV6), run: churnVia(ingress, packet.passedV4, XDP_PASS) },
      { name: ladderCase('new flow v6', nV4, nV6), run: churnVia(ingress, packet.passedV6, XDP_PASS) },
      ...(nV4 === maxV4 ? [{ name: synCase(nV4, nV6), run: churnVia(ingress, packet.synV4, XDP_PASS) }] : []),
    ];
    for (let round = 0; round < rounds; round++) {
      for (const c of cases) record(c.name, c.run());
    }
  }

  await runHitCacheMiss({ ctx, ruleTables, ingress, bare, churn: churnObject, rounds, v4Loaded: maxV4, record });

  const publish = (): void => {
    for (const [name, ns] of samples) {
      ctx.results.add({
        suite: 'ladder',
        case: name,
        metric: 'time',
        value: median(ns),
        unit: 'ns/packet',
        ...(name === BARE ? {} : { baseline: BARE }),
      });
    }
    samples.clear();
  };
  // The uniform rows are kept whatever happens to the rule rows or the realistic set.
  publish();
  await runRuleLadder({
    ctx, policy: datapath.maps.policy, ingress, bare, rounds, timed,
    passedSource: passedV4, deniedSource: deniedV4,
  });
  await runRateLimitLadder({
    ctx, datapath, ingress, bare, rounds, timed, churn: churnObject, floor: floorObject,
    v4Loaded: maxV4, passedSource: passedV4, deniedFrame: packet.deniedV4, establishedFrame: packet.passedV4,
  });
  if (ctx.quick) {
    ctx.note('ladder: --quick skips the realistic prefix set');
    return;
  }
  try {
    // Take the uniform set out rule by rule (reconcile() assumes freshly loaded, empty DIR-24 tables).
    await ruleTables.removeMany(v4Rules(v4, 0, maxV4, 1));
    await ruleTables.removeMany(v6Rules(v6, 0, maxV6, 2_000_001));
    await runRealistic({ ctx, ruleTables, ingress, maxV4, maxV6, rounds, timed, churnVia, record, bare, trieOnly, XDP_DROP, XDP_PASS });
  } finally {
    publish();
  }
}

async function loadObject(path: string, ctx: SuiteContext): Promise<BpfObject> {
  const object = BpfObject.open(path);
  ctx.cleanup.add(`close ${path}`, () => object.close());
  await object.load();
  return object;
}

async function loadProgram(path: string, name: string, ctx: SuiteContext): Promise<BpfProgram> {
  return (await loadObject(path, ctx)).program(name);
}

/**
 * Moves a lab prefix of length <= 24 that covers a /24 holding no longer lab
 * prefix to position `at`; returns an address in that /24.
 */
function placeCleanPrefix(v4: V4Prefixes, at: number): number {
  const busy = new Set<number>();
  // Host routes live in the hash, so only /25../31 make a /24's slot point elsewhere.
  for (let i = 0; i < v4.labCount; i++) {
    const len = v4.lens[i] as number;
    if (len > 24 && len < 32) busy.add((v4.addrs[i] as number) >>> 8);
  }
  for (let i = at; i < v4.labCount; i++) {
    const len = v4.lens[i] as number;
    if (len > 24) continue;
    const first = (v4.addrs[i] as number) >>> 8;
    for (let slot = first; slot < first + (1 << (24 - len)); slot++) {
      if (busy.has(slot)) continue;
      swapV4(v4, at, i);
      return ((slot << 8) | 7) >>> 0;
    }
  }
  throw new Error('no lab prefix up to /24 with a /24 free of longer prefixes');
}

interface RealisticArgs {
  ctx: SuiteContext;
  ruleTables: CidrMaps;
  ingress: BpfProgram;
  maxV4: number;
  maxV6: number;
  rounds: number;
  timed: (program: BpfProgram, data: Buffer, expect: number) => () => number;
  churnVia: (program: BpfProgram, data: Buffer, expect: number) => () => number;
  record: (name: string, ns: number) => void;
  bare: BpfProgram;
  /** Runs a case with the flat IPv6 tables off (the trie alone). */
  trieOnly: (run: () => number) => () => number;
  XDP_DROP: number;
  XDP_PASS: number;
}

/**
 * The same placements on a prefix set shaped like real blocklists (mostly
 * host routes, some /24 and /48, a few short and /25../31), loaded in place
 * of the uniform one at the largest size. Interleaved with bare XDP_DROP
 * again, so its ratios stand on their own rounds.
 */
async function runRealistic(a: RealisticArgs): Promise<void> {
  const { ctx, ruleTables, ingress, maxV4, maxV6, timed, churnVia, record, XDP_DROP, XDP_PASS } = a;
  const started = performance.now();
  const v4 = generateV4(maxV4, ctx.seed + 10, 4096, REALISTIC_V4);
  const v6 = generateV6(maxV6, ctx.seed + 11, REALISTIC_V6, 4096);
  arrange(v4.lens, (x, y) => swapV4(v4, x, y), v4.labCount, [(l) => l <= 24, (l) => l === 32, (l) => l > 24 && l < 32]);
  arrange(v6.lens, (x, y) => swapV6(v6, x, y), v6.count, [(l) => l < 128 && l >= 64, (l) => l === 128]);
  const cleanV4 = placeCleanPrefix(v4, 3);
  await ruleTables.installMany(v4Rules(v4, 0, maxV4, 1));
  await ruleTables.installMany(v6Rules(v6, 0, maxV6, 2_000_001));
  const lengths = (lens: Uint8Array, bits: number) => {
    const hist = new Map<string, number>();
    for (const l of lens) {
      const k = l === bits ? `/${bits}` : l === 24 && bits === 32 ? '/24' : l > 24 && bits === 32 ? '/25../31' : l === 48 ? '/48' : l === 64 ? '/64' : 'other';
      hist.set(k, (hist.get(k) ?? 0) + 1);
    }
    return [...hist].map(([k, n]) => `${k} ${n.toLocaleString('en-US')}`).join(', ');
  };
  ctx.log(`ladder: realistic set (${sizeLabel(maxV4)} IPv4, ${sizeLabel(maxV6)} IPv6) loaded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  ctx.note(`ladder: realistic IPv4 set: ${lengths(v4.lens, 32)}; IPv6: ${lengths(v6.lens, 128)} (seed ${ctx.seed + 10}/${ctx.seed + 11})`);
  const prng = new Prng(ctx.seed + 12);
  const payload = Buffer.alloc(18);
  const v4From = (src: string, sport = 40000) => ether(ipv4({ src, dst: '198.19.255.2' }, udp({ sport, dport: 53, payload })));
  const v6From = (src: string, sport = 40000) => ether(ipv6({ src, dst: 'fd00:198:0:ffff::2' }, udp({ sport, dport: 53, payload })));
  const passedV4 = v4From(u32ToIpv4(v4Uncovered(v4, prng)), 40001);
  const passedV6 = v6From(formatV6(v6Uncovered(v6, prng)), 40001);
  ingress.testRunSync({ data: passedV4, dataSizeOut: 0 });
  ingress.testRunSync({ data: passedV6, dataSizeOut: 0 });
  // Drawn where the list reaches it, so the other cases' addresses stay those of earlier runs.
  let deniedV6: Buffer | undefined;
  const deniedV6Frame = (): Buffer => (deniedV6 ??= v6From(formatV6(v6AddressIn(v6, 0, prng))));
  const set = REALISTIC;
  const cases: Array<{ name: string; run: () => number }> = [
    { name: BARE, run: timed(a.bare, v4From(u32ToIpv4(v4AddressIn(v4, 0, prng))), XDP_DROP) },
    { name: ladderCase('deny v4', maxV4, maxV6, set), run: timed(ingress, v4From(u32ToIpv4(v4AddressIn(v4, 0, prng))), XDP_DROP) },
    { name: ladderCase('deny v4 host route', maxV4, maxV6, set), run: timed(ingress, v4From(u32ToIpv4(v4AddressIn(v4, 1, prng))), XDP_DROP) },
    { name: ladderCase('deny v4 /25../31', maxV4, maxV6, set), run: timed(ingress, v4From(u32ToIpv4(v4AddressIn(v4, 2, prng))), XDP_DROP) },
    { name: ladderCase('deny v4 clean /24', maxV4, maxV6, set), run: timed(ingress, v4From(u32ToIpv4(cleanV4)), XDP_DROP) },
    { name: ladderCase('deny v6', maxV4, maxV6, set), run: timed(ingress, deniedV6Frame(), XDP_DROP) },
    { name: trieOnlyCase('deny v6', maxV4, maxV6, set), run: a.trieOnly(timed(ingress, deniedV6Frame(), XDP_DROP)) },
    { name: ladderCase('deny v6 host route', maxV4, maxV6, set), run: timed(ingress, v6From(formatV6(v6AddressIn(v6, 1, prng))), XDP_DROP) },
    { name: ladderCase('established v4', maxV4, maxV6, set), run: timed(ingress, passedV4, XDP_PASS) },
    { name: ladderCase('established v6', maxV4, maxV6, set), run: timed(ingress, passedV6, XDP_PASS) },
    { name: trieOnlyCase('established v6', maxV4, maxV6, set), run: a.trieOnly(timed(ingress, passedV6, XDP_PASS)) },
    { name: ladderCase('new flow v4', maxV4, maxV6, set), run: churnVia(ingress, passedV4, XDP_PASS) },
  ];
  const bareSamples: number[] = [];
  for (let round = 0; round < a.rounds; round++) {
    for (const c of cases) {
      const ns = c.run();
      if (c.name === BARE) bareSamples.push(ns);
      else record(c.name, ns);
    }
  }
  record(`${BARE} (${set} set rounds)`, median(bareSamples));
}

interface HitCacheMissArgs {
  ctx: SuiteContext;
  ruleTables: CidrMaps;
  ingress: BpfProgram;
  bare: BpfProgram;
  churn: BpfObject;
  rounds: number;
  v4Loaded: number;
  record: (name: string, ns: number) => void;
}

/**
 * The block hit cache's miss path (xw_rule_hit_cache: 1,024 elements per
 * CPU): bench_churn_src sends repetition i from 240.0.0.0 + i, and each of
 * those addresses is its own /32 block, so no two packets in a row share a
 * rule and nearly every packet is a cache miss (counted in xw_rule_stats,
 * plus an eviction every few packets per element). The driver's sequence
 * restarts at every call. Compare with "deny v4 host route" (the same
 * lookups, cache hits) after taking off the driver row. The blocks are
 * removed again before the next rows.
 */
async function runHitCacheMiss(a: HitCacheMissArgs): Promise<void> {
  const { ctx } = a;
  const XDP_DROP = 1;
  const blocks: BlockRule[] = Array.from({ length: HIT_CACHE_MISS_BLOCKS }, (_, i) => {
    const network = Buffer.alloc(4);
    network.writeUInt32BE((0xf000_0000 | (i + 1)) >>> 0);
    return { id: 3_000_001 + i, cidr: `${u32ToIpv4((0xf000_0000 | (i + 1)) >>> 0)}/32`, family: 4, prefixLen: 32, network, direction: 'src', comment: null, createdAt: '' };
  });
  await a.ruleTables.installMany(blocks);
  try {
    const seq = a.churn.map('churn_seq');
    const target = a.churn.map('churn_target');
    const driver = a.churn.program('bench_churn_src');
    const slot = Buffer.alloc(4);
    const frame = ether(ipv4({ src: '240.0.0.1', dst: '198.19.255.2' }, udp({ sport: 40000, dport: 53, payload: Buffer.alloc(18) })));
    const behind = (program: BpfProgram) => (): number => {
      const fd = Buffer.alloc(4);
      fd.writeUInt32LE(program.fd);
      target.update(slot, fd);
      seq.update(slot, Buffer.alloc(seq.valueStride));
      const result = driver.testRunSync({ data: frame, repeat: HIT_CACHE_MISS_BLOCKS, dataSizeOut: 0 });
      if (result.retval !== XDP_DROP) throw new Error(`${program.name} behind bench_churn_src: XDP action ${result.retval}, expected ${XDP_DROP}`);
      return result.durationNs;
    };
    const cases = [
      { name: HIT_CACHE_MISS_DRIVER, run: behind(a.bare) },
      { name: HIT_CACHE_MISS(a.v4Loaded), run: behind(a.ingress) },
    ];
    for (let round = 0; round < a.rounds; round++) for (const c of cases) a.record(c.name, c.run());
    ctx.note(
      `ladder: "${HIT_CACHE_MISS(a.v4Loaded)}": bench_churn_src sends repetition i (1..${HIT_CACHE_MISS_BLOCKS}) from 240.0.0.0 + i, ` +
        `each address a /32 block of its own (${HIT_CACHE_MISS_BLOCKS} extra blocks beside the ${prefixCount(a.v4Loaded)}), so the per-CPU ` +
        `hit cache (1,024 elements) misses nearly every packet; ${HIT_CACHE_MISS_BLOCKS} repetitions per call, the driver's own cost in "${HIT_CACHE_MISS_DRIVER}"`,
    );
  } finally {
    await a.ruleTables.removeMany(blocks);
  }
}

// Profiling helper (not part of the suite): the ladder's established and
// new-flow cases for one or more builds of xdpwall.bpf.o side by side, with
// the kernel's LRU-insert floor and bare XDP_DROP in the same rounds, so the
// rows compare as same-run ratios. With PERF=<case> it instead loops that one
// case for SECONDS seconds, for `perf record -a -g` beside it.
//
//   OBJS=main=/tmp/main.bpf.o,now=xdp/build/xdpwall.bpf.o N=1000000 npx tsx scripts/prof-flow.ts
//   PERF='now new flow v4' SECONDS=20 npx tsx scripts/prof-flow.ts
import { BpfObject, type BpfProgram } from '@xdpwall/addon';
import { Datapath } from '../src/datapath/datapath.js';
import { CidrMaps } from '../src/datapath/cidr-maps.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { TCP, ether, ipv4, ipv6, tcp, udp } from '../test/lib/packets.js';
import { buildBenchPrograms, requireObject } from '../bench/lib/bpf.js';
import { BENCH_CPU, pinProcess } from '../bench/lib/cpu.js';
import { generateV4, v4Rules, v4Uncovered, u32ToIpv4 } from '../bench/lib/prefixes.js';
import { Prng } from '../bench/lib/prng.js';
import { median } from '../bench/lib/stats.js';

const N = Number(process.env.N ?? 1000);
const ROUNDS = Number(process.env.ROUNDS ?? 9);
const REPEAT = Number(process.env.REPEAT ?? 500_000);
const FLOWS = 1 << 18;
const WARM = Number(process.env.WARM ?? 0);
const XDP_DROP = 1;
const XDP_PASS = 2;
const quietLog = { info: () => {}, warn: () => {} };
const objects = (process.env.OBJS ?? `now=${BPF_OBJECT_PATH}`).split(',').map((spec) => {
  const at = spec.indexOf('=');
  return { label: spec.slice(0, at), path: spec.slice(at + 1) };
});

const closers: Array<() => void> = [];
try {
  await pinProcess(process.pid, String(BENCH_CPU));
  const bench = await buildBenchPrograms();
  const open = async (path: string): Promise<BpfObject> => {
    const object = BpfObject.open(path);
    closers.push(() => object.close());
    await object.load();
    return object;
  };
  const bare = (await open(requireObject(bench, 'xdp_drop'))).program('bench_drop');
  const churnObject = await open(requireObject(bench, 'churn'));
  const churn = churnObject.program('bench_churn');
  const floorObject = await open(requireObject(bench, 'lru_floor'));
  const floorNames = (process.env.FLOORS ?? 'bench_lru_floor').split(',');

  const prefixes = generateV4(Math.max(N, 1), 42);
  const passed = u32ToIpv4(v4Uncovered(prefixes, new Prng(44)));
  const payload = Buffer.alloc(18);
  const frameV4 = ether(ipv4({ src: passed, dst: '198.19.255.2' }, udp({ sport: 40001, dport: 53, payload })));
  // The churn driver rewrites the first 16 bits after the IP header: a TCP source port as well as a UDP one.
  const synV4 = ether(ipv4({ src: passed, dst: '198.19.255.3' }, tcp({ sport: 40002, dport: 443, flags: TCP.syn })));
  const frameV6 = ether(ipv6({ src: 'fd00:198:0:1::7', dst: 'fd00:198:0:ffff::2' }, udp({ sport: 40001, dport: 53, payload })));

  const slot = Buffer.alloc(4);
  const timed = (program: BpfProgram, data: Buffer, expect: number) => (): number => {
    const result = program.testRunSync({ data, repeat: REPEAT, dataSizeOut: 0 });
    if (result.retval !== expect) throw new Error(`${program.name}: XDP action ${result.retval}, expected ${expect}`);
    return result.durationNs;
  };
  const churnVia = (target: BpfProgram, data: Buffer, expect: number) => (): number => {
    const fd = Buffer.alloc(4);
    fd.writeUInt32LE(target.fd);
    churnObject.map('churn_target').update(slot, fd);
    // WARM: an untimed call first, so the table's buckets are back in cache (the previous case swept it).
    if (WARM > 0) churn.testRunSync({ data, repeat: WARM, dataSizeOut: 0 });
    return timed(churn, data, expect)();
  };

  const cases: Array<{ name: string; run: () => number }> = [
    { name: 'bare XDP_DROP', run: timed(bare, frameV4, XDP_DROP) },
    { name: 'churn + bare', run: churnVia(bare, frameV4, XDP_DROP) },
    ...floorNames.map((f) => ({ name: `floor ${f}`, run: churnVia(floorObject.program(f), frameV4, XDP_PASS) })),
  ];
  for (const { label, path } of objects) {
    const datapath = await Datapath.load(
      { objectPath: path, pin: null, capacity: { cidrV4: 1 << 20, cidrV6: 1 << 12, flows: FLOWS, rateBuckets: 1 << 10 } },
      quietLog,
    );
    closers.push(() => datapath.close());
    const t0 = performance.now();
    if (N > 0) await new CidrMaps(datapath.maps).installMany(v4Rules(prefixes, 0, N, 1));
    console.error(`${label}: ${N} prefixes in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const ingress = datapath.ingress;
    ingress.testRunSync({ data: frameV4, dataSizeOut: 0 });
    ingress.testRunSync({ data: frameV6, dataSizeOut: 0 });
    ingress.testRunSync({ data: synV4, dataSizeOut: 0 });
    cases.push(
      { name: `${label} established v4`, run: timed(ingress, frameV4, XDP_PASS) },
      { name: `${label} established v6`, run: timed(ingress, frameV6, XDP_PASS) },
      { name: `${label} new flow v4`, run: churnVia(ingress, frameV4, XDP_PASS) },
      { name: `${label} new flow v6`, run: churnVia(ingress, frameV6, XDP_PASS) },
      { name: `${label} new flow v4 SYN`, run: churnVia(ingress, synV4, XDP_PASS) },
      { name: `${label} repeated SYN v4`, run: timed(ingress, synV4, XDP_PASS) },
    );
  }

  // CASES: a regular expression; only the cases it matches run (bare XDP_DROP always does).
  if (process.env.CASES) {
    const keep = new RegExp(process.env.CASES);
    cases.splice(0, cases.length, ...cases.filter((c) => c.name === 'bare XDP_DROP' || keep.test(c.name)));
  }
  const only = process.env.PERF;
  if (only) {
    const c = cases.find((x) => x.name === only);
    if (!c) throw new Error(`no case ${only}: ${cases.map((x) => x.name).join(' | ')}`);
    const until = performance.now() + Number(process.env.SECONDS ?? 15) * 1000;
    let calls = 0;
    const ns: number[] = [];
    while (performance.now() < until) {
      ns.push(c.run());
      calls++;
    }
    console.log(`${only}: ${calls} calls, median ${median(ns).toFixed(1)} ns/packet`);
  } else {
    const samples = new Map<string, number[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of cases) samples.set(c.name, [...(samples.get(c.name) ?? []), c.run()]);
    }
    const bareNs = median(samples.get('bare XDP_DROP') ?? []);
    // Neighbours' load moves every row of a round together: the median of per-round ratios to REF is steadier.
    const ref = samples.get(process.env.REF ?? `floor ${floorNames[0]}`) ?? [];
    console.log(`N=${N} repeat=${REPEAT} rounds=${ROUNDS} cpu=${BENCH_CPU}; last column: median per-round ratio to ${process.env.REF ?? `floor ${floorNames[0]}`}`);
    for (const [name, ns] of samples) {
      const sorted = [...ns].sort((a, b) => a - b);
      console.log(
        `${name.padEnd(34)} ${median(ns).toFixed(1).padStart(7)} ns  ${(median(ns) / bareNs).toFixed(1).padStart(6)}x  ` +
          `(min ${(sorted[0] as number).toFixed(1)}, max ${(sorted[sorted.length - 1] as number).toFixed(1)})  ` +
          `${median(ns.map((v, i) => v / (ref[i] as number))).toFixed(2)}`,
      );
    }
  }
} finally {
  for (const close of closers.reverse()) close();
}

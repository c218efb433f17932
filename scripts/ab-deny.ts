// A/B of the deny rows: xw_ingress of several BPF objects, interleaved round
// by round with bare XDP_DROP, BPF_PROG_TEST_RUN on one pinned CPU.
//   tsx scripts/ab-deny.ts [--prefixes N] [--rounds R] [--repeat K] [--hold S] name=obj.bpf.o ...
// With --hold S, each object's deny v4 case then loops for S seconds (for perf record).
import { BpfObject } from '@xdpwall/addon';
import { Datapath } from '../src/datapath/datapath.js';
import { CidrMaps } from '../src/datapath/cidr-maps.js';
import { ether, ipv4, ipv6, udp } from '../test/lib/packets.js';
import { buildBenchPrograms, requireObject } from '../bench/lib/bpf.js';
import { BENCH_CPU, pinProcess } from '../bench/lib/cpu.js';
import { Prng } from '../bench/lib/prng.js';
import {
  arrange, formatV6, generateV4, generateV6, swapV4, swapV6, u32ToIpv4, v4AddressIn, v4Rules, v6AddressIn, v6Rules, v4Uncovered,
} from '../bench/lib/prefixes.js';
import { median } from '../bench/lib/stats.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  args.splice(i, 2);
  return v;
};
const nV4 = opt('prefixes', 1_000_000);
const nV6 = Math.min(nV4, 256_000);
const rounds = opt('rounds', 9);
const repeat = opt('repeat', 1_000_000);
const hold = opt('hold', 0);
const objects = args.map((a) => a.split('=') as [string, string]);
const quiet = { info: () => {}, warn: () => {} };

await pinProcess(process.pid, String(BENCH_CPU));
const bench = await buildBenchPrograms();
const bareObj = BpfObject.open(requireObject(bench, 'xdp_drop'));
await bareObj.load();
const bare = bareObj.program('bench_drop');

const v4 = generateV4(nV4, 1);
const v6 = generateV6(nV6, 2);
arrange(v4.lens, (a, b) => swapV4(v4, a, b), v4.labCount, [(l) => l <= 24, (l) => l === 32, (l) => l > 24 && l < 32]);
arrange(v6.lens, (a, b) => swapV6(v6, a, b), v6.count, [(l) => l < 128, (l) => l === 128]);
const prng = new Prng(3);
const payload = Buffer.alloc(18);
const f4 = (src: string, sport = 40000) => ether(ipv4({ src, dst: '198.19.255.2' }, udp({ sport, dport: 53, payload })));
const f6 = (src: string) => ether(ipv6({ src, dst: 'fd00:198:0:ffff::2' }, udp({ sport: 40000, dport: 53, payload })));
const frames = {
  'deny v4': f4(u32ToIpv4(v4AddressIn(v4, 0, prng))),
  'deny v4 host': f4(u32ToIpv4(v4AddressIn(v4, 1, prng))),
  'deny v4 deep': f4(u32ToIpv4(v4AddressIn(v4, 2, prng))),
  'deny v6': f6(formatV6(v6AddressIn(v6, 0, prng))),
  'deny v6 host': f6(formatV6(v6AddressIn(v6, 1, prng))),
  'established v4': f4(u32ToIpv4(v4Uncovered(v4, prng)), 40001),
};

const loaded: Array<{ name: string; dp: Datapath }> = [];
for (const [name, path] of objects) {
  const dp = await Datapath.load({ objectPath: path, pin: null, capacity: { cidrV4: 1 << 20, cidrV6: 1 << 18, flows: 1 << 18 } }, quiet);
  const t = new CidrMaps(dp.maps);
  const s = performance.now();
  await t.installMany(v4Rules(v4, 0, nV4, 1));
  await t.installMany(v6Rules(v6, 0, nV6, 2_000_001));
  console.error(`${name}: loaded in ${((performance.now() - s) / 1000).toFixed(1)} s`);
  dp.ingress.testRunSync({ data: frames['established v4'], dataSizeOut: 0 });
  loaded.push({ name, dp });
}
const samples = new Map<string, number[]>();
const rec = (k: string, ns: number) => samples.set(k, [...(samples.get(k) ?? []), ns]);
for (let r = 0; r < rounds; r++) {
  rec('bare', bare.testRunSync({ data: frames['deny v4'], repeat, dataSizeOut: 0 }).durationNs);
  for (const { name, dp } of loaded) {
    for (const [kind, data] of Object.entries(frames)) {
      const res = dp.ingress.testRunSync({ data, repeat, dataSizeOut: 0 });
      const want = kind.startsWith('deny') ? 1 : 2;
      if (res.retval !== want) throw new Error(`${name} ${kind}: ${res.retval}`);
      rec(`${name}\t${kind}`, res.durationNs);
    }
  }
}
const b = median(samples.get('bare')!);
console.log(`bare ${b.toFixed(2)} ns  (prefixes ${nV4}, rounds ${rounds}, repeat ${repeat})`);
for (const [k, v] of samples) if (k !== 'bare') console.log(`${k}\t${median(v).toFixed(2)} ns\t${(median(v) / b).toFixed(2)}x\tmin ${Math.min(...v).toFixed(2)}`);
if (hold > 0) {
  for (const { name, dp } of loaded) {
    console.error(`holding ${name} deny v4 for ${hold} s (pid ${process.pid})`);
    const end = Date.now() + hold * 1000;
    while (Date.now() < end) dp.ingress.testRunSync({ data: frames['deny v4'], repeat, dataSizeOut: 0 });
  }
}
for (const { dp } of loaded) await dp.close();
bareObj.close();

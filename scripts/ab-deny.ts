// A/B of the deny rows: xw_ingress of several BPF objects, interleaved round
// by round with bare XDP_DROP, BPF_PROG_TEST_RUN on one pinned CPU.
//   tsx scripts/ab-deny.ts [--prefixes N] [--rounds R] [--repeat K] [--hold S] name=obj.bpf.o ...
// With --hold S, each object's deny v4 case then loops for S seconds (for perf record).
import { BpfObject } from '@xdpwall/addon';
import { Datapath } from '../src/datapath/datapath.js';
import { CidrMaps } from '../src/datapath/cidr-maps.js';
import { ether, ipv4, ipv6, tcp, udp } from '../test/lib/packets.js';
import { PolTable } from '../src/datapath/abi.js';
import { compileTable } from '../src/policy/compile.js';
import { PolicyTables } from '../src/policy/tables.js';
import { DEFAULT_FAILSAFE, failsafeRules } from '../src/policy/failsafe.js';
import { portRules } from '../bench/suites/rules-ladder.js';
import { buildBenchPrograms, requireObject } from '../bench/lib/bpf.js';
import { BENCH_CPU, pinProcess } from '../bench/lib/cpu.js';
import { Prng } from '../bench/lib/prng.js';
import {
  arrange, formatV6, generateV4, generateV6, swapV4, swapV6, u32ToIpv4, v4AddressIn, v4Rules, v6AddressIn, v6Rules, v4Uncovered,
} from '../bench/lib/prefixes.js';
import { median } from '../bench/lib/stats.js';
import { v4HostBit } from '../src/datapath/abi.js';

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
const withRules = args.includes('--rules');
if (withRules) args.splice(args.indexOf('--rules'), 1);
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
} as Record<string, Buffer>;
// --rules: the rule ladder's setting (1,000 TCP port drop rules, the default failsafe list) and its denied frame.
if (withRules) frames['deny v4 tcp, rules+failsafe'] = ether(ipv4({ src: u32ToIpv4(v4AddressIn(v4, 0, new Prng(3))), dst: '198.19.255.2' }, tcp({ sport: 40002, dport: 10_000, flags: 0x02 })));

const loaded: Array<{ name: string; dp: Datapath }> = [];
for (const [name, path] of objects) {
  const dp = await Datapath.load({ objectPath: path, pin: null, capacity: { cidrV4: 1 << 20, cidrV6: 1 << 18, flows: 1 << 18 } }, quiet);
  const t = new CidrMaps(dp.maps);
  const s = performance.now();
  await t.installMany(v4Rules(v4, 0, nV4, 1));
  await t.installMany(v6Rules(v6, 0, nV6, 2_000_001));
  console.error(`${name}: loaded in ${((performance.now() - s) / 1000).toFixed(1)} s`);
  dp.ingress.testRunSync({ data: frames['established v4']!, dataSizeOut: 0 });
  if (withRules) {
    const tables = await PolicyTables.open(dp.maps.policy);
    await tables.apply(PolTable.ingress, compileTable(portRules(1000)));
    await tables.apply(PolTable.failsafe, compileTable(failsafeRules(DEFAULT_FAILSAFE)));
  }
  loaded.push({ name, dp });
  if (name === 'filter') {
    for (const [kind, data] of Object.entries(frames)) {
      if (!kind.includes('v4')) continue;
      const host = data.readUInt32BE(14 + 12);
      const bit = v4HostBit(host);
      const word = dp.maps.v6.filter.lookup(Buffer.from(new Uint32Array([bit >>> 6]).buffer));
      const set = word ? (word.readBigUInt64LE(0) >> BigInt(bit & 63)) & 1n : -1n;
      console.error(`${kind}: filter bit ${bit} set=${set}`);
    }
    const all = await dp.maps.v6.filter.lookupAll();
    let ones = 0;
    for (let i = 0; i < all.count / 2; i++) {
      let w = all.values.readBigUInt64LE(i * 8);
      while (w) { ones += Number(w & 1n); w >>= 1n; }
    }
    console.error(`filter side 0: ${ones} of ${(all.count / 2) * 64} bits set`);
    const words = new Map<number, bigint>();
    for (let i = 0; i < all.count; i++) words.set(all.keys.readUInt32LE(i * 4), all.values.readBigUInt64LE(i * 8));
    const isSet = (h: number) => { const b = v4HostBit(h); return ((words.get(b >>> 6) ?? 0n) >> BigInt(b & 63)) & 1n; };
    let hitsIn = 0;
    const probe = new Prng(99);
    for (let i = 0; i < 10000; i++) hitsIn += Number(isSet(v4AddressIn(v4, probe.int(0, 2047), probe)));
    console.error(`filter: ${hitsIn} of 10000 addresses in lab prefixes hit a set bit`);
  }
}
// Wall time of the call over repeat packets: sub-ns resolution (the kernel's own figure is whole ns).
// The kernel's figure (whole ns, preemption excluded); the mean over rounds resolves below 1 ns.
const timed = (call: () => { durationNs: number }): number => call().durationNs;
const samples = new Map<string, number[]>();
const rec = (k: string, ns: number) => samples.set(k, [...(samples.get(k) ?? []), ns]);
for (let r = 0; r < rounds; r++) {
  rec('bare', timed(() => bare.testRunSync({ data: frames['deny v4']!, repeat, dataSizeOut: 0 })));
  for (const { name, dp } of loaded) {
    for (const [kind, data] of Object.entries(frames)) {
      let retval = 0;
      const ns = timed(() => {
        const result = dp.ingress.testRunSync({ data, repeat, dataSizeOut: 0 });
        retval = result.retval;
        return result;
      });
      const want = kind.startsWith('deny') ? 1 : 2;
      if (retval !== want) throw new Error(`${name} ${kind}: ${retval}`);
      rec(`${name}\t${kind}`, ns);
    }
  }
}
const b = median(samples.get('bare')!);
console.log(`bare ${b.toFixed(2)} ns  (prefixes ${nV4}, rounds ${rounds}, repeat ${repeat})`);
const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / v.length;
console.log(`bare mean ${mean(samples.get('bare')!).toFixed(2)} ns`);
for (const [k, v] of samples) if (k !== 'bare') console.log(`${k}\tmedian ${median(v).toFixed(0)} ns\t${(median(v) / b).toFixed(2)}x\tmean ${mean(v).toFixed(2)}\tmin ${Math.min(...v)}`);
if (hold > 0) {
  for (const { name, dp } of loaded) {
    console.error(`holding ${name} deny v4 for ${hold} s (pid ${process.pid})`);
    const end = Date.now() + hold * 1000;
    while (Date.now() < end) dp.ingress.testRunSync({ data: frames['deny v4']!, repeat, dataSizeOut: 0 });
  }
}
for (const { dp } of loaded) await dp.close();
bareObj.close();

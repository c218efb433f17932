// Real packets on veth: a generator in the sender namespace XDP_TXes 60-byte
// UDP frames (64 on the wire) into a veth pair; the receiver namespace runs
// one filter at a time. Sender and receiver share one CPU: the receiving
// veth's NAPI runs in the softirq the sender raises, so packets/s is what one
// CPU does sending and filtering together. Counted on the receiver with the
// interface's rx packets (for veth: every frame its XDP hook saw); the
// filters' own drop counters are checked against it.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfObject, xdpAttach, xdpDetach } from '@xdpwall/addon';
import { Datapath } from '../../src/datapath/datapath.js';
import { Reason, Verdict, statsIndexParts, sumCounters, cpusOf } from '../../src/datapath/abi.js';
import { netnsPath, nsenterArgv, runInNetnsChecked } from '../../src/lab/netns.js';
import { runChecked } from '../../src/lab/run.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { ether, ipv4, udp } from '../../test/lib/packets.js';
import { BPF_OBJECT_PATH, requireObject } from '../lib/bpf.js';
import { BENCH_CPU, busyNsPerCpu, diff, netRxSoftirqs, pinProcess, allCpus } from '../lib/cpu.js';
import { prefixCount, sizeLabel, type SuiteContext } from '../lib/context.js';
import { LineChild, createBenchLab, rootFirewallDigest, rxPackets, type BenchLab } from '../lib/lab.js';
import { Prng } from '../lib/prng.js';
import { generateV4, u32ToIpv4, v4AddressIn, v4Cidr, v4Rules, v4Uncovered, type V4Prefixes } from '../lib/prefixes.js';
import { CidrMaps } from '../../src/datapath/cidr-maps.js';
import { median } from '../lib/stats.js';
import type { GeneratorReply, GeneratorRequest } from '../child/generator.js';
import {
  IPTABLES_RULES, NFT_RULES, RULED_PORT, XDP_FILTER_PORT, XDP_FILTER_SRC, droppedByRules, installPortRules, iptablesPortRules,
  nftPortRules, vethRulesCase,
} from './veth-rules.js';
import { droppedByRate, installRateRules, vethRlFloodCase, vethRlFloodPerRuleCase, vethRlLoadedCase } from './veth-ratelimit.js';

const SOURCES = 512; // one address in each of the first 512 prefixes (all in 198.18.0.0/15)
const XDPWALL_10K = `xdpwall deny src CIDR (${prefixCount(10_000)})`;
const XDPWALL_1M = `xdpwall deny src CIDR (${prefixCount(1_000_000)})`;
const ROUND_SECONDS = 2.5;
const MIN_FAST_REPEAT = 1 << 24;
const quietLog = { info: () => {}, warn: () => {} };

interface Row {
  name: string;
  /** Source addresses the generator sends from (default: one in each of the first SOURCES prefixes). */
  sources?: number[];
  /** Commands the row needs in the receiver namespace; a missing one skips the row, with a note. */
  needs?: string[];
  /** Installs the filter in the receiver namespace; returns its teardown. */
  setup(): Promise<() => Promise<void>>;
  /** The filter's own count of dropped packets so far, when it keeps one. */
  dropped?(): Promise<number>;
}

interface Round {
  pps: number;
  cpuNsPerPacket: number;
  received: number;
  sent: number;
  rxOnBenchCpu: number;
  /** Busy share of the bench CPU over the round's wall time. */
  benchCpuBusy: number;
  wallNs: number;
}

export async function runVeth(ctx: SuiteContext): Promise<void> {
  const rounds = ctx.quick ? 2 : 3;
  const maxPrefixes = ctx.quick ? 100_000 : 1_000_000;
  const rootBefore = await rootFirewallDigest();
  // The bench process keeps off the measured CPU; the generator is pinned to it.
  await pinProcess(process.pid, cpuOtherThan(BENCH_CPU));
  ctx.cleanup.add('unpin the bench process', () => pinProcess(process.pid, allCpus()));

  const lab = await createBenchLab(ctx.runId, ctx.cleanup);
  const r = lab.receiver;
  const iface = `${r.netns}/${r.ifname}`;
  const work = mkdtempSync(join(tmpdir(), `${ctx.runId}-veth-`));
  ctx.cleanup.add(`remove ${work}`, () => rmSync(work, { recursive: true, force: true }));

  const prefixes = generateV4(maxPrefixes, ctx.seed);
  const prng = new Prng(ctx.seed + 3);
  const sources = Array.from({ length: SOURCES }, (_, i) => v4AddressIn(prefixes, i, prng));
  const frame = ether(
    ipv4({ src: u32ToIpv4(sources[0] as number), dst: r.ipv4 }, udp({ sport: 40000, dport: 9, payload: Buffer.alloc(18) })),
    { src: lab.sender.mac, dst: r.mac },
  );
  // UDP checksum 0 (none): the generator rewrites the source address.
  frame.writeUInt16BE(0, 14 + 20 + 6);

  const generator = LineChild.start<GeneratorRequest, GeneratorReply>(
    lab.sender.netns,
    ['taskset', '--cpu-list', String(BENCH_CPU), join(PACKAGE_ROOT, 'node_modules', '.bin', 'tsx'), join(PACKAGE_ROOT, 'bench', 'child', 'generator.ts')],
    ctx.cleanup,
  );
  let sending: number[] = [];
  const useSources = async (wanted: number[]): Promise<{ ifindex: number }> => {
    if (wanted === sending) return { ifindex: 0 };
    const reply = await generator.request(
      { setup: { objectPath: requireObject(ctx.bpf, 'gen_tx'), ifname: lab.sender.ifname, sources: wanted, template: frame.toString('hex') } },
      60_000,
    );
    if (!('ready' in reply)) throw new Error(`generator setup: ${'error' in reply ? reply.error : JSON.stringify(reply)}`);
    sending = wanted;
    return reply;
  };
  const ready = await useSources(sources);
  ctx.log(`veth: generator pid ${generator.pid ?? '?'} on CPU ${BENCH_CPU} sending from ${lab.sender.netns}/${lab.sender.ifname} (ifindex ${ready.ifindex})`);

  const send = async (repeat: number): Promise<Round> => {
    const rx0 = await rxPackets(r.netns, r.ifname);
    const busy0 = busyNsPerCpu();
    const soft0 = netRxSoftirqs();
    const reply = await generator.request({ repeat }, 120_000);
    const busy = diff(busyNsPerCpu(), busy0);
    const soft = diff(netRxSoftirqs(), soft0);
    const received = (await rxPackets(r.netns, r.ifname)) - rx0;
    if (!('sent' in reply)) throw new Error(`generator: ${'error' in reply ? reply.error : JSON.stringify(reply)}`);
    const totalSoft = soft.reduce((a, b) => a + b, 0);
    return {
      pps: received / (reply.wallNs / 1e9),
      cpuNsPerPacket: received > 0 ? (busy[BENCH_CPU] ?? 0) / received : NaN,
      received,
      sent: reply.sent,
      rxOnBenchCpu: totalSoft > 0 ? (soft[BENCH_CPU] ?? 0) / totalSoft : NaN,
      benchCpuBusy: (busy[BENCH_CPU] ?? 0) / reply.wallNs,
      wallNs: reply.wallNs,
    };
  };

  const objects = {
    drop: await openProgram(requireObject(ctx.bpf, 'xdp_drop'), 'bench_drop', ctx),
    pass: await openProgram(requireObject(ctx.bpf, 'xdp_pass'), 'bench_pass', ctx),
  };
  const attach = (fd: number): (() => Promise<void>) => {
    xdpAttach(iface, fd, 'native');
    return async () => xdpDetach(iface);
  };

  let datapath: Datapath | null = null;
  // One CidrMaps for the data plane's life: it keeps what the tables hold (DIR-24 slots), and a second
  // instance writing into the same tables overwrites slots of prefixes it does not know about.
  let cidrMaps: CidrMaps | null = null;
  let loaded = 0;
  const xdpwallRow = (count: number, name: string): Row => ({
    name,
    async setup() {
      if (!datapath) {
        datapath = await Datapath.load({ objectPath: BPF_OBJECT_PATH, pin: null, capacity: { cidrV4: 1 << 20, cidrV6: 1024, flows: 1 << 16 } }, quietLog);
        const dp = datapath;
        ctx.cleanup.add('close the veth data plane', () => dp.close());
      }
      const dp = datapath;
      // As the daemon holds them: host routes in the hash, network prefixes in the trie.
      cidrMaps ??= new CidrMaps(dp.maps);
      await cidrMaps.installMany(v4Rules(prefixes, loaded, count, 1 + loaded));
      loaded = count;
      dp.attach({ name: iface, mode: 'native' });
      return async () => dp.detach(iface);
    },
    async dropped() {
      return datapath ? deniedBySource(datapath) : 0;
    },
  });

  const nftRows = (count: number): Row => ({
    name: `nftables netdev ingress, interval set (${prefixCount(count)})`,
    async setup() {
      const detach = attach(objects.pass.fd);
      const file = join(work, 'ruleset.nft');
      writeFileSync(file, nftRuleset(prefixes, count, r.ifname));
      await inReceiver(lab, ['nft', '-f', file], 300_000);
      return async () => {
        await inReceiver(lab, ['nft', 'delete', 'table', 'netdev', 'xwbench']);
        await detach();
      };
    },
    async dropped() {
      const out = await inReceiver(lab, ['nft', '-j', 'list', 'chain', 'netdev', 'xwbench', 'ingress']);
      return Number(/"counter":\s*\{\s*"packets":\s*(\d+)/.exec(out)?.[1] ?? 0);
    },
  });

  const iptablesRow = (count: number): Row => ({
    name: `iptables raw PREROUTING (${count.toLocaleString('en-US')} rules)`,
    async setup() {
      const detach = attach(objects.pass.fd);
      const file = join(work, 'rules.iptables');
      writeFileSync(file, iptablesRules(prefixes, count));
      await inReceiver(lab, ['iptables-restore', file], 300_000);
      return async () => {
        await inReceiver(lab, ['iptables', '-t', 'raw', '-F', 'PREROUTING']);
        await detach();
      };
    },
    async dropped() {
      const out = await inReceiver(lab, ['iptables', '-t', 'raw', '-L', 'PREROUTING', '-n', '-v', '-x']);
      let sum = 0;
      for (const line of out.split('\n')) sum += Number(/^\s*(\d+)\s+\d+\s+DROP/.exec(line)?.[1] ?? 0);
      return sum;
    },
  });

  const xdpFilterRow: Row = {
    name: XDP_FILTER_SRC,
    async setup() {
      const script = join(work, 'xdp-filter.sh');
      writeFileSync(
        script,
        [
          'set -e',
          // A private bpffs: xdp-filter pins its maps under /sys/fs/bpf, and
          // this keeps them away from any other xdp-filter on the machine.
          'mount -t bpf bpf /sys/fs/bpf',
          `xdp-filter load --mode native ${r.ifname}`,
          ...sources.map((addr) => `xdp-filter ip --mode src ${u32ToIpv4(addr)}`),
          '',
        ].join('\n'),
      );
      await runChecked(['unshare', '--mount', '--propagation', 'private', '--', ...nsenterArgv(r.netns, ['sh', script])], { timeoutMs: 300_000 });
      return async () => xdpDetach(iface);
    },
  };

  // Sources by where their prefix lives in xdpwall's tables: host routes (hash), prefixes up to /24 (DIR-24
  // slot), /25../31 (second-level block). Lab prefixes only: real packets stay in 198.18.0.0/15.
  const placementSources = (fits: (len: number) => boolean): number[] => {
    const picked: number[] = [];
    for (let i = 0; i < prefixes.labCount && picked.length < SOURCES; i++) {
      if (fits(prefixes.lens[i] as number)) picked.push(v4AddressIn(prefixes, i, prng));
    }
    let size = 1;
    while (size * 2 <= picked.length) size *= 2; // the generator takes a power of two
    return picked.slice(0, size);
  };
  const placements: Array<[label: string, fits: (len: number) => boolean]> = [
    ['host routes', (l) => l === 32],
    ['prefixes <= /24', (l) => l <= 24],
    ['/25../31', (l) => l > 24 && l < 32],
  ];
  const placementRows: Row[] = placements.map(([label, fits]) => ({
    ...xdpwallRow(maxPrefixes, `xdpwall deny src CIDR, sources in ${label} (${prefixCount(maxPrefixes)})`),
    sources: placementSources(fits),
  }));

  // Policy rules: frames to port 9 (the template's) from sources in no block, dropped by the last of 1,000 port rules.
  const unblocked = new Set<number>();
  while (unblocked.size < SOURCES) unblocked.add(v4Uncovered(prefixes, prng));
  const unblockedSources = [...unblocked];
  const rulesBase = xdpwallRow(maxPrefixes, vethRulesCase(sizeLabel(maxPrefixes)));
  const ruleRows: Row[] = [
    {
      name: rulesBase.name,
      sources: unblockedSources,
      async setup() {
        const detach = await rulesBase.setup();
        if (!datapath) throw new Error('the xdpwall row set-up loads the data plane');
        const remove = await installPortRules(datapath);
        return async () => {
          await remove();
          await detach();
        };
      },
      async dropped() {
        return datapath ? droppedByRules(datapath) : 0;
      },
    },
    {
      name: XDP_FILTER_PORT,
      sources: unblockedSources,
      needs: ['xdp-filter'],
      async setup() {
        const script = join(work, 'xdp-filter-port.sh');
        writeFileSync(
          script,
          ['set -e', 'mount -t bpf bpf /sys/fs/bpf', `xdp-filter load --mode native ${r.ifname}`, `xdp-filter port --mode dst --proto udp ${RULED_PORT}`, ''].join('\n'),
        );
        await runChecked(['unshare', '--mount', '--propagation', 'private', '--', ...nsenterArgv(r.netns, ['sh', script])], { timeoutMs: 300_000 });
        return async () => xdpDetach(iface);
      },
    },
    {
      name: NFT_RULES,
      sources: unblockedSources,
      needs: ['nft'],
      async setup() {
        const detach = attach(objects.pass.fd);
        const file = join(work, 'rules.nft');
        writeFileSync(file, nftPortRules(r.ifname));
        await inReceiver(lab, ['nft', '-f', file], 300_000);
        return async () => {
          await inReceiver(lab, ['nft', 'delete', 'table', 'netdev', 'xwbenchrules']);
          await detach();
        };
      },
      async dropped() {
        const out = await inReceiver(lab, ['nft', '-j', 'list', 'chain', 'netdev', 'xwbenchrules', 'ingress']);
        return Number(/"counter":\s*\{\s*"packets":\s*(\d+)/.exec(out)?.[1] ?? 0);
      },
    },
    {
      name: IPTABLES_RULES,
      sources: unblockedSources,
      needs: ['iptables-restore', 'iptables'],
      async setup() {
        const detach = attach(objects.pass.fd);
        const file = join(work, 'port-rules.iptables');
        writeFileSync(file, iptablesPortRules());
        await inReceiver(lab, ['iptables-restore', file], 300_000);
        return async () => {
          await inReceiver(lab, ['iptables', '-t', 'raw', '-F', 'PREROUTING']);
          await detach();
        };
      },
      async dropped() {
        const out = await inReceiver(lab, ['iptables', '-t', 'raw', '-L', 'PREROUTING', '-n', '-v', '-x']);
        let sum = 0;
        for (const line of out.split('\n')) sum += Number(/^\s*(\d+)\s+\d+\s+DROP/.exec(line)?.[1] ?? 0);
        return sum;
      },
    },
  ];

  // Rate limits: the same unblocked sources flooding a 1 pps per-source limit (every frame but each source's
  // first is over it), the same flood against a per-rule limit (context: no state per source), and the block
  // row again with the rate-limit rules loaded.
  const withRateRules = (base: Row, per: 'source' | 'rule' = 'source'): Row['setup'] => async () => {
    const detach = await base.setup();
    if (!datapath) throw new Error('the xdpwall row set-up loads the data plane');
    const remove = await installRateRules(datapath, per);
    return async () => {
      await remove();
      await detach();
    };
  };
  const floodBase = xdpwallRow(maxPrefixes, vethRlFloodCase(sizeLabel(maxPrefixes)));
  const floodPerRuleBase = xdpwallRow(maxPrefixes, vethRlFloodPerRuleCase(sizeLabel(maxPrefixes)));
  const loadedBase = xdpwallRow(maxPrefixes, vethRlLoadedCase(maxPrefixes));
  const rateRows: Row[] = [
    {
      name: floodBase.name,
      sources: unblockedSources,
      setup: withRateRules(floodBase),
      async dropped() {
        return datapath ? droppedByRate(datapath) : 0;
      },
    },
    {
      name: floodPerRuleBase.name,
      sources: unblockedSources,
      setup: withRateRules(floodPerRuleBase, 'rule'),
      async dropped() {
        return datapath ? droppedByRate(datapath) : 0;
      },
    },
    { ...loadedBase, setup: withRateRules(loadedBase) },
  ];

  const rows: Row[] = [
    { name: 'no filter (XDP_PASS stub, UDP to a closed port)', setup: async () => attach(objects.pass.fd) },
    { name: 'bare XDP_DROP', setup: async () => attach(objects.drop.fd) },
    xdpwallRow(10_000, XDPWALL_10K),
    xdpwallRow(maxPrefixes, maxPrefixes === 1_000_000 ? XDPWALL_1M : `xdpwall deny src CIDR (${prefixCount(maxPrefixes)})`),
    ...placementRows,
    xdpFilterRow,
    { ...nftRows(10_000), needs: ['nft'] },
    { ...iptablesRow(1000), needs: ['iptables-restore', 'iptables'] },
    { ...iptablesRow(10_000), needs: ['iptables-restore', 'iptables'] },
    ...ruleRows,
    ...rateRows,
  ];
  xdpFilterRow.needs = ['xdp-filter'];

  const missingTools: string[] = [];
  for (const row of rows) {
    if (ctx.rows && !ctx.rows.test(row.name)) continue;
    const missing = (row.needs ?? []).filter((tool) => !commandExists(tool));
    if (missing.length > 0) {
      missingTools.push(...missing);
      ctx.note(`veth: ${row.name}: SKIPPED, ${missing.join(', ')} not installed (scripts/setup.sh installs nftables, iptables and xdp-tools)`);
      continue;
    }
    ctx.log(`veth: ${row.name}: setting up`);
    const started = performance.now();
    let teardown: () => Promise<void>;
    try {
      await useSources(row.sources ?? sources);
      teardown = await row.setup();
    } catch (error) {
      // One peer failing to set up never loses the rows measured before or after it.
      ctx.note(`veth: ${row.name}: SKIPPED, set-up failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
      continue;
    }
    const undo = ctx.cleanup.add(`tear down ${row.name}`, teardown);
    ctx.log(`veth: ${row.name}: set up in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    try {
      const dropped0 = row.dropped ? await row.dropped() : 0;
      // Calibrate: grow a burst until it lasts 0.4 s (a test run's setup
      // cost spoils shorter ones); each round then lasts about ROUND_SECONDS.
      let probe = await send(1 << 12);
      let sentInProbes = probe.sent;
      let receivedInProbes = probe.received;
      while (probe.wallNs < 0.4e9 && probe.sent < 1 << 26) {
        probe = await send(Math.min(1 << 26, Math.ceil(probe.sent * Math.max(2, 0.5e9 / probe.wallNs))));
        sentInProbes += probe.sent;
        receivedInProbes += probe.received;
      }
      let repeat = Math.round(probe.pps * ROUND_SECONDS);
      if (probe.pps * 4 >= MIN_FAST_REPEAT) repeat = Math.max(repeat, MIN_FAST_REPEAT);
      repeat = Math.min(Math.max(repeat, 1 << 12), 1 << 26);
      const measured: Round[] = [];
      for (let i = 0; i < rounds; i++) measured.push(await send(repeat));
      const received = measured.reduce((a, m) => a + m.received, 0) + receivedInProbes;
      const pps = median(measured.map((m) => m.pps));
      const cpu = median(measured.map((m) => m.cpuNsPerPacket));
      ctx.results.add({ suite: 'veth', case: row.name, metric: 'received', value: pps, unit: 'packets/s', baseline: XDPWALL_10K });
      ctx.results.add({ suite: 'veth', case: row.name, metric: 'cpu', value: cpu, unit: 'ns/packet', baseline: XDPWALL_10K });
      const sent = measured.reduce((a, m) => a + m.sent, 0) + sentInProbes;
      const onCpu = median(measured.map((m) => m.rxOnBenchCpu));
      const busyShare = median(measured.map((m) => m.benchCpuBusy));
      let check = '';
      if (row.dropped) {
        const dropped = (await row.dropped()) - dropped0;
        check = `; the filter counted ${dropped.toLocaleString('en-US')} drops (${((100 * dropped) / received).toFixed(1)}% of received)`;
      }
      ctx.log(
        `veth: ${row.name}: ${(pps / 1e6).toFixed(3)} Mpps, ${cpu.toFixed(0)} ns/packet; repeat ${repeat.toLocaleString('en-US')} x ${rounds}; ` +
          `received ${received.toLocaleString('en-US')} of ${sent.toLocaleString('en-US')} sent; NET_RX on CPU ${BENCH_CPU}: ${(100 * onCpu).toFixed(0)}%, CPU ${BENCH_CPU} busy ${(100 * busyShare).toFixed(0)}%${check}`,
      );
      ctx.note(`veth: ${row.name}: received ${((100 * received) / sent).toFixed(1)}% of frames sent, NET_RX softirqs on CPU ${BENCH_CPU}: ${(100 * onCpu).toFixed(0)}%${check}`);
    } finally {
      await undo();
    }
  }
  if (missingTools.length > 0) ctx.log(`veth: install ${[...new Set(missingTools)].join(', ')} for the skipped rows: scripts/setup.sh does`);
  await generator.request({ quit: true }, 1000).catch(() => undefined);
  await generator.stop();

  const rootAfter = await rootFirewallDigest();
  ctx.note(
    `veth: 60-byte UDP frames from ${SOURCES} source addresses, one inside each of the first ${SOURCES} deny prefixes (198.18.0.0/15), ` +
      `to ${r.ipv4}:9; nftables and iptables get the same prefixes, iptables in reverse order so the prefixes hit come last; ` +
      `xdp-filter (exact addresses only) gets the ${SOURCES} source addresses; medians of ${rounds} rounds`,
  );
  ctx.note(`veth: root namespace nftables/iptables ruleset digest before ${rootBefore}, after ${rootAfter}${rootBefore === rootAfter ? ' (unchanged)' : ' (CHANGED: by someone else?)'}`);
}

function commandExists(command: string): boolean {
  return process.env.PATH?.split(':').some((dir) => existsSync(join(dir, command))) ?? false;
}

function cpuOtherThan(cpu: number): string {
  return cpu === 0 ? allCpus().replace(/^0/, '1') : '0';
}

async function openProgram(path: string, name: string, ctx: SuiteContext) {
  const object = BpfObject.open(path);
  ctx.cleanup.add(`close ${path}`, () => object.close());
  await object.load();
  return object.program(name);
}

/** nft/iptables only ever run inside the receiver namespace. */
function inReceiver(lab: BenchLab, argv: readonly string[], timeoutMs = 60_000): Promise<string> {
  netnsPath(lab.receiver.netns); // validates the name
  return runInNetnsChecked(lab.receiver.netns, argv, { timeoutMs });
}

function nftRuleset(p: V4Prefixes, count: number, ifname: string): string {
  const elements: string[] = [];
  for (let i = 0; i < count; i++) elements.push(v4Cidr(p, i));
  return [
    'table netdev xwbench {',
    '  set deny {',
    '    type ipv4_addr',
    '    flags interval',
    '    auto-merge',
    `    elements = { ${elements.join(', ')} }`,
    '  }',
    '  chain ingress {',
    `    type filter hook ingress device "${ifname}" priority -500; policy accept;`,
    '    ip saddr @deny counter drop',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Rules in reverse order: the prefixes traffic comes from are matched last, as in a long blocklist. */
function iptablesRules(p: V4Prefixes, count: number): string {
  const lines = ['*raw', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (let i = count - 1; i >= 0; i--) lines.push(`-A PREROUTING -s ${v4Cidr(p, i)} -j DROP`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Packets xw_stats counts as dropped for a source CIDR, over all interfaces and CPUs. */
async function deniedBySource(datapath: Datapath): Promise<number> {
  const { stats } = datapath.maps;
  const { keys, values, count } = await stats.lookupAll();
  let packets = 0n;
  for (let i = 0; i < count; i++) {
    const key = statsIndexParts(keys.readUInt32LE(i * 4));
    if (key.verdict !== Verdict.drop || key.reason !== Reason.deny_src_cidr) continue;
    packets += sumCounters(values, i * stats.valueStride, stats.valueStride, cpusOf(stats)).packets;
  }
  return Number(packets);
}

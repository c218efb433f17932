// Differential fuzz of the data plane's parser and classifier: every seeded
// frame (test/lib/fuzz-frames.ts) runs through the real ingress program with
// BPF_PROG_TEST_RUN (every fourth also through egress), and what the kernel
// did is compared with the TypeScript reference (test/lib/ref-parser.ts):
//   verdict   the program's return code
//   reason    the xw_stats counter of the expected reason moved by exactly one
//   rule      a denied frame counted under the expected rule (xw_rule_stats)
//   flow key  a passed frame counted in the flow entry under the expected key,
//             and no other entry appeared
// 100,000 frames per run; `npm run fuzz:parser` runs 1,000,000
// (XW_FUZZ_FRAMES, XW_FUZZ_SEED override). A mismatch names the seed, the
// frame's index (fuzzFrame(seed, index) rebuilds it) and its bytes.
import { readRuleHits } from '../src/datapath/rule-hits.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BpfMap } from '@xdpwall/addon';
import type { Firewall } from '../src/firewall.js';
import { Direction, Reason, Verdict, cpusOf, encodeFlowKey, encodeRuleId, statsIndex, sumCounters, type ReasonName } from '../src/datapath/abi.js';
import { mergeFlowValue } from '../src/flows/merge.js';
import { openTestFirewall } from './lib/firewall.js';
import { fuzzFrame } from './lib/fuzz-frames.js';
import { statsKey } from './lib/policy.js';
import { referenceClassify, referenceFlowKey, type DenyRule } from './lib/ref-parser.js';

const FRAMES = Number(process.env.XW_FUZZ_FRAMES ?? 100_000);
const SEED = Number(process.env.XW_FUZZ_SEED ?? 20_261_202);
const IFINDEX = 1; // lo: BPF_PROG_TEST_RUN resolves the ingress ifindex in this namespace
const XDP_DROP = 1;
const XDP_PASS = 2;
const TC_ACT_OK = 0;
/** The flow table is emptied (and its size checked) this often, so the LRU never evicts. */
const FLOW_RESET_EVERY = 8192;

const RULES: Array<{ cidr: string; direction: 'src' | 'dst' }> = [
  { cidr: '198.18.7.0/24', direction: 'src' },
  { cidr: '198.18.9.128/25', direction: 'src' },
  { cidr: '198.18.9.200/30', direction: 'src' },
  { cidr: '198.18.20.0/22', direction: 'src' },
  { cidr: '198.19.128.0/17', direction: 'src' },
  { cidr: '10.1.0.0/16', direction: 'src' },
  { cidr: '203.0.113.7/32', direction: 'src' },
  { cidr: '198.18.7.128/26', direction: 'dst' },
  { cidr: '10.0.0.0/25', direction: 'dst' },
  { cidr: '198.19.255.0/24', direction: 'dst' },
  { cidr: '203.0.113.9/32', direction: 'dst' },
  { cidr: 'fd00:198:0:1::/64', direction: 'src' },
  { cidr: 'fd00:198::5/128', direction: 'src' },
  { cidr: '2001:db8::/33', direction: 'src' },
  { cidr: 'fd00:198:1::/48', direction: 'dst' },
  { cidr: 'fd00:199::/32', direction: 'dst' },
];

/** struct xdp_md with data_end and ingress_ifindex. */
function xdpCtx(frameLength: number): Buffer {
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(frameLength, 4);
  ctx.writeUInt32LE(IFINDEX, 12);
  return ctx;
}

const packetsIn = (map: BpfMap, key: Buffer): number => {
  const value = map.lookup(key);
  return value ? Number(sumCounters(value, 0, map.valueStride, cpusOf(map)).packets) : 0;
};

/**
 * Whether BPF_PROG_TEST_RUN takes the frame as an skb: it refuses (EINVAL) an
 * outer IPv4 or IPv6 type with less than that header behind it, which the
 * stack never transmits anyway.
 */
function skbRunnable(frame: Buffer): boolean {
  const type = frame.readUInt16BE(12);
  return !((type === 0x0800 && frame.length < 14 + 20) || (type === 0x86dd && frame.length < 14 + 40));
}

interface Mismatch {
  index: number;
  hook: 'ingress' | 'egress';
  what: string;
  expected: unknown;
  actual: unknown;
  frame: string;
}

let firewall: Firewall;
let rules: DenyRule[];

beforeAll(async () => {
  firewall = await openTestFirewall({ cidrV4: 1024, cidrV6: 1024, flows: 1 << 16 });
  await firewall.blocks.addMany(RULES);
  rules = firewall.blocks.all().map((r) => ({ id: r.id, direction: r.direction, family: r.family, network: r.network, prefixLen: r.prefixLen }));
});

afterAll(() => firewall?.close());

describe('the parser and classifier against a TypeScript reference', () => {
  it(`agree on verdict, reason, rule and flow key for ${FRAMES.toLocaleString('en')} seeded frames (seed ${SEED})`, { timeout: Math.max(120_000, FRAMES * 2) }, async () => {
    const { ingress, egress, maps } = firewall.datapath;
    const counts = new Map<string, number>(); // expected packets per stats key, rule and flow
    const seen: Partial<Record<ReasonName, number>> = {};
    const mismatches: Mismatch[] = [];
    let mismatchCount = 0;
    let flowKeys = new Set<string>();

    /** Checks that a counter moved by exactly one; resynchronises after a mismatch so one fault is reported once. */
    const moved = (name: string, actual: number): { ok: boolean; expected: number } => {
      const expected = (counts.get(name) ?? 0) + 1;
      counts.set(name, actual);
      return { ok: actual === expected, expected };
    };
    const report = (index: number, hook: 'ingress' | 'egress', frame: Buffer, what: string, expected: unknown, actual: unknown) => {
      mismatchCount++;
      if (mismatches.length < 20) mismatches.push({ index, hook, what, expected, actual, frame: frame.toString('hex') });
    };

    const check = (index: number, hook: 'ingress' | 'egress', frame: Buffer) => {
      const want = referenceClassify(frame, hook === 'ingress' ? rules : []);
      // Egress filters nothing: its parser reasons are counted, and every frame passes.
      const verdict = hook === 'ingress' ? want.verdict : 'pass';
      const retval = hook === 'ingress'
        ? ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length), dataSizeOut: 0 }).retval
        : egress.testRunSync({ data: frame, dataSizeOut: 0 }).retval;
      const wantRetval = hook === 'ingress' ? (verdict === 'drop' ? XDP_DROP : XDP_PASS) : TC_ACT_OK;
      if (retval !== wantRetval) report(index, hook, frame, 'verdict', wantRetval, retval);
      seen[want.reason] = (seen[want.reason] ?? 0) + 1;

      const key = statsKey(maps.ifslots, IFINDEX, hook, verdict, want.reason);
      const reason = moved(`stats:${key.toString('hex')}`, packetsIn(maps.stats, key));
      if (!reason.ok) report(index, hook, frame, `packets counted under ${hook}/${verdict}/${want.reason}`, reason.expected, counts.get(`stats:${key.toString('hex')}`));

      if (want.ruleId !== 0) {
        const rule = moved(`rule:${want.ruleId}`, Number(readRuleHits(maps.ruleStats, maps.ruleHitCache, want.ruleId).packets));
        if (!rule.ok) report(index, hook, frame, `packets counted under rule ${want.ruleId}`, rule.expected, counts.get(`rule:${want.ruleId}`));
      }

      if (want.reason === 'pass_no_match') {
        const flowKey = encodeFlowKey(referenceFlowKey(want, hook, IFINDEX));
        const name = `flow:${hook}:${flowKey.toString('hex')}`;
        flowKeys.add(flowKey.toString('hex'));
        const value = maps.flows.lookup(flowKey);
        const merged = value && mergeFlowValue({ values: value, offset: 0, stride: maps.flows.valueStride, cpus: cpusOf(maps.flows) });
        const flow = moved(name, merged ? Number(merged[hook].packets) : 0);
        if (!flow.ok) report(index, hook, frame, `${hook} packets of the flow ${flowKey.toString('hex')}`, flow.expected, counts.get(name));
      }
    };

    /** No entry besides the expected keys: a wrong key shows up as an extra entry. */
    const checkAndEmptyFlows = async (index: number) => {
      const all = await maps.flows.lookupAll();
      if (all.count !== flowKeys.size) report(index, 'ingress', Buffer.alloc(0), 'entries in the flow table', flowKeys.size, all.count);
      if (all.count > 0) await maps.flows.deleteBatch(all.keys, all.count);
      for (const name of [...counts.keys()]) if (name.startsWith('flow:')) counts.delete(name);
      flowKeys = new Set();
    };

    const started = performance.now();
    for (let index = 0; index < FRAMES; index++) {
      const frame = fuzzFrame(SEED, index);
      check(index, 'ingress', frame);
      if (index % 4 === 0 && skbRunnable(frame)) check(index, 'egress', frame);
      if ((index + 1) % FLOW_RESET_EVERY === 0) await checkAndEmptyFlows(index);
    }
    await checkAndEmptyFlows(FRAMES);
    const seconds = (performance.now() - started) / 1000;

    console.log(
      `parser fuzz: ${FRAMES} frames (seed ${SEED}) in ${seconds.toFixed(1)} s, ${mismatchCount} mismatches; reasons: ${JSON.stringify(seen)}`,
    );
    expect(mismatches).toEqual([]);
    // The generator reaches every reason the parser and the deny rules can give, often.
    const everyReason: ReasonName[] = [
      'pass_no_match', 'pass_non_ip', 'deny_src_cidr', 'deny_dst_cidr',
      'malformed_l2', 'malformed_ipv4', 'malformed_ipv6', 'ipv6_ext_limit', 'malformed_l4',
    ];
    for (const reason of everyReason) expect(seen[reason] ?? 0, reason).toBeGreaterThanOrEqual(FRAMES / 1000);
  });
});

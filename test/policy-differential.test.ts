// The data plane's classifier against the TypeScript reference
// (src/policy/reference.ts): seeded random rule sets, compiled and written
// into the kernel's tables exactly as the daemon does, and random packets
// aimed at the rules' edges, run through BPF_PROG_TEST_RUN on both hooks.
// Every packet's verdict, reason and counted rule must agree. Rules may
// reference named lists ("src": "list:NAME"): each set has a few random
// lists (both families, nested and overlapping with the rules' own
// prefixes, some empty) that several rules share. Needs root.
//
// XDPWALL_DIFF_PACKETS raises the packet count (the README's 1,000,000 run).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { compileTable } from '../src/policy/compile.js';
import { classify, type ClassRule, type Decision, type PacketFields, type Prefix, type PrefixList, type ReferencePolicy } from '../src/policy/reference.js';
import { POL_MAX_RULES, PolFlags, PolTable } from '../src/datapath/abi.js';
import { prng } from './lib/prng.js';
import { TC_ACT_OK, TC_ACT_SHOT, XDP_DROP, XDP_PASS, classRule, frameOf, loadPolicyObject, runIngress, rulePackets, statsPackets, type LoadedPolicy } from './lib/policy.js';

const SEED = 0x5eed_7;
const PACKETS = Number(process.env.XDPWALL_DIFF_PACKETS ?? 100_000);
const RULE_SETS = 25;

let loaded: LoadedPolicy;
beforeAll(async () => {
  loaded = await loadPolicyObject(BPF_OBJECT_PATH);
});
afterAll(() => loaded?.close());

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const chance = (r: Rand, p: number) => r() < p;

// Addresses: a few /16s of 198.18.0.0/15 and fd00:198::/48, so prefixes nest and overlap.
function randomAddress(r: Rand, family: 4 | 6): Uint8Array {
  if (family === 4) return Uint8Array.from([198, int(r, 18, 19), int(r, 0, 3), pick(r, [0, 1, 127, 128, 200, 255])]);
  const out = new Uint8Array(16);
  out.set([0xfd, 0x00, 0x01, 0x98, 0, 0, 0, int(r, 0, 3)]);
  out[15] = pick(r, [0, 1, 128, 255]);
  out[14] = int(r, 0, 1);
  return out;
}

function randomPrefix(r: Rand, family: 4 | 6): Prefix {
  const bytes = randomAddress(r, family);
  const prefixLen = family === 4 ? pick(r, [8, 15, 16, 23, 24, 25, 31, 32]) : pick(r, [32, 48, 63, 64, 120, 127, 128]);
  for (let bit = prefixLen; bit < bytes.length * 8; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { family, bytes, prefixLen };
}

const PORT_EDGES = [0, 1, 22, 53, 79, 80, 443, 1023, 1024, 8000, 8080, 65534, 65535];

function randomRange(r: Rand) {
  const lo = chance(r, 0.5) ? pick(r, PORT_EDGES) : int(r, 0, 2000);
  const hi = chance(r, 0.4) ? lo : Math.min(65535, lo + pick(r, [1, 2, 10, 100, 1000, 65535]));
  return { lo, hi };
}

/** A list of 0..40 prefixes of both families (duplicates dropped, as the list parser does). */
function randomList(r: Rand, n: number): PrefixList {
  const size = pick(r, [0, 1, 3, 10, 40]);
  const seen = new Map<string, Prefix>();
  for (let i = 0; i < size; i++) {
    const p = randomPrefix(r, chance(r, 0.7) ? 4 : 6);
    seen.set(`${p.family}|${[...p.bytes].join('.')}|${p.prefixLen}`, p);
  }
  return { name: `l${n}`, version: `${n}`, prefixes: [...seen.values()] };
}

function randomRule(r: Rand, kernelId: number, lists: readonly PrefixList[] = []): ClassRule {
  const family = chance(r, 0.7) ? 4 : 6;
  const srcList = lists.length > 0 && chance(r, 0.2) ? pick(r, lists) : null;
  const dstList = lists.length > 0 && chance(r, 0.1) ? pick(r, lists) : null;
  const proto = pick(r, [6, 6, 17, 17, 1, 58, 47, null, null]);
  const ports = proto === 6 || proto === 17;
  const icmp = proto === 1 || proto === 58;
  const mask = int(r, 1, 255);
  return classRule({
    kernelId,
    action: pick(r, ['drop', 'drop', 'pass', 'log'] as const),
    dryRun: chance(r, 0.1),
    ifindex: chance(r, 0.15) ? pick(r, [1, 2]) : null,
    src: !srcList && chance(r, 0.4) ? randomPrefix(r, family) : null,
    dst: !dstList && chance(r, 0.3) ? randomPrefix(r, family) : null,
    srcList,
    dstList,
    proto,
    srcPort: ports && chance(r, 0.2) ? randomRange(r) : null,
    dstPort: ports && chance(r, 0.6) ? randomRange(r) : null,
    tcpFlags: proto === 6 && chance(r, 0.2) ? { mask, set: int(r, 0, 255) & mask } : null,
    icmpType: icmp && chance(r, 0.5) ? pick(r, [0, 3, 8, 128, 133]) : null,
    icmpCode: icmp && chance(r, 0.3) ? int(r, 0, 2) : null,
    vlan: chance(r, 0.1) ? pick(r, [10, 20]) : null,
    // 1 ns: long past on the coarse clock; 2^62 ns: centuries ahead.
    expiresNs: chance(r, 0.05) ? 1n : chance(r, 0.05) ? 1n << 62n : 0n,
  });
}

/**
 * The rule made to need a destination port for TCP and UDP packets (a port
 * rule, or a protocol without ports): tables of only such rules carry
 * PolFlags.dportAll, which lets the data plane decide "no match" from the
 * port array alone.
 */
function portsOnly(r: Rand, rule: ClassRule): ClassRule {
  if (rule.dstPort || (rule.proto !== null && rule.proto !== 6 && rule.proto !== 17)) return rule;
  const proto = rule.proto ?? pick(r, [6, 17]);
  return { ...rule, proto, dstPort: randomRange(r), tcpFlags: proto === 6 ? rule.tcpFlags : null, icmpType: null, icmpCode: null };
}

/**
 * The rule cut down to its protocol and destination port: tables of only
 * such rules carry PolFlags.portFirst, which answers a TCP/UDP packet from
 * its port interval's first rule (an expired one sends it the long way).
 */
const portFieldsOnly = (rule: ClassRule): ClassRule => ({
  ...rule, ifindex: null, src: null, dst: null, srcList: null, dstList: null, srcPort: null, tcpFlags: null, icmpType: null, icmpCode: null, vlan: null,
});

/** A packet near the rules: their addresses, port edges (lo-1, lo, hi, hi+1), protocols. */
function randomPacket(r: Rand, rules: readonly ClassRule[]): PacketFields {
  const rule = rules.length > 0 && chance(r, 0.8) ? pick(r, rules) : undefined;
  // A list's entry stands for the rule's prefix.
  const fromList = (list: PrefixList | null | undefined) => (list && list.prefixes.length > 0 ? pick(r, list.prefixes) : null);
  const srcNear = rule?.src ?? fromList(rule?.srcList);
  const dstNear = rule?.dst ?? fromList(rule?.dstList);
  const family = srcNear?.family ?? dstNear?.family ?? (chance(r, 0.7) ? 4 : 6);
  const near = (p: Prefix | null | undefined): Uint8Array => {
    if (!p || p.family !== family || chance(r, 0.2)) return randomAddress(r, family);
    const out = new Uint8Array(p.bytes);
    if (chance(r, 0.5)) out[out.length - 1] = int(r, 0, 255);
    return out;
  };
  const edge = (range: { lo: number; hi: number } | null | undefined) =>
    range && chance(r, 0.8) ? Math.max(0, Math.min(65535, pick(r, [range.lo - 1, range.lo, range.hi, range.hi + 1, int(r, range.lo, range.hi)]))) : pick(r, [...PORT_EDGES, int(r, 0, 65535)]);
  let proto = rule?.proto ?? pick(r, [6, 17, 1, 58, 47, 132]);
  if (chance(r, 0.1)) proto = pick(r, [6, 17, 1, 58, 47]);
  return {
    ifindex: 1,
    family,
    src: near(srcNear),
    dst: near(dstNear),
    proto,
    l4: !chance(r, 0.05),
    sport: edge(rule?.srcPort),
    dport: edge(rule?.dstPort),
    tcpFlags: rule?.tcpFlags && chance(r, 0.6) ? (rule.tcpFlags.set | (int(r, 0, 255) & ~rule.tcpFlags.mask)) & 0xff : int(r, 0, 255),
    icmpType: rule?.icmpType != null && chance(r, 0.7) ? rule.icmpType : pick(r, [0, 3, 8, 11, 128, 133]),
    icmpCode: rule?.icmpCode != null && chance(r, 0.7) ? rule.icmpCode : int(r, 0, 2),
    vlan: rule?.vlan != null && chance(r, 0.7) ? rule.vlan : chance(r, 0.2) ? pick(r, [10, 20, 30]) : null,
  };
}

it(`agrees with the reference on ${PACKETS} packets over ${RULE_SETS} random rule sets, both hooks`, async () => {
  const r = prng(SEED);
  const perSet = Math.ceil(PACKETS / RULE_SETS);
  const expectedStats = new Map<string, bigint>();
  const mismatches: string[] = [];
  let checked = 0;
  let matchedRules = 0;
  let matchedListRules = 0;
  let nextId = 0x8000_0001;
  let portedSets = 0;
  let portFirstSets = 0;

  for (let set = 0; set < RULE_SETS; set++) {
    // One set at the data plane's capacity, the rest small to medium.
    const size = (hook: string) => (set === 3 && hook === 'ingress' ? POL_MAX_RULES : pick(r, [0, 1, 2, 5, 20, 64, 65, 200]));
    const lists = chance(r, 0.8) ? Array.from({ length: int(r, 1, 5) }, (_, n) => randomList(r, set * 10 + n)) : [];
    // Every fifth set holds only rules that need a destination port (PolFlags.dportAll in every table).
    const ported = set % 5 === 4;
    // And every fifth (from the third) only rules on protocol and destination port (PolFlags.portFirst).
    const portFields = set % 5 === 2;
    const make = (n: number, withLists = true) =>
      Array.from({ length: n }, () => randomRule(r, nextId++, withLists ? lists : []))
        .map((rule) => (ported ? portsOnly(r, rule) : rule))
        .map((rule) => (portFields ? portFieldsOnly(rule) : rule));
    const policy: ReferencePolicy = {
      ingress: make(size('ingress')),
      egress: make(size('egress')),
      failsafe: chance(r, 0.5) ? make(int(r, 1, 4), false).map((f) => ({ ...f, kernelId: 0, action: 'pass' as const, dryRun: false })) : [],
      blocks: [],
      defaults: { ingress: pick(r, ['accept', 'drop'] as const), egress: pick(r, ['accept', 'drop'] as const) },
    };
    const compiled = {
      ingress: compileTable(policy.ingress, { defaultAction: policy.defaults.ingress }),
      egress: compileTable(policy.egress, { defaultAction: policy.defaults.egress }),
      failsafe: compileTable(policy.failsafe),
    };
    await loaded.tables.apply(PolTable.ingress, compiled.ingress);
    await loaded.tables.apply(PolTable.egress, compiled.egress);
    await loaded.tables.apply(PolTable.failsafe, compiled.failsafe);
    if (ported) {
      portedSets++;
      for (const table of ['ingress', 'egress', 'failsafe'] as const) {
        expect(compiled[table].flags & PolFlags.dportAll).toBe(policy[table].length > 0 ? PolFlags.dportAll : 0);
      }
    }
    if (portFields) {
      portFirstSets++;
      for (const table of ['ingress', 'egress', 'failsafe'] as const) {
        expect(compiled[table].flags & PolFlags.portFirst).toBe(policy[table].length > 0 ? PolFlags.portFirst : 0);
      }
    }
    const hits = new Map<number, bigint>();
    const env = { nowNs: process.hrtime.bigint(), isReply: () => false };

    for (let i = 0; i < perSet && checked < PACKETS; i++, checked++) {
      const hook = chance(r, 0.5) ? 'ingress' : 'egress';
      const pkt = randomPacket(r, policy[hook]);
      const want: Decision = classify(policy, hook, pkt, env);
      const frame = frameOf(pkt);
      const retval = hook === 'ingress' ? runIngress(loaded, frame) : loaded.progs.egress.testRunSync({ data: frame, dataSizeOut: 0 }).retval;
      const got = hook === 'ingress' ? (retval === XDP_DROP ? 'drop' : retval === XDP_PASS ? 'pass' : `?${retval}`) : retval === TC_ACT_SHOT ? 'drop' : retval === TC_ACT_OK ? 'pass' : `?${retval}`;
      const key = `${hook}|${want.verdict}|${want.reason}`;
      const count = (expectedStats.get(key) ?? 0n) + 1n;
      expectedStats.set(key, count);
      const counted = statsPackets(loaded, hook, want.verdict, want.reason);
      let ruleOk = true;
      if (want.ruleId !== 0) {
        matchedRules++;
        const decided = policy[hook].find((rule) => rule.kernelId === want.ruleId);
        if (decided?.srcList || decided?.dstList) matchedListRules++;
        const n = (hits.get(want.ruleId) ?? 0n) + 1n;
        hits.set(want.ruleId, n);
        ruleOk = rulePackets(loaded, want.ruleId) === n;
      }
      if (got !== want.verdict || counted !== count || !ruleOk) {
        expectedStats.set(key, counted); // report each disagreement once
        if (mismatches.length < 3 && process.env.XW_DIFF_DEBUG) {
          const moved = policy[hook].filter((rule) => rulePackets(loaded, rule.kernelId) !== (hits.get(rule.kernelId) ?? 0n)).map((rule) => ({ id: rule.kernelId, pos: policy[hook].indexOf(rule), got: rulePackets(loaded, rule.kernelId), want: hits.get(rule.kernelId) ?? 0n, rule: JSON.stringify(rule, (_k, v) => (typeof v === 'bigint' ? String(v) : v instanceof Uint8Array ? [...v] : v)) }));
          console.log(JSON.stringify(moved, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
        }
        if (mismatches.length < 20) {
          mismatches.push(`set ${set} packet ${i} ${hook}: want ${JSON.stringify(want)}, got ${got} (reason count ${counted} vs ${count}, rule ok ${ruleOk}); packet ${JSON.stringify({ ...pkt, src: [...pkt.src], dst: [...pkt.dst] })}`);
        }
      }
    }
  }
  expect(mismatches).toEqual([]);
  expect(checked).toBe(PACKETS);
  expect(portedSets).toBe(RULE_SETS / 5);
  expect(portFirstSets).toBe(RULE_SETS / 5);
  // The packets exercised the rules, not only the defaults.
  expect(matchedRules).toBeGreaterThan(PACKETS / 4);
  // ... and among them rules that reference lists.
  expect(matchedListRules).toBeGreaterThan(PACKETS / 50);
}, 600_000);

// The policy rules' rungs of the ladder: ns per packet under
// BPF_PROG_TEST_RUN through xw_ingress with 1, 100, 1,000 and 4,000 port
// rules in the ingress table (written through the control plane's compiler
// and PolicyTables, as the daemon does), interleaved round by round with a
// bare XDP_DROP so every ratio stands on its own rounds. Run by the ladder
// suite after its block rows, so the block tables are loaded too (1M
// prefixes; the packets' sources are in none of them).
import type { BpfProgram } from '@xdpwall/addon';
import { POLICY_RULE_ID_BASE, PolTable } from '../../src/datapath/abi.js';
import { compileTable } from '../../src/policy/compile.js';
import type { PolicyMaps } from '../../src/policy/tables.js';
import { PolicyTables } from '../../src/policy/tables.js';
import type { ClassRule } from '../../src/policy/reference.js';
import { DEFAULT_FAILSAFE, failsafeRules } from '../../src/policy/failsafe.js';
import { ether, ipv4, tcp } from '../../test/lib/packets.js';
import { sizeLabel, type SuiteContext } from '../lib/context.js';
import { median } from '../lib/stats.js';

export const RULE_LADDER_SIZES = [1, 100, 1000, 4000];
export const RULES_BARE = 'bare XDP_DROP (rule ladder rounds)';
export type RuleCaseKind = 'no match' | 'match last rule' | 'deny v4 block';
/** "xdpwall rules, no match (1,000 port rules)" */
export const rulesCase = (kind: RuleCaseKind, rules: number): string =>
  `xdpwall rules, ${kind} (${rules.toLocaleString('en-US')} port rule${rules === 1 ? '' : 's'})`;

/** Rows measured with the default failsafe list in its table, as a daemon runs by default. */
export const WITH_FAILSAFE_RULES = 1000;
/** "xdpwall rules, deny v4 block (1,000 port rules, default failsafe list)" */
export const rulesFailsafeCase = (kind: RuleCaseKind): string =>
  `xdpwall rules, ${kind} (${WITH_FAILSAFE_RULES.toLocaleString('en-US')} port rules, default failsafe list)`;

/** The first rule's destination port; rule i drops TCP to FIRST_PORT + i. */
const FIRST_PORT = 10_000;
/** A port no rule names. */
const UNRULED_PORT = 9;

/** n drop rules on TCP destination ports, in priority order (bit i is rule i). */
export function portRules(n: number): ClassRule[] {
  return Array.from({ length: n }, (_, i) => ({
    kernelId: POLICY_RULE_ID_BASE + 1 + i,
    slot: 1 + i, // dense, as the daemon's PolicyEngine assigns them
    action: 'drop' as const,
    dryRun: false,
    ifindex: null,
    src: null,
    dst: null,
    proto: 6,
    srcPort: null,
    dstPort: { lo: FIRST_PORT + i, hi: FIRST_PORT + i },
    tcpFlags: null,
    icmpType: null,
    icmpCode: null,
    vlan: null,
    expiresNs: 0n,
  }));
}

export interface RuleLadderArgs {
  ctx: SuiteContext;
  policy: PolicyMaps;
  ingress: BpfProgram;
  bare: BpfProgram;
  rounds: number;
  /** A source in no block (the flow may exist already). */
  passedSource: string;
  /** A blocked source: its packets drop at the block stage before any rule. */
  deniedSource: string;
  timed: (program: BpfProgram, data: Buffer, expect: number) => () => number;
}

export async function runRuleLadder(a: RuleLadderArgs): Promise<void> {
  const { ctx, timed } = a;
  const XDP_DROP = 1;
  const XDP_PASS = 2;
  const tables = await PolicyTables.open(a.policy);
  const frame = (src: string, dport: number) =>
    ether(ipv4({ src, dst: '198.19.255.2' }, tcp({ sport: 40002, dport, flags: 0x02 })));
  const noMatch = frame(a.passedSource, UNRULED_PORT);
  const denied = frame(a.deniedSource, FIRST_PORT);
  const samples = new Map<string, number[]>();
  const record = (name: string, ns: number): void => {
    samples.set(name, [...(samples.get(name) ?? []), ns]);
  };
  ctx.note(
    `ladder: rule rows: n drop rules "tcp dstPort ${FIRST_PORT}+i" in the ingress table, compiled by src/policy/compile.ts and ` +
      `flipped in by PolicyTables; "no match" is a TCP SYN from ${a.passedSource} (in no block) to port ${UNRULED_PORT} ` +
      `(passes, pass_no_match), "match last rule" the same to port ${FIRST_PORT}+n-1 (drop_rule); "deny v4 block" a SYN ` +
      `from ${a.deniedSource} (in a block) to port ${FIRST_PORT}: dropped by the block before the rules; ` +
      `interleaved with "${RULES_BARE}"; ${a.rounds} rounds; "default failsafe list" rows: the same with the ` +
      `configuration file's default failsafe entries (tcp 22, udp 68, udp 546, icmpv6 133-137) in the failsafe table, ` +
      `which every packet about to drop is checked against`,
  );
  try {
    // 0 rules: the blocked packet's cost before any rule exists, what the rows with rules compare with.
    for (const n of [0, ...RULE_LADDER_SIZES]) {
      const started = performance.now();
      await tables.apply(PolTable.ingress, compileTable(portRules(n)));
      ctx.log(`ladder: ${sizeLabel(n)} port rules compiled and flipped in in ${(performance.now() - started).toFixed(0)} ms`);
      const matchLast = frame(a.passedSource, FIRST_PORT + n - 1);
      const cases = [
        { name: RULES_BARE, run: timed(a.bare, denied, XDP_DROP) },
        ...(n > 0
          ? [
              { name: rulesCase('no match', n), run: timed(a.ingress, noMatch, XDP_PASS) },
              { name: rulesCase('match last rule', n), run: timed(a.ingress, matchLast, XDP_DROP) },
            ]
          : []),
        { name: rulesCase('deny v4 block', n), run: timed(a.ingress, denied, XDP_DROP) },
      ];
      for (let round = 0; round < a.rounds; round++) {
        for (const c of cases) record(c.name, c.run());
      }
    }
    // The default failsafe list, as a daemon started from a configuration file without `failsafe:` has it.
    await tables.apply(PolTable.ingress, compileTable(portRules(WITH_FAILSAFE_RULES)));
    await tables.apply(PolTable.failsafe, compileTable(failsafeRules(DEFAULT_FAILSAFE)));
    const matchLast = frame(a.passedSource, FIRST_PORT + WITH_FAILSAFE_RULES - 1);
    const cases = [
      { name: RULES_BARE, run: timed(a.bare, denied, XDP_DROP) },
      { name: rulesFailsafeCase('no match'), run: timed(a.ingress, noMatch, XDP_PASS) },
      { name: rulesFailsafeCase('match last rule'), run: timed(a.ingress, matchLast, XDP_DROP) },
      { name: rulesFailsafeCase('deny v4 block'), run: timed(a.ingress, denied, XDP_DROP) },
    ];
    for (let round = 0; round < a.rounds; round++) {
      for (const c of cases) record(c.name, c.run());
    }
  } finally {
    // The rule and failsafe tables are left empty for whatever the ladder measures next.
    await tables.apply(PolTable.ingress, compileTable([]));
    await tables.apply(PolTable.failsafe, compileTable([]));
    for (const [name, ns] of samples) {
      ctx.results.add({
        suite: 'ladder', case: name, metric: 'time', value: median(ns), unit: 'ns/packet',
        ...(name === RULES_BARE ? {} : { baseline: RULES_BARE }),
      });
    }
  }
}

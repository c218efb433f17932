// Per-interface default policy (`interfaces: [{name, policy: {ingress: drop}}]`
// in the configuration): the engine compiles an interface's own default as
// a flagged entry after every rule of its hook, and the data plane, run
// through BPF_PROG_TEST_RUN with the packet's ingress ifindex, and the
// TypeScript reference must both give each row's verdict and reason: rules
// still come first, other interfaces keep the hook's default, the failsafe
// list still overrides, and nothing is counted under a rule. Needs root.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { PolicyEngine, type InterfaceDefaults, type PolicyDefaults } from '../src/policy/engine.js';
import { classify, type ClassRule, type PacketFields } from '../src/policy/reference.js';
import { compileTable } from '../src/policy/compile.js';
import { parseRule, type PolicyRule } from '../src/policy/model.js';
import { systemClock } from '../src/clock.js';
import { Layout, PolFlags, PolTable, type ReasonName } from '../src/datapath/abi.js';
import { XDP_DROP, XDP_PASS, classRule, frameOf, loadPolicyObject, packet, runIngress, statsPackets, type LoadedPolicy } from './lib/policy.js';

let loaded: LoadedPolicy;
beforeAll(async () => {
  loaded = await loadPolicyObject(BPF_OBJECT_PATH);
});
afterAll(() => loaded?.close());

/** eth-in (ifindex 1) and eth-out (ifindex 2) are attached; eth-gone is configured but not attached. */
const IFINDEX: Record<string, number> = { 'eth-in': 1, 'eth-out': 2 };

const policyRule = (id: number, input: Parameters<typeof parseRule>[0]): PolicyRule =>
  ({ ...parseRule(input, new Date()), id, createdAt: new Date().toISOString() });

const SSH_FAILSAFE = classRule({ kernelId: 0, action: 'pass', proto: 6, dstPort: { lo: 22, hi: 22 } });

interface Row {
  name: string;
  defaults: PolicyDefaults;
  ifaceDefaults: InterfaceDefaults[];
  rules?: PolicyRule[];
  packet: PacketFields;
  verdict: 'pass' | 'drop';
  reason: ReasonName;
}

const tcpTo = (dport: number, ifindex: number) => packet({ proto: 6, dport, ifindex });
const accept: PolicyDefaults = { ingress: 'accept', egress: 'accept' };
const drop: PolicyDefaults = { ingress: 'drop', egress: 'accept' };
const inDrops: InterfaceDefaults[] = [{ iface: 'eth-in', policy: { ingress: 'drop' } }];
const inAccepts: InterfaceDefaults[] = [{ iface: 'eth-in', policy: { ingress: 'accept' } }];

const rows: Row[] = [
  { name: 'global accept, eth-in drop: eth-in drops what no rule matched', defaults: accept, ifaceDefaults: inDrops, packet: tcpTo(80, 1), verdict: 'drop', reason: 'drop_policy' },
  { name: 'global accept, eth-in drop: eth-out keeps accept', defaults: accept, ifaceDefaults: inDrops, packet: tcpTo(80, 2), verdict: 'pass', reason: 'pass_no_match' },
  { name: 'global accept, eth-in drop: a pass rule comes first', defaults: accept, ifaceDefaults: inDrops, rules: [policyRule(1, { action: 'pass', proto: 'tcp', dstPort: 80 })], packet: tcpTo(80, 1), verdict: 'pass', reason: 'pass_rule' },
  { name: 'global accept, eth-in drop: a log rule comes first', defaults: accept, ifaceDefaults: inDrops, rules: [policyRule(1, { action: 'log', proto: 'tcp' })], packet: tcpTo(80, 1), verdict: 'pass', reason: 'pass_log' },
  { name: 'global accept, eth-in drop: the failsafe SSH port still passes', defaults: accept, ifaceDefaults: inDrops, packet: tcpTo(22, 1), verdict: 'pass', reason: 'pass_failsafe' },
  { name: 'global drop, eth-in accept: eth-in accepts', defaults: drop, ifaceDefaults: inAccepts, packet: tcpTo(80, 1), verdict: 'pass', reason: 'pass_no_match' },
  { name: 'global drop, eth-in accept: eth-out drops', defaults: drop, ifaceDefaults: inAccepts, packet: tcpTo(80, 2), verdict: 'drop', reason: 'drop_policy' },
  { name: 'global drop, eth-in accept: a drop rule still drops on eth-in', defaults: drop, ifaceDefaults: inAccepts, rules: [policyRule(1, { action: 'drop', proto: 'tcp', dstPort: 80 })], packet: tcpTo(80, 1), verdict: 'drop', reason: 'drop_rule' },
  { name: 'an interface that is not attached changes nothing', defaults: accept, ifaceDefaults: [{ iface: 'eth-gone', policy: { ingress: 'drop' } }], packet: tcpTo(80, 1), verdict: 'pass', reason: 'pass_no_match' },
  { name: 'an egress-only override leaves ingress alone', defaults: accept, ifaceDefaults: [{ iface: 'eth-in', policy: { egress: 'drop' } }], packet: tcpTo(80, 1), verdict: 'pass', reason: 'pass_no_match' },
];

function engineFor(row: Row): { engine: PolicyEngine; entries: () => ClassRule[] } {
  const engine = new PolicyEngine(loaded.tables, {
    clock: systemClock,
    ifindexOf: (iface) => IFINDEX[iface],
    ifaceDefaults: row.ifaceDefaults,
  });
  engine.setDefaults(row.defaults);
  return { engine, entries: () => (row.rules ?? []).map((r) => engine.classRule(r)) };
}

describe('per-interface default policy', () => {
  it.each(rows.map((row) => [row.name, row] as const))('%s', async (_name, row) => {
    const { engine, entries } = engineFor(row);
    await engine.install('ingress', row.rules ?? []);
    await engine.install('egress', []);
    await loaded.tables.apply(PolTable.failsafe, compileTable([SSH_FAILSAFE]));

    // The reference sees the same entries the engine compiled: the rules, then the interfaces' defaults.
    const ifaceEntries = row.ifaceDefaults.flatMap(({ iface, policy }) => {
      const ifindex = IFINDEX[iface];
      const action = policy.ingress;
      return ifindex && action && action !== row.defaults.ingress
        ? [classRule({ kernelId: 0, action: action === 'drop' ? 'drop' : 'pass', ifindex, ifaceDefault: true })]
        : [];
    });
    const reference = classify(
      { ingress: [...entries(), ...ifaceEntries], egress: [], failsafe: [SSH_FAILSAFE], blocks: [], defaults: row.defaults },
      'ingress', row.packet, { nowNs: process.hrtime.bigint(), isReply: () => false },
    );
    expect({ verdict: reference.verdict, reason: reference.reason }).toEqual({ verdict: row.verdict, reason: row.reason });

    const ifindex = row.packet.ifindex;
    const before = statsPackets(loaded, 'ingress', row.verdict, row.reason, ifindex);
    expect(runIngress(loaded, frameOf(row.packet), ifindex)).toBe(row.verdict === 'drop' ? XDP_DROP : XDP_PASS);
    expect(statsPackets(loaded, 'ingress', row.verdict, row.reason, ifindex)).toBe(before + 1n);
    if (row.reason === 'drop_policy' || row.reason === 'pass_no_match') expect(reference.ruleId).toBe(0);
  });

  it('records replies on egress when only an interface drops by default', async () => {
    const { engine } = engineFor({ ...rows[0]!, ifaceDefaults: inDrops });
    await engine.install('egress', []);
    const flagsOf = () => {
      const buf = loaded.tables.activeBuffer(PolTable.egress);
      const meta = loaded.maps.meta.lookup(Buffer.from(Uint32Array.of(PolTable.egress * 2 + buf).buffer));
      return meta!.readUInt8(Layout.polMeta.flags);
    };
    expect(flagsOf() & PolFlags.replies).toBe(PolFlags.replies);
    const { engine: plain } = engineFor({ ...rows[0]!, ifaceDefaults: [] });
    await plain.install('egress', []);
    expect(flagsOf() & PolFlags.replies).toBe(0);
  });

  it('lists the configured overrides', () => {
    const { engine } = engineFor({ ...rows[0]!, ifaceDefaults: inDrops });
    expect(engine.interfaceDefaults).toEqual([{ iface: 'eth-in', policy: { ingress: 'drop' } }]);
  });
});

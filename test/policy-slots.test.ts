// Rule slots (src/policy/slots.ts) on the real program: a rule's hits are
// counted in its slot's element of xw_slot_hits; a slot freed by a removed
// rule is zeroed before another rule gets it; a rule keeps its slot (and
// hits) while some table holds it, across a change of hook; a new engine
// over the same (pinned) maps reads the slots back, so hits survive a
// restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAPS, POL_SLOTS, PolTable } from '../src/datapath/abi.js';
import { PolicyEngine, byEvaluationOrder, kernelRuleId } from '../src/policy/engine.js';
import { parseRule, type PolicyRule, type RuleInput } from '../src/policy/model.js';
import { PolicyTables } from '../src/policy/tables.js';
import { RuleSlots } from '../src/policy/slots.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { ether, ipv4, udp } from './lib/packets.js';
import { XDP_DROP, XDP_PASS, loadPolicyObject, rulePackets, runIngress, type LoadedPolicy } from './lib/policy.js';

let loaded: LoadedPolicy;
const clock = { wallMs: () => Date.parse('2026-12-03T10:00:00Z'), monotonicNs: () => 1_000_000_000n };
const engineOver = async (l: LoadedPolicy) =>
  new PolicyEngine(await PolicyTables.open(l.maps), { clock, ifindexOf: () => undefined, slotHits: l.object.map(MAPS.slotHits) });
const rule = (id: number, input: RuleInput): PolicyRule => ({ ...parseRule(input, new Date(clock.wallMs())), id, createdAt: '2026-12-03T10:00:00.000Z' });
const toPort = (dport: number) => ether(ipv4({ src: '198.19.41.157', dst: '198.18.7.9' }, udp({ sport: 40000, dport, payload: Buffer.alloc(10) })));

beforeAll(async () => {
  loaded = await loadPolicyObject(BPF_OBJECT_PATH);
});
afterAll(() => loaded?.close());

describe('rule slots', () => {
  it('counts a rule in its slot, not in xw_rule_stats; a slot reused after a delete starts from zero', async () => {
    const engine = await engineOver(loaded);
    const a = rule(1, { action: 'drop', proto: 'udp', dstPort: 5001 });
    await engine.install('ingress', [a]);
    expect(runIngress(loaded, toPort(5001))).toBe(XDP_DROP);
    expect(runIngress(loaded, toPort(5001))).toBe(XDP_DROP);
    expect(engine.hits(kernelRuleId(1))).toEqual({ packets: 2n, bytes: BigInt(2 * toPort(5001).length) });
    expect(rulePackets(loaded, kernelRuleId(1))).toBe(0n);
    const slotOfA = loaded.tables.installedSlots([PolTable.ingress])[0]!.slot;

    await engine.install('ingress', []); // a removed: its slot is free once the flip synced
    expect(engine.hits(kernelRuleId(1))).toEqual({ packets: 0n, bytes: 0n });
    const b = rule(2, { action: 'drop', proto: 'udp', dstPort: 5002 });
    await engine.install('ingress', [b]);
    expect((await PolicyTables.open(loaded.maps)).installedSlots([PolTable.ingress])).toEqual([{ table: PolTable.ingress, kernelId: kernelRuleId(2), slot: slotOfA }]);
    expect(engine.hits(kernelRuleId(2)).packets).toBe(0n); // a's two packets are not inherited
    expect(runIngress(loaded, toPort(5002))).toBe(XDP_DROP);
    expect(engine.hits(kernelRuleId(2)).packets).toBe(1n);
    await engine.install('ingress', []);
  });

  it('keeps a rule\'s slot and hits while it moves to the other hook (new hook installed first)', async () => {
    const engine = await engineOver(loaded);
    const logged = rule(3, { action: 'log', proto: 'udp', dstPort: 5003 });
    await engine.install('ingress', [logged]);
    expect(runIngress(loaded, toPort(5003))).toBe(XDP_PASS);
    await engine.install('egress', [{ ...logged, hook: 'egress' }]);
    await engine.install('ingress', []);
    expect(engine.hits(kernelRuleId(3)).packets).toBe(1n);
    await engine.install('egress', []);
    expect(engine.slotsUsed).toBe(0);
  });

  it('a new engine over the same maps (a restart) reads the slots back: hits survive, new rules get other slots', async () => {
    const first = await engineOver(loaded);
    const rules = [rule(4, { action: 'drop', proto: 'udp', dstPort: 5004 }), rule(5, { action: 'pass', proto: 'udp', dstPort: 5005, priority: 10 })];
    await first.install('ingress', [...rules].sort(byEvaluationOrder));
    runIngress(loaded, toPort(5004));
    runIngress(loaded, toPort(5005));
    runIngress(loaded, toPort(5005));

    const restarted = await engineOver(loaded);
    expect(restarted.hits(kernelRuleId(4)).packets).toBe(1n);
    expect(restarted.hits(kernelRuleId(5)).packets).toBe(2n);
    const added = rule(6, { action: 'drop', proto: 'udp', dstPort: 5006 });
    await restarted.install('ingress', [...rules, added].sort(byEvaluationOrder));
    expect(restarted.hits(kernelRuleId(4)).packets).toBe(1n);
    expect(restarted.hits(kernelRuleId(6)).packets).toBe(0n);
    const slots = new Set(loaded.tables.installedSlots([PolTable.ingress]).map((s) => s.slot));
    expect(slots.size).toBe(3);
    await restarted.install('ingress', []);
  });
});

describe('RuleSlots bookkeeping', () => {
  it('refuses a rule once every slot is taken, and changes nothing', async () => {
    const slots = new RuleSlots({});
    const ids = Array.from({ length: POL_SLOTS - 1 }, (_, i) => 100 + i);
    await slots.assign(0, ids);
    await expect(slots.assign(1, [1])).rejects.toThrow(/rule counter slots are in use/);
    expect(slots.slotOf(1)).toBeUndefined();
    slots.committed(0, ids.slice(1)); // the first rule left: its slot is free
    expect(await slots.assign(1, [1])).toEqual(new Map([[1, slots.slotOf(1)]]));
    expect(slots.slotOf(1)).toBe(1);
  });

  it('never gives two rules one slot when restoring a table that claims so', () => {
    const slots = new RuleSlots({}, [
      { table: 0, kernelId: 10, slot: 7 },
      { table: 0, kernelId: 11, slot: 7 },
      { table: 1, kernelId: 10, slot: 7 },
    ]);
    expect(slots.slotOf(10)).toBe(7);
    expect(slots.slotOf(11)).toBeUndefined();
  });
});

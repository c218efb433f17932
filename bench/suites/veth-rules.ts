// The veth suite's policy rows: xdpwall with 1,000 UDP port rules (and the
// suite's blocks loaded) dropping by the last-priority rule, and the same
// 1,000 rules in iptables and nftables (and xdp-filter's port filter) as
// context. Every row gets the same frames: UDP to port 9 from sources in no
// block, so xdpwall's packets miss every block lookup, run the classifier,
// and drop at the 1,000th rule.
import { POLICY_RULE_ID_BASE, PolTable, Reason, Verdict, cpusOf, statsIndexParts, sumCounters } from '../../src/datapath/abi.js';
import type { Datapath } from '../../src/datapath/datapath.js';
import { compileTable } from '../../src/policy/compile.js';
import type { ClassRule } from '../../src/policy/reference.js';
import { PolicyTables } from '../../src/policy/tables.js';

export const XDP_FILTER_SRC = 'xdp-filter deny src address';
export const VETH_RULES = 1000;
/** The target row: with the suite's full block set (1M prefixes). */
export const VETH_RULES_1K = 'xdpwall 1,000 udp port rules, match last (1M blocks loaded)';
export const vethRulesCase = (blocks: string): string => `xdpwall 1,000 udp port rules, match last (${blocks} blocks loaded)`;
export const IPTABLES_RULES = 'iptables raw PREROUTING, the same 1,000 udp port rules, match last';
export const NFT_RULES = 'nftables netdev ingress, the same 1,000 udp port rules, match last';
export const XDP_FILTER_PORT = 'xdp-filter deny dst port';

/** The port the frames go to: the last rule's. */
export const RULED_PORT = 9;

/** Destination ports of the rules in priority order: 999 others, then RULED_PORT last. */
export function rulePorts(): number[] {
  return [...Array.from({ length: VETH_RULES - 1 }, (_, i) => 10_000 + i), RULED_PORT];
}

function udpPortRules(): ClassRule[] {
  return rulePorts().map((port, i) => ({
    kernelId: POLICY_RULE_ID_BASE + 1 + i,
    slot: 1 + i, // dense, as the daemon's PolicyEngine assigns them
    action: 'drop' as const,
    dryRun: false,
    ifindex: null,
    src: null,
    dst: null,
    proto: 17,
    srcPort: null,
    dstPort: { lo: port, hi: port },
    tcpFlags: null,
    icmpType: null,
    icmpCode: null,
    vlan: null,
    expiresNs: 0n,
  }));
}

/** Writes the 1,000 rules into the ingress table as the daemon does; returns their removal. */
export async function installPortRules(datapath: Datapath): Promise<() => Promise<void>> {
  const tables = await PolicyTables.open(datapath.maps.policy);
  await tables.apply(PolTable.ingress, compileTable(udpPortRules()));
  return async () => tables.apply(PolTable.ingress, compileTable([]));
}

/** Packets xw_stats counts as dropped by a rule, over all interfaces and CPUs. */
export async function droppedByRules(datapath: Datapath): Promise<number> {
  const { stats } = datapath.maps;
  const { keys, values, count } = await stats.lookupAll();
  let packets = 0n;
  for (let i = 0; i < count; i++) {
    const key = statsIndexParts(keys.readUInt32LE(i * 4));
    if (key.verdict !== Verdict.drop || key.reason !== Reason.drop_rule) continue;
    packets += sumCounters(values, i * stats.valueStride, stats.valueStride, cpusOf(stats)).packets;
  }
  return Number(packets);
}

export function iptablesPortRules(): string {
  const lines = ['*raw', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (const port of rulePorts()) lines.push(`-A PREROUTING -p udp -m udp --dport ${port} -j DROP`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

export function nftPortRules(ifname: string): string {
  const ports = rulePorts();
  return [
    'table netdev xwbenchrules {',
    '  chain ingress {',
    `    type filter hook ingress device "${ifname}" priority -500; policy accept;`,
    ...ports.map((port, i) => `    udp dport ${port} ${i === ports.length - 1 ? 'counter ' : ''}drop`),
    '  }',
    '}',
    '',
  ].join('\n');
}

// The failsafe list: what must stay reachable whatever the blocks, rules
// and default policy say. It comes from the configuration file only, never
// from the API, so a stolen token cannot remove it. An entry has any of
// `cidr` (the remote peer's address), `proto` and `port` (the local port for
// tcp/udp, the ICMP type for icmp/icmpv6; a number or "LO-HI"). In the data
// plane the entries are pass rules of their own table, consulted for every
// ingress packet that would otherwise be dropped (see xdp/lib/policy.h).
import { parseCidr, type Cidr } from '../rules/cidr.js';
import { ConfigError, FailsafeConflictError } from '../errors.js';
import { formatPorts, formatProto, parsePorts, parseProto, PROTOCOLS, type PortRange, type PolicyRule } from './model.js';
import type { ClassRule } from './reference.js';

export interface FailsafeEntry {
  cidr: Cidr | null;
  proto: number | null;
  port: PortRange | null;
}

/** Inbound SSH, the DHCP clients (v4, v6), and IPv6 neighbour discovery and router advertisements. */
export const DEFAULT_FAILSAFE: readonly FailsafeEntry[] = [
  { cidr: null, proto: PROTOCOLS.tcp, port: { lo: 22, hi: 22 } },
  { cidr: null, proto: PROTOCOLS.udp, port: { lo: 68, hi: 68 } },
  { cidr: null, proto: PROTOCOLS.udp, port: { lo: 546, hi: 546 } },
  { cidr: null, proto: PROTOCOLS.icmpv6, port: { lo: 133, hi: 137 } },
];

/** `failsafe:` from the configuration file; absent means the defaults, [] means none. */
export function parseFailsafe(value: unknown): FailsafeEntry[] {
  if (value === undefined || value === null) return [...DEFAULT_FAILSAFE];
  if (!Array.isArray(value)) throw new ConfigError('failsafe must be a list of {cidr, proto, port} entries');
  return value.map((entry, i) => {
    const where = `failsafe[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new ConfigError(`${where} must be a mapping`);
    const { cidr, proto, port, ...rest } = entry as Record<string, unknown>;
    if (Object.keys(rest).length > 0) throw new ConfigError(`${where}: unknown key ${Object.keys(rest)[0]} (cidr, proto, port)`);
    if (cidr === undefined && proto === undefined && port === undefined) throw new ConfigError(`${where} needs cidr, proto or port`);
    try {
      const parsed: FailsafeEntry = {
        cidr: cidr === undefined ? null : parseCidr(String(cidr)),
        proto: proto === undefined ? null : parseProto(proto as string | number, 'proto'),
        port: port === undefined ? null : parsePorts(port as string | number, 'port'),
      };
      if (parsed.port && parsed.proto === null) throw new ConfigError(`${where}: port needs proto (tcp, udp, icmp or icmpv6)`);
      if (parsed.port && ![PROTOCOLS.tcp, PROTOCOLS.udp, PROTOCOLS.icmp, PROTOCOLS.icmpv6].includes(parsed.proto as 6)) {
        throw new ConfigError(`${where}: port needs proto tcp, udp, icmp or icmpv6`);
      }
      if (parsed.port && (parsed.proto === PROTOCOLS.icmp || parsed.proto === PROTOCOLS.icmpv6) && parsed.port.hi > 255) {
        throw new ConfigError(`${where}: for icmp the port is the ICMP type, 0..255`);
      }
      return parsed;
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(`${where}: ${(error as Error).message}`);
    }
  });
}

export function failsafeView(entry: FailsafeEntry) {
  return {
    cidr: entry.cidr?.text ?? null,
    proto: entry.proto === null ? null : formatProto(entry.proto),
    port: entry.port && formatPorts(entry.port),
  };
}

/** The entries as pass rules of the failsafe table (an ICMP type range becomes one rule per type). */
export function failsafeRules(entries: readonly FailsafeEntry[]): ClassRule[] {
  const rules: ClassRule[] = [];
  for (const { cidr, proto, port } of entries) {
    const base: ClassRule = {
      kernelId: 0, action: 'pass', dryRun: false, ifindex: null,
      src: cidr && { family: cidr.family, bytes: new Uint8Array(cidr.bytes), prefixLen: cidr.prefixLen },
      dst: null, proto, srcPort: null, dstPort: null, tcpFlags: null, icmpType: null, icmpCode: null, vlan: null, expiresNs: 0n,
    };
    if (port && (proto === PROTOCOLS.icmp || proto === PROTOCOLS.icmpv6)) {
      for (let type = port.lo; type <= port.hi; type++) rules.push({ ...base, icmpType: type });
    } else {
      rules.push({ ...base, dstPort: port });
    }
  }
  return rules;
}

function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || outer.prefixLen > inner.prefixLen) return false;
  for (let bit = 0; bit < outer.prefixLen; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((outer.bytes[bit >> 3]! & mask) !== (inner.bytes[bit >> 3]! & mask)) return false;
  }
  return true;
}

/** Refuses a CIDR that contains a failsafe CIDR (FAILSAFE_CONFLICT). */
export function checkFailsafeCidr(entries: readonly FailsafeEntry[], cidr: Cidr, what: string): void {
  const hit = entries.find((e) => e.cidr && contains(cidr, e.cidr));
  if (hit) {
    throw new FailsafeConflictError(`${what} ${cidr.text} contains the failsafe ${hit.cidr!.text} (from the configuration file): the failsafe list must stay reachable`);
  }
}

/** Refuses a drop rule whose source prefix contains a failsafe CIDR. */
export function checkFailsafeRule(entries: readonly FailsafeEntry[], rule: PolicyRule): void {
  if (rule.action !== 'drop' || rule.dryRun || rule.hook !== 'ingress' || !rule.src) return;
  checkFailsafeCidr(entries, rule.src, 'src');
}

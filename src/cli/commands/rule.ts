// xdpwall rule add|ls|rm: policy rules through the daemon's API.
import { Command, InvalidArgumentError as CommanderArgumentError } from 'commander';
import { apiClient, clientCommand, print } from './client.js';
import { table } from '../format.js';
import { RULE_ACTIONS, RULE_HOOKS, type RuleInput, type RuleView } from '../../policy/model.js';

type RuleOutput = RuleView & { hits: { packets: number; bytes: number }; wouldDrop?: { packets: number; bytes: number } };

const integer = (name: string) => (value: string): number => {
  if (!/^\d+$/.test(value)) throw new CommanderArgumentError(`${name} must be a whole number`);
  return Number(value);
};
const oneOf = <T extends string>(name: string, values: readonly T[]) => (value: string): T => {
  if (!(values as readonly string[]).includes(value)) throw new CommanderArgumentError(`${name} must be ${values.join(', ')}`);
  return value as T;
};
/** A port stays a number; a range stays text ("8000-8080"). */
const port = (value: string): number | string => (/^\d+$/.test(value) ? Number(value) : value);
const proto = (value: string): number | string => (/^\d+$/.test(value) ? Number(value) : value);

interface AddFlags {
  api: string;
  token?: string;
  json?: boolean;
  priority?: number;
  hook?: RuleInput['hook'];
  iface?: string;
  src?: string;
  dst?: string;
  proto?: number | string;
  srcPort?: number | string;
  dstPort?: number | string;
  tcpFlags?: string;
  icmpType?: number;
  icmpCode?: number;
  vlan?: number;
  ttl?: number;
  expiresAt?: string;
  dryRun?: boolean;
  comment?: string;
}

const describeRule = (r: RuleOutput): string => {
  const match = [
    r.iface && `iface ${r.iface}`, r.src && `src ${r.src}`, r.dst && `dst ${r.dst}`, r.proto !== null && `proto ${r.proto}`,
    r.srcPort !== null && `sport ${r.srcPort}`, r.dstPort !== null && `dport ${r.dstPort}`, r.tcpFlags && `flags ${r.tcpFlags}`,
    r.icmpType !== null && `icmp type ${r.icmpType}`, r.icmpCode !== null && `code ${r.icmpCode}`, r.vlan !== null && `vlan ${r.vlan}`,
  ].filter(Boolean);
  return match.length > 0 ? match.join(' ') : 'any';
};

function addCommand(): Command {
  return clientCommand('add', 'add a rule: xdpwall rule add drop --proto tcp --dst-port 8000-8080')
    .argument('<ACTION>', 'drop, pass or log', oneOf('ACTION', RULE_ACTIONS))
    .option('--priority <N>', '1..65535, lower first (default 1000)', integer('--priority'))
    .option('--hook <HOOK>', 'ingress (default) or egress', oneOf('--hook', RULE_HOOKS))
    .option('--iface <IFACE>', 'only this interface')
    .option('--src <CIDR>', 'source address or prefix')
    .option('--dst <CIDR>', 'destination address or prefix')
    .option('--proto <PROTO>', 'tcp, udp, icmp, icmpv6 or 0..255', proto)
    .option('--src-port <PORT>', 'a port or LO-HI', port)
    .option('--dst-port <PORT>', 'a port or LO-HI', port)
    .option('--tcp-flags <FLAGS>', 'e.g. syn,!ack')
    .option('--icmp-type <N>', 'ICMP type', integer('--icmp-type'))
    .option('--icmp-code <N>', 'ICMP code', integer('--icmp-code'))
    .option('--vlan <ID>', 'innermost VLAN id', integer('--vlan'))
    .option('--ttl <SECONDS>', 'expire after this long', integer('--ttl'))
    .option('--expires-at <ISO>', 'expire at this time')
    .option('--dry-run', 'count what it would do, pass the packet')
    .option('--comment <TEXT>', 'why, for the next person')
    .action(async (action: RuleInput['action'], flags: AddFlags) => {
      const { api: _a, token: _t, json: _j, ...fields } = flags;
      const body: RuleInput = { action, ...fields };
      const { body: rule } = await apiClient(flags).call<RuleOutput>('POST', '/v1/rules', body);
      print(flags, rule, () => `added rule ${rule.id}: ${rule.hook} ${rule.action}${rule.dryRun ? ' (dry run)' : ''} ${describeRule(rule)}`);
    });
}

function lsCommand(): Command {
  return clientCommand('ls', 'list rules in evaluation order')
    .option('--hook <HOOK>', 'ingress or egress', oneOf('--hook', RULE_HOOKS))
    .option('--iface <IFACE>', 'only rules for this interface')
    .action(async (flags: { api: string; token?: string; json?: boolean; hook?: string; iface?: string }) => {
      const client = apiClient(flags);
      const items: RuleOutput[] = [];
      for (let offset = 0; ; offset += 1000) {
        const query = new URLSearchParams({ limit: '1000', offset: String(offset), ...(flags.hook && { hook: flags.hook }), ...(flags.iface && { iface: flags.iface }) });
        const { body } = await client.call<{ items: RuleOutput[]; total: number }>('GET', `/v1/rules?${query}`);
        items.push(...body.items);
        if (body.items.length === 0 || items.length >= body.total) break;
      }
      print(flags, items, () =>
        table(
          ['ID', 'HOOK', 'PRIO', 'ACTION', 'MATCH', 'PACKETS', 'EXPIRES', 'COMMENT'],
          items.map((r) => [r.id, r.hook, r.priority, r.dryRun ? `${r.action} (dry run)` : r.action, describeRule(r), r.hits.packets, r.expiresAt ?? '', r.comment ?? '']),
        ),
      );
    });
}

function rmCommand(): Command {
  return clientCommand('rm', 'remove a rule by id')
    .argument('<ID>', 'rule id', integer('ID'))
    .action(async (id: number, flags: { api: string; token?: string; json?: boolean }) => {
      await apiClient(flags).call('DELETE', `/v1/rules/${id}`);
      print(flags, { removed: id }, () => `removed rule ${id}`);
    });
}

export function ruleCommand(): Command {
  const command = new Command('rule').description('policy rules on ports, protocols and flags (add, ls, rm)');
  for (const sub of [addCommand(), lsCommand(), rmCommand()]) command.addCommand(sub.exitOverride());
  return command;
}

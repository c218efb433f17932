// xdpwall rule add|ls|rm: policy rules through the daemon's API.
import { Command, InvalidArgumentError as CommanderArgumentError } from 'commander';
import { apiClient, clientCommand, print } from './client.js';
import { table } from '../format.js';
import type { Static } from 'typebox';
import { RULE_ACTIONS, RULE_HOOKS, type RuleInput } from '../../src/policy/model.js';
import { RuleBody, type Rule } from '../../api/schemas/rules.js';
import type { CounterPair } from '../../api/schemas/common.js';
import { requestChecker } from '../../api/schemas/check.js';
import { RATE_PER, type RatePer } from '../../src/ratelimit/model.js';

/** The API's Rule (api/schemas/rules.ts), its counter references resolved. */
type Counters = Static<typeof CounterPair>;
type RuleOutput = Omit<Static<typeof Rule>, 'hits' | 'wouldDrop' | 'rateLimit'> & { hits: Counters; wouldDrop?: Counters };
/** The body is checked against the API's own schema before it is sent. */
const checkRule = requestChecker(RuleBody);

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
  pps?: number;
  bps?: number;
  burst?: number;
  per?: RatePer;
  prefixV4?: number;
  prefixV6?: number;
  banAfter?: number;
  banWithin?: number;
  banTtl?: number;
}

/** The rate and ban flags as the API's `rate` and `ban` (absent when none is given). */
function rateFields(flags: AddFlags): Pick<RuleInput, 'rate' | 'ban'> {
  const { pps, bps, burst, per, prefixV4, prefixV6, banAfter, banWithin, banTtl } = flags;
  const rate = { pps, bps, burst, per, prefixV4, prefixV6 };
  const out: Pick<RuleInput, 'rate' | 'ban'> = {};
  if (Object.values(rate).some((v) => v !== undefined)) out.rate = Object.fromEntries(Object.entries(rate).filter(([, v]) => v !== undefined));
  if (banAfter !== undefined || banWithin !== undefined || banTtl !== undefined) {
    out.ban = { afterDrops: banAfter!, within: banWithin!, ttl: banTtl! };
  }
  return out;
}

const describeRate = (r: RuleOutput): string => {
  if (!r.rate) return '';
  const parts = [r.rate.pps !== null && `${r.rate.pps} pps`, r.rate.bps !== null && `${r.rate.bps} bps`].filter(Boolean);
  return ` ${parts.join(' + ')} per ${r.rate.per}${r.rate.per === 'source-prefix' ? ` /${r.rate.prefixV4} /${r.rate.prefixV6}` : ''}`;
};

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
    .argument('<ACTION>', 'drop, pass, log or ratelimit', oneOf('ACTION', RULE_ACTIONS))
    .option('--priority <N>', '1..65535, lower first (default 1000)', integer('--priority'))
    .option('--hook <HOOK>', 'ingress (default) or egress', oneOf('--hook', RULE_HOOKS))
    .option('--iface <IFACE>', 'only this interface')
    .option('--src <CIDR>', 'source address or prefix, or list:NAME (a named list)')
    .option('--dst <CIDR>', 'destination address or prefix, or list:NAME (a named list)')
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
    .option('--pps <N>', 'ratelimit: packets per second', integer('--pps'))
    .option('--bps <N>', 'ratelimit: bits per second', integer('--bps'))
    .option('--burst <N>', 'ratelimit: packets at once after idle (default one second of --pps)', integer('--burst'))
    .option('--per <PER>', 'ratelimit: source (default), source-prefix or rule', oneOf('--per', RATE_PER))
    .option('--prefix-v4 <LEN>', 'ratelimit per source-prefix: IPv4 prefix length (default 24)', integer('--prefix-v4'))
    .option('--prefix-v6 <LEN>', 'ratelimit per source-prefix: IPv6 prefix length (default 64)', integer('--prefix-v6'))
    .option('--ban-after <DROPS>', 'ratelimit: block a source after this many drops ...', integer('--ban-after'))
    .option('--ban-within <SECONDS>', '... within this many seconds ...', integer('--ban-within'))
    .option('--ban-ttl <SECONDS>', '... for this long', integer('--ban-ttl'))
    .action(async (action: RuleInput['action'], flags: AddFlags) => {
      const {
        api: _a, token: _t, json: _j, pps: _pps, bps: _bps, burst: _burst, per: _per, prefixV4: _p4, prefixV6: _p6,
        banAfter: _ba, banWithin: _bw, banTtl: _bt, ...fields
      } = flags;
      const body: RuleBody = { action, ...fields, ...rateFields(flags) };
      checkRule(body, 'body');
      const { body: rule } = await apiClient(flags).call<RuleOutput>('POST', '/v1/rules', body);
      print(flags, rule, () => `added rule ${rule.id}: ${rule.hook} ${rule.action}${rule.dryRun ? ' (dry run)' : ''} ${describeRule(rule)}${describeRate(rule)}`);
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

// Commands that talk to a running daemon through its API.
import { Command } from 'commander';
import { ApiClient, CliError, DEFAULT_API, apiUrl } from '../client.js';
import { loadConfig } from '../../src/config.js';
import { humanBytes, table, terminalJson, terminalLines } from '../format.js';
import type { Static } from 'typebox';
import { isBlockDirection, type BlockDirection } from '../../src/rules/model.js';
import { BlockCreate, type Block } from '../../api/schemas/blocks.js';
import type { CounterPair } from '../../api/schemas/common.js';
import { requestChecker } from '../../api/schemas/check.js';
import type { FlowRecord } from '../../src/flows/query.js';
import type { StatsReport } from '../../src/stats/report.js';

/** The API's Block (api/schemas/blocks.ts), its counter references resolved. */
type Counters = Static<typeof CounterPair>;
type BlockView = Omit<Static<typeof Block>, 'hits' | 'wouldDrop'> & { hits?: Counters; wouldDrop?: Counters };
/** The body is checked against the API's own schema before it is sent. */
const checkBlock = requestChecker(BlockCreate);

interface ClientFlags {
  api: string;
  token?: string;
  json?: boolean;
}

export function clientCommand(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .option('--api <URL>', 'daemon API: http(s)://HOST:PORT or unix:PATH', process.env.XDPWALL_API ?? DEFAULT_API)
    .option('--token <TOKEN>', 'API token for TCP (default $XDPWALL_TOKEN; the environment keeps it out of ps)', process.env.XDPWALL_TOKEN)
    .option('--json', 'print the API response as JSON');
}

export const apiClient = (flags: ClientFlags): ApiClient => new ApiClient(flags.api, flags.token);

export function print(flags: { json?: boolean }, body: unknown, text: () => string): void {
  console.log(flags.json ? terminalJson(body) : terminalLines(text()));
}

const direction = (value: string): BlockDirection => {
  if (!isBlockDirection(value)) throw new CliError(`--direction must be src or dst, not "${value}"`, 2);
  return value;
};

interface BlockFlags {
  direction?: BlockDirection;
  comment?: string;
  force?: boolean;
  ttl?: number;
  expiresAt?: string;
  dryRun?: boolean;
  origin?: string;
}

export const seconds = (value: string): number => {
  if (!/^\d+$/.test(value)) throw new CliError(`--ttl must be a whole number of seconds, not "${value}"`, 2);
  return Number(value);
};

export function blockCommand(): Command {
  return clientCommand('block', 'block a CIDR (or a single address)')
    .argument('<CIDR>')
    .option('--direction <src|dst>', 'match the source (default) or destination address', direction)
    .option('--comment <TEXT>', 'why, for the next person')
    .option('--force', 'block even if it cuts this client off from the API (otherwise SELF_LOCKOUT)')
    .option('--ttl <SECONDS>', 'expire after this long (blocking again keeps the later expiry)', seconds)
    .option('--expires-at <ISO>', 'expire at this time')
    .option('--dry-run', 'count what it would drop (would_drop), but pass')
    .option('--origin <NAME>', 'who blocks, e.g. fail2ban (default api)')
    .action(async (cidr: string, flags: ClientFlags & BlockFlags) => {
      const request: BlockCreate = {
        cidr,
        ...(flags.direction && { direction: flags.direction }),
        ...(flags.comment !== undefined && { comment: flags.comment }),
        ...(flags.force && { force: true }),
        ...(flags.ttl !== undefined && { ttl: flags.ttl }),
        ...(flags.expiresAt !== undefined && { expiresAt: flags.expiresAt }),
        ...(flags.dryRun && { dryRun: true }),
        ...(flags.origin !== undefined && { origin: flags.origin }),
      };
      checkBlock(request, 'body');
      const { status, body } = await apiClient(flags).call<BlockView>('POST', '/v1/blocks', request);
      const extras = [body.dryRun ? 'dry run' : '', body.expiresAt ? `until ${body.expiresAt}` : ''].filter(Boolean).join(', ');
      print(flags, body, () => `${status === 201 ? 'blocked' : 'already blocked'} ${body.cidr} (${body.direction}, id ${body.id}${extras ? `, ${extras}` : ''})`);
    });
}

export function unblockCommand(): Command {
  return clientCommand('unblock', 'remove the block(s) for a CIDR')
    .argument('<CIDR>')
    .option('--direction <src|dst>', 'only this direction (default: both)', direction)
    .option('--missing-ok', 'exit 0 when there is no such block (e.g. it expired already)')
    .action(async (cidr: string, flags: ClientFlags & { direction?: BlockDirection; missingOk?: boolean }) => {
      const query = new URLSearchParams({ cidr, ...(flags.direction && { direction: flags.direction }) });
      try {
        await apiClient(flags).call('DELETE', `/v1/blocks?${query}`);
      } catch (error) {
        if (flags.missingOk && (error as { code?: unknown }).code === 'NOT_FOUND') {
          print(flags, { unblocked: null }, () => `${cidr} was not blocked`);
          return;
        }
        throw error;
      }
      print(flags, { unblocked: cidr }, () => `unblocked ${cidr}`);
    });
}

export function blocksCommand(): Command {
  return clientCommand('blocks', 'list blocks')
    .option('--contains <IP>', 'only blocks covering this address')
    .option('--origin <NAME>', 'only blocks of this origin (api, crowdsec, fail2ban, ...)')
    .action(async (flags: ClientFlags & { contains?: string; origin?: string }) => {
      const client = apiClient(flags);
      const items: BlockView[] = [];
      for (let offset = 0; ; offset += 1000) {
        const query = new URLSearchParams({
          limit: '1000', offset: String(offset), ...(flags.contains && { contains: flags.contains }), ...(flags.origin && { origin: flags.origin }),
        });
        const { body } = await client.call<{ items: BlockView[]; total: number }>('GET', `/v1/blocks?${query}`);
        items.push(...body.items);
        if (body.items.length === 0 || items.length >= body.total) break;
      }
      print(flags, items, () =>
        table(
          ['ID', 'CIDR', 'DIR', 'DROPPED', 'CREATED', 'EXPIRES', 'ORIGIN', 'COMMENT'],
          items.map((b) => [b.id, b.cidr, b.direction, b.hits?.packets ?? 0, b.createdAt, b.expiresAt ?? '', b.origin ?? 'api', b.comment ?? '']),
        ),
      );
    });
}

export function flowsCommand(): Command {
  return clientCommand('flows', 'top flows by bytes')
    .option('--top <N>', 'how many', '20')
    .option('--sort <bytes|packets|lastSeen>', 'order', 'bytes')
    .action(async (flags: ClientFlags & { top: string; sort: string }) => {
      const query = new URLSearchParams({ limit: flags.top, sort: flags.sort });
      const { body } = await apiClient(flags).call<{ items: FlowRecord[] }>('GET', `/v1/flows?${query}`);
      const endpoint = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
      print(flags, body.items, () =>
        table(
          ['PROTO', 'REMOTE', 'LOCAL', 'IN PKTS', 'IN BYTES', 'OUT PKTS', 'OUT BYTES', 'LAST SEEN'],
          body.items.map((f) => [
            f.proto, endpoint(f.src, f.srcPort), endpoint(f.dst, f.dstPort),
            f.ingress.packets, humanBytes(f.ingress.bytes), f.egress.packets, humanBytes(f.egress.bytes), f.lastSeen,
          ]),
        ),
      );
    });
}

export function statsCommand(): Command {
  return clientCommand('stats', 'packets and bytes by verdict and drop reason').action(async (flags: ClientFlags) => {
    const { body } = await apiClient(flags).call<Omit<StatsReport, 'series'>>('GET', '/v1/stats');
    print(flags, body, () => {
      const rows: Array<Array<string | number>> = [];
      for (const iface of body.interfaces) {
        for (const dir of ['ingress', 'egress'] as const) {
          for (const [reason, counter] of Object.entries(iface[dir].reasons)) {
            rows.push([iface.iface ?? `ifindex ${iface.ifindex}`, dir, reason, counter!.packets, humanBytes(counter!.bytes)]);
          }
        }
      }
      return table(['IFACE', 'DIR', 'REASON', 'PACKETS', 'BYTES'], rows);
    });
  });
}

export function healthCommand(): Command {
  return clientCommand('health', "the daemon's /healthz; exit 0 when it answers ok (for container health checks)")
    .option('--config <FILE>', "ask the daemon at this configuration's listen address instead of --api")
    .action(async (flags: ClientFlags & { config?: string }) => {
      const config = flags.config ? loadConfig(flags.config) : undefined;
      const api = config ? apiUrl(config.listen, config.api.tls !== undefined) : flags.api;
      const { body } = await new ApiClient(api, flags.token).call<{ status: string; warnings?: string[] }>('GET', '/healthz');
      print(flags, body, () => [body.status, ...(body.warnings ?? []).map((warning) => `warning: ${warning}`)].join('\n'));
    });
}

// `xdpwall list put|ls|show|rm`: named lists (/v1/lists). `put` streams the
// file as it is (text/plain: plain, FireHOL netset or Spamhaus DROP) with a
// progress bar on stderr, then waits while the daemon swaps the list in.
import { Command } from 'commander';
import { CliError } from '../client.js';
import { apiClient, clientCommand, print } from './client.js';
import { Progress } from '../progress.js';
import { openInputFile } from '../input-file.js';
import { table } from '../format.js';
import { isBlockDirection } from '../../src/rules/model.js';
import { isListAction, type ListView } from '../../src/lists/model.js';

interface Flags {
  api: string;
  token?: string;
  json?: boolean;
}

interface PutResult {
  name: string;
  count: number;
  revision: number;
  updatedAt: string;
}

const path = (name: string): string => `/v1/lists/${encodeURIComponent(name)}`;

function putCommand(): Command {
  return clientCommand('put', 'replace list NAME with the entries of FILE ("-": standard input), atomically')
    .argument('<NAME>')
    .argument('<FILE>', 'one address or CIDR per line; # and ; comments (FireHOL netsets and Spamhaus DROP as they are)')
    .option('--action <deny|allow|none>', 'what the list does (default deny; none: only rules use it)')
    .option('--direction <src|dst>', 'match the source (default) or destination address')
    .action(async (name: string, file: string, flags: Flags & { action?: string; direction?: string }) => {
      if (flags.action !== undefined && !isListAction(flags.action)) throw new CliError(`--action must be deny, allow or none, not "${flags.action}"`, 2);
      if (flags.direction !== undefined && !isBlockDirection(flags.direction)) throw new CliError(`--direction must be src or dst, not "${flags.direction}"`, 2);
      const { input, totalBytes } = openInputFile(file);
      const progress = new Progress(process.stderr, { label: `list ${name}`, totalBytes });
      let bytes = 0;
      let lines = 0;
      async function* sent(): AsyncGenerator<Buffer> {
        for await (const chunk of input as AsyncIterable<Buffer>) {
          bytes += chunk.length;
          for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines++;
          progress.update(bytes, lines);
          yield chunk;
        }
        progress.phase(`sent ${lines.toLocaleString('en')} lines; the daemon is parsing and swapping the list in`);
      }
      const query = new URLSearchParams({ ...(flags.action && { action: flags.action }), ...(flags.direction && { direction: flags.direction }) });
      let result: PutResult;
      try {
        ({ body: result } = await apiClient(flags).upload<PutResult>('PUT', `${path(name)}${query.size > 0 ? `?${query}` : ''}`, 'text/plain', sent()));
      } finally {
        progress.done();
      }
      print(flags, result, () => `list ${result.name}: ${result.count.toLocaleString('en')} entries, revision ${result.revision}`);
    });
}

function lsCommand(): Command {
  return clientCommand('ls', 'list the named lists').action(async (flags: Flags) => {
    const { body } = await apiClient(flags).call<{ items: ListView[] }>('GET', '/v1/lists');
    print(flags, body.items, () =>
      table(
        ['NAME', 'ACTION', 'DIR', 'ENTRIES', 'REV', 'ORIGIN', 'DROPPED', 'UPDATED'],
        body.items.map((l) => [l.name, l.action, l.direction, l.count, l.revision, l.origin, l.hits.packets, l.updatedAt]),
      ),
    );
  });
}

function showCommand(): Command {
  return clientCommand('show', "a list and its entries")
    .argument('<NAME>')
    .option('--contains <IP>', 'only entries covering this address')
    .option('--limit <N>', 'at most N entries', '100')
    .action(async (name: string, flags: Flags & { contains?: string; limit: string }) => {
      const client = apiClient(flags);
      const { body: list } = await client.call<ListView>('GET', path(name));
      const query = new URLSearchParams({ limit: flags.limit, ...(flags.contains && { contains: flags.contains }) });
      const { body: entries } = await client.call<{ items: string[]; total: number }>('GET', `${path(name)}/entries?${query}`);
      print(flags, { ...list, entries: entries.items }, () =>
        [
          `${list.name}: ${list.action} ${list.direction}, ${list.count} entries, revision ${list.revision} (${list.origin}, ${list.updatedAt})`,
          ...entries.items,
          ...(entries.total > entries.items.length ? [`... ${entries.total - entries.items.length} more`] : []),
        ].join('\n'),
      );
    });
}

function rmCommand(): Command {
  return clientCommand('rm', 'delete a list').argument('<NAME>').action(async (name: string, flags: Flags) => {
    await apiClient(flags).call('DELETE', path(name));
    print(flags, { deleted: name }, () => `deleted list ${name}`);
  });
}

export function listCommand(): Command {
  const command = new Command('list').description('named lists of CIDRs (deny, allow, or for rules)');
  for (const sub of [putCommand(), lsCommand(), showCommand(), rmCommand()]) command.addCommand(sub.exitOverride());
  return command;
}

// `xdpwall list put|ls|show|rm`: named lists (/v1/lists). `put` streams the
// file as it is (text/plain: plain, FireHOL netset or Spamhaus DROP) with a
// progress bar on stderr, then shows the daemon's progress (GET
// /v1/lists/{name}/progress) while it stores the list and swaps it in.
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

/** How often `put` asks the daemon how far it has got, once the file is sent. */
const POLL_MS = 250;

interface ListProgress {
  active: boolean;
  phase?: 'store' | 'kernel';
  done?: number;
  total?: number;
}

/**
 * Shows the daemon's progress with list `name` every POLL_MS until stop() is
 * called. A failed poll is not the command's failure: the PUT's own answer is.
 */
export function pollProgress(
  client: Pick<ReturnType<typeof apiClient>, 'call'>,
  name: string,
  progress: Pick<Progress, 'count'>,
  intervalMs = POLL_MS,
): { stop: () => Promise<void> } {
  let stopped = false;
  let wake: () => void = () => {};
  const loop = (async () => {
    while (!stopped) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, intervalMs);
      });
      if (stopped) return;
      try {
        const { body } = await client.call<ListProgress>('GET', `${path(name)}/progress`);
        if (!stopped && body.active && body.phase && body.total !== undefined) progress.count(body.phase, body.done ?? 0, body.total);
      } catch {
        // e.g. 404 before the list exists: nothing to show yet
      }
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      wake();
      await loop;
    },
  };
}

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
      const client = apiClient(flags);
      let poller: { stop: () => Promise<void> } | undefined;
      async function* sentThenPoll(): AsyncGenerator<Buffer> {
        yield* sent();
        poller = pollProgress(client, name, progress);
      }
      let result: PutResult;
      try {
        ({ body: result } = await client.upload<PutResult>('PUT', `${path(name)}${query.size > 0 ? `?${query}` : ''}`, 'text/plain', sentThenPoll()));
      } finally {
        await poller?.stop();
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

// `xdpwall block import FILE|-`: many blocks in one all-or-nothing bulk
// import, streamed to the daemon as NDJSON while the file is read, with a
// progress bar on a terminal (plain lines elsewhere) on stderr.
import type { Readable } from 'node:stream';
import { Command } from 'commander';
import { CliError } from '../client.js';
import { apiClient, clientCommand, print, seconds } from './client.js';
import { Progress } from '../progress.js';
import { openInputFile } from '../input-file.js';
import { isBlockDirection, type BlockDirection } from '../../src/rules/model.js';

interface ImportFlags {
  api: string;
  token?: string;
  json?: boolean;
  comment?: string;
  direction?: string;
  force?: boolean;
  ttl?: number;
  expiresAt?: string;
  dryRun?: boolean;
  origin?: string;
}

/** What every "CIDR [COMMENT]" line gets from the flags. */
interface LineDefaults {
  comment?: string;
  direction?: BlockDirection;
  force?: boolean;
  ttl?: number;
  expiresAt?: string;
  dryRun?: boolean;
  origin?: string;
}

interface ImportCounts {
  bytes: number;
  items: number;
  /** The file's line number of each item, to name the line an error points at. */
  lines: number[];
}

/**
 * Turns the file's lines into NDJSON items: "CIDR [COMMENT]" per line, or a
 * JSON object line as it is; blank lines and lines starting with # are skipped.
 */
async function* ndjsonItems(
  input: Readable,
  defaults: LineDefaults,
  counts: ImportCounts,
  onChunk: () => void,
): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let rest = '';
  let lineNumber = 0;
  const convert = (text: string): string[] => {
    const lines = (rest + text).split('\n');
    rest = lines.pop() ?? '';
    const out: string[] = [];
    for (const raw of lines) {
      lineNumber++;
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      counts.items++;
      counts.lines.push(lineNumber);
      if (line.startsWith('{')) {
        out.push(line);
        continue;
      }
      const [cidr, ...words] = line.split(/\s+/);
      const comment = words.length > 0 ? words.join(' ') : defaults.comment;
      out.push(JSON.stringify({
        cidr,
        ...(comment !== undefined && { comment }),
        ...(defaults.direction && { direction: defaults.direction }),
        ...(defaults.force && { force: true }),
        ...(defaults.ttl !== undefined && { ttl: defaults.ttl }),
        ...(defaults.expiresAt !== undefined && { expiresAt: defaults.expiresAt }),
        ...(defaults.dryRun && { dryRun: true }),
        ...(defaults.origin !== undefined && { origin: defaults.origin }),
      }));
    }
    return out;
  };
  for await (const chunk of input as AsyncIterable<Buffer>) {
    counts.bytes += chunk.length;
    let text: string;
    try {
      text = decoder.decode(chunk, { stream: true });
    } catch {
      throw new CliError(`the input is not UTF-8 (after line ${lineNumber})`);
    }
    const items = convert(text);
    onChunk();
    if (items.length > 0) yield `${items.join('\n')}\n`;
  }
  const last = convert(`${decoder.decode()}\n`);
  onChunk();
  if (last.length > 0) yield `${last.join('\n')}\n`;
}

export function blockImportCommand(): Command {
  return clientCommand('import', 'block every CIDR in FILE ("-": standard input), all or nothing, in one bulk import')
    .argument('<FILE>', 'one "CIDR [COMMENT]" per line, or NDJSON items {"cidr", ...}; blank lines and # lines are skipped')
    .option('--comment <TEXT>', 'comment for lines that have none')
    .option('--direction <src|dst>', 'match the source (default) or destination address')
    .option('--force', 'block even what would cut this client off from the API')
    .option('--ttl <SECONDS>', 'lines without their own: expire after this long', seconds)
    .option('--expires-at <ISO>', 'lines without their own: expire at this time')
    .option('--dry-run', 'lines without their own: count what they would drop (would_drop), but pass')
    .option('--origin <NAME>', 'lines without their own: who blocks, e.g. fail2ban (default api)')
    .action(async (file: string, flags: ImportFlags) => {
      if (flags.direction !== undefined && !isBlockDirection(flags.direction)) throw new CliError(`--direction must be src or dst, not "${flags.direction}"`, 2);
      const { input, totalBytes } = openInputFile(file);
      const progress = new Progress(process.stderr, { label: 'import', totalBytes });
      const counts: ImportCounts = { bytes: 0, items: 0, lines: [] };
      const items = ndjsonItems(
        input,
        {
          comment: flags.comment, direction: flags.direction as BlockDirection | undefined, force: flags.force,
          ttl: flags.ttl, expiresAt: flags.expiresAt, dryRun: flags.dryRun, origin: flags.origin,
        },
        counts,
        () => progress.update(counts.bytes, counts.items),
      );
      async function* sent(): AsyncGenerator<string> {
        yield* items;
        progress.phase(`sent ${counts.items.toLocaleString('en')} items; the daemon is storing and installing them`);
      }
      let result: { created: number; existing: number };
      try {
        ({ body: result } = await apiClient(flags).upload<{ created: number; existing: number }>('POST', '/v1/blocks/bulk', 'application/x-ndjson', sent()));
      } catch (error) {
        progress.done();
        // "items[12]: ..." → also name the file's line.
        const index = error instanceof CliError ? /items\[(\d+)\]/.exec(error.message)?.[1] : undefined;
        const line = index === undefined ? undefined : counts.lines[Number(index)];
        if (error instanceof CliError && line !== undefined) throw new CliError(`${error.message} (${file === '-' ? 'stdin' : file} line ${line})`, error.exitCode, error.code);
        throw error;
      }
      progress.done();
      print(flags, result, () => `imported ${(result.created + result.existing).toLocaleString('en')} items: ${result.created.toLocaleString('en')} blocked, ${result.existing.toLocaleString('en')} already blocked`);
    });
}

// `xdpwall top`: a live view of the firewall, refreshed every second, like
// top or iftop: drop and pass rates by reason, the busiest rules (when the
// daemon has /v1/rules) and the top flows. q (or Ctrl-C) quits.
import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { CliError, type ApiClient } from '../client.js';
import { apiClient, clientCommand } from './client.js';
import { renderTop, type RuleSample, type TopSample } from '../top-view.js';
import { terminalJson, terminalSafe } from '../format.js';
import type { StatsReport } from '../../src/stats/report.js';
import type { FlowRecord } from '../../src/flows/query.js';

const FLOWS_SAMPLED = 100;

interface TopFlags {
  api: string;
  token?: string;
  json?: boolean;
  once?: boolean;
  interval: string;
}

/** Samples the API; remembers whether /v1/rules exists (asked once). */
class Sampler {
  private rules: 'unknown' | 'yes' | 'no' = 'unknown';

  constructor(private readonly client: ApiClient) {}

  async sample(): Promise<TopSample> {
    const [stats, flows, rules] = await Promise.all([
      this.client.call<StatsReport>('GET', '/v1/stats'),
      this.client.call<{ items: FlowRecord[] }>('GET', `/v1/flows?limit=${FLOWS_SAMPLED}&sort=bytes`),
      this.sampleRules(),
    ]);
    return { at: Date.now(), stats: stats.body, flows: flows.body.items, ...(rules && { rules }) };
  }

  private async sampleRules(): Promise<RuleSample[] | undefined> {
    if (this.rules === 'no') return undefined;
    try {
      const { body } = await this.client.call<{ items?: RuleSample[] } | RuleSample[]>('GET', '/v1/rules');
      this.rules = 'yes';
      return Array.isArray(body) ? body : (body.items ?? []);
    } catch (error) {
      if (this.rules === 'unknown' && error instanceof CliError && (error.code === 'ROUTE_NOT_FOUND' || error.code === 'NOT_FOUND')) {
        this.rules = 'no';
        return undefined;
      }
      throw error;
    }
  }
}

const clock = (): string => new Date().toLocaleTimeString('en-GB');

const ENTER = '\x1b[?1049h\x1b[?25l'; // alternate screen, hide the cursor
const LEAVE = '\x1b[?25h\x1b[?1049l';

async function live(sampler: Sampler, source: string, intervalMs: number): Promise<void> {
  const out = process.stdout;
  const input = process.stdin;
  let quit!: () => void;
  const quitting = new Promise<void>((resolve) => (quit = resolve));
  let done = false;
  const onKey = (data: Buffer): void => {
    // q, Q, Ctrl-C, Ctrl-D
    if (/[qQ\x03\x04]/.test(data.toString('latin1'))) quit();
  };
  const restore = (): void => {
    if (done) return;
    done = true;
    input.off('data', onKey);
    if (input.isTTY) input.setRawMode(false);
    input.pause();
    out.write(LEAVE);
  };
  process.once('SIGTERM', quit);
  process.once('SIGHUP', quit);
  process.once('exit', restore);
  if (input.isTTY) input.setRawMode(true);
  input.on('data', onKey);
  input.resume();
  out.write(ENTER);
  const draw = (lines: string[]): void => {
    out.write(`\x1b[H${lines.map((line) => `${line}\x1b[K`).join('\r\n')}\x1b[J`);
  };
  try {
    let previous: TopSample | undefined;
    let stopped = false;
    void quitting.then(() => (stopped = true));
    while (!stopped) {
      try {
        const current = await sampler.sample();
        if (previous) {
          draw(renderTop(previous, current, { width: out.columns || 80, height: out.rows || 24, source, time: clock() }));
        } else {
          draw([`xdpwall top — ${terminalSafe(source)} — sampling…   (q quits)`]);
        }
        previous = current;
      } catch (error) {
        // Keep trying, as top does: the daemon may be restarting.
        draw([`xdpwall top — ${terminalSafe(source)} — ${clock()}`, '', terminalSafe(`cannot read the API: ${(error as Error).message}`), '', '(q quits)']);
        previous = undefined;
      }
      await Promise.race([sleep(intervalMs), quitting]);
    }
  } finally {
    restore();
    process.off('SIGTERM', quit);
    process.off('SIGHUP', quit);
    process.off('exit', restore);
  }
}

export function topCommand(): Command {
  return clientCommand('top', 'live view of drop rates by reason, the busiest rules and the top flows (q quits)')
    .option('--interval <SECONDS>', 'refresh period', '1')
    .option('--once', 'print one frame (two samples an interval apart) and exit; for scripts and non-terminals')
    .action(async (flags: TopFlags) => {
      const seconds = Number(flags.interval);
      if (!Number.isFinite(seconds) || seconds < 0.2 || seconds > 3600) throw new CliError(`--interval must be between 0.2 and 3600 seconds, not "${flags.interval}"`, 2);
      const sampler = new Sampler(apiClient(flags));
      if (flags.once || !process.stdout.isTTY) {
        if (!flags.once) throw new CliError('top draws on a terminal; use --once (or --once --json) elsewhere', 2);
        const first = await sampler.sample();
        await sleep(seconds * 1000);
        const second = await sampler.sample();
        if (flags.json) console.log(terminalJson(second));
        else console.log(renderTop(first, second, { width: 200, height: 60, source: flags.api, time: clock() }).join('\n'));
        return;
      }
      await live(sampler, flags.api, seconds * 1000);
    });
}

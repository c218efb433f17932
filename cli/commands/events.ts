// `xdpwall events`: follows GET /v1/events like `tail -f`, one line per
// sampled packet (or one JSON object per line with --json); the loss
// counters go to stderr when they change. `xdpwall capture -w FILE`: saves
// GET /v1/capture.pcap for tshark or Wireshark.
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { Command } from 'commander';
import { CliError } from '../client.js';
import { apiClient, clientCommand } from './client.js';
import { terminalSafe } from '../format.js';
import type { DropEvent } from '../../src/events/model.js';

interface FilterFlags {
  reason?: string[];
  rule?: string;
  block?: string;
  src?: string;
  iface?: string;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function withFilters(command: Command): Command {
  return command
    .option('--reason <NAME>', 'only this reason (repeat, or comma-separate, for several)', collect)
    .option('--rule <ID>', 'only packets this policy rule decided')
    .option('--block <ID>', 'only packets this block decided')
    .option('--src <CIDR>', 'only sources inside this CIDR')
    .option('--iface <IFACE>', 'only this interface (as configured)');
}

function filterQuery(flags: FilterFlags, extra: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams();
  if (flags.reason?.length) params.set('reason', flags.reason.join(','));
  for (const key of ['rule', 'block', 'src', 'iface'] as const) if (flags[key] !== undefined) params.set(key, flags[key]);
  for (const [key, value] of Object.entries(extra)) if (value !== undefined) params.set(key, value);
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** One line per event: time, verdict, reason, what decided, where, the packet. */
export function formatEvent(e: DropEvent): string {
  const time = e.time.slice(11, 23);
  const who = e.rule !== null ? `rule ${e.rule}` : e.block !== null ? `block ${e.block}` : '-';
  const endpoint = (addr: string | null, port: number | null) =>
    addr === null ? '?' : port === null ? addr : e.family === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
  const flags = e.tcpFlags.length > 0 ? ` [${e.tcpFlags.join(',')}]` : '';
  const vlan = e.vlan !== null ? ` vlan ${e.vlan}` : '';
  const what = e.family === 0 ? 'non-IP' : `${e.proto} ${endpoint(e.src, e.srcPort)} -> ${endpoint(e.dst, e.dstPort)}${flags}`;
  return `${time} ${e.verdict} ${e.reason} ${who} ${e.iface ?? `ifindex:${e.ifindex}`} ${e.direction}${vlan} ${what} ${e.length}B`;
}

/** Splits a Server-Sent Events body into (event, data) messages. */
export async function* sseMessages(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of body) {
    buffered += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length > 0) yield { event, data: data.join('\n') };
    }
  }
}

const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`"${value}" is not a positive integer`, 2);
  return n;
};

export function eventsCommand(): Command {
  return withFilters(clientCommand('events', 'follow sampled packets (drops, log rules) as they happen, like tail -f'))
    .option('--count <N>', 'exit after N events', positiveInt)
    .action(async (flags: FilterFlags & { api: string; token?: string; json?: boolean; count?: number }) => {
      const res = await apiClient(flags).stream(`/v1/events${filterQuery(flags)}`);
      let seen = 0;
      let lastLoss = '';
      try {
        for await (const { event, data } of sseMessages(res)) {
          if (event === 'stats') {
            const { lostCap, lostRing, sampled } = JSON.parse(data) as { lostCap: number; lostRing: number; sampled: number };
            const loss = `sampled ${sampled}, lost to the rate cap ${lostCap}, to a full ring ${lostRing}`;
            if (loss !== lastLoss && (lostCap > 0 || lostRing > 0)) process.stderr.write(`xdpwall: ${loss}\n`);
            lastLoss = loss;
            continue;
          }
          const parsed = JSON.parse(data) as DropEvent;
          process.stdout.write(flags.json ? `${JSON.stringify(parsed)}\n` : `${terminalSafe(formatEvent(parsed))}\n`);
          if (flags.count !== undefined && ++seen >= flags.count) break;
        }
      } finally {
        res.destroy();
      }
    });
}

export function captureCommand(): Command {
  return withFilters(clientCommand('capture', 'save sampled packets as a pcap file (tshark -r, Wireshark)'))
    .requiredOption('-w, --write <FILE>', 'the pcap file to write ("-" for stdout)')
    .option('--seconds <N>', 'capture for N seconds (at most 300)', '10')
    .option('--count <N>', 'stop after N packets')
    .action(async (flags: FilterFlags & { api: string; token?: string; write: string; seconds: string; count?: string }) => {
      const res = await apiClient(flags).stream(`/v1/capture.pcap${filterQuery(flags, { seconds: flags.seconds, count: flags.count })}`);
      let bytes = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          bytes += chunk.length;
          done(null, chunk);
        },
      });
      await pipeline(res, counter, flags.write === '-' ? process.stdout : createWriteStream(flags.write));
      if (flags.write !== '-') process.stderr.write(`xdpwall: wrote ${bytes} bytes to ${terminalSafe(flags.write)}\n`);
    });
}

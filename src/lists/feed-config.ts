// The `feeds:` section of the --config file. Apart from feeds.ts (which runs
// them) so that config.ts does not import the list service's world.
import { ConfigError } from '../errors.js';
import { isBlockDirection, type BlockDirection } from '../rules/model.js';
import { checkListName, isListAction, type ListAction } from './model.js';

export const FEED_FORMATS = ['plain', 'netset', 'spamhaus'] as const;
export type FeedFormat = (typeof FEED_FORMATS)[number];

export interface FeedConfig {
  list: string;
  url: string;
  /** All three are one address or CIDR per line with # or ; comments: the name documents the source. */
  format: FeedFormat;
  refreshMs: number;
  action: ListAction;
  direction: BlockDirection;
}


/** "30s", "5m", "1h", "1d" (or a bare number of seconds) in milliseconds. */
export function parseDuration(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value * 1000;
  const m = typeof value === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim()) : null;
  if (!m) throw new ConfigError(`${what} must be a duration like 30s, 5m or 1h`);
  const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  if (ms < 1000) throw new ConfigError(`${what} must be at least 1s`);
  return ms;
}

export function parseFeeds(value: unknown): FeedConfig[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new ConfigError('feeds must be a list of {list, url, refresh, action, direction}');
  const seen = new Set<string>();
  return value.map((entry: unknown, i) => {
    const where = `feeds[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new ConfigError(`${where} must be a mapping`);
    const { list, url, format, refresh, action, direction, ...rest } = entry as Record<string, unknown>;
    const unknown = Object.keys(rest);
    if (unknown.length > 0) throw new ConfigError(`${where}: unknown key ${unknown[0]}`);
    if (typeof list !== 'string') throw new ConfigError(`${where}.list must be a list name`);
    try {
      checkListName(list);
    } catch (error) {
      throw new ConfigError(`${where}.list: ${(error as Error).message}`);
    }
    if (seen.has(list)) throw new ConfigError(`${where}: two feeds fill list ${list}`);
    seen.add(list);
    let parsed: URL;
    try {
      parsed = new URL(String(url));
    } catch {
      throw new ConfigError(`${where}.url must be an http:// or https:// URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ConfigError(`${where}.url must be an http:// or https:// URL`);
    if (format !== undefined && !(FEED_FORMATS as readonly unknown[]).includes(format)) throw new ConfigError(`${where}.format must be one of ${FEED_FORMATS.join(', ')}`);
    if (action !== undefined && !isListAction(action)) throw new ConfigError(`${where}.action must be deny, allow or none`);
    if (direction !== undefined && !isBlockDirection(direction)) throw new ConfigError(`${where}.direction must be src or dst`);
    return {
      list,
      url: parsed.toString(),
      format: (format as FeedFormat | undefined) ?? 'plain',
      refreshMs: parseDuration(refresh ?? '1h', `${where}.refresh`),
      action: (action as ListAction | undefined) ?? 'deny',
      direction: (direction as BlockDirection | undefined) ?? 'src',
    };
  });
}

// Blocklist feeds (`feeds:` in the --config file): each fills a named list
// from an HTTP(S) URL every `refresh`, sending the last ETag and
// Last-Modified back (If-None-Match / If-Modified-Since) so an unchanged
// feed costs a 304. A new version is parsed whole (parse.ts) and swapped in
// atomically (ListService.put). A failed fetch, an HTTP error or a parse
// error keeps the last good version enforcing; the feed is then reported
// failing (healthz degraded, xdpwall_feed_up 0, a log line) until a fetch
// succeeds again.
import { XdpwallError } from '../errors.js';
import type { FeedConfig } from './feed-config.js';
import { parseListText } from './parse.js';
import type { ListPut, ListResult, ChangeOptions } from './service.js';

export { FEED_FORMATS, parseDuration, parseFeeds, type FeedConfig, type FeedFormat } from './feed-config.js';

/** A feed body above this is refused (a million CIDRs are about 20 MB). */
export const MAX_FEED_BYTES = 128 << 20;
const FETCH_TIMEOUT_MS = 60_000;

export interface FeedState {
  list: string;
  url: string;
  /** null until the first fetch finished. */
  ok: boolean | null;
  reason?: string;
  lastAttempt?: string;
  lastSuccess?: string;
  /** Entries of the version in force (the last good one). */
  entries?: number;
  fetches: { updated: number; notModified: number; failed: number };
}

export interface FeedLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

export interface FeedTarget {
  put(name: string, input: ListPut, options?: ChangeOptions): Promise<ListResult>;
}

interface Feed {
  config: FeedConfig;
  state: FeedState;
  etag?: string;
  lastModified?: string;
  timer?: NodeJS.Timeout;
  running?: Promise<void>;
}

export class FeedRunner {
  private readonly feeds: Feed[];
  private stopped = false;

  constructor(
    configs: readonly FeedConfig[],
    private readonly lists: FeedTarget,
    private readonly log: FeedLog,
    private readonly options: { now?: () => Date; fetch?: typeof fetch } = {},
  ) {
    this.feeds = configs.map((config) => ({
      config,
      state: { list: config.list, url: config.url, ok: null, fetches: { updated: 0, notModified: 0, failed: 0 } },
    }));
  }

  /** Fetches every feed now, then each every `refresh`. */
  start(): void {
    for (const feed of this.feeds) this.schedule(feed, 0);
  }

  stop(): void {
    this.stopped = true;
    for (const feed of this.feeds) clearTimeout(feed.timer);
  }

  states(): FeedState[] {
    return this.feeds.map((f) => ({ ...f.state, fetches: { ...f.state.fetches } }));
  }

  /** Fetches every feed once now (tests, and SIGHUP); resolves when all are done. */
  async refreshAll(): Promise<void> {
    await Promise.all(this.feeds.map((feed) => this.refresh(feed)));
  }

  private schedule(feed: Feed, delayMs: number): void {
    if (this.stopped) return;
    feed.timer = setTimeout(() => {
      void this.refresh(feed).finally(() => this.schedule(feed, feed.config.refreshMs));
    }, delayMs);
    feed.timer.unref();
  }

  private refresh(feed: Feed): Promise<void> {
    feed.running ??= this.fetchOnce(feed).finally(() => (feed.running = undefined));
    return feed.running;
  }

  private async fetchOnce(feed: Feed): Promise<void> {
    const { config, state } = feed;
    const now = () => (this.options.now ?? (() => new Date()))().toISOString();
    state.lastAttempt = now();
    try {
      const headers: Record<string, string> = { accept: 'text/plain, */*' };
      if (feed.etag) headers['if-none-match'] = feed.etag;
      if (feed.lastModified) headers['if-modified-since'] = feed.lastModified;
      const response = await (this.options.fetch ?? fetch)(config.url, { headers, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'follow' });
      if (response.status === 304) {
        await response.body?.cancel();
        state.fetches.notModified++;
        this.succeeded(feed, now());
        return;
      }
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`HTTP ${response.status} ${response.statusText}`.trim());
      }
      const declared = Number(response.headers.get('content-length') ?? NaN);
      if (declared > MAX_FEED_BYTES) throw new Error(`the body is ${declared} bytes, more than ${MAX_FEED_BYTES}`);
      const body = Buffer.from(await response.arrayBuffer());
      if (body.length > MAX_FEED_BYTES) throw new Error(`the body is ${body.length} bytes, more than ${MAX_FEED_BYTES}`);
      const text = new TextDecoder('utf-8', { fatal: true }).decode(body);
      const entries = parseListText(text);
      if (entries.count === 0 && state.entries) throw new Error('the feed is empty; keeping the last version (an empty list is more likely a broken download)');
      const result = await this.lists.put(config.list, { entries, action: config.action, direction: config.direction }, { origin: 'feed' });
      feed.etag = response.headers.get('etag') ?? undefined;
      feed.lastModified = response.headers.get('last-modified') ?? undefined;
      state.entries = result.count;
      state.fetches.updated++;
      this.log.info({ feed: config.list, url: config.url, entries: result.count, revision: result.revision }, 'feed updated');
      this.succeeded(feed, now());
    } catch (error) {
      state.fetches.failed++;
      const reason = `feed ${config.list} (${config.url}): ${describe(error)}; the last good version stays in force`;
      if (state.ok !== false || state.reason !== reason) this.log.warn({ feed: config.list, url: config.url, err: describe(error) }, 'feed refresh failed');
      state.ok = false;
      state.reason = reason;
    }
  }

  private succeeded(feed: Feed, at: string): void {
    if (feed.state.ok === false) this.log.info({ feed: feed.config.list }, 'feed healthy again');
    feed.state.ok = true;
    delete feed.state.reason;
    feed.state.lastSuccess = at;
  }
}

function describe(error: unknown): string {
  if (error instanceof XdpwallError) return `${error.code}: ${error.message}`;
  if (error instanceof TypeError && error.cause instanceof Error) return `${error.message} (${error.cause.message})`;
  if (error instanceof Error && error.name === 'TimeoutError') return `no answer within ${FETCH_TIMEOUT_MS / 1000} s`;
  if (error instanceof TypeError && error.message.includes('encoded data')) return 'the body is not UTF-8 text';
  return error instanceof Error ? error.message : String(error);
}

// The CrowdSec bouncer: follows the Local API's decision stream and keeps
// the firewall's blocks of origin "crowdsec" equal to the active ban
// decisions (scope Ip or Range, IPv4 and IPv6), each a block with the
// decision's remaining time as its ttl.
//
// Protocol (LAPI v1): GET {url}/v1/decisions/stream?startup=true with the
// header X-Api-Key answers every active decision in "new"; later pulls
// without startup answer what changed since this bouncer's previous pull.
// LAPI tracks that per bouncer, so a pull whose answer is lost or not applied
// leaves a gap: after any failure the next pull starts afresh (startup=true)
// and reconciles, removing blocks this bouncer owns that are no longer
// decided. Until then the blocks already applied stay (and expire by their
// ttl in the kernel), and the status says degraded with the reason.
//
// Deltas can miss decisions even when every pull succeeds. LAPI 1.4 answers
// "new" with the decisions whose created_at is after the bouncer's previous
// pull's start (pkg/apiserver/controllers/v1/decisions.go, StreamDecision;
// pkg/database/decisions.go, QueryNewDecisionsSinceWithFilters), and
// created_at is stamped when a batch of 50 is built, before its INSERT
// commits (pkg/database/alerts.go, CreateAlertBulk). A pull that starts after
// a batch was stamped but reads before it commits does not see it, and every
// later delta asks for newer ones: that batch is never sent. A large import
// (`cscli decisions import`) racing a pull loses whole batches this way; the
// current LAPI still does. So every `resync` interval (default 10 min) a pull
// asks startup=true and reconciles: blocks it is missing are added (or their
// expiry extended) before blocks no decision bans any more are removed, so
// an entry present on both sides is never briefly unblocked; what it fixed
// is counted as drift (status `resync`, metrics, a warning in the log).
// Because bulk writes are what lose batches, a resync also follows each
// burst: after a delta carrying a batch or more (>= 50 new decisions), the
// pull after the first delta that carries none is a resync too.
//
// Changes go through the bulk path in one call per pull, so a list of 100k
// decisions is one transaction and a few kernel batches, not 100k requests.
import type { BlockWithExtras } from '../policy/block-meta.js';
import type { BlockDirection } from '../rules/model.js';
import { VERSION } from '../version.js';
import { decisionBlock, decisionCidr, parseDecisionStream, type SkipReason, type StreamDecision } from './crowdsec-decisions.js';
import type { IntegrationStatus, ResyncStatus } from './status.js';

export const CROWDSEC_ORIGIN = 'crowdsec';

export interface CrowdsecConfig {
  /** LAPI base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  /** A bouncer key (`cscli bouncers add NAME`). */
  apiKey: string;
  /** Time between pulls. */
  refreshMs: number;
  /** Time between full resyncs (startup=true pulls that reconcile); 0: none beyond start and recovery. Default 10 min. */
  resyncMs?: number;
}

export const DEFAULT_RESYNC_MS = 600_000;
/** LAPI writes decisions in batches of 50: a delta with that many new ones comes from a bulk write. */
export const BURST_DECISIONS = 50;

/** A block of the firewall as the bouncer compares it: its expiry (null: never). */
export interface TargetBlock {
  cidr: string;
  direction: BlockDirection;
  expiresAt: string | null;
}

/** What the bouncer needs of the firewall. */
export interface CrowdsecTarget {
  /** Throws when the firewall refuses to block this CIDR (failsafe list, /0): the decision is skipped. */
  check(cidr: string): void;
  /** Blocks these in one bulk change with their ttl, origin "crowdsec". */
  addMany(items: BlockWithExtras[]): Promise<unknown>;
  /** The blocks origin "crowdsec" owns now. */
  owned(): TargetBlock[];
  /** The source block of this CIDR in force, whoever owns it; undefined when there is none. */
  block(cidr: string): TargetBlock | undefined;
  /** Removes those of these blocks that origin "crowdsec" still owns. */
  removeMany(keys: Array<{ cidr: string; direction: BlockDirection }>): Promise<unknown>;
}

export interface BouncerLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

export interface BouncerOptions {
  now?: () => number;
  log?: BouncerLog;
  /** Per pull; default max(60 s, 3 x refresh). */
  timeoutMs?: number;
}

interface Active {
  cidr: string;
  expiresAtMs: number;
}

/** What one answer changed: blocks added (or, in a full pull, whose expiry was extended) and removed. */
interface Changes {
  added: number;
  extended: number;
  removed: number;
}


export class CrowdsecBouncer {
  /** Active ban decisions by id. */
  private readonly active = new Map<number, Active>();
  private startup = true;
  private state: IntegrationStatus['state'] = 'starting';
  private reason: string | undefined;
  private lastSuccessAt: string | null = null;
  private readonly updates = { ok: 0, error: 0 };
  private readonly skipped: Record<string, number> = {};
  private readonly resync: ResyncStatus = { runs: 0, added: 0, extended: 0, removed: 0, lastAt: null };
  /** When the last successful full pull (startup=true) was asked for. */
  private lastFullAtMs: number | undefined;
  /** A delta carried a burst (a bulk write under way); once a delta carries nothing new, resync. */
  private burst: 'none' | 'under way' | 'settled' = 'none';
  private readonly resyncMs: number;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: AbortController | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly now: () => number;
  private readonly log: BouncerLog | undefined;
  private readonly timeoutMs: number;

  constructor(
    private readonly config: CrowdsecConfig,
    private readonly target: CrowdsecTarget,
    options: BouncerOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.log = options.log;
    // Generous: LAPI 1.4 on SQLite takes over 10 s to answer a pull that carries 100k decisions.
    this.timeoutMs = options.timeoutMs ?? Math.max(60_000, 3 * config.refreshMs);
    this.resyncMs = config.resyncMs ?? DEFAULT_RESYNC_MS;
  }

  /** Pulls now and then every refresh interval until stop(). */
  start(): void {
    this.stopped = false;
    const loop = (): void => {
      this.running = this.pull().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.timer = setTimeout(loop, this.config.refreshMs);
      });
    };
    loop();
  }

  /** Stops pulling; an in-flight pull is aborted (what it applied stays). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.inFlight?.abort();
    await this.running;
  }

  status(): IntegrationStatus {
    return {
      name: CROWDSEC_ORIGIN,
      state: this.state,
      ...(this.reason !== undefined && { reason: this.reason }),
      lastSuccessAt: this.lastSuccessAt,
      updates: { ...this.updates },
      entries: this.active.size,
      skipped: { ...this.skipped },
      resync: { ...this.resync },
    };
  }

  /** One pull and its application; failures are recorded in the status, never thrown. */
  async pull(): Promise<void> {
    const kind = this.startup ? 'startup' : this.resyncDue() ? 'resync' : 'delta';
    // Any failure below makes the next pull start afresh (see the top of the file).
    this.startup = true;
    try {
      const askedAt = this.now();
      const body = await this.fetchStream(kind !== 'delta');
      const stream = parseDecisionStream(body);
      if (stream.malformed > 0) this.skip('malformed', stream.malformed);
      const changes = kind === 'delta' ? await this.applyDelta(stream.new, stream.deleted) : await this.reconcile(stream.new, askedAt);
      if (kind !== 'delta') {
        this.lastFullAtMs = askedAt;
        this.burst = 'none';
      } else if (stream.new.length >= BURST_DECISIONS) this.burst = 'under way';
      else if (this.burst === 'under way' && stream.new.length === 0) this.burst = 'settled';
      this.startup = false;
      this.updates.ok++;
      this.lastSuccessAt = new Date(this.now()).toISOString();
      if (this.state !== 'ok') this.log?.info({ integration: CROWDSEC_ORIGIN, active: this.active.size }, 'crowdsec: following the decision stream');
      if (kind === 'resync') this.recordResync(changes);
      else if (changes.added > 0 || changes.extended > 0 || changes.removed > 0) {
        this.log?.info({ integration: CROWDSEC_ORIGIN, startup: kind === 'startup', ...changes, active: this.active.size }, 'crowdsec: decisions applied');
      }
      this.state = 'ok';
      this.reason = undefined;
    } catch (error) {
      if (this.stopped) return;
      this.updates.error++;
      const reason = `crowdsec: ${(error as Error).message}`;
      if (reason !== this.reason) this.log?.warn({ integration: CROWDSEC_ORIGIN, err: error }, `${reason}; keeping the blocks already applied`);
      this.state = 'degraded';
      this.reason = reason;
    }
  }

  /** Whether the next pull is a resync: `resync` after the last full pull, or once a burst has settled. */
  private resyncDue(): boolean {
    if (this.resyncMs <= 0 || this.lastFullAtMs === undefined) return false;
    return this.burst === 'settled' || this.now() - this.lastFullAtMs >= this.resyncMs;
  }

  private recordResync(drift: Changes): void {
    this.resync.runs++;
    this.resync.added += drift.added;
    this.resync.extended += drift.extended;
    this.resync.removed += drift.removed;
    this.resync.lastAt = new Date(this.now()).toISOString();
    const details = { integration: CROWDSEC_ORIGIN, ...drift, active: this.active.size };
    if (drift.added > 0 || drift.extended > 0 || drift.removed > 0) {
      this.log?.warn(details, 'crowdsec: resync fixed drift the decision deltas had missed');
    } else {
      this.log?.info(details, 'crowdsec: resync found no drift');
    }
  }

  private async fetchStream(startup: boolean): Promise<string> {
    const url = `${this.config.url.replace(/\/+$/, '')}/v1/decisions/stream${startup ? '?startup=true' : ''}`;
    const controller = new AbortController();
    this.inFlight = controller;
    const timeout = setTimeout(() => controller.abort(new Error(`no answer from ${url} within ${this.timeoutMs} ms`)), this.timeoutMs);
    try {
      let response: Response;
      try {
        response = await fetch(url, {
          headers: { 'X-Api-Key': this.config.apiKey, 'User-Agent': `xdpwall-bouncer/${VERSION}`, Accept: 'application/json' },
          signal: controller.signal,
        });
      } catch (error) {
        if (controller.signal.reason instanceof Error && !this.stopped) throw controller.signal.reason;
        const cause = (error as { cause?: { code?: string; message?: string } }).cause;
        throw Object.assign(new Error(`cannot reach the Local API at ${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`), {
          name: (error as Error).name,
        });
      }
      const body = await response.text();
      if (response.status === 403 || response.status === 401) {
        throw new Error(`the Local API refused the bouncer key (HTTP ${response.status}); make one with \`cscli bouncers add NAME\``);
      }
      if (!response.ok) throw new Error(`the Local API answered HTTP ${response.status}: ${body.slice(0, 200)}`);
      return body;
    } finally {
      clearTimeout(timeout);
      if (this.inFlight === controller) this.inFlight = undefined;
    }
  }

  private skip(reason: SkipReason | 'malformed' | 'refused', n = 1): void {
    this.skipped[reason] = (this.skipped[reason] ?? 0) + n;
  }

  /** A new decision as a block, or undefined when it is skipped (counted) or the firewall refuses it (listed). */
  private admit(decision: StreamDecision, refused: Array<{ cidr: string; reason: string }>): { cidr: string; ttl: number } | undefined {
    const block = decisionBlock(decision);
    if ('skip' in block) {
      this.skip(block.skip);
      return undefined;
    }
    try {
      this.target.check(block.cidr);
    } catch (error) {
      this.skip('refused');
      refused.push({ cidr: block.cidr, reason: (error as Error).message });
      return undefined;
    }
    return block;
  }

  private logRefused(refused: Array<{ cidr: string; reason: string }>): void {
    if (refused.length === 0) return;
    this.log?.warn({ integration: CROWDSEC_ORIGIN, count: refused.length, first: refused.slice(0, 5) }, 'crowdsec: ban decisions the firewall refuses, not applied');
  }

  private async addBlocks(add: ReadonlyMap<string, number>): Promise<void> {
    if (add.size === 0) return;
    await this.target.addMany([...add].map(([cidr, ttl]) => ({ cidr, ttl, origin: CROWDSEC_ORIGIN, comment: 'crowdsec decision' })));
  }

  /** The decision table changes only once the firewall took the change. */
  private commit(active: ReadonlyMap<number, Active>): void {
    this.active.clear();
    for (const [id, decision] of active) this.active.set(id, decision);
  }

  /**
   * Applies a delta: deleted decisions leave (their block too when no other
   * active decision bans the same CIDR), new ones arrive.
   */
  private async applyDelta(news: StreamDecision[], deleted: StreamDecision[]): Promise<Changes> {
    const now = this.now();
    const active = new Map(this.active);
    for (const [id, decision] of active) if (decision.expiresAtMs <= now) active.delete(id);
    const touched = new Set<string>();
    for (const decision of deleted) {
      const known = active.get(decision.id);
      const cidr = known?.cidr ?? decisionCidr(decision);
      active.delete(decision.id);
      if (typeof cidr === 'string') touched.add(cidr);
    }
    const add = new Map<string, number>();
    const refused: Array<{ cidr: string; reason: string }> = [];
    for (const decision of news) {
      const block = this.admit(decision, refused);
      if (!block) continue;
      active.set(decision.id, { cidr: block.cidr, expiresAtMs: now + block.ttl * 1000 });
      add.set(block.cidr, Math.max(add.get(block.cidr) ?? 0, block.ttl));
    }
    this.logRefused(refused);
    const banned = new Set<string>();
    for (const { cidr } of active.values()) banned.add(cidr);
    const remove = [...touched].filter((cidr) => !banned.has(cidr)).map((cidr) => ({ cidr, direction: 'src' as const }));
    await this.addBlocks(add);
    if (remove.length > 0) await this.target.removeMany(remove);
    this.commit(active);
    return { added: add.size, extended: 0, removed: remove.length };
  }

  /**
   * Applies a full answer (startup=true): it replaces every decision known,
   * and the firewall is made to match it. A banned CIDR with no block gets
   * one; one whose block expires before the decision gets the later expiry;
   * blocks this bouncer owns that nothing bans are removed, after the adds.
   * Blocks that already match are left alone, so a resync of 100k decisions
   * in sync writes nothing.
   */
  private async reconcile(news: StreamDecision[], askedAtMs: number): Promise<Changes> {
    const now = this.now();
    const active = new Map<number, Active>();
    const banned = new Map<string, number>();
    const refused: Array<{ cidr: string; reason: string }> = [];
    for (const decision of news) {
      const block = this.admit(decision, refused);
      if (!block) continue;
      active.set(decision.id, { cidr: block.cidr, expiresAtMs: now + block.ttl * 1000 });
      banned.set(block.cidr, Math.max(banned.get(block.cidr) ?? 0, block.ttl));
    }
    this.logRefused(refused);
    const ownedNow = this.target.owned();
    const owned = new Map<string, TargetBlock>();
    for (const block of ownedNow) if (block.direction === 'src') owned.set(block.cidr, block);
    // LAPI measured each remaining time when it answered, and we apply later:
    // an unchanged decision can come out up to this pull's own time (and a
    // second of rounding up) later than the block made from it before.
    const slackMs = Math.max(0, now - askedAtMs) + 1000;
    const add = new Map<string, number>();
    let added = 0;
    let extended = 0;
    for (const [cidr, ttl] of banned) {
      const current = owned.get(cidr) ?? this.target.block(cidr);
      if (current === undefined) added++;
      else if (current.expiresAt !== null && now + ttl * 1000 > Date.parse(current.expiresAt) + slackMs) extended++;
      else continue;
      add.set(cidr, ttl);
    }
    const remove = ownedNow.filter(({ cidr }) => !banned.has(cidr)).map(({ cidr, direction }) => ({ cidr, direction }));
    await this.addBlocks(add);
    if (remove.length > 0) await this.target.removeMany(remove);
    this.commit(active);
    return { added, extended, removed: remove.length };
  }
}

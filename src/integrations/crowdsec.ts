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
// Changes go through the bulk path in one call per pull, so a list of 100k
// decisions is one transaction and a few kernel batches, not 100k requests.
import type { BlockWithExtras } from '../policy/block-meta.js';
import type { BlockDirection } from '../rules/model.js';
import { VERSION } from '../version.js';
import { decisionBlock, decisionCidr, parseDecisionStream, type SkipReason } from './crowdsec-decisions.js';
import type { IntegrationStatus } from './status.js';

export const CROWDSEC_ORIGIN = 'crowdsec';

export interface CrowdsecConfig {
  /** LAPI base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  /** A bouncer key (`cscli bouncers add NAME`). */
  apiKey: string;
  /** Time between pulls. */
  refreshMs: number;
}

/** What the bouncer needs of the firewall. */
export interface CrowdsecTarget {
  /** Throws when the firewall refuses to block this CIDR (failsafe list, /0): the decision is skipped. */
  check(cidr: string): void;
  /** Blocks these in one bulk change with their ttl, origin "crowdsec". */
  addMany(items: BlockWithExtras[]): Promise<unknown>;
  /** The blocks origin "crowdsec" owns now. */
  owned(): Array<{ cidr: string; direction: BlockDirection }>;
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
  /** Per pull; default max(10 s, 3 x refresh). */
  timeoutMs?: number;
}

interface Active {
  cidr: string;
  expiresAtMs: number;
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
    this.timeoutMs = options.timeoutMs ?? Math.max(10_000, 3 * config.refreshMs);
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
    };
  }

  /** One pull and its application; failures are recorded in the status, never thrown. */
  async pull(): Promise<void> {
    const startup = this.startup;
    // Any failure below makes the next pull start afresh (see the top of the file).
    this.startup = true;
    try {
      const body = await this.fetchStream(startup);
      const stream = parseDecisionStream(body);
      if (stream.malformed > 0) this.skip('malformed', stream.malformed);
      const changes = await this.apply(startup, stream.new, stream.deleted);
      this.startup = false;
      this.updates.ok++;
      this.lastSuccessAt = new Date(this.now()).toISOString();
      if (this.state !== 'ok') this.log?.info({ integration: CROWDSEC_ORIGIN, active: this.active.size }, 'crowdsec: following the decision stream');
      if (changes.added > 0 || changes.removed > 0) {
        this.log?.info({ integration: CROWDSEC_ORIGIN, startup, ...changes, active: this.active.size }, 'crowdsec: decisions applied');
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

  /**
   * Applies one answer: deleted decisions leave (their block too when no
   * other active decision bans the same CIDR), new ones arrive; a startup
   * answer replaces everything known and removes owned blocks it no longer
   * bans. The decision table changes only once the firewall took the change.
   */
  private async apply(
    startup: boolean,
    news: Parameters<typeof decisionBlock>[0][],
    deleted: Parameters<typeof decisionBlock>[0][],
  ): Promise<{ added: number; removed: number }> {
    const now = this.now();
    const active = new Map(startup ? [] : this.active);
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
      const block = decisionBlock(decision);
      if ('skip' in block) {
        this.skip(block.skip);
        continue;
      }
      try {
        this.target.check(block.cidr);
      } catch (error) {
        this.skip('refused');
        refused.push({ cidr: block.cidr, reason: (error as Error).message });
        continue;
      }
      active.set(decision.id, { cidr: block.cidr, expiresAtMs: now + block.ttl * 1000 });
      add.set(block.cidr, Math.max(add.get(block.cidr) ?? 0, block.ttl));
    }
    if (refused.length > 0) {
      this.log?.warn({ integration: CROWDSEC_ORIGIN, count: refused.length, first: refused.slice(0, 5) }, 'crowdsec: ban decisions the firewall refuses, not applied');
    }
    const banned = new Set<string>();
    for (const { cidr } of active.values()) banned.add(cidr);
    const remove = startup
      ? this.target.owned().filter(({ cidr }) => !banned.has(cidr))
      : [...touched].filter((cidr) => !banned.has(cidr)).map((cidr) => ({ cidr, direction: 'src' as const }));
    if (remove.length > 0) await this.target.removeMany(remove);
    if (add.size > 0) {
      await this.target.addMany([...add].map(([cidr, ttl]) => ({ cidr, ttl, origin: CROWDSEC_ORIGIN, comment: 'crowdsec decision' })));
    }
    this.active.clear();
    for (const [id, decision] of active) this.active.set(id, decision);
    return { added: add.size, removed: remove.length };
  }
}

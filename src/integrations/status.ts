// What the daemon pulls from outside (the CrowdSec bouncer; blocklist feeds
// can report here too) and how that is going, for /healthz, /metrics and the
// log. A failing integration keeps what it last applied: the firewall still
// enforces it, so the daemon is "degraded", not down.

export type IntegrationState = 'starting' | 'ok' | 'degraded';

export interface IntegrationStatus {
  /** e.g. "crowdsec". */
  name: string;
  /** starting: no update yet; degraded: the last update failed (see reason), the last good state stays. */
  state: IntegrationState;
  reason?: string;
  /** ISO 8601 time of the last successful update; null before the first. */
  lastSuccessAt: string | null;
  /** Updates (pulls, fetches) by outcome since start. */
  updates: { ok: number; error: number };
  /** Entries in force from this integration (e.g. active CrowdSec ban decisions). */
  entries: number;
  /** Entries not applied since start, by reason (e.g. unsupported_scope). */
  skipped: Record<string, number>;
  /** For integrations that resync periodically (CrowdSec). */
  resync?: ResyncStatus;
}

/** Periodic full resyncs and the drift they fixed (changes the incremental updates had missed), since start. */
export interface ResyncStatus {
  runs: number;
  /** Blocks a decision wanted that were missing. */
  added: number;
  /** Blocks that expired before their decision (a longer decision the deltas missed). */
  extended: number;
  /** Blocks of origin crowdsec that no decision bans any more. */
  removed: number;
  /** ISO 8601 time of the last resync; null before the first. */
  lastAt: string | null;
}

export class Integrations {
  private readonly sources = new Map<string, () => IntegrationStatus>();

  /** Adds a source of status; the returned function removes it again. */
  register(name: string, status: () => IntegrationStatus): () => void {
    this.sources.set(name, status);
    return () => {
      if (this.sources.get(name) === status) this.sources.delete(name);
    };
  }

  list(): IntegrationStatus[] {
    return [...this.sources.values()].map((status) => status());
  }
}

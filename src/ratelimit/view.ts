// What the API reports about rate limits: per rule (admitted, dropped,
// active buckets, bans) and the sources being limited now. Bucket reads walk
// the whole table, so they share one short-lived snapshot; idle buckets are
// swept at most every SWEEP_EVERY_MS.
import { SnapshotCache } from '../counters-cache.js';
import type { Clock } from '../clock.js';
import { POLICY_RULE_ID_BASE } from '../datapath/abi.js';
import { formatCidr, formatIp } from '../rules/cidr.js';
import type { BucketKey, BucketState, RateLimitTables } from './tables.js';

/** Buckets idle this long (or their fill time, if longer) are deleted: they are full again. */
export const BUCKET_IDLE_NS = 60_000_000_000n;
export const SWEEP_EVERY_MS = 10_000;

export interface CounterPair {
  packets: number;
  bytes: number;
}

export interface RuleRateStats {
  admitted: CounterPair;
  dropped: CounterPair;
  /** Source buckets the rule has now (0 for per rule, whose one bucket is shared). */
  activeBuckets: number;
  /** Auto blocks this rule's ban made since the daemon started. */
  bans: number;
}

export interface LimitedSourceView {
  ruleId: number;
  /** The source address, or its prefix (CIDR) for per source-prefix. */
  source: string;
  /** Drops in the bucket's current window (the ban's within, else 1 s). */
  windowDrops: number;
  dropped: number;
  admitted: number;
}

const pair = (c: { packets: bigint; bytes: bigint }): CounterPair => ({ packets: Number(c.packets), bytes: Number(c.bytes) });

export function sourceText(key: BucketKey): string {
  const full = key.family === 4 ? 32 : 128;
  return key.prefixLen >= full ? formatIp(key.addr) : formatCidr(key.family, key.addr, key.prefixLen);
}

export class RateLimitView {
  private readonly buckets: SnapshotCache<{ list: Array<{ key: BucketKey; state: BucketState }> }>;
  private readonly bans = new Map<number, number>();
  private lastSweepMs = 0;

  constructor(
    readonly tables: RateLimitTables,
    private readonly clock: Clock,
    cacheMs: number,
  ) {
    this.buckets = new SnapshotCache(
      async () => ({ list: (await tables.readBuckets()).map(({ key, state }) => ({ key, state })) }),
      cacheMs,
    );
  }

  /** Counts an auto block made by rule `id` (store id). */
  recordBan(id: number): void {
    this.bans.set(id, (this.bans.get(id) ?? 0) + 1);
  }

  async ruleStats(id: number): Promise<RuleRateStats> {
    const kernelId = POLICY_RULE_ID_BASE + id;
    const { admitted, dropped } = this.tables.ruleStats(kernelId);
    const { list } = await this.buckets.get();
    return {
      admitted: pair(admitted),
      dropped: pair(dropped),
      activeBuckets: list.filter((b) => b.key.ruleId === kernelId).length,
      bans: this.bans.get(id) ?? 0,
    };
  }

  async top(limit: number): Promise<LimitedSourceView[]> {
    return (await this.tables.top(limit)).map(({ ruleId, bucket, state }) => ({
      ruleId: ruleId - POLICY_RULE_ID_BASE,
      source: sourceText(bucket),
      windowDrops: state.windowDrops,
      dropped: Number(state.dropped),
      admitted: Number(state.admitted),
    }));
  }

  /** Deletes idle buckets unless a sweep ran within SWEEP_EVERY_MS; returns how many. */
  async sweepIfDue(): Promise<number> {
    const now = this.clock.wallMs();
    if (now - this.lastSweepMs < SWEEP_EVERY_MS) return 0;
    this.lastSweepMs = now;
    const deleted = await this.tables.sweep(BUCKET_IDLE_NS);
    if (deleted > 0) this.buckets.invalidate();
    return deleted;
  }
}

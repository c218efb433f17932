// Auto-bans: the data plane reports a source once per window when its
// drops under a ratelimit rule reach the rule's ban.afterDrops within
// ban.within seconds (xw_rl_reports, a ring buffer the kernel feeds at most
// XW_RL_REPORT_RATE times a second); this turns each report into a TTL block
// of the source (or its prefix, for per source-prefix rules) with origin
// "auto" and a comment naming the rule.
import { Layout, POLICY_RULE_ID_BASE } from '../datapath/abi.js';
import type { PolicyRule } from '../policy/model.js';
import { decodeBucketKey, type BucketKey } from './tables.js';
import { sourceText } from './view.js';

/** A ring buffer reader (the addon's BpfRingBuffer). */
export interface ReportReader {
  consume(maxRecords?: number): Buffer[];
  close(): void;
}

export interface BanReport {
  key: BucketKey;
  timeNs: bigint;
  drops: number;
}

export function decodeReport(record: Buffer): BanReport {
  const L = Layout.rlReport;
  return { key: decodeBucketKey(record, L.key), timeNs: record.readBigUInt64LE(L.timeNs), drops: record.readUInt32LE(L.drops) };
}

export interface BanBlock {
  cidr: string;
  ttl: number;
  comment: string;
  origin: 'auto';
}

export interface BanServiceOptions {
  reader: ReportReader;
  /** The stored rule of a store id, or undefined (removed since the report). */
  rule(id: number): PolicyRule | undefined;
  block(input: BanBlock): Promise<unknown>;
  /** Counts a ban against its rule (GET /v1/rules/{id} rateLimit.bans). */
  banned(id: number): void;
  log: { warn(details: object, message: string): void; info(details: object, message: string): void };
}

export class BanService {
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(private readonly options: BanServiceOptions) {}

  /** Reads every pending report and blocks its source; returns the blocks made. */
  async poll(): Promise<number> {
    if (this.polling) return 0;
    this.polling = true;
    let made = 0;
    try {
      for (const record of this.options.reader.consume(1024)) {
        const report = decodeReport(record);
        const id = report.key.ruleId - POLICY_RULE_ID_BASE;
        const rule = this.options.rule(id);
        if (!rule?.ban) continue; // removed, or its ban taken away, since the kernel reported
        const input: BanBlock = {
          cidr: sourceText(report.key),
          ttl: rule.ban.ttl,
          comment: `auto ban by rule ${id}: ${report.drops} drops within ${rule.ban.within} s`,
          origin: 'auto',
        };
        try {
          await this.options.block(input);
          this.options.banned(id);
          made++;
          this.options.log.info({ ruleId: id, cidr: input.cidr, ttl: input.ttl }, 'rate limit: source banned');
        } catch (error) {
          // e.g. FAILSAFE_CONFLICT: a failsafe source is never blocked
          this.options.log.warn({ err: error, ruleId: id, cidr: input.cidr }, 'rate limit: could not ban a source');
        }
      }
    } finally {
      this.polling = false;
    }
    return made;
  }

  start(intervalMs = 200): void {
    this.timer ??= setInterval(() => void this.poll(), intervalMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.options.reader.close();
  }
}

// `events:` in the configuration: how many packets of each reason become
// events (1 in N), and the kernel's cap on events per second.
import { REASON_FIRST_DROP, Reason, STATS_REASONS, type ReasonName } from '../datapath/abi.js';
import { ConfigError } from '../errors.js';
import type { EventCfg } from './abi.js';

/** `events:` in the configuration. */
export interface EventSettings {
  /** 1 in N packets of a reason become events; 0 = none. Unlisted reasons: defaultSample(). */
  sample: Partial<Record<ReasonName, number>>;
  /** The kernel's cap on events per second, all reasons and CPUs together. */
  ratePerSecond: number;
  /** How many events may come at once after a quiet spell. */
  burst: number;
}

/** Every `log` rule's packet; 1 in 100 of each drop reason (and of dry-run would_drop); no other passes. */
export function defaultSample(reason: number): number {
  if (reason === Reason.pass_log) return 1;
  if (reason === Reason.would_drop || reason >= REASON_FIRST_DROP) return 100;
  return 0;
}

export const DEFAULT_EVENT_SETTINGS: EventSettings = { sample: {}, ratePerSecond: 1000, burst: 1000 };

export function eventCfgOf(settings: EventSettings, testNowNs?: bigint): EventCfg {
  const sample = new Map<number, number>();
  for (let reason = 0; reason < STATS_REASONS; reason++) sample.set(reason, defaultSample(reason));
  for (const [name, every] of Object.entries(settings.sample)) {
    const reason = Reason[name as ReasonName];
    if (reason !== undefined && every !== undefined) sample.set(reason, every);
  }
  return { sample, ratePerSecond: settings.ratePerSecond, burst: settings.burst, testNowNs };
}

const MAX_RATE = 1_000_000;

/**
 *   events:
 *     sample: { drop_rule: 1, deny_src_cidr: 10, pass_log: 1 }   # 1 in N, 0 = never
 *     ratePerSecond: 1000    # the kernel's cap, all CPUs together
 *     burst: 1000
 */
export function parseEventSettings(value: unknown): EventSettings {
  if (value === undefined || value === null) return DEFAULT_EVENT_SETTINGS;
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError('events must be a mapping like {sample: {drop_rule: 1}, ratePerSecond: 1000}');
  const { sample, ratePerSecond, burst, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw new ConfigError(`events.${unknown[0]}: unknown key (sample, ratePerSecond, burst)`);
  const settings: EventSettings = { ...DEFAULT_EVENT_SETTINGS, sample: {} };
  if (sample !== undefined) {
    if (typeof sample !== 'object' || sample === null || Array.isArray(sample)) throw new ConfigError('events.sample must map reasons to N (1 in N)');
    for (const [reason, every] of Object.entries(sample)) {
      if (!(reason in Reason)) throw new ConfigError(`events.sample.${reason}: not a reason (${Object.keys(Reason).join(', ')})`);
      if (typeof every !== 'number' || !Number.isInteger(every) || every < 0 || every > 0xffff_ffff) {
        throw new ConfigError(`events.sample.${reason} must be an integer N >= 0 (1 in N; 0 = never)`);
      }
      settings.sample[reason as ReasonName] = every;
    }
  }
  const count = (v: unknown, key: string, fallback: number, min: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_RATE) throw new ConfigError(`events.${key} must be an integer from ${min} to ${MAX_RATE}`);
    return v;
  };
  settings.ratePerSecond = count(ratePerSecond, 'ratePerSecond', DEFAULT_EVENT_SETTINGS.ratePerSecond, 0);
  settings.burst = count(burst, 'burst', DEFAULT_EVENT_SETTINGS.burst, 1);
  return settings;
}

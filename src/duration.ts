// Durations in the configuration file: "30s", "5m", "1h", "1h30m", "500ms"
// (a bare number is seconds).
import { ConfigError } from './errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/** Milliseconds of a duration like "10s" or "1h30m"; ConfigError naming `what` otherwise. */
export function parseDuration(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value * 1000;
  if (typeof value !== 'string' || !DURATION.test(value.trim())) {
    throw new ConfigError(`${what} must be a duration like "30s", "5m" or "1h", not ${JSON.stringify(value)}`);
  }
  let ms = 0;
  for (const [, number, unit] of value.trim().matchAll(PART)) ms += Number(number) * UNIT_MS[unit!]!;
  if (ms <= 0) throw new ConfigError(`${what} must be longer than zero`);
  return ms;
}

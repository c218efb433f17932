// CrowdSec decisions as the Local API streams them (GET /v1/decisions/stream):
// {"new": [DECISION...] | null, "deleted": [DECISION...] | null}, each
// DECISION {"id": 7, "type": "ban", "scope": "Ip"|"Range"|..., "value":
// "198.18.5.5"|"198.18.6.0/24", "duration": "3h59m58.1s", "origin", "scenario"}.
// Only ban decisions on an address or a range become blocks; the rest is
// skipped and counted by reason, never an error for the whole stream.
import { formatCidr, parseCidr, parseIp } from '../rules/cidr.js';
import { MAX_TTL_SECONDS } from '../policy/model.js';

export interface StreamDecision {
  id: number;
  type: string;
  scope: string;
  value: string;
  duration: string;
}

export interface DecisionStream {
  new: StreamDecision[];
  deleted: StreamDecision[];
  /** Entries of either list that are not decision objects at all. */
  malformed: number;
}

export class MalformedStreamError extends Error {
  override readonly name = 'MalformedStreamError';
}

const GO_UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const GO_DURATION = /^([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const GO_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/** A Go time.Duration string ("3h59m58.1s", "-440.6ms", "0s") in milliseconds; undefined if it is not one. */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const match = GO_DURATION.exec(text);
  if (!match) return undefined;
  let ms = 0;
  for (const [, number, unit] of text.matchAll(GO_PART)) ms += Number(number) * GO_UNIT_MS[unit!]!;
  return match[1] === '-' ? -ms : ms;
}

function isDecision(value: unknown): value is StreamDecision {
  if (typeof value !== 'object' || value === null) return false;
  const d = value as Record<string, unknown>;
  return Number.isSafeInteger(d.id) && typeof d.type === 'string' && typeof d.scope === 'string' &&
    typeof d.value === 'string' && typeof d.duration === 'string';
}

/** Parses a stream response body; MalformedStreamError when it is not the documented shape. */
export function parseDecisionStream(body: string): DecisionStream {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    throw new MalformedStreamError(`the decision stream is not JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new MalformedStreamError('the decision stream is not a JSON object with "new" and "deleted"');
  }
  const stream: DecisionStream = { new: [], deleted: [], malformed: 0 };
  for (const key of ['new', 'deleted'] as const) {
    const list = (parsed as Record<string, unknown>)[key];
    if (list === null || list === undefined) continue;
    if (!Array.isArray(list)) throw new MalformedStreamError(`"${key}" in the decision stream is neither a list nor null`);
    for (const entry of list) {
      if (isDecision(entry)) stream[key].push(entry);
      else stream.malformed++;
    }
  }
  return stream;
}

/** A ban decision as a block: its canonical CIDR and, for new decisions, whole seconds left. */
export type DecisionBlock = { cidr: string; ttl: number } | { skip: SkipReason };
export type SkipReason = 'unsupported_type' | 'unsupported_scope' | 'invalid_value' | 'invalid_duration' | 'expired';

/**
 * The CIDR a decision bans. Scope Ip takes one address (IPv4 or IPv6); Range
 * a CIDR, whole (host bits are cleared: LAPI accepts "198.18.6.7/24" and means
 * the /24). Other scopes (Country, AS, ...) are not addresses.
 */
export function decisionCidr(decision: Pick<StreamDecision, 'scope' | 'value'>): string | { skip: SkipReason } {
  const scope = decision.scope.toLowerCase();
  const value = decision.value.trim();
  try {
    if (scope === 'ip') {
      if (value.includes('/')) return { skip: 'invalid_value' };
      return parseCidr(value).text;
    }
    if (scope === 'range') {
      const slash = value.indexOf('/');
      if (slash < 0) return { skip: 'invalid_value' };
      const ip = parseIp(value.slice(0, slash));
      const lenText = value.slice(slash + 1);
      const prefixLen = Number(lenText);
      const bits = ip.family === 4 ? 32 : 128;
      if (!/^\d{1,3}$/.test(lenText) || prefixLen > bits) return { skip: 'invalid_value' };
      const network = new Uint8Array(ip.bytes);
      for (let bit = prefixLen; bit < bits; bit++) network[bit >> 3]! &= ~(0x80 >> (bit & 7));
      return parseCidr(formatCidr(ip.family, network, prefixLen)).text;
    }
  } catch {
    return { skip: 'invalid_value' };
  }
  return { skip: 'unsupported_scope' };
}

/** A new decision as a block to add (ttl rounded up, at most MAX_TTL_SECONDS). */
export function decisionBlock(decision: StreamDecision): DecisionBlock {
  if (decision.type.toLowerCase() !== 'ban') return { skip: 'unsupported_type' };
  const cidr = decisionCidr(decision);
  if (typeof cidr !== 'string') return cidr;
  const ms = parseGoDuration(decision.duration);
  if (ms === undefined || !Number.isFinite(ms)) return { skip: 'invalid_duration' };
  if (ms <= 0) return { skip: 'expired' };
  return { cidr, ttl: Math.min(MAX_TTL_SECONDS, Math.ceil(ms / 1000)) };
}

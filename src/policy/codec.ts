// Policy rules in the store: the canonical rule as JSON text, decoded back
// without re-validating (a rule stored yesterday may have expired today).
import { parseCidr } from '../rules/cidr.js';
import type { PolicyRule, RuleSpec } from './model.js';

export interface PolicyRow {
  id: number;
  hook: string;
  iface: string | null;
  priority: number;
  spec: string;
  created_at: string;
  expires_at: string | null;
}

type StoredSpec = Omit<RuleSpec, 'src' | 'dst'> & { src: string | null; dst: string | null };

export function encodeRuleSpec(spec: RuleSpec): string {
  const stored: StoredSpec = { ...spec, src: spec.src?.text ?? null, dst: spec.dst?.text ?? null };
  return JSON.stringify(stored);
}

export function decodeRuleSpec(row: PolicyRow): PolicyRule {
  const stored = JSON.parse(row.spec) as StoredSpec;
  return {
    ...stored,
    rate: stored.rate ?? null, // rows stored before rate limits have neither
    ban: stored.ban ?? null,
    src: stored.src === null ? null : parseCidr(stored.src),
    dst: stored.dst === null ? null : parseCidr(stored.dst),
    id: row.id,
    createdAt: row.created_at,
  };
}

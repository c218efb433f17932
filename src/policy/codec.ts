// Policy rules in the store: the canonical rule as JSON text, decoded back
// without re-validating (a rule stored yesterday may have expired today).
import { parseCidr } from '../rules/cidr.js';
import { listRef, listRefOf, type PolicyRule, type RuleSpec } from './model.js';

export interface PolicyRow {
  id: number;
  hook: string;
  iface: string | null;
  priority: number;
  spec: string;
  created_at: string;
  expires_at: string | null;
}

/** src and dst as written: a CIDR or "list:NAME". */
type StoredSpec = Omit<RuleSpec, 'src' | 'dst' | 'srcList' | 'dstList'> & { src: string | null; dst: string | null };

export function encodeRuleSpec(spec: RuleSpec): string {
  const { srcList, dstList, ...rest } = spec;
  const stored: StoredSpec = {
    ...rest,
    src: srcList !== null ? listRef(srcList) : (spec.src?.text ?? null),
    dst: dstList !== null ? listRef(dstList) : (spec.dst?.text ?? null),
  };
  return JSON.stringify(stored);
}

const addressOf = (text: string | null) => {
  const list = text === null ? null : listRefOf(text);
  return { cidr: text === null || list !== null ? null : parseCidr(text), list };
};

export function decodeRuleSpec(row: PolicyRow): PolicyRule {
  const stored = JSON.parse(row.spec) as StoredSpec;
  const src = addressOf(stored.src);
  const dst = addressOf(stored.dst);
  return {
    ...stored,
    rate: stored.rate ?? null, // rows stored before rate limits have neither
    ban: stored.ban ?? null,
    src: src.cidr,
    dst: dst.cidr,
    srcList: src.list,
    dstList: dst.list,
    id: row.id,
    createdAt: row.created_at,
  };
}

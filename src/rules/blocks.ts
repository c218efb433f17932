// Block rules: validation, durable storage and enforcement as one step.
// A rule is written to disk and into the kernel inside one SQLite
// transaction; if the kernel refuses it (a full trie, say) nothing is
// committed, so the store and the maps never disagree after a 2xx or a 4xx.
import { parseCidr, parseIp, formatCidr } from './cidr.js';
import { MAX_RULE_ID, type BlockDirection, type BlockRule } from './model.js';
import type { RuleStore } from './store.js';
import { DatapathError, InvalidArgumentError, NotFoundError } from '../errors.js';

/** Puts rules into, and takes them out of, the kernel's maps. */
export interface RuleEnforcer {
  install(rule: BlockRule): void;
  remove(rule: BlockRule): void;
}

export interface BlockInput {
  cidr: string;
  direction?: BlockDirection;
  comment?: string | null;
}

export interface BlockListQuery {
  /** Only rules whose prefix contains this IP address. */
  contains?: string;
  limit?: number;
  offset?: number;
}

export const MAX_COMMENT_LENGTH = 1024;
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

export class BlockService {
  constructor(
    private readonly store: RuleStore,
    private readonly enforcer: RuleEnforcer,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Blocks a CIDR; `created` is false when the same CIDR and direction was already blocked. */
  add(input: BlockInput): { rule: BlockRule; created: boolean } {
    const cidr = parseCidr(input.cidr);
    const direction = input.direction ?? 'src';
    const comment = input.comment ?? null;
    if (comment !== null && comment.length > MAX_COMMENT_LENGTH) {
      throw new InvalidArgumentError(`comment is longer than ${MAX_COMMENT_LENGTH} characters`);
    }
    let installed: BlockRule | undefined;
    try {
      return this.store.transaction(() => {
        const [existing] = this.store.findByCidr(cidr.text, direction);
        if (existing) return { rule: existing, created: false };
        const rule = this.store.insert({ cidr, direction, comment, createdAt: this.now().toISOString() });
        if (rule.id > MAX_RULE_ID) throw new DatapathError(`rule id ${rule.id} does not fit the kernel's 32-bit rule id`);
        this.enforcer.install(rule);
        installed = rule;
        return { rule, created: true };
      });
    } catch (error) {
      // The commit itself failed after the kernel took the rule: take it out again.
      if (installed && !this.store.get(installed.id)) this.enforcer.remove(installed);
      throw error;
    }
  }

  get(id: number): BlockRule {
    const rule = this.store.get(id);
    if (!rule) throw new NotFoundError(`no block with id ${id}`);
    return rule;
  }

  list(query: BlockListQuery = {}): { items: BlockRule[]; total: number } {
    const limit = query.limit ?? DEFAULT_PAGE_SIZE;
    const offset = query.offset ?? 0;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw new InvalidArgumentError(`limit must be an integer from 1 to ${MAX_PAGE_SIZE}`);
    }
    if (!Number.isInteger(offset) || offset < 0) throw new InvalidArgumentError('offset must be a non-negative integer');
    const cidrIn = query.contains === undefined ? undefined : prefixesContaining(query.contains);
    return this.store.list({ cidrIn, limit, offset });
  }

  all(): BlockRule[] {
    return this.store.all();
  }

  removeById(id: number): BlockRule {
    return this.store.transaction(() => {
      const rule = this.get(id);
      this.store.delete(id);
      this.enforcer.remove(rule);
      return rule;
    });
  }

  /** Removes the rules for this CIDR: one direction, or both when none is given. */
  removeByCidr(cidrText: string, direction?: BlockDirection): BlockRule[] {
    const cidr = parseCidr(cidrText);
    return this.store.transaction(() => {
      const rules = this.store.findByCidr(cidr.text, direction);
      if (rules.length === 0) throw new NotFoundError(`no block for ${cidr.text}${direction ? ` (${direction})` : ''}`);
      for (const rule of rules) {
        this.store.delete(rule.id);
        this.enforcer.remove(rule);
      }
      return rules;
    });
  }
}

/**
 * Every canonical prefix that contains `ip`: at most 33 (IPv4) or 129 (IPv6),
 * so "which blocks cover this address" is an indexed IN query, not a scan.
 */
export function prefixesContaining(ipText: string): string[] {
  const ip = parseIp(ipText);
  const bits = ip.family === 4 ? 32 : 128;
  const prefixes: string[] = [];
  for (let len = 0; len <= bits; len++) {
    const network = new Uint8Array(ip.bytes);
    for (let bit = len; bit < bits; bit++) network[bit >> 3]! &= ~(0x80 >> (bit & 7));
    prefixes.push(formatCidr(ip.family, network, len));
  }
  return prefixes;
}

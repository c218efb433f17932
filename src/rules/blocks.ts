// Block rules: validation, durable storage and enforcement as one step.
// A rule is written to disk and into the kernel inside one SQLite
// transaction; if the kernel refuses it (a full trie, say) nothing is
// committed, so the store and the maps never disagree after a 2xx or a 4xx.
// Changes are serialised by a WriteLock, so each sees the previous one done.
import { parseCidr, parseIp, formatCidr, type Cidr } from './cidr.js';
import { MAX_RULE_ID, type BlockDirection, type BlockRule } from './model.js';
import type { RuleStore } from './store.js';
import { WriteLock } from './write-lock.js';
import { DatapathError, InvalidArgumentError, InvalidCidrError, NotFoundError, XdpwallError } from '../errors.js';

/** Puts rules into, and takes them out of, the kernel's maps. */
export interface RuleEnforcer {
  /** All or nothing: on failure none of `rules` is left in the kernel. */
  installMany(rules: readonly BlockRule[]): Promise<void>;
  removeMany(rules: readonly BlockRule[]): Promise<void>;
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
export const MAX_BULK_ITEMS = 2_000_000;

interface ValidBlock {
  cidr: Cidr;
  direction: BlockDirection;
  comment: string | null;
}

function validate(input: BlockInput): ValidBlock {
  const comment = input.comment ?? null;
  if (comment !== null && comment.length > MAX_COMMENT_LENGTH) {
    throw new InvalidArgumentError(`comment is longer than ${MAX_COMMENT_LENGTH} characters`);
  }
  return { cidr: parseCidr(input.cidr), direction: input.direction ?? 'src', comment };
}

function checkRuleId(rule: BlockRule): BlockRule {
  if (rule.id > MAX_RULE_ID) throw new DatapathError(`rule id ${rule.id} does not fit the kernel's 32-bit rule id`);
  return rule;
}

export class BlockService {
  private readonly lock = new WriteLock();

  constructor(
    private readonly store: RuleStore,
    private readonly enforcer: RuleEnforcer,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Blocks a CIDR; `created` is false when the same CIDR and direction was already blocked. */
  async add(input: BlockInput): Promise<{ rule: BlockRule; created: boolean }> {
    const block = validate(input);
    return this.lock.run(async () => {
      let installed: BlockRule | undefined;
      try {
        return await this.store.transactionAsync(async () => {
          const rule = this.store.insertIfAbsent({ ...block, createdAt: this.now().toISOString() });
          if (!rule) return { rule: this.store.findByCidr(block.cidr.text, block.direction)[0]!, created: false };
          await this.enforcer.installMany([checkRuleId(rule)]);
          installed = rule;
          return { rule, created: true };
        });
      } catch (error) {
        // The commit itself failed after the kernel took the rule: take it out again.
        if (installed && !this.store.get(installed.id)) await this.enforcer.removeMany([installed]);
        throw error;
      }
    });
  }

  /**
   * Blocks many CIDRs in one transaction and one kernel batch: all are
   * committed and enforced, or none (the first invalid item fails the lot,
   * named by its index). Items already blocked, or repeated, count as existing.
   */
  async addMany(inputs: readonly BlockInput[]): Promise<{ created: number; existing: number }> {
    if (inputs.length > MAX_BULK_ITEMS) throw new InvalidArgumentError(`at most ${MAX_BULK_ITEMS} items per request`);
    const blocks = inputs.map((input, index) => {
      try {
        return validate(input);
      } catch (error) {
        if (error instanceof XdpwallError) {
          const Type = error instanceof InvalidCidrError ? InvalidCidrError : InvalidArgumentError;
          throw new Type(`items[${index}]: ${error.message}`);
        }
        throw error;
      }
    });
    return this.lock.run(() =>
      this.store.transactionAsync(async () => {
        const createdAt = this.now().toISOString();
        const created: BlockRule[] = [];
        for (const block of blocks) {
          const rule = this.store.insertIfAbsent({ ...block, createdAt });
          if (rule) created.push(checkRuleId(rule));
        }
        await this.enforcer.installMany(created);
        return { created: created.length, existing: blocks.length - created.length };
      }),
    );
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

  async removeById(id: number): Promise<BlockRule> {
    return (await this.remove(() => [this.get(id)]))[0]!;
  }

  /** Removes the rules for this CIDR: one direction, or both when none is given. */
  async removeByCidr(cidrText: string, direction?: BlockDirection): Promise<BlockRule[]> {
    const cidr = parseCidr(cidrText);
    return this.remove(() => {
      const rules = this.store.findByCidr(cidr.text, direction);
      if (rules.length === 0) throw new NotFoundError(`no block for ${cidr.text}${direction ? ` (${direction})` : ''}`);
      return rules;
    });
  }

  /** Deletes the rules `find` names from the store and the kernel, in one transaction. */
  private async remove(find: () => BlockRule[]): Promise<BlockRule[]> {
    return this.lock.run(async () => {
      let removed: BlockRule[] = [];
      try {
        return await this.store.transactionAsync(async () => {
          const rules = find();
          for (const rule of rules) this.store.delete(rule.id);
          await this.enforcer.removeMany(rules);
          removed = rules;
          return rules;
        });
      } catch (error) {
        // The commit failed after the kernel let the rules go: put them back.
        if (removed.length > 0 && this.store.get(removed[0]!.id)) await this.enforcer.installMany(removed);
        throw error;
      }
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

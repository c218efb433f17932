// ttl/expiresAt and dryRun on blocks. The block itself goes through the
// block service unchanged; what it carries besides (an expiry, dry-run) is
// stored by the block's unique key (cidr, direction) and written into the
// kernel's xw_block_meta under the block's id before the block's prefix is,
// so a dry-run block never drops and an expiring one stops matching on time
// even with the daemon down (the data plane checks the expiry itself).
// Blocking an existing CIDR again keeps the later expiry (a permanent block
// stays permanent), takes the new dryRun, and answers 200.
import type { BpfMap } from '@xdpwall/addon';
import { encodeRuleId, Layout, RuleFlags } from '../datapath/abi.js';
import type { BlockInput, BlockService, RuleEnforcer } from '../rules/blocks.js';
import type { BlockRule } from '../rules/model.js';
import type { RuleStore } from '../rules/store.js';
import { parseCidr } from '../rules/cidr.js';
import { WriteLock } from '../rules/write-lock.js';
import { InvalidArgumentError, collectFailures } from '../errors.js';
import { MAX_TTL_SECONDS } from './model.js';

export interface BlockExtras {
  ttl?: number | null;
  expiresAt?: string | null;
  dryRun?: boolean;
}

export interface BlockMeta {
  expiresAt: string | null;
  dryRun: boolean;
}

const NONE: BlockMeta = { expiresAt: null, dryRun: false };
const keyOf = (cidr: string, direction: string) => `${direction}|${cidr}`;
const trivial = (meta: BlockMeta) => meta.expiresAt === null && !meta.dryRun;

/** The later of two expiries; null (never) is the latest. */
const later = (a: string | null, b: string | null): string | null => (a === null || b === null ? null : Date.parse(a) >= Date.parse(b) ? a : b);

export class BlockMetaService {
  private readonly byKey = new Map<string, BlockMeta>();
  private readonly lock = new WriteLock();

  constructor(
    private readonly store: RuleStore,
    private readonly kernel: BpfMap,
    private readonly expiresNs: (expiresAt: string | null) => bigint,
    private readonly now: () => Date,
  ) {
    for (const row of store.allBlockMeta()) {
      this.byKey.set(keyOf(row.cidr, row.direction), { expiresAt: row.expires_at, dryRun: row.dry_run === 1 });
    }
  }

  meta(rule: Pick<BlockRule, 'cidr' | 'direction'>): BlockMeta {
    return this.byKey.get(keyOf(rule.cidr, rule.direction)) ?? NONE;
  }

  private encode(meta: BlockMeta): Buffer {
    const value = Buffer.alloc(Layout.blockMeta.size);
    value.writeBigUInt64LE(this.expiresNs(meta.expiresAt), Layout.blockMeta.expiresNs);
    value.writeUInt8(meta.dryRun ? RuleFlags.dryRun : 0, Layout.blockMeta.flags);
    return value;
  }

  private write(rule: BlockRule): void {
    const meta = this.meta(rule);
    if (trivial(meta)) this.kernel.delete(encodeRuleId(rule.id));
    else this.kernel.update(encodeRuleId(rule.id), this.encode(meta));
  }

  /** Start-up: the kernel holds exactly the stored blocks' extras (before their prefixes go in). */
  async restore(blocks: readonly BlockRule[]): Promise<void> {
    const wanted = new Set<number>();
    for (const rule of blocks) {
      if (trivial(this.meta(rule))) continue;
      this.write(rule);
      wanted.add(rule.id);
    }
    const { keys, count } = await this.kernel.lookupAll();
    for (let i = 0; i < count; i++) {
      const key = keys.subarray(i * 4, (i + 1) * 4);
      if (!wanted.has(key.readUInt32LE(0))) this.kernel.delete(Buffer.from(key));
    }
  }

  /** Wraps the block enforcer: extras go into the kernel before a block, and leave after it. */
  enforcer(inner: RuleEnforcer): RuleEnforcer {
    return {
      installMany: async (rules) => {
        const extras = rules.filter((r) => !trivial(this.meta(r)));
        for (const rule of extras) this.write(rule);
        try {
          await inner.installMany(rules);
        } catch (error) {
          for (const rule of extras) this.kernel.delete(encodeRuleId(rule.id));
          throw error;
        }
      },
      removeMany: async (rules) => {
        await inner.removeMany(rules);
        for (const rule of rules) if (!trivial(this.meta(rule))) this.kernel.delete(encodeRuleId(rule.id));
      },
    };
  }

  /** Validates ttl/expiresAt/dryRun of a block request. */
  parse(extras: BlockExtras): BlockMeta {
    const { ttl, expiresAt } = extras;
    if (ttl != null && expiresAt != null) throw new InvalidArgumentError('ttl: give ttl or expiresAt, not both');
    let at: string | null = null;
    if (ttl != null) {
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) throw new InvalidArgumentError(`ttl: whole seconds 1..${MAX_TTL_SECONDS}`);
      at = new Date(this.now().getTime() + ttl * 1000).toISOString();
    } else if (expiresAt != null) {
      const ms = Date.parse(expiresAt);
      if (!/^\d{4}-\d\d-\d\dT/.test(expiresAt) || Number.isNaN(ms)) throw new InvalidArgumentError('expiresAt: an ISO 8601 date and time');
      if (ms <= this.now().getTime()) throw new InvalidArgumentError('expiresAt: is not in the future');
      at = new Date(ms).toISOString();
    }
    return { expiresAt: at, dryRun: extras.dryRun ?? false };
  }

  /**
   * Blocks a CIDR with extras. A new block: its extras are stored first, then
   * the block service stores and enforces it (and the wrapped enforcer puts
   * the extras in the kernel ahead of it). An existing block: its extras are
   * merged (later expiry, new dryRun) and updated in place.
   */
  async add(blocks: BlockService, input: BlockInput & BlockExtras): Promise<{ rule: BlockRule; created: boolean }> {
    const requested = this.parse(input);
    const { ttl: _t, expiresAt: _e, dryRun: _d, ...blockInput } = input;
    const cidr = parseCidr(input.cidr).text;
    const direction = input.direction ?? 'src';
    const key = keyOf(cidr, direction);
    return this.lock.run(async () => {
      const existing = this.findBlock(cidr, direction);
      if (!existing) {
        const previous = this.byKey.get(key);
        await this.setStored(cidr, direction, requested);
        try {
          return await blocks.add(blockInput);
        } catch (error) {
          await collectFailures([() => this.setStored(cidr, direction, previous ?? NONE)]);
          throw error;
        }
      }
      const current = this.meta(existing);
      const merged: BlockMeta = { expiresAt: later(current.expiresAt, requested.expiresAt), dryRun: requested.dryRun };
      await this.setStored(cidr, direction, merged);
      this.write(existing);
      return { rule: existing, created: false };
    });
  }

  private findBlock(cidr: string, direction: string): BlockRule | undefined {
    return this.store.findByCidr(cidr, direction as BlockRule['direction'])[0];
  }

  private async setStored(cidr: string, direction: string, meta: BlockMeta): Promise<void> {
    await this.store.transaction('cannot store the block\'s ttl and dryRun', () => {
      if (trivial(meta)) this.store.deleteBlockMeta(cidr, direction);
      else this.store.setBlockMeta(cidr, direction, meta.expiresAt, meta.dryRun);
    });
    if (trivial(meta)) this.byKey.delete(keyOf(cidr, direction));
    else this.byKey.set(keyOf(cidr, direction), meta);
  }

  /** Removes blocks whose expiry passed (the kernel already stopped matching them); their count. */
  async sweepExpired(blocks: BlockService): Promise<number> {
    const now = this.now().getTime();
    let removed = 0;
    for (const [key, meta] of [...this.byKey]) {
      if (meta.expiresAt === null || Date.parse(meta.expiresAt) > now) continue;
      const [direction, cidr] = key.split('|') as [BlockRule['direction'], string];
      if (this.findBlock(cidr, direction)) {
        await blocks.removeByCidr(cidr, direction);
        removed++;
      }
      await this.lock.run(() => this.setStored(cidr, direction, NONE));
    }
    return removed;
  }
}

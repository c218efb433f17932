// ttl/expiresAt and dryRun on blocks. The block itself goes through the
// block service unchanged; what it carries besides (an expiry, dry-run) is
// stored by the block's unique key (cidr, direction) and written into the
// kernel's xw_block_meta under the block's id before the block's prefix is,
// so a dry-run block never drops and an expiring one stops matching on time
// even with the daemon down (the data plane checks the expiry itself).
// Blocking an existing CIDR again keeps the later expiry (a permanent block
// stays permanent), takes the new dryRun, and answers 200.
// A block also has an origin: who made it ("api", or an integration such as
// "crowdsec" or "fail2ban"). It has one owner: the origin whose request
// expires last (a tie keeps the first), so an integration removes only
// blocks it still owns, never an operator's longer or permanent one.
// The data plane asks xw_block_meta only while XW_FEATURE_BLOCK_META is set
// in xw_config: this service sets it before the first entry is written and
// clears it after the last one is deleted, so a plain blocklist pays no
// lookup per denied packet.
import type { BpfMap } from '@xdpwall/addon';
import { encodeRuleId, Feature, Layout, RuleFlags } from '../datapath/abi.js';
import type { BlockInput, BlockService, RuleEnforcer } from '../rules/blocks.js';
import type { BlockBatch } from '../rules/block-batch.js';
import type { BlockRule } from '../rules/model.js';
import type { RuleStore } from '../rules/store.js';
import { parseCidr } from '../rules/cidr.js';
import { WriteLock } from '../rules/write-lock.js';
import { CapacityError, InvalidArgumentError, collectFailures } from '../errors.js';
import { TimeSlicer } from '../event-loop.js';
import { MAX_TTL_SECONDS } from './model.js';

/** The origin of blocks made through the API (stored as NULL). */
export const API_ORIGIN = 'api';
/** What an origin may be: a short lower-case name. */
export const ORIGIN_PATTERN = '^[a-z][a-z0-9_-]{0,31}$';
const ORIGIN_RE = new RegExp(ORIGIN_PATTERN);

export interface BlockExtras {
  ttl?: number | null;
  expiresAt?: string | null;
  dryRun?: boolean;
  /** Who makes the block; default "api". */
  origin?: string | null;
}

export interface BlockMeta {
  expiresAt: string | null;
  dryRun: boolean;
  /** null: the API. */
  origin: string | null;
}

/**
 * What one request asks for. `dryRun` undefined keeps an existing block's
 * (false for a new one): integrations' bulk adds never flip an operator's dry run.
 */
export type RequestedMeta = Omit<BlockMeta, 'dryRun'> & { dryRun: boolean | undefined };

export interface AddManyOptions {
  /** An item without dryRun keeps an existing block's (integrations); otherwise it means false, as in POST /v1/blocks. */
  keepDryRun?: boolean;
}

const NONE: BlockMeta = { expiresAt: null, dryRun: false, origin: null };
const keyOf = (cidr: string, direction: string) => `${direction}|${cidr}`;
/** Nothing to store. */
const trivial = (meta: BlockMeta) => meta.expiresAt === null && !meta.dryRun && meta.origin === null;
/** Nothing for the kernel (the origin is the control plane's alone). */
const kernelTrivial = (meta: BlockMeta) => meta.expiresAt === null && !meta.dryRun;

/** Whether `a` outlasts `b` (null never expires); a tie is not. */
const outlasts = (a: string | null, b: string | null): boolean => b !== null && (a === null || Date.parse(a) > Date.parse(b));

/** `current` re-requested as `requested`: the later expiry, the new dryRun (if given), the owner whose expiry is later. */
function merge(current: BlockMeta, requested: RequestedMeta): BlockMeta;
function merge(current: RequestedMeta, requested: RequestedMeta): RequestedMeta;
function merge(current: RequestedMeta, requested: RequestedMeta): RequestedMeta {
  const dryRun = requested.dryRun ?? current.dryRun;
  return outlasts(requested.expiresAt, current.expiresAt)
    ? { expiresAt: requested.expiresAt, dryRun, origin: requested.origin }
    : { expiresAt: current.expiresAt, dryRun, origin: current.origin };
}

/** A new block's extras as requested. */
const fresh = (requested: RequestedMeta): BlockMeta => ({ ...requested, dryRun: requested.dryRun ?? false });

export function normaliseOrigin(origin: string | null | undefined): string | null {
  if (origin == null || origin === API_ORIGIN) return null;
  if (!ORIGIN_RE.test(origin)) throw new InvalidArgumentError(`origin: a lower-case name matching ${ORIGIN_PATTERN}`);
  return origin;
}

/** A block request with its extras: what BlockMetaService.addMany takes. */
export type BlockWithExtras = BlockInput & BlockExtras;


export class BlockMetaService {
  private readonly byKey = new Map<string, BlockMeta>();
  private readonly lock = new WriteLock();
  /** Entries of byKey the kernel holds (an expiry or dry run): bounded by xw_block_meta's size. */
  private kernelEntries = 0;
  /** Rule ids this service has written to xw_block_meta: the gate is open while there are any. */
  private readonly written = new Set<number>();

  /**
   * Store a large plain bulk import on the worker while its body is still
   * read (BlockService.addMany's staging). Off by default: on the 2-core VM
   * it cut a 1M import from 11.3 to 6.7 s but raised /healthz p99 during a
   * mixed 1M import from 22 to 67 ms (parsing and storing then compete for
   * the cores with the event loop), past the 50 ms the API promises.
   */
  stageBulkImports = false;

  constructor(
    private readonly store: RuleStore,
    private readonly kernel: BpfMap,
    /** xw_config, whose features word carries the gate (Feature.blockMeta). */
    private readonly config: BpfMap,
    private readonly expiresNs: (expiresAt: string | null) => bigint,
    private readonly now: () => Date,
  ) {
    for (const row of store.allBlockMeta()) {
      this.setMeta(keyOf(row.cidr, row.direction), { expiresAt: row.expires_at, dryRun: row.dry_run === 1, origin: row.origin });
    }
  }

  /** The one place byKey changes (NONE removes), keeping kernelEntries. */
  private setMeta(key: string, meta: BlockMeta): void {
    const before = this.byKey.get(key);
    if (before !== undefined && !kernelTrivial(before)) this.kernelEntries--;
    if (trivial(meta)) {
      this.byKey.delete(key);
      return;
    }
    this.byKey.set(key, meta);
    if (!kernelTrivial(meta)) this.kernelEntries++;
  }

  /**
   * Refuses (507 CAPACITY_EXCEEDED, before anything is stored) a change after
   * which more blocks would need an entry in xw_block_meta than it holds.
   */
  private checkCapacity(changes: Iterable<{ key: string; meta: BlockMeta }>): void {
    let entries = this.kernelEntries;
    for (const { key, meta } of changes) {
      const before = this.byKey.get(key);
      if (before !== undefined && !kernelTrivial(before)) entries--;
      if (!kernelTrivial(meta)) entries++;
    }
    if (entries > this.kernel.maxEntries) {
      throw new CapacityError(
        `${entries} blocks with a ttl or dry run would exceed the kernel's ${this.kernel.maxEntries} (capacity.timedBlocks); nothing was stored`,
      );
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

  /** The block's origin ("api" when none is stored). */
  origin(rule: Pick<BlockRule, 'cidr' | 'direction'>): string {
    return this.meta(rule).origin ?? API_ORIGIN;
  }

  /** The (cidr, direction) and expiry of every block this origin owns. */
  ownedBy(origin: string): Array<{ cidr: string; direction: BlockRule['direction']; expiresAt: string | null }> {
    const owned: Array<{ cidr: string; direction: BlockRule['direction']; expiresAt: string | null }> = [];
    for (const [key, meta] of this.byKey) {
      if (meta.origin !== origin) continue;
      const [direction, cidr] = key.split('|') as [BlockRule['direction'], string];
      owned.push({ cidr, direction, expiresAt: meta.expiresAt });
    }
    return owned;
  }

  private write(rule: BlockRule): void {
    const meta = this.meta(rule);
    if (kernelTrivial(meta)) {
      this.unwrite(rule.id);
      return;
    }
    // Open before the entry exists: a packet never misses an entry the kernel holds.
    if (this.written.size === 0) this.setGate(true);
    this.kernel.update(encodeRuleId(rule.id), this.encode(meta));
    this.written.add(rule.id);
  }

  /** Deletes the rule's entry; closes the gate after the last one went. */
  private unwrite(id: number): void {
    this.kernel.delete(encodeRuleId(id));
    this.written.delete(id);
    if (this.written.size === 0) this.setGate(false);
  }

  /** Sets or clears Feature.blockMeta in xw_config, leaving the other stages' bits. */
  private setGate(on: boolean): void {
    const key = Buffer.alloc(4);
    const value = this.config.lookup(key) ?? Buffer.alloc(Layout.config.size);
    const features = value.readUInt32LE(Layout.config.features);
    const next = (on ? features | Feature.blockMeta : features & ~Feature.blockMeta) >>> 0;
    if (next === features) return;
    value.writeUInt32LE(next, Layout.config.features);
    this.config.update(key, value);
  }

  /** Start-up: the kernel holds exactly the stored blocks' extras (before their prefixes go in). */
  async restore(blocks: readonly BlockRule[]): Promise<void> {
    const wanted = new Set<number>();
    for (const rule of blocks) {
      if (kernelTrivial(this.meta(rule))) continue;
      this.write(rule);
      wanted.add(rule.id);
    }
    const { keys, count } = await this.kernel.lookupAll();
    for (let i = 0; i < count; i++) {
      const key = keys.subarray(i * 4, (i + 1) * 4);
      if (!wanted.has(key.readUInt32LE(0))) this.kernel.delete(Buffer.from(key));
    }
    this.setGate(this.written.size > 0);
  }

  /** Wraps the block enforcer: extras go into the kernel before a block, and leave after it. */
  enforcer(inner: RuleEnforcer): RuleEnforcer {
    return {
      installMany: async (rules) => {
        // No block has extras (a plain import): nothing to look up per rule.
        const extras = this.byKey.size === 0 ? [] : rules.filter((r) => !kernelTrivial(this.meta(r)));
        for (const rule of extras) this.write(rule);
        try {
          await inner.installMany(rules);
        } catch (error) {
          for (const rule of extras) this.unwrite(rule.id);
          throw error;
        }
      },
      removeMany: async (rules) => {
        await inner.removeMany(rules);
        const extras = rules.filter((rule) => !trivial(this.meta(rule)));
        for (const rule of extras) if (!kernelTrivial(this.meta(rule))) this.unwrite(rule.id);
        // The extras go with the block: blocking it again (even in bulk) starts afresh.
        if (extras.length > 0) {
          await this.store.transaction('cannot delete the block\'s ttl, dryRun and origin', () => {
            for (const { cidr, direction } of extras) this.store.deleteBlockMeta(cidr, direction);
          });
          for (const { cidr, direction } of extras) this.setMeta(keyOf(cidr, direction), NONE);
        }
      },
    };
  }

  /** Validates ttl/expiresAt/dryRun of a block request (a missing dryRun is false). */
  parse(extras: BlockExtras): BlockMeta {
    return fresh(this.request(extras));
  }

  /** Validates ttl/expiresAt/dryRun/origin; `keepDryRun`: a missing dryRun stays undefined. */
  private request(extras: BlockExtras, keepDryRun = false): RequestedMeta {
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
    return { expiresAt: at, dryRun: extras.dryRun ?? (keepDryRun ? undefined : false), origin: normaliseOrigin(extras.origin) };
  }

  /**
   * Blocks a CIDR with extras. A new block: its extras are stored first, then
   * the block service stores and enforces it (and the wrapped enforcer puts
   * the extras in the kernel ahead of it). An existing block: its extras are
   * merged (later expiry, new dryRun) and updated in place.
   */
  async add(blocks: BlockService, input: BlockInput & BlockExtras): Promise<{ rule: BlockRule; created: boolean }> {
    const requested = this.parse(input);
    const { ttl: _t, expiresAt: _e, dryRun: _d, origin: _o, ...blockInput } = input;
    const cidr = parseCidr(input.cidr).text;
    const direction = input.direction ?? 'src';
    const key = keyOf(cidr, direction);
    return this.lock.run(async () => {
      const existing = this.findBlock(cidr, direction);
      if (!existing) {
        const previous = this.byKey.get(key);
        this.checkCapacity([{ key, meta: requested }]);
        await this.setStored(cidr, direction, requested);
        try {
          return await blocks.add(blockInput);
        } catch (error) {
          await collectFailures([() => this.setStored(cidr, direction, previous ?? NONE)]);
          throw error;
        }
      }
      const merged = merge(this.meta(existing), requested);
      this.checkCapacity([{ key, meta: merged }]);
      await this.setStored(cidr, direction, merged);
      this.write(existing);
      return { rule: existing, created: false };
    });
  }

  /**
   * Blocks many CIDRs with extras (ttl/expiresAt, dryRun, origin) through the
   * bulk path: items may arrive in chunks as a body is read, and their
   * extras are validated as they come (the first invalid item fails the lot,
   * named by its index, as BlockService.addMany names a bad CIDR). Once all
   * are read, the extras of every item that has some (or that re-blocks a
   * block that has some) are merged as add() merges them, checked against
   * capacity.timedBlocks and stored in one transaction; BlockService then
   * stores and enforces the blocks (the wrapped enforcer puts new blocks'
   * extras in the kernel ahead of them), and existing blocks' extras are
   * rewritten. On failure the extras are put back as they were and nothing
   * is blocked.
   */
  async addMany(
    blocks: BlockService,
    items: Iterable<BlockWithExtras> | AsyncIterable<readonly BlockWithExtras[]>,
    options: AddManyOptions = {},
  ): Promise<{ created: number; existing: number }> {
    /** Requested extras by item index: only items that carry some. */
    const requested = new Map<number, RequestedMeta>();
    const plain: RequestedMeta = { expiresAt: null, dryRun: options.keepDryRun ? undefined : false, origin: null };
    const self = this;
    async function* stripped(): AsyncGenerator<BlockInput[]> {
      let index = 0;
      const chunks = Symbol.asyncIterator in items ? items : [[...items]];
      for await (const chunk of chunks) {
        const inputs: BlockInput[] = [];
        for (const item of chunk) {
          const { ttl, expiresAt, dryRun, origin } = item;
          // An item without extras goes on as it is (the block service reads only cidr, direction and comment): no copy per item.
          let input: BlockInput = item;
          if (ttl != null || expiresAt != null || dryRun !== undefined || origin != null) {
            const { ttl: _t, expiresAt: _e, dryRun: _d, origin: _o, ...rest } = item;
            input = rest;
            let meta: RequestedMeta;
            try {
              meta = self.request({ ttl, expiresAt, dryRun, origin }, options.keepDryRun);
            } catch (error) {
              // The items before it are validated first: the first invalid item is the one named.
              if (inputs.length > 0) yield inputs;
              throw error instanceof InvalidArgumentError ? new InvalidArgumentError(`items[${index}]: ${error.message}`) : error;
            }
            requested.set(index, meta);
          }
          inputs.push(input);
          index++;
        }
        yield inputs;
      }
    }
    return blocks.addMany(stripped(), (batch, apply) => this.lock.run(async () => {
      const wanted = await this.wantedExtras(batch, requested, plain);
      const slicer = new TimeSlicer();
      const previous = new Map<string, BlockMeta | undefined>();
      const existing: BlockRule[] = [];
      let n = 0;
      for (const [key, entry] of wanted) {
        if ((++n & 255) === 0 && slicer.due) await slicer.next();
        const rule = this.findBlock(entry.cidr, entry.direction);
        previous.set(key, this.byKey.get(key));
        if (rule) existing.push(rule);
        entry.meta = rule ? merge(this.meta(rule), entry.request) : fresh(entry.request);
      }
      this.checkCapacity([...wanted].map(([key, { meta }]) => ({ key, meta: meta! })));
      const entries = [...wanted.values()].map(({ cidr, direction, meta }) => ({ cidr, direction, meta: meta! }));
      await this.setStoredMany(entries);
      try {
        const created = await apply();
        for (const rule of existing) this.write(rule);
        return created;
      } catch (error) {
        await collectFailures([
          () => this.setStoredMany(entries.map(({ cidr, direction }) => ({ cidr, direction, meta: previous.get(keyOf(cidr, direction)) ?? NONE }))),
        ]);
        throw error;
      }
    }), this.stageBulkImports ? {
      // Stored while the body is read only when there are no extras to merge: none asked for, none stored.
      allowed: () => requested.size === 0 && this.byKey.size === 0,
      hold: (work) => this.lock.run(work),
    } : undefined);
  }

  /**
   * The merged request of each (cidr, direction) in the batch whose extras
   * may change: one an item asks extras for, or one that has extras now (an
   * item without any makes it permanent, as POST /v1/blocks does). Items
   * without extras on keys without any, the bulk of a large import, cost
   * two lookups each, or nothing when no key has extras.
   */
  private async wantedExtras(
    batch: BlockBatch,
    requested: ReadonlyMap<number, RequestedMeta>,
    plain: RequestedMeta,
  ): Promise<Map<string, { cidr: string; direction: BlockRule['direction']; request: RequestedMeta; meta?: BlockMeta }>> {
    const wanted = new Map<string, { cidr: string; direction: BlockRule['direction']; request: RequestedMeta; meta?: BlockMeta }>();
    const add = (i: number, request: RequestedMeta) => {
      const cidr = batch.cidr(i).text;
      const direction = batch.direction(i);
      const key = keyOf(cidr, direction);
      const seen = wanted.get(key);
      wanted.set(key, { cidr, direction, request: seen ? merge(seen.request, request) : request });
    };
    const keys = new Set<string>();
    for (const i of requested.keys()) keys.add(keyOf(batch.cidr(i).text, batch.direction(i)));
    if (keys.size === 0 && this.byKey.size === 0) return wanted;
    const slicer = new TimeSlicer();
    for (let i = 0; i < batch.count; i++) {
      if ((i & 1023) === 0 && slicer.due) await slicer.next();
      const request = requested.get(i);
      if (request) add(i, request);
      else {
        // A plain item re-blocking a key that has (or gets) extras counts, in its place.
        const key = keyOf(batch.cidr(i).text, batch.direction(i));
        if (keys.has(key) || this.byKey.has(key)) add(i, plain);
      }
    }
    return wanted;
  }

  private async setStoredMany(entries: ReadonlyArray<{ cidr: string; direction: string; meta: BlockMeta }>): Promise<void> {
    await this.store.transaction('cannot store the blocks\' ttl and origin', async () => {
      const slicer = new TimeSlicer();
      let n = 0;
      for (const { cidr, direction, meta } of entries) {
        if ((++n & 255) === 0 && slicer.due) await slicer.next();
        if (trivial(meta)) this.store.deleteBlockMeta(cidr, direction);
        else this.store.setBlockMeta(cidr, direction, meta.expiresAt, meta.dryRun, meta.origin);
      }
    });
    for (const { cidr, direction, meta } of entries) this.setMeta(keyOf(cidr, direction), meta);
  }

  private findBlock(cidr: string, direction: string): BlockRule | undefined {
    return this.store.findByCidr(cidr, direction as BlockRule['direction'])[0];
  }

  private async setStored(cidr: string, direction: string, meta: BlockMeta): Promise<void> {
    await this.store.transaction('cannot store the block\'s ttl and dryRun', () => {
      if (trivial(meta)) this.store.deleteBlockMeta(cidr, direction);
      else this.store.setBlockMeta(cidr, direction, meta.expiresAt, meta.dryRun, meta.origin);
    });
    this.setMeta(keyOf(cidr, direction), meta);
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

// Block rules: validation, durable storage and enforcement as one step.
//
// The store is the truth and the kernel is derived from it (every start
// re-derives it). Each change is ordered so that no SQLite transaction is
// open while the kernel works, and so that a failure at any step is undone:
//   add:    rows written and committed -> rules installed in the kernel;
//           if the kernel refuses, the rows are deleted again.
//   remove: rules taken out of the kernel -> rows deleted and committed;
//           if the delete fails, the rules go back into the kernel.
// A crash between the steps leaves the stored state, which the next start
// enforces: a bulk import is then there whole or not at all. If an undo
// fails as well, the original error is the one reported (with the undo's
// failure appended and logged), and the rules stay stored rather than
// enforced but unlisted. Changes are serialised by a WriteLock, and long
// loops yield to the event loop (see event-loop.ts).
import { parseCidr, parseIp, formatCidr, type Cidr } from './cidr.js';
import { MAX_RULE_ID, type BlockDirection, type BlockRule } from './model.js';
import type { RuleStore, StoreBulkInsert } from './store.js';
import { WriteLock } from './write-lock.js';
import { BlockBatch, type ValidBlock } from './block-batch.js';
import { BulkAbortedError, BulkCapacityError, BulkRuleIdError } from './bulk-writer.js';
import { TimeSlicer } from '../event-loop.js';
import {
  BusyError, CapacityError, DatapathError, InvalidArgumentError, InvalidCidrError, NotFoundError, TooBroadError, XdpwallError,
  collectFailures, undoFailuresOf, withUndoFailures,
} from '../errors.js';

/** Puts rules into, and takes them out of, the kernel's maps. */
export interface RuleEnforcer {
  /** All or nothing: on failure none of `rules` is left in the kernel. */
  installMany(rules: readonly BlockRule[]): Promise<void>;
  /** All or nothing: on failure all of `rules` are still in the kernel. */
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
  /** Only blocks of this origin (stored in block_meta; null: the API's). */
  origin?: string | null;
  limit?: number;
  offset?: number;
}

export interface BlockServiceOptions {
  now?: () => Date;
  /** Rules per address family, both directions together (capacity.cidrV4 / cidrV6). */
  limits?: Record<4 | 6, number>;
  /** Stored rules per family when the caller already counted them (start-up); read from the store otherwise. */
  counts?: Record<4 | 6, number>;
  /** Where failed undos are reported. */
  log?: { error(details: object, message: string): void };
  /** Refuses a CIDR before anything is stored (the failsafe list: FAILSAFE_CONFLICT). */
  check?: (cidr: Cidr) => void;
}

export const MAX_COMMENT_LENGTH = 1024;
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
export const MAX_BULK_ITEMS = 2_000_000;
/**
 * Rules per installMany call, for every change (applyPipelined included): bounds the synchronous
 * packing work between kernel batches, and is the unit a failed change is undone in.
 */
export const KERNEL_CHUNK = 4096;
/** Batches this large are stored on a worker thread (bulk-writer.ts): their COMMIT alone would block for long. */
export const WORKER_BATCH = 16_384;

/**
 * Runs a validated bulk batch's change (`apply`, which stores and enforces
 * it and returns how many rules it created) with work of the caller's
 * around it: block-meta.ts stores the items' ttl and dryRun first.
 */
export type BulkApply = (batch: BlockBatch, apply: () => Promise<number>) => Promise<number>;

/**
 * Lets a large bulk import store its items on the worker while the rest of
 * its body is still being read and checked (BlockService.addMany), when
 * nothing but the blocks themselves is to be stored.
 */
export interface BulkStaging {
  /** True while the import needs no work of the caller's (`around`: no ttl, dryRun or origin); asked as items arrive. */
  allowed(): boolean;
  /** Runs `work` under the lock(s) `around` takes, so the staged import is ordered with the caller's other changes. */
  hold<T>(work: () => Promise<T>): Promise<T>;
}

/**
 * A staged import gives the write lock back (and continues as an unstaged
 * one, stored once its body is read) when its body stalls this long: a slow
 * client must not keep every other writer waiting.
 */
export const STAGE_WAIT_MS = 500;
/** Rows per part sent to a staged import's worker. */
const STAGE_PART = 4096;

/** A bulk import being stored while its body is read; see BlockService.addMany. */
interface Stage {
  insert: StoreBulkInsert;
  rows: CreatedRows;
  abort: Int32Array;
  createdAt: string;
  /** Rows of the batch sent to the worker. */
  fed: number;
  /** Gives the locks back (once). */
  release(): void;
}

/** Rows a worker has created so far (batch index and id), growing as it reports them. */
class CreatedRows {
  index: Uint32Array;
  ids: Float64Array;
  count = 0;
  /** Called when rows arrive or the insert settles. */
  wake: (() => void) | null = null;

  constructor(capacity = 1 << 16) {
    this.index = new Uint32Array(capacity);
    this.ids = new Float64Array(capacity);
  }

  add(index: Uint32Array, ids: Float64Array): void {
    if (this.count + index.length > this.index.length) {
      const size = Math.max(this.index.length * 2, this.count + index.length);
      const grownIndex = new Uint32Array(size);
      grownIndex.set(this.index.subarray(0, this.count));
      const grownIds = new Float64Array(size);
      grownIds.set(this.ids.subarray(0, this.count));
      this.index = grownIndex;
      this.ids = grownIds;
    }
    this.index.set(index, this.count);
    this.ids.set(ids, this.count);
    this.count += index.length;
    this.wake?.();
  }

  view(): Created {
    return { index: this.index.subarray(0, this.count), ids: this.ids.subarray(0, this.count), perFamily: { 4: 0, 6: 0 } };
  }
}

/** Ids of the rules one change created, in the order of its batch. */
interface Created {
  /** Index in the batch of each created rule. */
  index: Uint32Array;
  ids: Float64Array;
  perFamily: Record<4 | 6, number>;
}

function validate(input: BlockInput): ValidBlock {
  const comment = input.comment ?? null;
  if (comment !== null && comment.length > MAX_COMMENT_LENGTH) {
    throw new InvalidArgumentError(`comment is longer than ${MAX_COMMENT_LENGTH} characters`);
  }
  const cidr = parseCidr(input.cidr);
  if (cidr.prefixLen === 0) {
    throw new TooBroadError(`${cidr.text} blocks everything: set the default policy to drop instead (PUT /v1/policy)`);
  }
  return { cidr, direction: input.direction ?? 'src', comment };
}

/** validate(), with the item's index in the message. */
export function validateItem(input: BlockInput, index: number): ValidBlock {
  try {
    return validate(input);
  } catch (error) {
    if (error instanceof XdpwallError) {
      if (error instanceof TooBroadError) throw new TooBroadError(`items[${index}]: ${error.message}`);
      const Type = error instanceof InvalidCidrError ? InvalidCidrError : InvalidArgumentError;
      throw new Type(`items[${index}]: ${error.message}`);
    }
    throw error;
  }
}

const plural = (n: number): string => `${n} rule${n === 1 ? '' : 's'}`;

export class BlockService {
  private readonly lock = new WriteLock();
  private readonly now: () => Date;
  private readonly limits: Record<4 | 6, number>;
  private readonly log: BlockServiceOptions['log'];
  private readonly check: BlockServiceOptions['check'];
  private readonly counts: Record<4 | 6, number>;
  private bulkRunning = false;

  constructor(
    private readonly store: RuleStore,
    private readonly enforcer: RuleEnforcer,
    options: BlockServiceOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.limits = options.limits ?? { 4: Infinity, 6: Infinity };
    this.log = options.log;
    this.check = options.check;
    this.counts = options.counts ? { ...options.counts } : store.countByFamily();
  }

  /** Stored rules per address family and the configured limit (capacity.cidrV4 / cidrV6). */
  usage(): Record<4 | 6, { count: number; limit: number }> {
    return { 4: { count: this.counts[4], limit: this.limits[4] }, 6: { count: this.counts[6], limit: this.limits[6] } };
  }

  /** Blocks a CIDR; `created` is false when the same CIDR and direction was already blocked. */
  async add(input: BlockInput): Promise<{ rule: BlockRule; created: boolean }> {
    const block = validate(input);
    this.check?.(block.cidr);
    const batch = new BlockBatch();
    batch.push(block);
    return this.lock.run(async () => {
      const { rules } = await this.apply(batch);
      if (rules[0]) return { rule: rules[0], created: true };
      return { rule: this.store.findByCidr(block.cidr.text, block.direction)[0]!, created: false };
    });
  }

  /**
   * Blocks many CIDRs: all are committed and enforced, or none (the first
   * invalid item fails the lot, named by its index). Items already blocked,
   * or repeated, count as existing. `items` may arrive in chunks as a body
   * is read; one import runs at a time, a second gets BUSY at once (before
   * its body is read).
   *
   * With `staging`, a chunked import of at least WORKER_BATCH items that
   * `staging` allows takes the locks and starts storing its items on the
   * worker while the rest of the body is read (parsing and storing overlap;
   * they took about as long each). Nothing is committed or enforced before
   * the last item is read and every item has passed its checks; a failure
   * rolls the worker back. The locks go back if the body stalls for
   * STAGE_WAIT_MS or `staging` stops allowing it, and the import continues
   * unstaged.
   */
  async addMany(
    items: Iterable<BlockInput> | AsyncIterable<readonly BlockInput[]>,
    around?: BulkApply,
    staging?: BulkStaging,
  ): Promise<{ created: number; existing: number }> {
    if (this.bulkRunning) throw new BusyError('another bulk import is running; retry when it has finished');
    this.bulkRunning = true;
    let stage: Stage | null = null;
    try {
      let batch: BlockBatch;
      if (Symbol.asyncIterator in items) {
        batch = await this.collectChunks(items, staging && this.store.writesOffLoop ? staging : undefined, (s) => { stage = s; });
      } else {
        batch = await collectValid(items);
        if (this.check) await checkAll(batch, this.check);
      }
      const staged = stage as Stage | null;
      if (staged) {
        // `staging` allowed it to the end: `around` has nothing to store, and its locks are held.
        const created = await this.applyStaged(batch, staged);
        return { created, existing: batch.count - created };
      }
      const apply = async () => (await this.lock.run(() => this.apply(batch))).created;
      const created = around ? await around(batch, apply) : await apply();
      return { created, existing: batch.count - created };
    } finally {
      const staged = stage as Stage | null;
      if (staged) await dropStage(staged);
      this.bulkRunning = false;
    }
  }

  /**
   * Validates chunked items into a batch, yielding to the event loop between
   * slices; with `staging`, opens (and feeds, or drops) the stage as
   * addMany describes, handing it to `staged`. A CIDR the `check` refuses
   * fails the import once every item is valid.
   */
  private async collectChunks(
    items: AsyncIterable<readonly BlockInput[]>,
    staging: BulkStaging | undefined,
    staged: (stage: Stage | null) => void,
  ): Promise<BlockBatch> {
    const batch = new BlockBatch();
    const slicer = new TimeSlicer();
    let refused: unknown;
    let stage: Stage | null = null;
    let stageable = staging !== undefined;
    const drop = async (): Promise<void> => {
      if (stage) await dropStage(stage);
      stage = null;
      staged(null);
      stageable = false;
    };
    const iterator = items[Symbol.asyncIterator]();
    let finished = false;
    try {
      for (;;) {
        const next = iterator.next();
        let step: IteratorResult<readonly BlockInput[]>;
        if (stage) {
          let timer: NodeJS.Timeout | undefined;
          const stalled = new Promise<'stalled'>((resolve) => { timer = setTimeout(() => resolve('stalled'), STAGE_WAIT_MS); });
          const first = await Promise.race([next, stalled]);
          clearTimeout(timer);
          if (first === 'stalled') {
            await drop();
            step = await next;
          } else step = first;
        } else step = await next;
        if (step.done) {
          finished = true;
          break;
        }
        for (const item of step.value) {
          if (batch.count === MAX_BULK_ITEMS) throw new InvalidArgumentError(`at most ${MAX_BULK_ITEMS} items per request`);
          const block = validateItem(item, batch.count);
          if (this.check && refused === undefined) {
            try {
              this.check(block.cidr);
            } catch (error) {
              refused = error;
            }
          }
          batch.push(block);
          if ((batch.count & 255) === 0 && slicer.due) await slicer.next();
        }
        if (stage && !staging!.allowed()) await drop();
        if (!stage && stageable && batch.count >= WORKER_BATCH && refused === undefined && staging!.allowed()) {
          stage = await this.openStage(staging!);
          staged(stage);
          if (!staging!.allowed()) await drop();
        }
        if (stage && batch.count - stage.fed >= STAGE_PART) feed(stage, batch);
      }
    } finally {
      if (!finished) await iterator.return?.();
    }
    if (refused !== undefined) throw refused;
    return batch;
  }

  /** Takes the caller's locks and this service's, and starts the worker's transaction. */
  private async openStage(staging: BulkStaging): Promise<Stage> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => { release = resolve; });
    await new Promise<void>((acquired) => {
      void staging.hold(() => this.lock.run(() => {
        acquired();
        return held;
      }));
    });
    try {
      const rows = new CreatedRows();
      const abort = new Int32Array(new SharedArrayBuffer(4));
      const createdAt = this.now().toISOString();
      const insert = this.store.beginBulkInsert({ createdAt, maxRuleId: MAX_RULE_ID }, { onRows: (index, ids) => rows.add(index, ids), abort });
      return { insert, rows, abort, createdAt, fed: 0, release };
    } catch (error) {
      release();
      throw error;
    }
  }

  /** Commits and enforces a staged import (the locks are held): as apply() does. */
  private async applyStaged(batch: BlockBatch, stage: Stage): Promise<number> {
    if (stage.fed < batch.count) feed(stage, batch);
    const room = this.room();
    if (batch.perFamily[4] <= room[4] && batch.perFamily[6] <= room[6]) {
      return this.applyPipelined(batch, stage.createdAt, stage.rows, stage.insert.end(room), stage.abort, room);
    }
    let created: Created;
    try {
      created = await stage.insert.end(room);
    } catch (error) {
      throw this.bulkStoreError(error, room);
    }
    return this.installCreated(batch, created, stage.createdAt);
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
    // Unfiltered, the total is the count this service keeps (for capacity): /healthz asks for it on every probe.
    const filtered = cidrIn !== undefined || query.origin !== undefined;
    return this.store.list({ cidrIn, origin: query.origin, limit, offset, knownTotal: filtered ? undefined : this.counts[4] + this.counts[6] });
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

  /**
   * Removes the blocks among `keys` that exist (absent ones are skipped), a
   * kernel-sized chunk at a time: each chunk is all or nothing, so a failure
   * leaves the chunks before it removed. The rules removed.
   */
  async removeMany(keys: ReadonlyArray<{ cidr: string; direction: BlockDirection }>): Promise<BlockRule[]> {
    const removed: BlockRule[] = [];
    const slicer = new TimeSlicer();
    for (let from = 0; from < keys.length; from += KERNEL_CHUNK) {
      if (slicer.due) await slicer.next();
      const chunk = keys.slice(from, from + KERNEL_CHUNK);
      removed.push(...(await this.remove(() => chunk.flatMap(({ cidr, direction }) => this.store.findByCidr(cidr, direction)))));
    }
    return removed;
  }

  /**
   * Stores the batch's new rules and then enforces them (under the lock).
   * `rules` holds the created rules when there are at most a few (single
   * adds); bulk imports report the count only.
   */
  private async apply(batch: BlockBatch): Promise<{ created: number; rules: BlockRule[] }> {
    const createdAt = this.now().toISOString();
    if (this.pipelines(batch)) {
      const room = this.room();
      const rows = new CreatedRows(batch.count);
      const abort = new Int32Array(new SharedArrayBuffer(4));
      const stored = this.store.insertBatch(batch, { createdAt, room, maxRuleId: MAX_RULE_ID }, { onRows: (index, ids) => rows.add(index, ids), abort });
      return { created: await this.applyPipelined(batch, createdAt, rows, stored, abort, room), rules: [] };
    }
    const created = await this.insert(batch, createdAt);
    const count = await this.installCreated(batch, created, createdAt);
    return { created: count, rules: count === 1 ? [this.ruleAt(batch, created, createdAt, 0)] : [] };
  }

  /** Counts and enforces the rows a change stored, a KERNEL_CHUNK at a time; on failure, takes them out and deletes them. */
  private async installCreated(batch: BlockBatch, created: Created, createdAt: string): Promise<number> {
    this.counts[4] += created.perFamily[4];
    this.counts[6] += created.perFamily[6];
    const chunks = Math.ceil(created.ids.length / KERNEL_CHUNK);
    const chunk = (c: number): BlockRule[] => this.rulesOf(batch, created, createdAt, c * KERNEL_CHUNK, (c + 1) * KERNEL_CHUNK);
    let installed = 0;
    try {
      for (; installed < chunks; installed++) await this.enforcer.installMany(chunk(installed));
    } catch (error) {
      // Take out what went in: the chunks before the failed one and, if the
      // failed one could not undo itself, that one too (absent entries are
      // skipped). Then delete the rows, except those of chunks the kernel
      // kept: a rule may be stored and not enforced until the next start,
      // never enforced and unlisted.
      const last = undoFailuresOf(error).length > 0 ? installed : installed - 1;
      const { kept, undo } = await this.uninstallChunks(last, chunk);
      undo.push(...(await collectFailures([() => this.deleteCreated(created, kept)])));
      throw this.undone(error, undo, `installing ${plural(created.ids.length)}`);
    }
    return created.ids.length;
  }

  /**
   * A large batch that fits the capacity even if every row is new is
   * enforced while the worker stores it (applyPipelined): the two take
   * about as long each, and overlap instead of running one after the other.
   */
  private pipelines(batch: BlockBatch): boolean {
    const room = this.room();
    return batch.count >= WORKER_BATCH && this.store.writesOffLoop && batch.perFamily[4] <= room[4] && batch.perFamily[6] <= room[6];
  }

  /**
   * Stores the batch on the worker and installs its created rules in the
   * kernel as the worker reports them, a KERNEL_CHUNK at a time, before the
   * COMMIT. All or nothing as apply(): if the kernel refuses a chunk, the
   * worker is told to roll back (or, if it had committed, the rows are
   * deleted) and the chunks installed come out again; if the store fails,
   * the chunks installed come out. Rules may be enforced a moment before
   * they are stored; the answer comes after both. A crash in between leaves
   * the kernel holding rules the store lacks, which the next start removes
   * (reconcile). The number of rules created.
   */
  private async applyPipelined(
    batch: BlockBatch,
    createdAt: string,
    rows: CreatedRows,
    stored: Promise<Created>,
    abort: Int32Array,
    room: Record<4 | 6, number>,
  ): Promise<number> {
    let settled = false;
    let storeFailure: { error: unknown } | null = null;
    let result: Created | null = null;
    const done = stored.then(
      (r) => { result = r; },
      (error: unknown) => { storeFailure = { error }; },
    ).finally(() => {
      settled = true;
      rows.wake?.();
    });
    const view = (): Created => rows.view();
    let installed = 0; // rows in the kernel, a whole number of chunks until the last
    let received = 0;
    let kernelFailure: { error: unknown } | null = null;
    try {
      for (;;) {
        if (storeFailure) break;
        received = rows.count;
        if (installed < received && (received - installed >= KERNEL_CHUNK || settled)) {
          const to = Math.min(received, installed + KERNEL_CHUNK);
          await this.enforcer.installMany(this.rulesOf(batch, view(), createdAt, installed, to));
          installed = to;
          continue;
        }
        if (settled) break;
        await new Promise<void>((resolve) => { rows.wake = resolve; });
        rows.wake = null;
      }
    } catch (error) {
      kernelFailure = { error };
      Atomics.store(abort, 0, 1);
    }
    received = rows.count;
    await done;
    const chunkOf = (row: number) => Math.floor(row / KERNEL_CHUNK);
    const stored_ = result as Created | null;
    if (stored_) {
      this.counts[4] += stored_.perFamily[4];
      this.counts[6] += stored_.perFamily[6];
    }
    if (!kernelFailure && stored_) return stored_.ids.length;
    const created: Created = stored_ ?? view();
    const chunk = (c: number): BlockRule[] => this.rulesOf(batch, created, createdAt, c * KERNEL_CHUNK, (c + 1) * KERNEL_CHUNK);
    // The chunks to take out: those installed and, if the failed one could not undo itself, that one too.
    const failedChunk = chunkOf(installed);
    const last = kernelFailure && undoFailuresOf(kernelFailure.error).length > 0 ? failedChunk : chunkOf(installed - 1 + KERNEL_CHUNK) - 1;
    const { kept, undo } = await this.uninstallChunks(last, chunk);
    if (stored_) undo.push(...(await collectFailures([() => this.deleteCreated(stored_, kept)])));
    if (kernelFailure) throw this.undone(kernelFailure.error, undo, `installing ${plural(received)}`);
    throw this.undone(this.bulkStoreError(storeFailure!.error, room), undo, `storing ${plural(batch.count)}`);
  }

  /** The error a failed worker insert reports. */
  private bulkStoreError(error: unknown, room: Record<4 | 6, number>): unknown {
    if (error instanceof BulkCapacityError) {
      const family = error.perFamily[4] > room[4] ? 4 : 6;
      return this.overCapacity(family, error.perFamily[family]);
    }
    if (error instanceof BulkRuleIdError) return new DatapathError(`rule id ${error.id} does not fit the kernel's 32-bit rule id`);
    if (error instanceof BulkAbortedError) return new DatapathError('the bulk insert was aborted');
    return error;
  }

  /** Rules of each family that still fit the capacity. */
  private room(): Record<4 | 6, number> {
    return { 4: this.limits[4] - this.counts[4], 6: this.limits[6] - this.counts[6] };
  }

  /** The 507 of a batch that would take `created` more rules of `family` than capacity allows. */
  private overCapacity(family: 4 | 6, created: number): CapacityError {
    return new CapacityError(
      `${this.counts[family] + created} IPv${family} rules would exceed the capacity of ${this.limits[family]} (capacity.cidrV${family}); nothing was stored`,
    );
  }

  /** Writes the batch's rules that do not exist yet, in one transaction, within capacity. */
  private async insert(batch: BlockBatch, createdAt: string): Promise<Created> {
    if (batch.count >= WORKER_BATCH && this.store.writesOffLoop) {
      const room = this.room();
      try {
        return await this.store.insertBatch(batch, { createdAt, room, maxRuleId: MAX_RULE_ID });
      } catch (error) {
        throw this.bulkStoreError(error, room);
      }
    }
    return this.store.transaction(`cannot store ${plural(batch.count)}`, async () => {
      const index = new Uint32Array(batch.count);
      const ids = new Float64Array(batch.count);
      const perFamily = { 4: 0, 6: 0 };
      let n = 0;
      const slicer = new TimeSlicer();
      for (let i = 0; i < batch.count; i++) {
        if ((i & 255) === 0 && slicer.due) await slicer.next();
        const id = this.store.insertRow(batch.cidr(i), batch.direction(i), batch.comment(i), createdAt);
        if (id === 0) continue;
        if (id > MAX_RULE_ID) throw new DatapathError(`rule id ${id} does not fit the kernel's 32-bit rule id`);
        index[n] = i;
        ids[n] = id;
        n++;
        perFamily[batch.family(i)]++;
      }
      for (const family of [4, 6] as const) {
        if (this.counts[family] + perFamily[family] > this.limits[family]) throw this.overCapacity(family, perFamily[family]);
      }
      return { index: index.subarray(0, n), ids: ids.subarray(0, n), perFamily };
    });
  }

  /**
   * Takes chunks `last` .. 0 of a batch out of the kernel, last first (absent
   * entries are skipped). `kept`: the chunks the kernel would not give back;
   * `undo`: those failures.
   */
  private async uninstallChunks(last: number, chunk: (c: number) => BlockRule[]): Promise<{ kept: Set<number>; undo: unknown[] }> {
    const kept = new Set<number>();
    const undo: unknown[] = [];
    for (let c = last; c >= 0; c--) {
      const failed = await collectFailures([() => this.enforcer.removeMany(chunk(c))]);
      if (failed.length > 0) kept.add(c);
      undo.push(...failed);
    }
    return { kept, undo };
  }

  /**
   * Deletes the rows a failed change created, but those of the chunks (of
   * KERNEL_CHUNK rows) in `kept`. A chunk's ids are one range: writes are serialised.
   */
  private async deleteCreated(created: Created, kept: ReadonlySet<number>): Promise<void> {
    const size = KERNEL_CHUNK;
    const { ids } = created;
    const ranges: Array<[number, number]> = [];
    for (let c = 0; c * size < ids.length; c++) {
      if (!kept.has(c)) ranges.push([ids[c * size]!, ids[Math.min(ids.length, (c + 1) * size) - 1]!]);
    }
    if (ranges.length === 0) return;
    const deleted = { 4: 0, 6: 0 };
    await this.store.transaction(`cannot delete the rules just stored`, async () => {
      const slicer = new TimeSlicer();
      for (const [first, last] of ranges) {
        if (slicer.due) await slicer.next();
        for (const family of [4, 6] as const) deleted[family] += this.store.deleteRange(first, last, family);
      }
    });
    this.counts[4] -= deleted[4];
    this.counts[6] -= deleted[6];
  }

  /** The created rules from position `from` up to `to` (exclusive), as the kernel takes them (texts made on demand: BlockBatch.rule). */
  private rulesOf(batch: BlockBatch, created: Created, createdAt: string, from: number, to: number): BlockRule[] {
    const rules: BlockRule[] = [];
    for (let k = from; k < Math.min(to, created.ids.length); k++) rules.push(batch.rule(created.index[k]!, created.ids[k]!, createdAt));
    return rules;
  }

  /** The created rule at position `k` as a plain object (what add() returns). */
  private ruleAt(batch: BlockBatch, created: Created, createdAt: string, k: number): BlockRule {
    const i = created.index[k]!;
    const cidr = batch.cidr(i);
    return {
      id: created.ids[k]!,
      cidr: cidr.text,
      family: cidr.family,
      prefixLen: cidr.prefixLen,
      network: cidr.bytes,
      direction: batch.direction(i),
      comment: batch.comment(i),
      createdAt,
    };
  }

  /** Deletes the rules `find` names from the kernel, then from the store. */
  private async remove(find: () => BlockRule[]): Promise<BlockRule[]> {
    return this.lock.run(async () => {
      const rules = find();
      if (rules.length === 0) return rules;
      try {
        await this.enforcer.removeMany(rules);
      } catch (error) {
        throw this.undone(error, [], `removing ${plural(rules.length)}`);
      }
      try {
        await this.store.transaction(`cannot delete ${plural(rules.length)}`, () => {
          for (const rule of rules) this.store.delete(rule.id);
        });
      } catch (error) {
        const undo = await collectFailures([() => this.enforcer.installMany(rules)]);
        throw this.undone(error, undo, `removing ${plural(rules.length)}`);
      }
      for (const rule of rules) this.counts[rule.family]--;
      return rules;
    });
  }

  /** The error to report for a failed change; logs undo failures (its own, or the enforcer's). */
  private undone(error: unknown, undo: unknown[], what: string): unknown {
    const failures = [...undoFailuresOf(error), ...undo];
    if (failures.length > 0) {
      this.log?.error({ err: error, undoFailures: failures }, `${what} failed, and undoing it failed too`);
    }
    return error instanceof Error ? withUndoFailures(error, undo) : error;
  }
}

/** Validates items into a batch, yielding to the event loop between slices. */
async function collectValid(items: Iterable<BlockInput> | AsyncIterable<readonly BlockInput[]>): Promise<BlockBatch> {
  const batch = new BlockBatch();
  const slicer = new TimeSlicer();
  const take = (item: BlockInput) => {
    if (batch.count === MAX_BULK_ITEMS) throw new InvalidArgumentError(`at most ${MAX_BULK_ITEMS} items per request`);
    batch.push(validateItem(item, batch.count));
  };
  if (Symbol.asyncIterator in items) {
    for await (const chunk of items) {
      for (const item of chunk) {
        take(item);
        if ((batch.count & 255) === 0 && slicer.due) await slicer.next();
      }
    }
  } else {
    for (const item of items) {
      take(item);
      if ((batch.count & 255) === 0 && slicer.due) await slicer.next();
    }
  }
  return batch;
}

/** Runs `check` on every item of the batch, in slices: in one go, a million items held the event loop 0.8 s (on a busy 2-core machine). */
async function checkAll(batch: BlockBatch, check: (cidr: Cidr) => void): Promise<void> {
  const slicer = new TimeSlicer();
  for (let i = 0; i < batch.count; i++) {
    check(batch.cidr(i));
    if ((i & 255) === 255 && slicer.due) await slicer.next();
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

/** Sends the worker the batch's rows it has not had yet. */
function feed(stage: Stage, batch: BlockBatch): void {
  stage.insert.push(stage.fed, batch.part(stage.fed, batch.count));
  stage.fed = batch.count;
}

/** Rolls a stage's worker back (a no-op once it has committed) and gives its locks back. */
async function dropStage(stage: Stage): Promise<void> {
  Atomics.store(stage.abort, 0, 1);
  try {
    await stage.insert.abort();
  } finally {
    stage.release();
  }
}

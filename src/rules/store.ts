// Durable rule store: SQLite in WAL mode with synchronous=FULL, so a
// committed transaction survives a crash or power loss: that is what a 2xx
// promises. The schema is versioned with PRAGMA user_version. SQLite's
// failures leave here as StoreErrors with codes the API maps to statuses
// (busy 503, disk full 507) and messages that say what to do.
import { AsyncLocalStorage } from 'node:async_hooks';
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Cidr } from './cidr.js';
import type { BlockDirection, BlockRule } from './model.js';
import { StoreBusyError, StoreError, StoreFullError } from '../errors.js';
import { Checkpointer } from './checkpointer.js';
import { decodeRuleSpec, encodeRuleSpec, type PolicyRow } from '../policy/codec.js';
import type { PolicyRule, RuleSpec } from '../policy/model.js';
import { RuleColumns } from './rule-columns.js';
import type { BlockBatch } from './block-batch.js';
import { BulkInsert, insertOnWorker, type BulkInsertJob, type BulkInsertProgress, type BulkInsertResult, type BulkPart } from './bulk-writer.js';
import { TimeSlicer } from '../event-loop.js';

/** Rows per page when start-up reads every rule. */
const SCAN_PAGE = 16384;

/**
 * How long a write waits for another process's write lock. better-sqlite3
 * waits synchronously, stalling the event loop: keep it short and let the
 * client retry on 503 STORE_BUSY.
 */
const BUSY_TIMEOUT_MS = 20;

interface BlockRow {
  id: number;
  cidr: string;
  family: 4 | 6;
  prefix_len: number;
  network: Buffer;
  direction: BlockDirection;
  comment: string | null;
  created_at: string;
}

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE blocks (
     id         INTEGER PRIMARY KEY AUTOINCREMENT,
     cidr       TEXT NOT NULL,   -- canonical text
     family     INTEGER NOT NULL CHECK (family IN (4, 6)),
     prefix_len INTEGER NOT NULL,
     network    BLOB NOT NULL,   -- 4 or 16 bytes, network order
     direction  TEXT NOT NULL CHECK (direction IN ('src', 'dst')),
     comment    TEXT,
     created_at TEXT NOT NULL,
     UNIQUE (cidr, direction)
   )`,
  // Policy rules (src/policy): the canonical rule as JSON, with the columns lists filter on.
  `CREATE TABLE policy_rules (
     id         INTEGER PRIMARY KEY AUTOINCREMENT,
     hook       TEXT NOT NULL CHECK (hook IN ('ingress', 'egress')),
     iface      TEXT,
     priority   INTEGER NOT NULL,
     spec       TEXT NOT NULL,
     created_at TEXT NOT NULL,
     expires_at TEXT
   );
   CREATE INDEX policy_rules_order ON policy_rules (hook, priority, id)`,
  // Settings changed through the API (the default policy), as JSON values.
  `CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  // ttl and dryRun of blocks (src/policy/block-meta.ts), by the blocks' own unique key.
  `CREATE TABLE block_meta (
     cidr       TEXT NOT NULL,
     direction  TEXT NOT NULL,
     expires_at TEXT,
     dry_run    INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (cidr, direction)
   )`,
  // Who made a block (src/policy/block-meta.ts): NULL is the API, else e.g. "crowdsec" or "fail2ban".
  `ALTER TABLE block_meta ADD COLUMN origin TEXT;
   CREATE INDEX block_meta_origin ON block_meta (origin)`,
];

/** See RuleStore.beginBulkInsert. */
export interface StoreBulkInsert {
  push(first: number, part: BulkPart): void;
  end(room: Record<4 | 6, number>): Promise<BulkInsertResult>;
  abort(): Promise<void>;
}

export interface BlockMetaRow {
  cidr: string;
  direction: string;
  expires_at: string | null;
  dry_run: number;
  origin: string | null;
}

export interface NewBlock {
  cidr: Cidr;
  direction: BlockDirection;
  comment: string | null;
  createdAt: string;
}

export interface ListQuery {
  /** Only rules whose CIDR is one of these canonical texts (e.g. all prefixes containing an IP). */
  cidrIn?: readonly string[];
  /** Only blocks of this origin (block_meta.origin; null: the API's, which have none stored). */
  origin?: string | null;
  /** The total when the caller keeps it (unfiltered lists): count(*) over a million rows costs 100 ms and more. */
  knownTotal?: number;
  limit: number;
  offset: number;
}

export class RuleStore {
  private readonly db: Database.Database;
  private readonly statements;
  private readonly checkpointer: Checkpointer | undefined;

  /** Opens (or creates) the store; a StoreError says why it cannot. */
  constructor(readonly path: string) {
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      this.db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    } catch (error) {
      throw storeError(error, `cannot open the rule store ${path}`);
    }
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.pragma('cache_size = -65536'); // 64 MiB: a million-rule import keeps its index pages in memory
      this.db.pragma('foreign_keys = ON');
      this.migrate();
      this.statements = this.prepare();
      if (path !== ':memory:') {
        this.db.pragma('wal_autocheckpoint = 0'); // a worker checkpoints instead (checkpointer.ts)
        this.checkpointer = new Checkpointer(path);
      }
    } catch (error) {
      this.db.close();
      throw storeError(error, `cannot open the rule store ${path}`);
    }
  }

  private prepare() {
    return {
      // run() and lastInsertRowid, not RETURNING: a bulk import of a million
      // rules spends most of its store time materialising returned rows.
      insertIfAbsent: this.db.prepare<[string, number, number, Buffer, string, string | null, string]>(
        `INSERT INTO blocks (cidr, family, prefix_len, network, direction, comment, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (cidr, direction) DO NOTHING`,
      ),
      byId: this.db.prepare<[number], BlockRow>('SELECT * FROM blocks WHERE id = ?'),
      byCidr: this.db.prepare<[string], BlockRow>('SELECT * FROM blocks WHERE cidr = ? ORDER BY id'),
      byCidrDirection: this.db.prepare<[string, string], BlockRow>(
        'SELECT * FROM blocks WHERE cidr = ? AND direction = ?',
      ),
      deleteById: this.db.prepare<[number]>('DELETE FROM blocks WHERE id = ?'),
      all: this.db.prepare<[], BlockRow>('SELECT * FROM blocks ORDER BY id'),
      page: this.db.prepare<[number, number], BlockRow>('SELECT * FROM blocks ORDER BY id LIMIT ? OFFSET ?'),
      count: this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM blocks'),
      // What the kernel needs of each rule, a page at a time, as one text per
      // page ("id,family,prefix_len,dst,HEX;..."): one value per page crosses
      // into JavaScript instead of five per row, several times faster.
      scan: this.db
        .prepare<[number, number], [number, number | null, string | null]>(
          `SELECT count(*), max(id), group_concat(id || ',' || family || ',' || prefix_len || ',' || (direction = 'dst') || ',' || hex(network), ';')
           FROM (SELECT id, family, prefix_len, direction, network FROM blocks WHERE id > ? ORDER BY id LIMIT ?)`,
        )
        .raw(true),
      // One scan and two sums: GROUP BY family sorted a million rows into a temporary B-tree (3-4x slower).
      countByFamily: this.db.prepare<[], { v4: number; v6: number }>('SELECT ifnull(sum(family = 4), 0) AS v4, ifnull(sum(family = 6), 0) AS v6 FROM blocks'),
      deleteRange: this.db.prepare<[number, number, number]>('DELETE FROM blocks WHERE id >= ? AND id <= ? AND family = ?'),
      // Prepared once: a bulk import with ttls (the CrowdSec bouncer) writes one row per block.
      metaUpsert: this.db.prepare<[string, string, string | null, number, string | null]>(
        `INSERT INTO block_meta (cidr, direction, expires_at, dry_run, origin) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (cidr, direction) DO UPDATE SET expires_at = excluded.expires_at, dry_run = excluded.dry_run, origin = excluded.origin`,
      ),
      metaDelete: this.db.prepare<[string, string]>('DELETE FROM block_meta WHERE cidr = ? AND direction = ?'),
      policyInsert: this.db.prepare<[string, string | null, number, string, string, string | null]>(
        'INSERT INTO policy_rules (hook, iface, priority, spec, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      policyReplace: this.db.prepare<[string, string | null, number, string, string | null, number]>(
        'UPDATE policy_rules SET hook = ?, iface = ?, priority = ?, spec = ?, expires_at = ? WHERE id = ?',
      ),
      policyById: this.db.prepare<[number], PolicyRow>('SELECT * FROM policy_rules WHERE id = ?'),
      policyDelete: this.db.prepare<[number]>('DELETE FROM policy_rules WHERE id = ?'),
      policyAll: this.db.prepare<[], PolicyRow>("SELECT * FROM policy_rules ORDER BY hook <> 'ingress', priority, id"),
    };
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /**
   * Runs `work` in one write transaction: it commits when `work` resolves
   * and rolls back when it rejects. `work` may yield to the event loop
   * between slices of statements, but must not wait for the kernel: the
   * transaction keeps every other writer out while it is open.
   *
   * The store has one connection, and several services write through it
   * (blocks, their ttl and dryRun, rules, the sweeper), each under its own
   * WriteLock: transactions are queued here, so one that starts while
   * another is open waits for it instead of failing with "cannot start a
   * transaction within a transaction". A transaction started from inside
   * `work` joins the enclosing one.
   */
  async transaction<T>(what: string, work: () => T | Promise<T>): Promise<T> {
    if (this.inWork.getStore()) return work();
    const previous = this.queue;
    let release!: () => void;
    this.queue = new Promise<void>((resolve) => (release = resolve));
    await previous;
    try {
      return await this.inWork.run(true, () => this.runTransaction(what, work));
    } finally {
      release();
    }
  }

  /** The connection, for stores of other tables that share its file and transactions (src/lists/store.ts). */
  get sqlite(): Database.Database {
    return this.db;
  }

  /** Transactions waiting for the connection, in order; see transaction(). */
  private queue: Promise<void> = Promise.resolve();
  private readonly inWork = new AsyncLocalStorage<true>();

  private async runTransaction<T>(what: string, work: () => T | Promise<T>): Promise<T> {
    try {
      this.begin();
      const result = await work();
      this.commit();
      return result;
    } catch (error) {
      try {
        if (this.db.inTransaction) this.rollback();
      } catch {
        // SQLite rolls back by itself when ROLLBACK fails (the journal stays
        // for the next open); the original failure is the one to report.
      }
      throw storeError(error, what);
    }
  }

  // One method per transaction step, so a test can make COMMIT fail.
  protected begin(): void {
    this.db.exec('BEGIN IMMEDIATE');
  }

  protected commit(): void {
    this.db.exec('COMMIT');
    this.checkpointer?.committed();
  }

  protected rollback(): void {
    this.db.exec('ROLLBACK');
  }

  /** Inserts the rule unless the same CIDR and direction exists; undefined then. */
  insertIfAbsent(block: NewBlock): BlockRule | undefined {
    const { cidr, direction, comment, createdAt } = block;
    const id = this.insertRow(cidr, direction, comment, createdAt);
    if (id === 0) return undefined;
    return {
      id,
      cidr: cidr.text,
      family: cidr.family,
      prefixLen: cidr.prefixLen,
      network: asBuffer(cidr.bytes),
      direction,
      comment,
      createdAt,
    };
  }

  /** True when insertBatch can run on a worker (a file, not ":memory:"). */
  get writesOffLoop(): boolean {
    return this.path !== ':memory:';
  }

  /**
   * Inserts the batch's rows that do not exist yet in one transaction on a
   * worker thread (bulk-writer.ts), so neither the inserts nor the COMMIT
   * block the event loop. All or nothing, like transaction().
   */
  async insertBatch(batch: BlockBatch, job: Omit<BulkInsertJob, 'path' | 'busyTimeoutMs'>, progress?: BulkInsertProgress): Promise<BulkInsertResult> {
    const columns = await batch.columns();
    try {
      const result = await insertOnWorker({ ...job, path: this.path, busyTimeoutMs: BUSY_TIMEOUT_MS }, columns, progress);
      this.checkpointer?.committed();
      return result;
    } catch (error) {
      throw storeError(error, `cannot store ${batch.count} rules`);
    }
  }

  /**
   * A bulk insert on a worker, fed part by part while a body is still being
   * read (see BulkInsert): the worker's transaction holds the store's write
   * lock from now until end() or abort(). The caller holds the WriteLock.
   */
  beginBulkInsert(job: Omit<BulkInsertJob, 'path' | 'busyTimeoutMs' | 'room'>, progress?: BulkInsertProgress): StoreBulkInsert {
    const insert = new BulkInsert({ ...job, path: this.path, busyTimeoutMs: BUSY_TIMEOUT_MS }, progress);
    let rows = 0;
    return {
      push: (first, part) => {
        rows = first + part.families.length;
        insert.push(first, part);
      },
      end: async (room) => {
        try {
          const result = await insert.end(room);
          this.checkpointer?.committed();
          return result;
        } catch (error) {
          throw storeError(error, `cannot store ${rows} rules`);
        }
      },
      abort: () => insert.abort(),
    };
  }

  /** insertIfAbsent without building the rule: its id, or 0 when it existed. */
  insertRow(cidr: Cidr, direction: BlockDirection, comment: string | null, createdAt: string): number {
    const { changes, lastInsertRowid } = this.statements.insertIfAbsent.run(
      cidr.text, cidr.family, cidr.prefixLen, asBuffer(cidr.bytes), direction, comment, createdAt,
    );
    return changes === 0 ? 0 : Number(lastInsertRowid);
  }

  /** Deletes the rules of one family with ids from `first` to `last`; the count deleted. */
  deleteRange(first: number, last: number, family: 4 | 6): number {
    return this.statements.deleteRange.run(first, last, family).changes;
  }

  /** Stored rules per address family. */
  countByFamily(): Record<4 | 6, number> {
    const { v4, v6 } = this.statements.countByFamily.get()!;
    return { 4: v4, 6: v6 };
  }

  get(id: number): BlockRule | undefined {
    const row = this.statements.byId.get(id);
    return row && toRule(row);
  }

  findByCidr(cidr: string, direction?: BlockDirection): BlockRule[] {
    const rows = direction
      ? [this.statements.byCidrDirection.get(cidr, direction)].filter((r): r is BlockRow => r !== undefined)
      : this.statements.byCidr.all(cidr);
    return rows.map(toRule);
  }

  delete(id: number): boolean {
    return this.statements.deleteById.run(id).changes > 0;
  }

  /** Every rule, oldest first (start-up reads them all, so a damaged file shows here). */
  all(): BlockRule[] {
    try {
      return this.statements.all.all().map(toRule);
    } catch (error) {
      throw storeError(error, `cannot read the rule store ${this.path}`);
    }
  }

  /**
   * Every rule as columns (start-up), read a page at a time between turns of
   * the event loop: no object per rule outlives its page. `expected`: rows
   * to make room for at once (a few more leave spare room; fewer grow it).
   */
  async readColumns(expected = 0): Promise<RuleColumns> {
    try {
      // Sized up front when the caller knows about how many: growing copies every column at once (60 ms at 1M rows).
      const columns = new RuleColumns(expected);
      const slicer = new TimeSlicer();
      for (let after = 0; ; ) {
        const [count, last, text] = this.statements.scan.get(after, SCAN_PAGE)!;
        if (text !== null) parseScanPage(text, columns);
        if (count < SCAN_PAGE || last === null) return columns;
        after = last;
        if (slicer.due) await slicer.next();
      }
    } catch (error) {
      throw storeError(error, `cannot read the rule store ${this.path}`);
    }
  }

  list(query: ListQuery): { items: BlockRule[]; total: number } {
    if (query.cidrIn || query.origin !== undefined) {
      if (query.cidrIn?.length === 0) return { items: [], total: 0 };
      const where: string[] = [];
      const args: unknown[] = [];
      if (query.cidrIn) {
        where.push(`b.cidr IN (${query.cidrIn.map(() => '?').join(', ')})`);
        args.push(...query.cidrIn);
      }
      let from = 'blocks b';
      if (query.origin === null) {
        from = 'blocks b LEFT JOIN block_meta m ON m.cidr = b.cidr AND m.direction = b.direction';
        where.push('m.origin IS NULL');
      } else if (query.origin !== undefined) {
        from = 'blocks b JOIN block_meta m ON m.cidr = b.cidr AND m.direction = b.direction';
        where.push('m.origin = ?');
        args.push(query.origin);
      }
      const clause = `FROM ${from} WHERE ${where.join(' AND ')}`;
      const total = this.db.prepare<unknown[], { n: number }>(`SELECT count(*) AS n ${clause}`).get(...args)!.n;
      const rows = this.db.prepare<unknown[], BlockRow>(`SELECT b.* ${clause} ORDER BY b.id LIMIT ? OFFSET ?`).all(...args, query.limit, query.offset);
      return { items: rows.map(toRule), total };
    }
    return {
      items: this.statements.page.all(query.limit, query.offset).map(toRule),
      total: query.knownTotal ?? this.statements.count.get()!.n,
    };
  }

  // ------------------------------------------------------------ settings

  getSetting<T>(key: string): T | undefined {
    const row = this.db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?').get(key);
    return row && (JSON.parse(row.value) as T);
  }

  setSetting(key: string, value: unknown): void {
    this.db.prepare<[string, string]>('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
      .run(key, JSON.stringify(value));
  }

  // ------------------------------------------------------------ block ttl and dryRun

  /** The blocks that carry a ttl or dryRun: start-up restores their extras without reading every block. */
  blocksWithMeta(): BlockRule[] {
    try {
      // CROSS JOIN keeps block_meta the outer loop: the planner otherwise walks every block in id
      // order and probes the (usually empty) meta table a million times at start-up.
      return this.db
        .prepare<[], BlockRow>('SELECT b.* FROM block_meta m CROSS JOIN blocks b ON b.cidr = m.cidr AND b.direction = m.direction ORDER BY b.id')
        .all()
        .map(toRule);
    } catch (error) {
      throw storeError(error, `cannot read the rule store ${this.path}`);
    }
  }

  allBlockMeta(): BlockMetaRow[] {
    return this.db.prepare<[], BlockMetaRow>('SELECT * FROM block_meta').all();
  }

  setBlockMeta(cidr: string, direction: string, expiresAt: string | null, dryRun: boolean, origin: string | null = null): void {
    this.statements.metaUpsert.run(cidr, direction, expiresAt, dryRun ? 1 : 0, origin);
  }

  deleteBlockMeta(cidr: string, direction: string): void {
    this.statements.metaDelete.run(cidr, direction);
  }

  // ------------------------------------------------------------ policy rules

  insertPolicyRule(spec: RuleSpec, createdAt: string): PolicyRule {
    const { lastInsertRowid } = this.statements.policyInsert.run(
      spec.hook, spec.iface, spec.priority, encodeRuleSpec(spec), createdAt, spec.expiresAt,
    );
    return { ...spec, id: Number(lastInsertRowid), createdAt };
  }

  /** Replaces a rule's fields (its id and creation time stay); false when absent. */
  replacePolicyRule(id: number, spec: RuleSpec): boolean {
    return this.statements.policyReplace.run(spec.hook, spec.iface, spec.priority, encodeRuleSpec(spec), spec.expiresAt, id).changes > 0;
  }

  getPolicyRule(id: number): PolicyRule | undefined {
    const row = this.statements.policyById.get(id);
    return row && decodeRuleSpec(row);
  }

  deletePolicyRule(id: number): boolean {
    return this.statements.policyDelete.run(id).changes > 0;
  }

  /** Every policy rule, by hook, then evaluation order (priority, id). */
  allPolicyRules(): PolicyRule[] {
    try {
      return this.statements.policyAll.all().map(decodeRuleSpec);
    } catch (error) {
      throw storeError(error, `cannot read the rule store ${this.path}`);
    }
  }

  /** A page of policy rules in evaluation order, optionally of one hook and/or interface. */
  listPolicyRules(query: { hook?: string; iface?: string; limit: number; offset: number }): { items: PolicyRule[]; total: number } {
    const where: string[] = [];
    const args: unknown[] = [];
    if (query.hook !== undefined) {
      where.push('hook = ?');
      args.push(query.hook);
    }
    if (query.iface !== undefined) {
      where.push('iface = ?');
      args.push(query.iface);
    }
    const clause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const total = this.db.prepare<unknown[], { n: number }>(`SELECT count(*) AS n FROM policy_rules ${clause}`).get(...args)!.n;
    const rows = this.db
      .prepare<unknown[], PolicyRow>(`SELECT * FROM policy_rules ${clause} ORDER BY hook <> 'ingress', priority, id LIMIT ? OFFSET ?`)
      .all(...args, query.limit, query.offset);
    return { items: rows.map(decodeRuleSpec), total };
  }

  close(): void {
    this.checkpointer?.close();
    if (this.db.open) this.db.close();
  }
}

/**
 * SQLite's failures as StoreErrors: BUSY (another process writes) and FULL
 * (no disk space) get their own codes; corrupt or unwritable files say what
 * to do. Errors that are not SQLite's pass through.
 */
export function storeError(error: unknown, what: string): unknown {
  if (error instanceof StoreError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (!(error instanceof Database.SqliteError) && code !== 'ENOSPC' && code !== 'EACCES' && code !== 'EROFS') return error;
  const options = { cause: error };
  if (typeof code !== 'string') return new StoreError(`${what}: ${(error as Error).message}`, options);
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new StoreBusyError(`${what}: another process is writing the rule store (${code}); retry shortly`, options);
  }
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') {
    return new StoreFullError(`${what}: the disk holding the rule store is full (${code}); free space and retry`, options);
  }
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return new StoreError(
      `${what}: the file is corrupt or truncated (${code}); restore it from a backup, or move it away to start with no rules`,
      options,
    );
  }
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code === 'EACCES' || code === 'EROFS') {
    return new StoreError(`${what}: the state directory is not writable by the daemon (${code})`, options);
  }
  return new StoreError(`${what}: ${code}: ${(error as Error).message}`, options);
}

const scratch = { 4: new Uint8Array(4), 6: new Uint8Array(16) };
const hexDigit = (c: number): number => (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57);

/** Parses one page of the scan ("id,family,prefix_len,dst,HEX" rows joined by ';') into `columns`. */
function parseScanPage(text: string, columns: RuleColumns): void {
  const end = text.length;
  let i = 0;
  const number = (): number => {
    let value = 0;
    for (let c = text.charCodeAt(i++); c !== 0x2c; c = text.charCodeAt(i++)) value = value * 10 + (c - 0x30);
    return value;
  };
  while (i < end) {
    const id = number();
    const family = number();
    const prefixLen = number();
    const dst = number() === 1;
    if (family !== 4 && family !== 6) throw new StoreError(`rule ${id} has an unknown address family ${family}`);
    const network = scratch[family];
    for (let b = 0; b < network.length; b++, i += 2) network[b] = hexDigit(text.charCodeAt(i)) * 16 + hexDigit(text.charCodeAt(i + 1));
    if (i < end && text.charCodeAt(i) !== 0x3b) throw new StoreError(`rule ${id} has a malformed network address`);
    i++; // ';' or the end
    columns.push(id, family, prefixLen, network, dst);
  }
}

const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function toRule(row: BlockRow): BlockRule {
  return {
    id: row.id,
    cidr: row.cidr,
    family: row.family,
    prefixLen: row.prefix_len,
    network: row.network,
    direction: row.direction,
    comment: row.comment,
    createdAt: row.created_at,
  };
}

// Durable rule store: SQLite in WAL mode with synchronous=FULL, so a
// committed transaction survives a crash or power loss: that is what a 2xx
// promises. The schema is versioned with PRAGMA user_version.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Cidr } from './cidr.js';
import type { BlockDirection, BlockRule } from './model.js';

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
];

export interface NewBlock {
  cidr: Cidr;
  direction: BlockDirection;
  comment: string | null;
  createdAt: string;
}

export interface ListQuery {
  /** Only rules whose CIDR is one of these canonical texts (e.g. all prefixes containing an IP). */
  cidrIn?: readonly string[];
  limit: number;
  offset: number;
}

export class RuleStore {
  private readonly db: Database.Database;
  private readonly statements;

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('cache_size = -65536'); // 64 MiB: a million-rule import keeps its index pages in memory
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    this.statements = {
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
   * Runs `work` in one transaction: it commits when `work` resolves and rolls
   * back when it rejects, so a kernel update inside `work` that fails leaves
   * nothing on disk. `work` awaits (kernel batch updates): the caller must
   * keep other writes out until it settles (see WriteLock).
   */
  async transactionAsync<T>(work: () => Promise<T>): Promise<T> {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const result = await work();
      this.db.exec('COMMIT');
      return result;
    } catch (error) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw error;
    }
  }

  /** Inserts the rule unless the same CIDR and direction exists; undefined then. */
  insertIfAbsent(block: NewBlock): BlockRule | undefined {
    const { cidr, direction, comment, createdAt } = block;
    const { changes, lastInsertRowid } = this.statements.insertIfAbsent.run(
      cidr.text, cidr.family, cidr.prefixLen, asBuffer(cidr.bytes), direction, comment, createdAt,
    );
    if (changes === 0) return undefined;
    return {
      id: Number(lastInsertRowid),
      cidr: cidr.text,
      family: cidr.family,
      prefixLen: cidr.prefixLen,
      network: cidr.bytes,
      direction,
      comment,
      createdAt,
    };
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

  all(): BlockRule[] {
    return this.statements.all.all().map(toRule);
  }

  list(query: ListQuery): { items: BlockRule[]; total: number } {
    if (query.cidrIn) {
      if (query.cidrIn.length === 0) return { items: [], total: 0 };
      const placeholders = query.cidrIn.map(() => '?').join(', ');
      const where = `WHERE cidr IN (${placeholders})`;
      const total = this.db.prepare<string[], { n: number }>(`SELECT count(*) AS n FROM blocks ${where}`).get(...query.cidrIn)!.n;
      const rows = this.db
        .prepare<unknown[], BlockRow>(`SELECT * FROM blocks ${where} ORDER BY id LIMIT ? OFFSET ?`)
        .all(...query.cidrIn, query.limit, query.offset);
      return { items: rows.map(toRule), total };
    }
    return {
      items: this.statements.page.all(query.limit, query.offset).map(toRule),
      total: this.statements.count.get()!.n,
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
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

// Named lists in the rule store's SQLite file: one row per list, its entries
// as one value (encodeKeys: a million IPv4 entries are 8 MB of sorted keys,
// written in one statement, not a million rows): a replace is a single
// UPDATE, and the list is read whole at start-up anyway. Rows written before
// keys were stored hold canonical CIDRs joined by "\n" (TEXT); both read.
import type Database from 'better-sqlite3';
import type { RuleStore } from '../rules/store.js';
import type { BlockDirection } from '../rules/model.js';
import type { ListAction, ListOrigin } from './model.js';
import { decodeKeys, encodeKeys, keyCount, keyTexts, keysOfTexts, type EntryKeys } from './keys.js';

interface ListRow {
  id: number;
  name: string;
  action: ListAction;
  direction: BlockDirection;
  comment: string | null;
  revision: number;
  updated_at: string;
  origin: ListOrigin;
  entries: string | Buffer;
}

/** What a change of a list gives; the store adds the id. */
export interface ListFields {
  name: string;
  action: ListAction;
  direction: BlockDirection;
  comment: string | null;
  revision: number;
  updatedAt: string;
  origin: ListOrigin;
  /** The entries, as sorted keys. */
  keys: EntryKeys;
}

/** One version of a list; a change makes a new one. */
export class StoredList implements ListFields {
  readonly name: string;
  readonly action: ListAction;
  readonly direction: BlockDirection;
  readonly comment: string | null;
  readonly revision: number;
  readonly updatedAt: string;
  readonly origin: ListOrigin;
  readonly keys: EntryKeys;
  private textCache?: string[];

  constructor(readonly id: number, fields: ListFields) {
    this.name = fields.name;
    this.action = fields.action;
    this.direction = fields.direction;
    this.comment = fields.comment;
    this.revision = fields.revision;
    this.updatedAt = fields.updatedAt;
    this.origin = fields.origin;
    this.keys = fields.keys;
  }

  get count(): number {
    return keyCount(this.keys);
  }

  /** Canonical entries in key order (IPv4 by address, then IPv6), made once when first asked for. */
  get texts(): readonly string[] {
    return (this.textCache ??= keyTexts(this.keys));
  }
}

const SCHEMA = `CREATE TABLE IF NOT EXISTS lists (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  name       TEXT NOT NULL UNIQUE,
  action     TEXT NOT NULL CHECK (action IN ('deny', 'allow', 'none')),
  direction  TEXT NOT NULL CHECK (direction IN ('src', 'dst')),
  comment    TEXT,
  revision   INTEGER NOT NULL,
  updated_at TEXT NOT NULL,
  origin     TEXT NOT NULL DEFAULT 'api',
  entries    TEXT NOT NULL
)`;

/** Blocks looked up per IN query when checking which list entries are blocked too. */
const IN_CHUNK = 500;

export class ListStore {
  private readonly db: Database.Database;

  constructor(private readonly rules: RuleStore) {
    this.db = rules.sqlite;
    this.db.exec(SCHEMA);
  }

  all(): StoredList[] {
    return this.db.prepare<[], ListRow>('SELECT * FROM lists ORDER BY id').all().map(toList);
  }

  /** Inserts or replaces a list in one transaction; the id of its row. */
  async save(list: ListFields): Promise<number> {
    return this.rules.transaction(`cannot store list ${list.name}`, () => {
      const row = this.db
        .prepare<[string, string, string, string | null, number, string, string, Buffer], { id: number }>(
          `INSERT INTO lists (name, action, direction, comment, revision, updated_at, origin, entries) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET action = excluded.action, direction = excluded.direction, comment = excluded.comment,
             revision = excluded.revision, updated_at = excluded.updated_at, origin = excluded.origin, entries = excluded.entries
           RETURNING id`,
        )
        .get(list.name, list.action, list.direction, list.comment, list.revision, list.updatedAt, list.origin, encodeKeys(list.keys));
      return row!.id;
    });
  }

  async delete(name: string): Promise<void> {
    await this.rules.transaction(`cannot delete list ${name}`, () => {
      this.db.prepare<[string]>('DELETE FROM lists WHERE name = ?').run(name);
    });
  }

  /** How many blocks of `direction` there are. */
  blockCount(direction: BlockDirection): number {
    return this.db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM blocks WHERE direction = ?').get(direction)!.n;
  }

  /** The keys of every block of `direction`. */
  blockKeys(direction: BlockDirection): EntryKeys {
    return keysOfTexts(this.db.prepare<[string], string>('SELECT cidr FROM blocks WHERE direction = ?').pluck().all(direction));
  }

  /** The texts among `cidrs` that a block of `direction` holds. */
  blockedAmong(direction: BlockDirection, cidrs: readonly string[]): Set<string> {
    const blocked = new Set<string>();
    if (cidrs.length === 0) return blocked;
    const total = this.blockCount(direction);
    if (total === 0) return blocked;
    if (total <= cidrs.length) {
      const mine = new Set(cidrs);
      for (const cidr of this.db.prepare<[string], string>('SELECT cidr FROM blocks WHERE direction = ?').pluck().iterate(direction)) {
        if (mine.has(cidr)) blocked.add(cidr);
      }
      return blocked;
    }
    for (let from = 0; from < cidrs.length; from += IN_CHUNK) {
      const chunk = cidrs.slice(from, from + IN_CHUNK);
      const found = this.db
        .prepare<unknown[], string>(`SELECT cidr FROM blocks WHERE direction = ? AND cidr IN (${chunk.map(() => '?').join(', ')})`)
        .pluck()
        .all(direction, ...chunk);
      for (const cidr of found) blocked.add(cidr);
    }
    return blocked;
  }
}

function toList(row: ListRow): StoredList {
  const keys = typeof row.entries === 'string' ? keysOfTexts(row.entries === '' ? [] : row.entries.split('\n')) : decodeKeys(row.entries);
  return new StoredList(row.id, {
    name: row.name,
    action: row.action,
    direction: row.direction,
    comment: row.comment,
    revision: row.revision,
    updatedAt: row.updated_at,
    origin: row.origin,
    keys,
  });
}

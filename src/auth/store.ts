// Who may use the API, and what they did: tokens and the audit trail, in
// access.sqlite next to the rule store. A file of its own, not tables in
// rules.sqlite, because `xdpwall token create` writes it while the daemon
// runs: a bulk import holds the rule store's write lock for seconds, and a
// token command must not wait for (or fail behind) that.
//
// WAL mode, so the daemon reads while the CLI writes; busy_timeout, so two
// writers queue instead of failing. The daemon looks tokens up on every
// request, so a token created or revoked by the CLI counts at once.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE tokens (
     id         INTEGER PRIMARY KEY AUTOINCREMENT,
     name       TEXT NOT NULL,
     scope      TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
     digest     BLOB NOT NULL UNIQUE,  -- SHA-256 of the whole token; the token itself is never stored
     created_at TEXT NOT NULL,
     revoked_at TEXT
   );
   -- A name belongs to one live token; a revoked token's name may be reused.
   CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_at IS NULL;
   CREATE TABLE audit (
     id        INTEGER PRIMARY KEY AUTOINCREMENT,
     time      TEXT NOT NULL,
     principal TEXT NOT NULL,
     remote    TEXT,
     method    TEXT NOT NULL,
     route     TEXT NOT NULL,
     status    INTEGER NOT NULL,
     detail    TEXT NOT NULL         -- JSON: list, cidr, direction, ruleId, count, error code...
   );
   CREATE INDEX audit_time ON audit (time);`,
];

export const accessStorePathIn = (stateDir: string): string => join(stateDir, 'access.sqlite');

export interface AccessDbOptions {
  /**
   * FULL for one-shot CLI writes (a printed token must survive a crash);
   * the daemon uses NORMAL: WAL stays consistent, and an audit row costs no
   * fsync on the request path.
   */
  synchronous: 'FULL' | 'NORMAL';
}

export function openAccessDb(path: string, options: AccessDbOptions): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous}`);
  db.pragma('busy_timeout = 5000');
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    db.close();
    throw new Error(`${path} has schema version ${version}, newer than this xdpwall (${MIGRATIONS.length})`);
  }
  db.transaction(() => {
    for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
  return db;
}

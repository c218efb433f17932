// The access store opened as one thing: tokens and the audit trail over one
// SQLite connection (see store.ts for why it is a file of its own).
import type Database from 'better-sqlite3';
import { AuditLog, DEFAULT_AUDIT_RETENTION } from './audit.js';
import { openAccessDb, type AccessDbOptions } from './store.js';
import { TokenStore } from './tokens.js';

export interface AccessStoreOptions extends AccessDbOptions {
  auditRetention?: number;
  now?: () => Date;
}

export class AccessStore {
  readonly tokens: TokenStore;
  readonly audit: AuditLog;

  private constructor(private readonly db: Database.Database, options: AccessStoreOptions) {
    this.tokens = new TokenStore(db, options.now);
    this.audit = new AuditLog(db, options.auditRetention ?? DEFAULT_AUDIT_RETENTION);
  }

  /** Opens (and creates or migrates) the store at `path`; ":memory:" for tests. */
  static open(path: string, options: AccessStoreOptions): AccessStore {
    return new AccessStore(openAccessDb(path, options), options);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

// The audit trail: one row per mutation attempt (and per token created or
// revoked), whatever its outcome. Rows are kept to a bounded count so a busy
// or hostile client cannot fill the disk through the trail itself.
import type Database from 'better-sqlite3';
import { InvalidArgumentError } from '../errors.js';

/** What a request changed, or tried to: the parts that apply. */
export interface AuditDetail {
  /** The rule list touched, e.g. "blocks" or "tokens". */
  list?: string;
  cidr?: string;
  direction?: string;
  ruleId?: number;
  /** Items in a bulk request. */
  count?: number;
  created?: number;
  existing?: number;
  /** Token name and scope, for token changes. */
  token?: string;
  scope?: string;
  /** The error code of a failed attempt. */
  error?: string;
  force?: boolean;
  /** A named list's name and new revision (/v1/lists). */
  name?: string;
  revision?: number;
}

export interface AuditEntry {
  time: string;
  /** A token's name, "unix" (the local socket) or "local" (the CLI on the state directory). */
  principal: string;
  remote: string | null;
  method: string;
  route: string;
  status: number;
  detail: AuditDetail;
}

export interface AuditRecord extends AuditEntry {
  id: number;
}

export interface AuditQuery {
  limit: number;
  /** ISO time: entries at or after it, oldest first. Without it: the latest `limit` entries. */
  since?: string;
}

/** A row as stored: detail as JSON text. */
type AuditRow = Omit<AuditRecord, 'detail'> & { detail: string };

export const DEFAULT_AUDIT_RETENTION = 100_000;
/** Pruning is a range delete; doing it once every so many inserts keeps inserts cheap. */
const PRUNE_EVERY = 256;

const record = (row: AuditRow): AuditRecord => ({ ...row, detail: JSON.parse(row.detail) as AuditDetail });

export class AuditLog {
  private readonly statements;
  private insertsSincePrune = 0;

  constructor(
    db: Database.Database,
    private readonly retention = DEFAULT_AUDIT_RETENTION,
  ) {
    this.statements = {
      insert: db.prepare<[string, string, string | null, string, string, number, string]>(
        'INSERT INTO audit (time, principal, remote, method, route, status, detail) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      since: db.prepare<[string, number], AuditRow>('SELECT * FROM audit WHERE time >= ? ORDER BY id LIMIT ?'),
      latest: db.prepare<[number], AuditRow>('SELECT * FROM (SELECT * FROM audit ORDER BY id DESC LIMIT ?) ORDER BY id'),
      prune: db.prepare<[number]>('DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?'),
    };
  }

  append(entry: AuditEntry): void {
    const { time, principal, remote, method, route, status, detail } = entry;
    this.statements.insert.run(time, principal, remote, method, route, status, JSON.stringify(detail));
    if (++this.insertsSincePrune >= PRUNE_EVERY) {
      this.insertsSincePrune = 0;
      this.statements.prune.run(this.retention);
    }
  }

  list(query: AuditQuery): AuditRecord[] {
    if (query.since === undefined) return this.statements.latest.all(query.limit).map(record);
    const since = Date.parse(query.since);
    if (Number.isNaN(since)) throw new InvalidArgumentError(`since "${query.since}" is not an ISO 8601 time`);
    return this.statements.since.all(new Date(since).toISOString(), query.limit).map(record);
  }
}

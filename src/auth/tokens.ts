// API tokens. A token is "xdpw_" and 43 base64url characters (256 random
// bits); the prefix makes a leaked token easy to recognise in logs and by
// secret scanners. Only its SHA-256 digest is stored, so a copy of the state
// directory does not hand out working tokens. A full-entropy token needs no
// slow hash: there is nothing to guess.
import type Database from 'better-sqlite3';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { InvalidArgumentError, NotFoundError } from '../errors.js';

export const SCOPES = ['read', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export const isScope = (value: unknown): value is Scope => typeof value === 'string' && (SCOPES as readonly string[]).includes(value);

/** Each scope includes the ones before it: admin may write, write may read. */
export const scopeAllows = (held: Scope, needed: Scope): boolean => SCOPES.indexOf(held) >= SCOPES.indexOf(needed);

export const TOKEN_PREFIX = 'xdpw_';
const TOKEN_PATTERN = /^xdpw_[A-Za-z0-9_-]{43}$/;
/** Principals that are not tokens; no token may take these names. */
export const RESERVED_PRINCIPALS = ['unix', 'local', 'anonymous'] as const;

export interface TokenInfo {
  id: number;
  name: string;
  scope: Scope;
  createdAt: string;
}

interface TokenRow {
  id: number;
  name: string;
  scope: Scope;
  digest: Buffer;
  created_at: string;
}

const digestOf = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();
const info = (row: TokenRow): TokenInfo => ({ id: row.id, name: row.name, scope: row.scope, createdAt: row.created_at });

export function validateTokenName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) {
    throw new InvalidArgumentError(`token name "${name}" must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  if ((RESERVED_PRINCIPALS as readonly string[]).includes(name)) {
    throw new InvalidArgumentError(`"${name}" is reserved for a principal that is not a token`);
  }
}

export class TokenStore {
  private readonly statements;
  /**
   * Tokens verified since the table last changed, by digest (secrets are
   * never kept): a hit skips the query on every request. Only
   * live tokens are cached, so unknown secrets cannot grow it. Emptied when
   * PRAGMA data_version says another connection (the token CLI) committed,
   * and on this store's own create/revoke.
   */
  private readonly verified = new Map<string, TokenInfo>();
  private seenDataVersion = -1;

  constructor(
    db: Database.Database,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.statements = {
      insert: db.prepare<[string, string, Buffer, string]>('INSERT INTO tokens (name, scope, digest, created_at) VALUES (?, ?, ?, ?)'),
      liveByName: db.prepare<[string], TokenRow>('SELECT * FROM tokens WHERE name = ? AND revoked_at IS NULL'),
      liveByDigest: db.prepare<[Buffer], TokenRow>('SELECT * FROM tokens WHERE digest = ? AND revoked_at IS NULL'),
      live: db.prepare<[], TokenRow>('SELECT * FROM tokens WHERE revoked_at IS NULL ORDER BY id'),
      revoke: db.prepare<[string, number]>('UPDATE tokens SET revoked_at = ? WHERE id = ?'),
      dataVersion: db.prepare<[], number>('PRAGMA data_version').pluck(),
    };
  }

  /** Creates a token; the returned secret is shown once and never again. */
  create(name: string, scope: Scope): { token: string; info: TokenInfo } {
    validateTokenName(name);
    if (!isScope(scope)) throw new InvalidArgumentError(`scope must be read, write or admin, not "${String(scope)}"`);
    if (this.statements.liveByName.get(name)) throw new InvalidArgumentError(`a token named "${name}" already exists; revoke it first`);
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const createdAt = this.now().toISOString();
    const { lastInsertRowid } = this.statements.insert.run(name, scope, digestOf(token), createdAt);
    this.verified.clear();
    return { token, info: { id: Number(lastInsertRowid), name, scope, createdAt } };
  }

  /**
   * The live token this secret belongs to, or undefined. The lookup is by
   * digest: an attacker who varies the token cannot steer which digest bytes
   * the index compares, so its timing says nothing about stored tokens; the
   * final comparison is constant-time anyway.
   */
  verify(token: string): TokenInfo | undefined {
    const dataVersion = this.statements.dataVersion.get()!;
    if (dataVersion !== this.seenDataVersion) {
      this.verified.clear();
      this.seenDataVersion = dataVersion;
    }
    if (!TOKEN_PATTERN.test(token)) return undefined;
    const digest = digestOf(token);
    const key = digest.toString('base64');
    const cached = this.verified.get(key);
    if (cached) return cached;
    const row = this.statements.liveByDigest.get(digest);
    if (!row || !timingSafeEqual(row.digest, digest)) return undefined;
    const live = info(row);
    this.verified.set(key, live);
    return live;
  }

  list(): TokenInfo[] {
    return this.statements.live.all().map(info);
  }

  revoke(name: string): TokenInfo {
    const row = this.statements.liveByName.get(name);
    if (!row) throw new NotFoundError(`no token named "${name}"`);
    this.statements.revoke.run(this.now().toISOString(), row.id);
    this.verified.clear();
    return info(row);
  }
}

// The control plane's typed errors. Each carries a stable `code` that
// operators' scripts match on; api/plugins/errors.ts maps them to HTTP in one
// place, and the CLI prints `code: message` on one line.

export type ErrorCode =
  | 'INVALID_CIDR'
  | 'INVALID_ARGUMENT'
  | 'INVALID_UTF8'
  | 'NOT_FOUND'
  | 'CAPACITY_EXCEEDED'
  | 'DATAPATH_ERROR'
  | 'STORE_ERROR'
  | 'STORE_BUSY'
  | 'STORE_FULL'
  | 'BUSY'
  | 'QUERY_QUEUE_FULL'
  | 'INVALID_JSON'
  | 'INVALID_REQUEST'
  | 'PAYLOAD_TOO_LARGE'
  | 'CONFIG_ERROR'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'MISDIRECTED_REQUEST'
  | 'RATE_LIMITED'
  | 'SELF_LOCKOUT'
  | 'INSTANCE_LOCKED'
  | 'HOOK_BUSY'
  | 'INVALID_RULE'
  | 'FAILSAFE_CONFLICT'
  | 'TOO_BROAD'
  | 'REVISION_MISMATCH'
  | 'LIST_IN_USE'
  | 'MANAGED_BY_FILE';

export class XdpwallError extends Error {
  override readonly name: string = 'XdpwallError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class InvalidCidrError extends XdpwallError {
  override readonly name = 'InvalidCidrError';
  constructor(message: string) {
    super('INVALID_CIDR', message);
  }
}

export class InvalidArgumentError extends XdpwallError {
  override readonly name = 'InvalidArgumentError';
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

export class NotFoundError extends XdpwallError {
  override readonly name = 'NotFoundError';
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}

/** A policy rule that cannot be stored as written; `field` names the offending field. */
export class InvalidRuleError extends XdpwallError {
  override readonly name = 'InvalidRuleError';
  constructor(readonly field: string, message: string) {
    super('INVALID_RULE', message);
  }
}

/** A block or rule would cover an address the failsafe list keeps reachable. */
export class FailsafeConflictError extends XdpwallError {
  override readonly name = 'FailsafeConflictError';
  constructor(message: string) {
    super('FAILSAFE_CONFLICT', message);
  }
}

/** A block of everything (/0): the default policy is the way to drop everything. */
export class TooBroadError extends XdpwallError {
  override readonly name = 'TooBroadError';
  constructor(message: string) {
    super('TOO_BROAD', message);
  }
}

/** If-Match named another revision than the stored one (a concurrent change won). */
export class RevisionMismatchError extends XdpwallError {
  override readonly name = 'RevisionMismatchError';
  constructor(message: string) {
    super('REVISION_MISMATCH', message);
  }
}

/** A rule references the list being deleted. */
export class ListInUseError extends XdpwallError {
  override readonly name = 'ListInUseError';
  constructor(message: string) {
    super('LIST_IN_USE', message);
  }
}

/** The entry is managed by the --rules file: change the file, not the API. */
export class ManagedByFileError extends XdpwallError {
  override readonly name = 'ManagedByFileError';
  constructor(message: string) {
    super('MANAGED_BY_FILE', message);
  }
}

/** A kernel map is full (E2BIG / ENOSPC from the kernel). */
export class CapacityError extends XdpwallError {
  override readonly name = 'CapacityError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('CAPACITY_EXCEEDED', message, options);
  }
}

export class DatapathError extends XdpwallError {
  override readonly name = 'DatapathError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('DATAPATH_ERROR', message, options);
  }
}

export class ConfigError extends XdpwallError {
  override readonly name = 'ConfigError';
  constructor(message: string) {
    super('CONFIG_ERROR', message);
  }
}

/** Another process holds the state or pin directory (a second daemon). */
export class LockedError extends XdpwallError {
  override readonly name = 'LockedError';
  constructor(message: string) {
    super('INSTANCE_LOCKED', message);
  }
}

/** The interface runs an XDP program this instance does not own. */
export class HookBusyError extends XdpwallError {
  override readonly name = 'HookBusyError';
  constructor(message: string) {
    super('HOOK_BUSY', message);
  }
}

/** The rule store failed (I/O error, corrupt or read-only file). */
export class StoreError extends XdpwallError {
  override readonly name: string = 'StoreError';
  constructor(message: string, options?: { cause?: unknown }, code: 'STORE_ERROR' | 'STORE_BUSY' | 'STORE_FULL' = 'STORE_ERROR') {
    super(code, message, options);
  }
}

/** Another process holds the store's write lock (SQLITE_BUSY): retry later. */
export class StoreBusyError extends StoreError {
  override readonly name = 'StoreBusyError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options, 'STORE_BUSY');
  }
}

/** The disk holding the store is full (SQLITE_FULL / ENOSPC). */
export class StoreFullError extends StoreError {
  override readonly name = 'StoreFullError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options, 'STORE_FULL');
  }
}

/** The operation excludes others of its kind (one bulk import at a time). */
export class BusyError extends XdpwallError {
  override readonly name = 'BusyError';
  constructor(message: string) {
    super('BUSY', message);
  }
}

/** Too many distinct flow queries wait or run at once (src/flows/snapshot.ts): retry shortly. */
export class QueryQueueFullError extends XdpwallError {
  override readonly name = 'QueryQueueFullError';
  constructor(message: string) {
    super('QUERY_QUEUE_FULL', message);
  }
}

/** A request body that is not the JSON (or NDJSON) it claims to be. */
export class InvalidJsonError extends XdpwallError {
  override readonly name = 'InvalidJsonError';
  constructor(message: string) {
    super('INVALID_JSON', message);
  }
}

/** A body of the wrong shape (what schema validation reports for other routes). */
export class InvalidRequestError extends XdpwallError {
  override readonly name = 'InvalidRequestError';
  constructor(message: string) {
    super('INVALID_REQUEST', message);
  }
}

export class PayloadTooLargeError extends XdpwallError {
  override readonly name = 'PayloadTooLargeError';
  constructor(message: string) {
    super('PAYLOAD_TOO_LARGE', message);
  }
}

/**
 * Undoing a failed change failed too. The original error stays the one the
 * caller sees (its code decides the status); the undo failures ride along in
 * `undoFailures` and in the message, which says the two sides may differ.
 */
export function withUndoFailures<E extends Error>(original: E, failures: readonly unknown[]): E {
  if (failures.length === 0) return original;
  const reasons = failures.map((f) => (f instanceof Error ? f.message : String(f))).join('; ');
  original.message += `; undoing it failed too (${reasons}): the store and the kernel may differ until the daemon restarts`;
  Object.defineProperty(original, 'undoFailures', { value: failures, enumerable: true });
  return original;
}

/** The undo failures withUndoFailures attached, if any. */
export function undoFailuresOf(error: unknown): readonly unknown[] {
  const failures = (error as { undoFailures?: unknown[] } | null)?.undoFailures;
  return Array.isArray(failures) ? failures : [];
}

/** Runs every step, even after one fails (an undo does all it can); returns the failures. */
export async function collectFailures(steps: ReadonlyArray<() => Promise<unknown>>): Promise<unknown[]> {
  const failures: unknown[] = [];
  for (const step of steps) await step().catch((error: unknown) => failures.push(error));
  return failures;
}

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
  | 'CONFIG_ERROR'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'MISDIRECTED_REQUEST'
  | 'RATE_LIMITED'
  | 'SELF_LOCKOUT'
  | 'INSTANCE_LOCKED'
  | 'HOOK_BUSY';

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

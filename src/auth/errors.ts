// Refusals of the access layer. Each maps to one HTTP status in
// api/plugins/errors.ts; the headers a client needs to react (how to
// authenticate, when to retry) travel with the error.
import { XdpwallError, type ErrorCode } from '../errors.js';

export class AccessError extends XdpwallError {
  override readonly name: string = 'AccessError';
  constructor(
    code: ErrorCode,
    message: string,
    /** Response headers that belong to this refusal. */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(code, message);
  }
}

const REALM = 'Bearer realm="xdpwall"';

/** 401: no token, or one that is unknown or revoked. */
export const unauthenticated = (message: string, invalidToken: boolean) =>
  new AccessError('UNAUTHENTICATED', message, {
    'www-authenticate': invalidToken ? `${REALM}, error="invalid_token"` : REALM,
  });

/** 403: a valid token whose scope is too small. */
export const forbidden = (message: string, needed: string) =>
  new AccessError('FORBIDDEN', message, { 'www-authenticate': `${REALM}, error="insufficient_scope", scope="${needed}"` });

/** 421: the Host header names neither this listener nor a configured name (DNS rebinding). */
export const misdirected = (message: string) => new AccessError('MISDIRECTED_REQUEST', message);

/** 429: this principal's mutation budget is spent for now. */
export const rateLimited = (message: string, retryAfterSeconds: number) =>
  new AccessError('RATE_LIMITED', message, { 'retry-after': String(retryAfterSeconds) });

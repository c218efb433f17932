// Every error leaves the API here, as {error: {code, message}} with a status
// chosen in this one place.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { XdpwallError, type ErrorCode } from '../../src/errors.js';
import { AccessError } from '../../src/auth/errors.js';

const STATUS_BY_CODE: Record<ErrorCode, number> = {
  INVALID_CIDR: 400,
  INVALID_ARGUMENT: 400,
  INVALID_UTF8: 400,
  NOT_FOUND: 404,
  CAPACITY_EXCEEDED: 507,
  DATAPATH_ERROR: 500,
  STORE_ERROR: 500,
  STORE_BUSY: 503,
  STORE_FULL: 507,
  BUSY: 409,
  QUERY_QUEUE_FULL: 503,
  INVALID_JSON: 400,
  INVALID_REQUEST: 400,
  PAYLOAD_TOO_LARGE: 413,
  CONFIG_ERROR: 500,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  MISDIRECTED_REQUEST: 421,
  RATE_LIMITED: 429,
  SELF_LOCKOUT: 409,
  INSTANCE_LOCKED: 409,
  HOOK_BUSY: 409,
  INVALID_RULE: 400,
  FAILSAFE_CONFLICT: 409,
  TOO_BROAD: 400,
  REVISION_MISMATCH: 412,
  LIST_IN_USE: 409,
  MANAGED_BY_FILE: 409,
};

/** Fastify's own client errors, by their FST_ code, mapped to ours. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
};

/**
 * Failures the router raises before any route or error handler runs (a URL
 * that does not decode, a path parameter over the length limit): same body
 * shape, stable codes. Passed to Fastify as its frameworkErrors option.
 */
export function frameworkErrors(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    reply.code(414).send(errorBody('URI_TOO_LONG', 'a path parameter is longer than the router accepts'));
    return;
  }
  reply.code(400).send(errorBody('BAD_URL', 'the URL is not valid'));
}

export function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | XdpwallError | Error, request, reply) => {
    if (error instanceof XdpwallError) {
      const status = STATUS_BY_CODE[error.code];
      if (error instanceof AccessError) reply.headers(error.headers);
      if (status >= 500) request.log.error({ err: error }, 'request failed');
      // These pass once the other writer (or the running table pass) is done: say when to try again.
      if (error.code === 'STORE_BUSY' || error.code === 'BUSY' || error.code === 'QUERY_QUEUE_FULL') reply.header('retry-after', '1');
      return reply.status(status).send(errorBody(error.code, error.message));
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.validation) {
      return reply.status(400).send(errorBody('INVALID_REQUEST', error.message));
    }
    const status = fastifyError.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = (fastifyError.code && FASTIFY_CODES[fastifyError.code]) ?? (error instanceof SyntaxError ? 'INVALID_JSON' : 'BAD_REQUEST');
      return reply.status(status).send(errorBody(code, error.message));
    }
    request.log.error({ err: error }, 'unexpected error');
    return reply.status(500).send(errorBody('INTERNAL', 'internal error; see the daemon log'));
  });

  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send(errorBody('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );
}

// The audit trail of the API: every mutation attempt by a known principal,
// whatever its status, becomes a row in the access store and a log line.
// What changed is read from the request (route, CIDR, direction, id, item
// count) and from what the handler noted with request.audit() (the rule it
// created or removed, counts). Refusals before authentication (401, 421) are
// logged but not stored: anyone can send those, and the trail must not be a
// way to fill the disk.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditDetail, AuditEntry, AuditLog } from '../../src/auth/audit.js';
import { isMutation } from './auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Adds to what this request's audit row says changed. */
    audit(detail: AuditDetail): void;
    auditDetail: AuditDetail | null;
  }
}

export interface AuditOptions {
  audit: AuditLog;
  now?: () => Date;
}

/** Strings from the request body are the client's: keep the trail's rows small. */
const MAX_TEXT = 128;
const text = (value: unknown): string | undefined => (typeof value === 'string' ? value.slice(0, MAX_TEXT) : undefined);
const record = (value: unknown): Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};

/** What the request asked to change, as far as its (possibly invalid) input says. */
function requested(request: FastifyRequest): AuditDetail {
  const body = record(request.body);
  const query = record(request.query);
  const params = record(request.params);
  const route = request.routeOptions.url ?? request.url.split('?')[0]!;
  const detail: AuditDetail = {
    list: /^\/v1\/([^/]+)/.exec(route)?.[1],
    cidr: text(body.cidr) ?? text(query.cidr),
    direction: text(body.direction) ?? text(query.direction),
    ruleId: Number.isSafeInteger(params.id) ? (params.id as number) : undefined,
    count: Array.isArray(body.items) ? body.items.length : undefined,
    force: body.force === true ? true : undefined,
  };
  return Object.fromEntries(Object.entries(detail).filter(([, value]) => value !== undefined));
}

/** The `code` of an error response body, without trusting its shape. */
function errorCode(payload: unknown): string | undefined {
  if (typeof payload !== 'string' || payload.length > 4096) return undefined;
  try {
    return text(record(record(JSON.parse(payload)).error).code);
  } catch {
    return undefined;
  }
}

export function registerAudit(app: FastifyInstance, options: AuditOptions): void {
  const now = options.now ?? (() => new Date());
  app.decorateRequest('auditDetail', null);
  app.decorateRequest('audit', function (this: FastifyRequest, detail: AuditDetail) {
    this.auditDetail = { ...this.auditDetail, ...detail };
  });

  app.addHook('onSend', async (request, reply, payload) => {
    if (isMutation(request.method) && reply.statusCode >= 400) {
      const code = errorCode(payload);
      if (code) request.audit({ error: code });
    }
    return payload;
  });

  app.addHook('onResponse', async (request, reply) => {
    if (!isMutation(request.method)) return;
    const entry: AuditEntry = {
      time: now().toISOString(),
      principal: request.principal?.name ?? 'anonymous',
      remote: request.socket.remoteAddress ?? null,
      method: request.method,
      route: request.routeOptions.url ?? request.url.split('?')[0]!.slice(0, MAX_TEXT),
      status: reply.statusCode,
      detail: { ...requested(request), ...request.auditDetail },
    };
    if (request.principal === null) {
      request.log.warn({ audit: entry }, 'mutation refused before authentication');
      return;
    }
    try {
      options.audit.append(entry);
      request.log.info({ audit: entry }, 'audit');
    } catch (error) {
      // The change itself is done (or refused) and answered; losing its row must be loud, not fatal.
      request.log.error({ err: error, audit: entry }, 'could not store the audit row');
    }
  });
}

// Who is asking, and may they? One onRequest hook for every route, run
// before the body is read (an unauthenticated client cannot make the daemon
// parse a 128 MiB bulk body):
//   1. Host check on TCP listeners: the Host header must name the address the
//      client connected to, or a configured name; anything else is DNS
//      rebinding or a misrouted request (421 MISDIRECTED_REQUEST).
//   2. Principal: a unix-socket client is "unix" (the socket's mode and group
//      already decided who may connect); a TCP client needs a bearer token
//      (401 UNAUTHENTICATED), except on the public routes.
//   3. Scope: a route's config.scope, else read for GET/HEAD and write for the
//      rest (403 FORBIDDEN). Routes added later are covered by default.
//   4. Rate limit on mutations, per principal (429 RATE_LIMITED).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ListenAddress } from '../../src/config.js';
import { scopeAllows, type Scope, type TokenStore } from '../../src/auth/tokens.js';
import type { RateLimiter } from '../../src/auth/rate-limit.js';
import type { ApiPeer } from '../../src/auth/lockout.js';
import { forbidden, misdirected, rateLimited, unauthenticated } from '../../src/auth/errors.js';

export interface Principal {
  /** A token's name, or "unix" for a client of the unix socket. */
  name: string;
  scope: Scope;
}

export const UNIX_PRINCIPAL: Principal = { name: 'unix', scope: 'admin' };

declare module 'fastify' {
  interface FastifyRequest {
    /** Who made the request; null until authenticated, and on public routes over TCP. */
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** The scope a route needs; default read for GET/HEAD, write otherwise. */
    scope?: Scope;
  }
}

export interface AuthOptions {
  listener: ListenAddress;
  tokens: TokenStore;
  /** Host names accepted besides the address the client connected to. */
  hostNames: readonly string[];
  /** Route URLs anyone may call on a TCP listener (the opt-outs, e.g. "/healthz"). */
  publicRoutes: readonly string[];
  rateLimiter?: RateLimiter;
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
export const isMutation = (method: string): boolean => !READ_METHODS.has(method);

/** "[::1]:7070" → "::1", "Example.NET:7070" → "example.net", "198.18.0.2" → "198.18.0.2". */
function hostName(header: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(header);
  if (bracketed) return bracketed[1]!.toLowerCase();
  return header.replace(/:\d+$/, '').toLowerCase();
}

const unmapped = (address: string): string => address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '').toLowerCase();
const isLoopbackAddress = (address: string): boolean => /^127\./.test(address) || address === '::1';

function checkHost(request: FastifyRequest, listenerHost: string, hostNames: ReadonlySet<string>): void {
  const header = request.headers.host ?? '';
  const name = hostName(header);
  // The address this connection arrived at (concrete even on a 0.0.0.0 listener); inject() has none.
  const local = unmapped(request.socket.localAddress ?? listenerHost);
  const accepted = name === local || hostNames.has(name) || (name === 'localhost' && isLoopbackAddress(local));
  if (!accepted) {
    throw misdirected(`Host "${header.slice(0, 100)}" is not this API's address (${local}) or a configured name (api.hostNames)`);
  }
}

function bearerToken(request: FastifyRequest): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '');
  return match?.[1];
}

function authenticate(request: FastifyRequest, tokens: TokenStore): Principal {
  const presented = bearerToken(request);
  if (presented === undefined) {
    throw unauthenticated('this API needs a token: send "Authorization: Bearer TOKEN" (xdpwall token create NAME --scope read|write|admin)', false);
  }
  const token = tokens.verify(presented);
  if (!token) throw unauthenticated('the token is unknown or revoked', true);
  return { name: token.name, scope: token.scope };
}

export function registerAuth(app: FastifyInstance, options: AuthOptions): void {
  const { listener, tokens, rateLimiter } = options;
  const hostNames = new Set(options.hostNames.map((name) => name.toLowerCase()));
  const publicRoutes = new Set(options.publicRoutes);

  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request) => {
    if (listener.kind === 'unix') {
      request.principal = UNIX_PRINCIPAL;
    } else {
      checkHost(request, listener.host, hostNames);
      const route = request.routeOptions.url;
      if (route !== undefined && publicRoutes.has(route)) return;
      request.principal = authenticate(request, tokens);
    }
    const principal = request.principal;
    const needed = request.routeOptions.config?.scope ?? (isMutation(request.method) ? 'write' : 'read');
    if (!scopeAllows(principal.scope, needed)) {
      throw forbidden(`token "${principal.name}" has scope ${principal.scope}; this request needs ${needed}`, needed);
    }
    if (rateLimiter && isMutation(request.method)) {
      const decision = rateLimiter.take(principal.name);
      if (!decision.allowed) {
        throw rateLimited(`too many changes from "${principal.name}"; retry in ${decision.retryAfterSeconds} s`, decision.retryAfterSeconds);
      }
    }
  });
}

/** The client's connection as self lock-out checks see it: no addresses on the unix socket. */
export const clientPeer = (request: FastifyRequest): ApiPeer => ({
  remote: request.socket.remoteAddress,
  local: request.socket.localAddress,
});

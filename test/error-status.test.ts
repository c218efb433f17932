// One row per error code and the HTTP status it leaves the API with. The
// codes are read from the source (the ErrorCode union in src/errors.ts and the
// codes api/plugins/errors.ts answers with itself), so a code added without a
// row here fails this test. Each row goes through the real app's one error
// handler; where a real request reaches the code cheaply, a second table
// reaches it that way too (E2BIG from a full kernel hash included).
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { buildApp } from '../api/app.js';
import { Firewall, storePathIn } from '../src/firewall.js';
import { XdpwallError, type ErrorCode } from '../src/errors.js';
import { AccessError } from '../src/auth/errors.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { quietLog } from './lib/firewall.js';

/** The status of every code the control plane defines. Typed: tsc also refuses a missing row. */
const STATUS: Record<ErrorCode, number> = {
  INVALID_CIDR: 400,
  INVALID_ARGUMENT: 400,
  INVALID_UTF8: 400,
  INVALID_JSON: 400,
  INVALID_REQUEST: 400,
  INVALID_RULE: 400,
  TOO_BROAD: 400,
  NOT_FOUND: 404,
  BUSY: 409,
  SELF_LOCKOUT: 409,
  INSTANCE_LOCKED: 409,
  HOOK_BUSY: 409,
  FAILSAFE_CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  MISDIRECTED_REQUEST: 421,
  RATE_LIMITED: 429,
  STORE_BUSY: 503,
  QUERY_QUEUE_FULL: 503,
  CAPACITY_EXCEEDED: 507,
  STORE_FULL: 507,
  DATAPATH_ERROR: 500,
  STORE_ERROR: 500,
  CONFIG_ERROR: 500,
  REVISION_MISMATCH: 412,
  LIST_IN_USE: 409,
  MANAGED_BY_FILE: 409,
};

/** Codes the API's error handler and router answer with that are not control-plane errors. */
const API_STATUS: Record<string, { status: number; request: InjectOptions }> = {
  ROUTE_NOT_FOUND: { status: 404, request: { method: 'GET', url: '/v2/blocks' } },
  URI_TOO_LONG: { status: 414, request: { method: 'GET', url: `/v1/blocks/${'9'.repeat(200)}` } },
  BAD_URL: { status: 400, request: { method: 'GET', url: '/v1/blocks/%E0%A4%A' } },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, request: { method: 'POST', url: '/v1/blocks', headers: { 'content-type': 'text/plain' }, payload: '198.18.0.0/24' } },
  BAD_REQUEST: { status: 400, request: { method: 'GET', url: '/test/client-error' } },
  INTERNAL: { status: 500, request: { method: 'GET', url: '/test/unexpected' } },
  // Also control-plane codes, raised here by Fastify's own parser and body limit.
  INVALID_JSON: { status: 400, request: { method: 'POST', url: '/v1/blocks', headers: { 'content-type': 'application/json' }, payload: '{"cidr":' } },
  PAYLOAD_TOO_LARGE: { status: 413, request: { method: 'POST', url: '/v1/blocks', payload: { cidr: '198.18.0.0/24', comment: 'x'.repeat(5000) } } },
};

const source = (path: string) => readFileSync(new URL(path, import.meta.url), 'utf8');

/** The members of `export type ErrorCode = | 'A' | 'B' ...;` in src/errors.ts. */
function declaredErrorCodes(): string[] {
  const union = /export type ErrorCode =([^;]*);/.exec(source('../src/errors.ts'))?.[1];
  if (!union) throw new Error('src/errors.ts no longer declares `export type ErrorCode = ...;`: update this test');
  return [...union.matchAll(/'([A-Z0-9_]+)'/g)].map((m) => m[1]!);
}

/** Codes api/plugins/errors.ts writes itself: errorBody('CODE', ...) and the values of FASTIFY_CODES. */
function apiErrorCodes(): string[] {
  const text = source('../api/plugins/errors.ts');
  const bodies = [...text.matchAll(/errorBody\('([A-Z0-9_]+)'/g)].map((m) => m[1]!);
  const fastify = /const FASTIFY_CODES[^{]*\{([^}]*)\}/.exec(text)?.[1] ?? '';
  const mapped = [...fastify.matchAll(/:\s*'([A-Z0-9_]+)'/g)].map((m) => m[1]!);
  const fallbacks = [...text.matchAll(/\?\s*'([A-Z0-9_]+)'\s*:\s*'([A-Z0-9_]+)'/g)].flatMap((m) => [m[1]!, m[2]!]);
  return [...new Set([...bodies, ...mapped, ...fallbacks])].sort();
}

let firewall: Firewall;
let app: FastifyInstance;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xwt-status-'));
  ({ firewall } = await Firewall.open(
    { objectPath: BPF_OBJECT_PATH, storePath: storePathIn(dir), pin: null, capacity: { cidrV4: 64, cidrV6: 64, flows: 64 }, countersCacheMs: 1 },
    quietLog,
  ));
  app = await buildApp({ firewall, bodyLimitBytes: 4096 });
  // Routes that raise what a row names, through the same error handler as every route.
  app.get<{ Params: { code: string } }>('/test/throw/:code', async (request) => {
    const { code } = request.params;
    throw ['UNAUTHENTICATED', 'FORBIDDEN', 'MISDIRECTED_REQUEST', 'RATE_LIMITED'].includes(code)
      ? new AccessError(code as ErrorCode, `injected ${code}`)
      : new XdpwallError(code as ErrorCode, `injected ${code}`);
  });
  // A 4xx from a plugin with no code of ours (what Fastify's unmapped client errors look like).
  app.get('/test/client-error', async () => {
    throw Object.assign(new Error('a client error'), { statusCode: 400 });
  });
  app.get('/test/unexpected', async () => {
    throw new TypeError('a bug');
  });
});

afterAll(async () => {
  await app?.close();
  firewall?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('every error code has a row', () => {
  it('ErrorCode in src/errors.ts and the rows here name the same codes', () => {
    expect(Object.keys(STATUS).sort()).toEqual(declaredErrorCodes().sort());
  });

  it('every code api/plugins/errors.ts answers with has a row', () => {
    const rows = new Set([...Object.keys(STATUS), ...Object.keys(API_STATUS)]);
    expect(apiErrorCodes().filter((code) => !rows.has(code))).toEqual([]);
    expect(apiErrorCodes()).toEqual(expect.arrayContaining(Object.keys(API_STATUS)));
  });
});

describe('status by code, through the error handler', () => {
  it.each(Object.entries(STATUS))('%s → %i', async (code, status) => {
    const res = await app.inject(`/test/throw/${code}`);
    expect(res.statusCode).toBe(status);
    expect(res.json()).toEqual({ error: { code, message: `injected ${code}` } });
    // Both clear once the other writer is done: the client is told when to retry.
    expect(res.headers['retry-after']).toBe(['STORE_BUSY', 'BUSY', 'QUERY_QUEUE_FULL'].includes(code) ? '1' : undefined);
  });

  it.each(Object.entries(API_STATUS).map(([code, { status, request }]) => [code, status, request] as const))('%s → %i (raised by the framework)', async (code, status, request) => {
    const res = await app.inject(request);
    expect(res.statusCode).toBe(status);
    expect(res.json()).toEqual({ error: { code, message: expect.any(String) } });
  });
});

describe('codes reached by real requests', () => {
  const post = (payload: unknown) => app.inject({ method: 'POST', url: '/v1/blocks', payload: payload as object });

  it.each<[ErrorCode, () => Promise<{ statusCode: number; json(): { error: { code: string } } }>]>([
    ['INVALID_CIDR', () => post({ cidr: '198.18.1.2/15' })],
    ['INVALID_REQUEST', () => post({ cidr: '198.18.0.0/24', action: 'allow' })],
    ['INVALID_ARGUMENT', () => app.inject('/v1/flows?proto=sctp')],
    ['INVALID_UTF8', () => app.inject({ method: 'POST', url: '/v1/blocks', headers: { 'content-type': 'application/json' }, payload: Buffer.from([0x7b, 0xff, 0x7d]) })],
    ['NOT_FOUND', () => app.inject('/v1/blocks/999999')],
  ])('%s', async (code, request) => {
    const res = await request();
    expect([res.statusCode, res.json().error.code]).toEqual([STATUS[code], code]);
  });

  it('STORE_BUSY: another process holds the store\'s write lock → 503 with Retry-After', async () => {
    const other = new Database(storePathIn(dir));
    try {
      other.exec('BEGIN IMMEDIATE');
      const res = await post({ cidr: '198.18.40.0/24' });
      expect([res.statusCode, res.json().error.code, res.headers['retry-after']]).toEqual([503, 'STORE_BUSY', '1']);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    expect((await post({ cidr: '198.18.40.0/24' })).statusCode).toBe(201);
  });

  it('CAPACITY_EXCEEDED from the kernel itself: a full host hash answers E2BIG → 507, and nothing is kept', async () => {
    // Fill the IPv4 source host hash behind the control plane's back, so its own capacity count
    // lets the rule through and the kernel is the one that refuses.
    const hosts = firewall.datapath.maps.srcHostV4;
    const value = Buffer.alloc(hosts.valueSize);
    for (let i = 0; i < hosts.maxEntries; i++) hosts.update(Buffer.from([10, 99, 0, i]), value);
    try {
      const res = await post({ cidr: '198.18.41.1/32' });
      expect(res.statusCode).toBe(507);
      expect(res.json().error).toEqual({ code: 'CAPACITY_EXCEEDED', message: expect.stringMatching(/kernel map is full \(E2BIG\)/) });
      expect(firewall.blocks.list({ contains: '198.18.41.1' }).total).toBe(0);
    } finally {
      for (let i = 0; i < hosts.maxEntries; i++) hosts.delete(Buffer.from([10, 99, 0, i]));
    }
    expect((await post({ cidr: '198.18.41.1/32' })).statusCode).toBe(201);
  });
});

// Builds the HTTP API around a Firewall. listen() is the daemon's business,
// so tests drive the same app with inject().
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { ListenAddress } from '../src/config.js';
import { AccessStore } from '../src/auth/access.js';
import type { RateLimiter } from '../src/auth/rate-limit.js';
import { Block } from './schemas/blocks.js';
import { Flow } from './schemas/flows.js';
import { CounterPair, ErrorBody } from './schemas/common.js';
import { frameworkErrors, registerErrorHandling } from './plugins/errors.js';
import { registerDocs } from './plugins/docs.js';
import { registerAuth } from './plugins/auth.js';
import { registerAudit } from './plugins/audit.js';
import { ajvOptions, buildValidator, registerStrictJson, schemaErrorFormatter } from './plugins/strict-input.js';
import { blockRoutes } from './routes/blocks.js';
import { observeRoutes } from './routes/observe.js';
import { metricsRoutes } from './routes/metrics.js';
import { accessRoutes } from './routes/access.js';
import { ruleRoutes } from './routes/rules.js';
import { policyRoutes } from './routes/policy.js';
import { eventRoutes } from './routes/events.js';
import { listRoutes } from './routes/lists.js';
import { Rule } from './schemas/rules.js';
import { UI_ROUTES, uiRoutes } from './routes/ui.js';
import { registerRequestDurations, registerTableMetrics } from './plugins/metrics-extra.js';
import { registerEventMetrics } from './plugins/metrics-events.js';
import { Registry } from 'prom-client';
import type { ApiFirewall } from './firewall.js';

export type { ApiFirewall } from './firewall.js';

/** Who may use the API and how it is audited; see api/plugins/auth.ts. */
export interface ApiAccess {
  /** The listener the app serves: TCP clients need tokens, unix-socket clients are "unix". */
  listener: ListenAddress;
  store: AccessStore;
  /** Host header names accepted besides the address the client connected to. */
  hostNames?: readonly string[];
  /** Whether /metrics is served without a token on TCP (default true). */
  publicMetrics?: boolean;
  /** Limits mutations per principal; none when absent. */
  rateLimiter?: RateLimiter;
  /** Timestamps for audit rows. */
  now?: () => Date;
}

export interface AppOptions {
  firewall: ApiFirewall;
  /**
   * Access control. The daemon always passes its listener and store. Absent,
   * the app behaves as the unix socket does (every client is the trusted
   * principal "unix") with an in-memory store: for tests and benches that
   * drive it through inject().
   */
  access?: ApiAccess;
  /** Serve HTTPS with this certificate chain and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** Request bodies above this many bytes get 413. */
  bodyLimitBytes?: number;
  /** A pino logger for requests; silent when absent. */
  logger?: FastifyBaseLogger;
  version?: string;
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    ...(options.tls && { https: options.tls }),
    bodyLimit: options.bodyLimitBytes ?? 1 << 20,
    ajv: ajvOptions,
    schemaController: { compilersFactory: { buildValidator } },
    schemaErrorFormatter,
    frameworkErrors,
  }).withTypeProvider<TypeBoxTypeProvider>();

  const ownStore = options.access ? undefined : AccessStore.open(':memory:', { synchronous: 'NORMAL' });
  const access = options.access ?? { listener: { kind: 'unix', path: '' }, store: ownStore! };
  if (ownStore) app.addHook('onClose', async () => ownStore.close());
  // The dashboard's files hold no data: the page asks for a token and sends it with every API call.
  const publicRoutes = ['/healthz', ...(access.publicMetrics === false ? [] : ['/metrics']), ...UI_ROUTES];

  // JSON only: anything else is 415, not a string the schema then rejects.
  app.removeContentTypeParser('text/plain');
  registerStrictJson(app);
  for (const schema of [ErrorBody, CounterPair, Block, Flow, Rule]) app.addSchema(schema);
  registerErrorHandling(app);
  // Before any route, so every route (including ones added later) is covered.
  registerAuth(app, {
    listener: access.listener,
    tokens: access.store.tokens,
    hostNames: access.hostNames ?? [],
    publicRoutes,
    rateLimiter: access.rateLimiter,
  });
  registerAudit(app, { audit: access.store.audit, now: access.now });
  // One registry for /metrics: the counters (routes/metrics.ts) and the extras.
  const registry = new Registry();
  registerRequestDurations(app, registry);
  await registerDocs(app, options.version ?? '0.0.0', publicRoutes);
  await app.register(blockRoutes, { firewall: options.firewall });
  await app.register(ruleRoutes, { firewall: options.firewall });
  await app.register(policyRoutes, { firewall: options.firewall });
  await app.register(listRoutes, { firewall: options.firewall });
  await app.register(observeRoutes, { firewall: options.firewall });
  await app.register(eventRoutes, { firewall: options.firewall });
  registerTableMetrics(registry, options.firewall);
  registerEventMetrics(registry, options.firewall);
  await app.register(metricsRoutes, { firewall: options.firewall, registry });
  await app.register(accessRoutes, { access: access.store });
  await app.register(uiRoutes, { tokenRequired: access.listener.kind !== 'unix' });
  return app;
}

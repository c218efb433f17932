// Builds the HTTP API around a Firewall. listen() is the daemon's business,
// so tests drive the same app with inject().
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Firewall } from '../src/firewall.js';
import { Block } from './schemas/blocks.js';
import { Flow } from './schemas/flows.js';
import { CounterPair, ErrorBody } from './schemas/common.js';
import { frameworkErrors, registerErrorHandling } from './plugins/errors.js';
import { registerDocs } from './plugins/docs.js';
import { ajvOptions, buildValidator, registerStrictJson, schemaErrorFormatter } from './plugins/strict-input.js';
import { blockRoutes } from './routes/blocks.js';
import { observeRoutes } from './routes/observe.js';
import { metricsRoutes } from './routes/metrics.js';

/** What the API needs of the firewall. */
export type ApiFirewall = Pick<Firewall, 'blocks' | 'flows' | 'flowCount' | 'stats' | 'interfaces' | 'ruleHits' | 'uptimeSeconds'>;

export interface AppOptions {
  firewall: ApiFirewall;
  /** Request bodies above this many bytes get 413. */
  bodyLimitBytes?: number;
  /** A pino logger for requests; silent when absent. */
  logger?: FastifyBaseLogger;
  version?: string;
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    bodyLimit: options.bodyLimitBytes ?? 1 << 20,
    ajv: ajvOptions,
    schemaController: { compilersFactory: { buildValidator } },
    schemaErrorFormatter,
    frameworkErrors,
  }).withTypeProvider<TypeBoxTypeProvider>();

  // JSON only: anything else is 415, not a string the schema then rejects.
  app.removeContentTypeParser('text/plain');
  registerStrictJson(app);
  for (const schema of [ErrorBody, CounterPair, Block, Flow]) app.addSchema(schema);
  registerErrorHandling(app);
  await registerDocs(app, options.version ?? '0.0.0');
  await app.register(blockRoutes, { firewall: options.firewall });
  await app.register(observeRoutes, { firewall: options.firewall });
  await app.register(metricsRoutes, { firewall: options.firewall });
  return app;
}

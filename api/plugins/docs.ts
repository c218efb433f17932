// The OpenAPI document at /docs/json and its UI at /docs, generated from
// the same schemas that validate requests.
import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { errorResponses } from '../schemas/common.js';

/** `publicRoutes` are served without a token on TCP; every other operation needs one. */
export async function registerDocs(app: FastifyInstance, version: string, publicRoutes: readonly string[]): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'xdpwall',
        description:
          'XDP firewall: block CIDRs, read per-flow counters, stats and health. On TCP every request needs ' +
          '`Authorization: Bearer TOKEN` (`xdpwall token create NAME --scope read|write|admin`) except the health ' +
          'check (and /metrics unless configured otherwise); clients of the unix socket need none.',
        version,
      },
      tags: [
        { name: 'blocks', description: 'CIDR deny rules' },
        { name: 'rules', description: 'Rules on ports, protocols and flags; the default policy and the failsafe list' },
        { name: 'observe', description: 'Flows, counters and attached interfaces' },
        { name: 'access', description: 'Tokens and the audit log (scope admin)' },
        { name: 'health' },
      ],
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'A token from `xdpwall token create`, scope read, write or admin',
          },
        },
      },
      security: [{ bearer: [] }],
    },
    // Public routes need no token; every other one may also answer with the access layer's refusals.
    transform: ({ schema, url, route }) => {
      if (publicRoutes.includes(url)) return { schema: { ...schema, security: [] }, url };
      const methods = [route.method].flat();
      const refusals = [401, 403, 421, ...(methods.every((m) => m === 'GET' || m === 'HEAD') ? [] : [429])];
      return { schema: { ...schema, response: { ...errorResponses(...refusals), ...(schema?.response as object) } }, url };
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}

// The OpenAPI document at /docs/json and its UI at /docs, generated from
// the same schemas that validate requests.
import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';

export async function registerDocs(app: FastifyInstance, version: string): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'xdpwall',
        description: 'XDP firewall: block CIDRs, read per-flow counters, stats and health.',
        version,
      },
      tags: [
        { name: 'blocks', description: 'CIDR deny rules' },
        { name: 'observe', description: 'Flows, counters and attached interfaces' },
        { name: 'health' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}

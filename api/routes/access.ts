// Tokens and the audit log over the API (scope admin). The CLI's `token`
// commands do the same on the state directory without a running daemon.
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AuditList, AuditQuery, TokenCreate, TokenCreated, TokenList, TokenNameParams } from '../schemas/access.js';
import { errorResponses } from '../schemas/common.js';
import type { AccessStore } from '../../src/auth/access.js';

export interface AccessRoutesOptions {
  access: AccessStore;
}

const admin = { scope: 'admin' as const };

export const accessRoutes: FastifyPluginAsyncTypebox<AccessRoutesOptions> = async (app, { access }) => {
  app.get('/v1/audit', {
    config: admin,
    schema: {
      tags: ['access'],
      summary: 'The audit trail: every change to rules and tokens, and every refused attempt',
      querystring: AuditQuery,
      response: { 200: AuditList, ...errorResponses(400, 401, 403) },
    },
  }, async (request) => ({ items: access.audit.list(request.query) }));

  app.get('/v1/tokens', {
    config: admin,
    schema: { tags: ['access'], summary: 'Live tokens (never their secrets)', response: { 200: TokenList, ...errorResponses(401, 403) } },
  }, async () => ({ items: access.tokens.list() }));

  app.post('/v1/tokens', {
    config: admin,
    schema: {
      tags: ['access'],
      summary: 'Create a token; the secret is in this response only',
      body: TokenCreate,
      response: { 201: TokenCreated, ...errorResponses(400, 401, 403) },
    },
  }, async (request, reply) => {
    const { name, scope } = request.body;
    request.audit({ token: name, scope });
    const { token, info } = access.tokens.create(name, scope);
    return reply.status(201).send({ ...info, token });
  });

  app.delete('/v1/tokens/:name', {
    config: admin,
    schema: {
      tags: ['access'],
      summary: 'Revoke a token; requests with it get 401 from now on',
      params: TokenNameParams,
      response: { 204: Type.Null(), ...errorResponses(401, 403, 404) },
    },
  }, async (request, reply) => {
    request.audit({ token: request.params.name });
    access.tokens.revoke(request.params.name);
    return reply.status(204).send(null);
  });
};

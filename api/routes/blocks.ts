import type { Readable } from 'node:stream';
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { BlockBulk, BlockBulkResult, BlockCreateOne, BlockDeleteQuery, BlockIdParams, BlockList, BlockListQuery } from '../schemas/blocks.js';
import { errorResponses } from '../schemas/common.js';
import type { BlockRule } from '../../src/rules/model.js';
import type { ApiFirewall } from '../firewall.js';
import { BULK_CONTENT_TYPES, readBulkItems, type BulkEnvelope, type BulkItem } from '../bulk-body.js';
import { SelfLockoutGuard } from '../../src/auth/lockout.js';
import { clientPeer } from '../plugins/auth.js';
import { parseCidr } from '../../src/rules/cidr.js';
import { API_ORIGIN, normaliseOrigin } from '../../src/policy/block-meta.js';

/** A million IPv4 CIDRs as JSON items is about 30 MB; the body is streamed, never held whole. */
export const BULK_BODY_LIMIT_BYTES = 128 << 20;

export interface BlockRoutesOptions {
  firewall: ApiFirewall;
}

export const blockRoutes: FastifyPluginAsyncTypebox<BlockRoutesOptions> = async (app, { firewall }) => {
  const view = ({ id, cidr, direction, comment, createdAt }: BlockRule) => {
    const hits = firewall.ruleHits(id);
    const counters = hits && { packets: Number(hits.packets), bytes: Number(hits.bytes) };
    const { expiresAt, dryRun, origin } = firewall.blockMeta.meta({ cidr, direction });
    return {
      id, cidr, direction, comment, createdAt, expiresAt, dryRun, origin: origin ?? API_ORIGIN,
      ...(counters && { hits: counters }),
      ...(dryRun && counters && { wouldDrop: counters }),
    };
  };

  app.post('/v1/blocks', {
    schema: {
      tags: ['blocks'],
      summary: 'Block a CIDR',
      description: '201 with the new rule once it is on disk and in the kernel; 200 with the existing rule if already blocked.',
      body: BlockCreateOne,
      response: { 200: Type.Ref('Block'), 201: Type.Ref('Block'), ...errorResponses(400, 409, 413, 415, 507) },
    },
  }, async (request, reply) => {
    new SelfLockoutGuard(clientPeer(request)).check(request.body);
    const { rule, created } = await firewall.addBlock(request.body);
    request.audit({ ruleId: rule.id, cidr: rule.cidr });
    return reply.status(created ? 201 : 200).send(view(rule));
  });

  // The bulk body is read as a stream (bulk-body.ts), in a context of its
  // own where JSON and NDJSON bodies reach the handler unparsed.
  await app.register(async (bulk) => {
    bulk.removeContentTypeParser('application/json');
    bulk.addContentTypeParser([...BULK_CONTENT_TYPES], (_request, payload, done) => done(null, payload));
    bulk.post('/v1/blocks/bulk', {
      schema: {
        tags: ['blocks'],
        summary: 'Block many CIDRs at once',
        description:
          'All or nothing: 200 once every item is on disk and in the kernel, or a 4xx/5xx and no change. ' +
          'Items already blocked (or repeated) count as existing. The first invalid item is named by its index. ' +
          'Each item is what POST /v1/blocks takes (ttl or expiresAt, dryRun, origin included) and merges as it does. ' +
          'The body is `{"items": [...]}` (application/json) or one item per line (application/x-ndjson); it is ' +
          'read as a stream. One import runs at a time: another gets 409 BUSY.',
        body: BlockBulk,
        response: { 200: BlockBulkResult, ...errorResponses(400, 409, 413, 415, 503, 507) },
      },
      // The schema documents the body; readBulkItems checks it item by item while it streams in.
      validatorCompiler: () => () => true,
    }, async (request) => {
      const envelope: BulkEnvelope = {};
      const items = readBulkItems(request.body as Readable, request.headers['content-type'], BULK_BODY_LIMIT_BYTES, envelope);
      const result = await firewall.addBlocks(guarded(items, new SelfLockoutGuard(clientPeer(request)), envelope));
      // The body is a stream here, so the audit plugin cannot count its items: say it.
      request.audit({ ...result, count: result.created + result.existing, ...(envelope.force && { force: true }) });
      return result;
    });
  });

  app.get('/v1/blocks', {
    schema: {
      tags: ['blocks'],
      summary: 'List blocks, oldest first',
      querystring: BlockListQuery,
      response: { 200: BlockList, ...errorResponses(400) },
    },
  }, async (request) => {
    const { limit, offset, contains, origin } = request.query;
    const { items, total } = firewall.blocks.list({ limit, offset, contains, ...(origin !== undefined && { origin: normaliseOrigin(origin) }) });
    return { items: items.map(view), total, limit, offset };
  });

  app.get('/v1/blocks/:id', {
    schema: {
      tags: ['blocks'],
      summary: 'One block, with its drop counters',
      params: BlockIdParams,
      response: { 200: Type.Ref('Block'), ...errorResponses(400, 404) },
    },
  }, async (request) => view(firewall.blocks.get(request.params.id)));

  app.delete('/v1/blocks/:id', {
    schema: {
      tags: ['blocks'],
      summary: 'Unblock by id',
      params: BlockIdParams,
      response: { 204: Type.Null(), ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    const target = firewall.blocks.get(request.params.id);
    firewall.fileManaged.checkBlock(target.cidr, target.direction);
    const rule = await firewall.blocks.removeById(request.params.id);
    request.audit({ cidr: rule.cidr, direction: rule.direction });
    return reply.status(204).send(null);
  });

  app.delete('/v1/blocks', {
    schema: {
      tags: ['blocks'],
      summary: 'Unblock by CIDR',
      querystring: BlockDeleteQuery,
      response: { 204: Type.Null(), ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    for (const direction of request.query.direction ? [request.query.direction] : (['src', 'dst'] as const)) {
      firewall.fileManaged.checkBlock(parseCidr(request.query.cidr).text, direction);
    }
    const removed = await firewall.blocks.removeByCidr(request.query.cidr, request.query.direction);
    request.audit({ cidr: removed[0]!.cidr, count: removed.length });
    return reply.status(204).send(null);
  });
};

/**
 * Passes the items through, and after the last one (before anything is
 * stored) throws SELF_LOCKOUT for the first item that would cut the client
 * off, unless it or the envelope (whose "force" may follow the items) says
 * "force": true.
 */
async function* guarded(items: AsyncIterable<BulkItem[]>, guard: SelfLockoutGuard, envelope: BulkEnvelope): AsyncGenerator<BulkItem[]> {
  let index = 0;
  let offence: unknown;
  for await (const chunk of items) {
    if (!guard.idle && offence === undefined) {
      for (const item of chunk) {
        try {
          guard.check(item, false, `items[${index}]: `);
        } catch (error) {
          offence ??= error;
        }
        index++;
      }
    }
    yield chunk;
  }
  if (offence !== undefined && envelope.force !== true) throw offence;
}

// /v1/lists: named lists of CIDRs, replaced whole (PUT, JSON or a text file),
// changed by delta (PATCH), listed and deleted. Revisions guard races:
// If-Match with a stale revision gets 412 REVISION_MISMATCH.
import { Type, type Static } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { errorResponses } from '../schemas/common.js';
import type { ApiFirewall } from '../firewall.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { parseEntryArraySliced, parseListTextSliced } from '../../src/lists/parse.js';
import { InvalidUtf8Error } from '../plugins/strict-input.js';
import { isUtf8 } from 'node:buffer';

/** A million IPv4 CIDRs as text is about 15 MB, as JSON about 20 MB. */
export const LIST_BODY_LIMIT_BYTES = 128 << 20;

const Action = Type.Union([Type.Literal('deny'), Type.Literal('allow'), Type.Literal('none')]);
const Direction = Type.Union([Type.Literal('src'), Type.Literal('dst')]);
const Name = Type.Object({ name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' }) });
const ListBody = Type.Object(
  {
    entries: Type.Array(Type.String({ maxLength: 64 })),
    action: Type.Optional(Action),
    direction: Type.Optional(Direction),
    comment: Type.Optional(Type.Union([Type.String({ maxLength: 1024, format: 'printable' }), Type.Null()])),
  },
  { additionalProperties: false },
);
const PutQuery = Type.Object({ action: Type.Optional(Action), direction: Type.Optional(Direction) }, { additionalProperties: false });
const PutResult = Type.Object({ name: Type.String(), count: Type.Integer(), revision: Type.Integer(), updatedAt: Type.String() });
const ListView = Type.Object({
  name: Type.String(),
  action: Action,
  direction: Direction,
  comment: Type.Union([Type.String(), Type.Null()]),
  count: Type.Integer(),
  revision: Type.Integer(),
  updatedAt: Type.String(),
  origin: Type.String({ description: 'api, feed (a feed of the configuration) or file (the --rules file)' }),
  hits: Type.Ref('CounterPair'),
});
const Progress = Type.Object({
  name: Type.String(),
  active: Type.Boolean({ description: 'whether a PUT, PATCH or DELETE of the list is under way' }),
  phase: Type.Optional(Type.Union([Type.Literal('store'), Type.Literal('kernel')], { description: 'store: being saved; kernel: its entries going into the kernel' })),
  done: Type.Optional(Type.Integer({ description: 'kernel phase: entries of the change applied so far' })),
  total: Type.Optional(Type.Integer({ description: 'store phase: entries of the new list; kernel phase: entries the change touches' })),
});
const EntriesQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 100 }),
    offset: Type.Integer({ minimum: 0, default: 0 }),
    contains: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
const Patch = Type.Object(
  { add: Type.Optional(Type.Array(Type.String({ maxLength: 64 }))), remove: Type.Optional(Type.Array(Type.String({ maxLength: 64 }))) },
  { additionalProperties: false },
);
const IfMatch = Type.Object({ 'if-match': Type.Optional(Type.String({ maxLength: 64 })) });

/** If-Match: a revision number, bare or quoted (an ETag as the API sends it). */
function ifMatchOf(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(header);
  if (!m) throw new InvalidArgumentError(`If-Match must be a list revision, e.g. "3"`);
  return Number(m[1]);
}

export interface ListRoutesOptions {
  firewall: ApiFirewall;
}

export const listRoutes: FastifyPluginAsyncTypebox<ListRoutesOptions> = async (app, { firewall }) => {
  app.addContentTypeParser('text/plain', { parseAs: 'buffer' }, (_request, body: Buffer, done) => {
    if (!isUtf8(body)) done(new InvalidUtf8Error(), undefined);
    else done(null, body.toString('utf8'));
  });

  app.put('/v1/lists/:name', {
    bodyLimit: LIST_BODY_LIMIT_BYTES,
    schema: {
      tags: ['lists'],
      summary: 'Replace a list atomically (JSON, or text/plain: one CIDR per line, FireHOL netset and Spamhaus DROP as they are)',
      description:
        'Packets see the old list or the new one, never an empty moment: the kernel gets new entries first and loses old ones last. ' +
        'With text/plain, action and direction come as query parameters (default deny, src). If-Match: REVISION → 412 REVISION_MISMATCH if another change came first.',
      params: Name,
      querystring: PutQuery,
      headers: IfMatch,
      body: { content: { 'application/json': { schema: ListBody }, 'text/plain': { schema: Type.String() } } },
      response: { 200: PutResult, ...errorResponses(400, 409, 412, 413, 415, 507) },
    },
  }, async (request, reply) => {
    const body = request.body as string | Static<typeof ListBody>;
    const ifMatch = ifMatchOf(request.headers['if-match']);
    let result;
    if (typeof body === 'string') {
      result = await firewall.lists.put(request.params.name, { entries: await parseListTextSliced(body), ...request.query }, { ifMatch });
    } else {
      if (request.query.action !== undefined || request.query.direction !== undefined) {
        throw new InvalidArgumentError('with a JSON body, action and direction go in the body');
      }
      result = await firewall.lists.put(request.params.name, { ...body, entries: await parseEntryArraySliced(body.entries) }, { ifMatch });
    }
    request.audit({ name: result.name, count: result.count, revision: result.revision });
    return reply.header('etag', `"${result.revision}"`).send(result);
  });

  app.get('/v1/lists', {
    schema: { tags: ['lists'], summary: 'All lists, without their entries', response: { 200: Type.Object({ items: Type.Array(ListView) }) } },
  }, async () => ({ items: firewall.lists.all().map((l) => firewall.lists.view(l)) }));

  app.get('/v1/lists/:name', {
    schema: { tags: ['lists'], summary: 'One list, without its entries', params: Name, response: { 200: ListView, ...errorResponses(400, 404) } },
  }, async (request, reply) => {
    const list = firewall.lists.get(request.params.name);
    return reply.header('etag', `"${list.revision}"`).send(firewall.lists.view(list));
  });

  app.get('/v1/lists/:name/progress', {
    schema: {
      tags: ['lists'],
      summary: 'How far a long PUT, PATCH or DELETE of the list has got (poll it while the request runs)',
      params: Name,
      response: { 200: Progress, ...errorResponses(400, 404) },
    },
  }, async (request) => {
    const { name } = request.params;
    const progress = firewall.lists.progress(name);
    if (progress) return { name, active: true, ...progress };
    firewall.lists.get(name); // 404 for a list that neither exists nor is being made
    return { name, active: false };
  });

  app.get('/v1/lists/:name/entries', {
    schema: {
      tags: ['lists'],
      summary: "A page of a list's entries (canonical, IPv4 by address then prefix length, then IPv6); contains=IP gives those that contain the address",
      params: Name,
      querystring: EntriesQuery,
      response: {
        200: Type.Object({ items: Type.Array(Type.String()), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer(), revision: Type.Integer() }),
        ...errorResponses(400, 404),
      },
    },
  }, async (request) => {
    const { limit, offset, contains } = request.query;
    const { items, total } = firewall.lists.entries(request.params.name, { limit, offset, contains });
    return { items, total, limit, offset, revision: firewall.lists.get(request.params.name).revision };
  });

  app.patch('/v1/lists/:name', {
    bodyLimit: LIST_BODY_LIMIT_BYTES,
    schema: {
      tags: ['lists'],
      summary: 'Add and remove entries in one change (all or nothing)',
      params: Name,
      headers: IfMatch,
      body: Patch,
      response: { 200: PutResult, ...errorResponses(400, 404, 409, 412, 413, 415, 507) },
    },
  }, async (request, reply) => {
    const result = await firewall.lists.patch(request.params.name, request.body, { ifMatch: ifMatchOf(request.headers['if-match']) });
    request.audit({ name: result.name, count: result.count, revision: result.revision });
    return reply.header('etag', `"${result.revision}"`).send(result);
  });

  app.delete('/v1/lists/:name', {
    schema: {
      tags: ['lists'],
      summary: 'Delete a list (409 LIST_IN_USE while a rule references it)',
      params: Name,
      headers: IfMatch,
      response: { 204: Type.Null(), ...errorResponses(400, 404, 409, 412) },
    },
  }, async (request, reply) => {
    await firewall.lists.delete(request.params.name, { ifMatch: ifMatchOf(request.headers['if-match']) });
    request.audit({ name: request.params.name });
    return reply.status(204).send(null);
  });
};

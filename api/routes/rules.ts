import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { RateLimitTop, RateLimitTopQuery, RuleBody, RuleIdParams, RuleList, RuleListQuery } from '../schemas/rules.js';
import { errorResponses } from '../schemas/common.js';
import type { ApiFirewall } from '../firewall.js';
import { ruleView, type PolicyRule } from '../../src/policy/model.js';
import { kernelRuleId } from '../../src/policy/engine.js';

export interface RuleRoutesOptions {
  firewall: ApiFirewall;
}

export const ruleRoutes: FastifyPluginAsyncTypebox<RuleRoutesOptions> = async (app, { firewall }) => {
  const view = async (rule: PolicyRule) => {
    const counter = firewall.ruleHits(kernelRuleId(rule.id));
    const hits = counter ? { packets: Number(counter.packets), bytes: Number(counter.bytes) } : { packets: 0, bytes: 0 };
    const rateLimit = rule.action === 'ratelimit' ? await firewall.ruleRateStats(rule.id) : undefined;
    return { ...ruleView(rule), hits, ...(rule.dryRun && rule.action === 'drop' && { wouldDrop: hits }), ...(rateLimit && { rateLimit }) };
  };

  app.post('/v1/rules', {
    schema: {
      tags: ['rules'],
      summary: 'Add a rule',
      description: '201 with the rule once it is on disk and in the kernel. Invalid combinations get 400 INVALID_RULE naming the field.',
      body: RuleBody,
      response: { 201: Type.Ref('Rule'), ...errorResponses(400, 409, 415, 507) },
    },
  }, async (request, reply) => {
    const rule = await firewall.rules.add(request.body);
    request.audit({ ruleId: rule.id });
    return reply.status(201).send(await view(rule));
  });

  app.get('/v1/rules', {
    schema: {
      tags: ['rules'],
      summary: 'List rules in evaluation order (hook, priority, id)',
      querystring: RuleListQuery,
      response: { 200: RuleList, ...errorResponses(400) },
    },
  }, async (request) => {
    const { limit, offset, hook, iface } = request.query;
    const { items, total } = firewall.rules.list({ limit, offset, hook, iface });
    return { items: await Promise.all(items.map(view)), total, limit, offset };
  });

  app.get('/v1/rules/:id', {
    schema: {
      tags: ['rules'],
      summary: 'One rule, with its counters',
      params: RuleIdParams,
      response: { 200: Type.Ref('Rule'), ...errorResponses(400, 404) },
    },
  }, async (request) => view(firewall.rules.get(request.params.id)));

  app.get('/v1/ratelimits/top', {
    schema: {
      tags: ['rules'],
      summary: 'Sources (or prefixes) being rate-limited now',
      description: 'Buckets of ratelimit rules with drops in their current window (the ban\'s within, else 1 s), most such drops first.',
      querystring: RateLimitTopQuery,
      response: { 200: RateLimitTop, ...errorResponses(400) },
    },
  }, async (request) => ({ items: await firewall.rateLimitTop(request.query.limit) }));

  app.put('/v1/rules/:id', {
    schema: {
      tags: ['rules'],
      summary: 'Replace a rule (same id, counters kept)',
      params: RuleIdParams,
      body: RuleBody,
      response: { 200: Type.Ref('Rule'), ...errorResponses(400, 404, 409, 415, 507) },
    },
  }, async (request) => {
    firewall.fileManaged.checkRule(request.params.id);
    const rule = await firewall.rules.update(request.params.id, request.body);
    request.audit({ ruleId: rule.id });
    return view(rule);
  });

  app.delete('/v1/rules/:id', {
    schema: {
      tags: ['rules'],
      summary: 'Remove a rule',
      params: RuleIdParams,
      response: { 204: Type.Null(), ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    firewall.fileManaged.checkRule(request.params.id);
    const rule = await firewall.rules.remove(request.params.id);
    request.audit({ ruleId: rule.id });
    return reply.status(204).send(null);
  });
};

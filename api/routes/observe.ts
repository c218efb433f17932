import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { FlowList, FlowQuery } from '../schemas/flows.js';
import { Health, InterfaceList, Stats } from '../schemas/stats.js';
import { errorResponses } from '../schemas/common.js';
import type { ApiFirewall } from '../firewall.js';
import { itemsJson } from '../sliced-json.js';

export const NO_INTERFACE_WARNING = 'no interface is attached: nothing is filtered';
export const RESTORING = 'reconciling the pinned maps with the stored rules: they enforce what the previous run left; changes wait for it';
export const RESTORE_FAILED = 'reconciling the pinned maps with the stored rules failed (retried by the periodic check); they enforce what the previous run left';

export interface ObserveRoutesOptions {
  firewall: ApiFirewall;
}

export const observeRoutes: FastifyPluginAsyncTypebox<ObserveRoutesOptions> = async (app, { firewall }) => {
  app.get('/v1/flows', {
    schema: {
      tags: ['observe'],
      summary: 'Per-flow counters, both directions, largest first',
      querystring: FlowQuery,
      response: { 200: FlowList, ...errorResponses(400, 503) },
    },
  }, async (request, reply) => {
    // Up to MAX_FLOW_LIMIT records: serialized in slices (api/sliced-json.ts), not in one go.
    const { items, asOfMs } = await firewall.flows(request.query);
    const json = await itemsJson(items, { asOf: new Date(asOfMs).toISOString() });
    // The typed reply wants the object; fastify sends a Buffer payload as it is.
    return reply.type('application/json; charset=utf-8').send(json as unknown as { items: never[]; asOf: string });
  });

  app.get('/v1/stats', {
    schema: {
      tags: ['observe'],
      summary: 'Packets and bytes by verdict and drop reason, per interface',
      response: { 200: Stats },
    },
  }, async () => firewall.stats());

  app.get('/v1/interfaces', {
    schema: {
      tags: ['observe'],
      summary: 'Attached interfaces and the XDP mode in effect',
      response: { 200: InterfaceList },
    },
  }, async () => ({
    items: firewall.interfaces().map(({ iface, ifindex, xdpMode, requestedMode, egress, state, reason }) => ({
      iface, ifindex, xdpMode, requestedMode, egress, state, ...(reason === undefined ? {} : { reason }),
    })),
  }));

  app.get('/healthz', {
    schema: { tags: ['health'], summary: 'Liveness', response: { 200: Health } },
  }, async () => {
    const interfaces = firewall.interfaces();
    const degraded: Array<{ iface?: string; feed?: string; rulesFile?: string; restore?: 'running' | 'failed'; reason: string }> = interfaces.flatMap(({ iface, state, reason }) =>
      state === 'degraded' ? [{ iface, reason: reason ?? 'unknown' }] : [],
    );
    const restore = firewall.restore();
    if (restore.state === 'running') degraded.push({ restore: 'running', reason: RESTORING });
    if (restore.state === 'failed') degraded.push({ restore: 'failed', reason: `${RESTORE_FAILED}: ${restore.reason}` });
    for (const feed of firewall.feeds?.states() ?? []) if (feed.ok === false) degraded.push({ feed: feed.list, reason: feed.reason ?? 'unknown' });
    const rulesFile = firewall.rulesFile?.status();
    if (rulesFile && !rulesFile.ok) degraded.push({ rulesFile: rulesFile.path, reason: rulesFile.reason ?? 'unknown' });
    const integrations = firewall.integrations.list().map(({ name, state, reason, lastSuccessAt, entries }) => ({
      name, state, ...(reason !== undefined && { reason }), lastSuccessAt, entries,
    }));
    const failing = degraded.length > 0 || integrations.some(({ state }) => state === 'degraded');
    return {
      // Still 200: a liveness probe must not restart the daemon for an interface it cannot fix.
      status: failing ? ('degraded' as const) : ('ok' as const),
      ...(degraded.length > 0 ? { degraded } : {}),
      ...(integrations.length > 0 ? { integrations } : {}),
      uptimeSeconds: firewall.uptimeSeconds(),
      interfaces: interfaces.length,
      blocks: firewall.blocks.list({ limit: 1 }).total,
      // Alive but protecting nothing: say so rather than look healthy.
      warnings: interfaces.length === 0 ? [NO_INTERFACE_WARNING] : [],
    };
  });
};

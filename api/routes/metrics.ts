// Prometheus exposition at /metrics. Values are read from the kernel's
// counters at scrape time (through the same short-lived snapshots the JSON
// routes use), so the scrape is the source of truth, not a copy kept here.
import type { FastifyPluginAsync } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import type { ApiFirewall } from '../firewall.js';

export interface MetricsRoutesOptions {
  firewall: ApiFirewall;
  /** Shared with the other metric sources (plugins/metrics-extra.ts); a private one when absent. */
  registry?: Registry;
}

export const metricsRoutes: FastifyPluginAsync<MetricsRoutesOptions> = async (app, { firewall, registry: shared }) => {
  // Only the firewall's own metrics: prom-client's default Node.js metrics
  // fail promtool's lint, and node_exporter already covers the process.
  const registry = shared ?? new Registry();

  const labelNames = ['iface', 'direction', 'verdict', 'reason'] as const;
  const packets = new Counter({ name: 'xdpwall_packets_total', help: 'Packets by interface, direction, verdict and reason', labelNames, registers: [registry] });
  const bytes = new Counter({ name: 'xdpwall_bytes_total', help: 'Bytes (Ethernet frames) by interface, direction, verdict and reason', labelNames, registers: [registry] });
  const blocks = new Gauge({ name: 'xdpwall_blocks', help: 'CIDR block rules in force', registers: [registry] });
  const flows = new Gauge({ name: 'xdpwall_flows', help: 'Entries in the flow table', registers: [registry] });
  const interfaces = new Gauge({ name: 'xdpwall_interface_info', help: 'Attached interfaces and their XDP mode', labelNames: ['iface', 'xdp_mode'], registers: [registry] });
  const attached = new Gauge({ name: 'xdpwall_interface_attached', help: '1 while our programs are on the interface, 0 while it is degraded', labelNames: ['iface'], registers: [registry] });
  const degraded = new Gauge({ name: 'xdpwall_degraded', help: '1 while some configured interface is not filtered', registers: [registry] });
  // Integrations (the CrowdSec bouncer): one series per integration, never per address.
  const integrationUp = new Gauge({ name: 'xdpwall_integration_up', help: '1 while the integration\'s last update succeeded (0 while degraded or starting)', labelNames: ['integration'], registers: [registry] });
  const integrationEntries = new Gauge({ name: 'xdpwall_integration_entries', help: 'Entries in force from the integration (e.g. active CrowdSec ban decisions)', labelNames: ['integration'], registers: [registry] });
  const integrationUpdates = new Counter({ name: 'xdpwall_integration_updates_total', help: 'Updates (pulls) by result', labelNames: ['integration', 'result'], registers: [registry] });
  const integrationSkipped = new Counter({ name: 'xdpwall_integration_skipped_total', help: 'Entries not applied, by reason (unsupported_scope, refused, ...)', labelNames: ['integration', 'reason'], registers: [registry] });
  const integrationLastSuccess = new Gauge({ name: 'xdpwall_integration_last_success_timestamp_seconds', help: 'Unix time of the last successful update', labelNames: ['integration'], registers: [registry] });
  const integrationResyncs = new Counter({ name: 'xdpwall_integration_resyncs_total', help: 'Periodic full resyncs (CrowdSec: startup=true pulls reconciled with the blocks in force)', labelNames: ['integration'], registers: [registry] });
  const integrationResyncDrift = new Counter({ name: 'xdpwall_integration_resync_drift_total', help: 'Blocks the periodic resyncs had to fix (the incremental updates had missed them), by change: added, extended, removed', labelNames: ['integration', 'change'], registers: [registry] });
  const listEntries = new Gauge({ name: 'xdpwall_list_entries', help: 'Entries of each named list', labelNames: ['list', 'action'], registers: [registry] });
  const feedUp = new Gauge({ name: 'xdpwall_feed_up', help: '1 while the last refresh of the feed filling the list succeeded, 0 while it fails (the last good version stays)', labelNames: ['list'], registers: [registry] });
  const feedSuccess = new Gauge({ name: 'xdpwall_feed_last_success_timestamp_seconds', help: 'When the feed last refreshed successfully (Unix time)', labelNames: ['list'], registers: [registry] });
  const feedFetches = new Counter({ name: 'xdpwall_feed_fetches_total', help: 'Feed refreshes by result', labelNames: ['list', 'result'], registers: [registry] });

  app.get('/metrics', { schema: { tags: ['observe'], summary: 'Prometheus metrics', produces: ['text/plain'] } }, async (_request, reply) => {
    const stats = await firewall.stats();
    packets.reset();
    bytes.reset();
    // Labels straight from the kernel's counter key: the verdict is the key's own.
    for (const { iface, ifindex, direction, verdict, reason, packets: p, bytes: b } of stats.series) {
      const labels = { iface: iface ?? `ifindex:${ifindex}`, direction, verdict, reason };
      packets.inc(labels, p);
      bytes.inc(labels, b);
    }
    blocks.set(firewall.blocks.list({ limit: 1 }).total);
    flows.set(await firewall.flowCount());
    interfaces.reset();
    attached.reset();
    const current = firewall.interfaces();
    for (const { iface, xdpMode, state } of current) {
      interfaces.set({ iface, xdp_mode: xdpMode }, 1);
      attached.set({ iface }, state === 'attached' ? 1 : 0);
    }
    degraded.set(current.some(({ state }) => state === 'degraded') ? 1 : 0);
    for (const metric of [integrationUp, integrationEntries, integrationUpdates, integrationSkipped, integrationLastSuccess, integrationResyncs, integrationResyncDrift]) metric.reset();
    for (const { name, state, updates, entries, skipped, lastSuccessAt, resync } of firewall.integrations.list()) {
      const integration = name;
      integrationUp.set({ integration }, state === 'ok' ? 1 : 0);
      integrationEntries.set({ integration }, entries);
      integrationUpdates.inc({ integration, result: 'ok' }, updates.ok);
      integrationUpdates.inc({ integration, result: 'error' }, updates.error);
      for (const [reason, n] of Object.entries(skipped)) integrationSkipped.inc({ integration, reason }, n);
      if (lastSuccessAt !== null) integrationLastSuccess.set({ integration }, Date.parse(lastSuccessAt) / 1000);
      if (resync) {
        integrationResyncs.inc({ integration }, resync.runs);
        for (const change of ['added', 'extended', 'removed'] as const) integrationResyncDrift.inc({ integration, change }, resync[change]);
      }
    }
    listEntries.reset();
    for (const list of firewall.lists.all()) listEntries.set({ list: list.name, action: list.action }, list.count);
    feedUp.reset();
    feedSuccess.reset();
    feedFetches.reset();
    for (const feed of firewall.feeds?.states() ?? []) {
      if (feed.ok !== null) feedUp.set({ list: feed.list }, feed.ok ? 1 : 0);
      if (feed.lastSuccess) feedSuccess.set({ list: feed.list }, Date.parse(feed.lastSuccess) / 1000);
      for (const [result, n] of [['updated', feed.fetches.updated], ['not_modified', feed.fetches.notModified], ['failed', feed.fetches.failed]] as const) {
        feedFetches.inc({ list: feed.list, result }, n);
      }
    }
    return reply.type(registry.contentType).send(await registry.metrics());
  });
};

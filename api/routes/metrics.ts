// Prometheus exposition at /metrics. Values are read from the kernel's
// counters at scrape time (through the same short-lived snapshots the JSON
// routes use), so the scrape is the source of truth, not a copy kept here.
import type { FastifyPluginAsync } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import type { ApiFirewall } from '../app.js';

export interface MetricsRoutesOptions {
  firewall: ApiFirewall;
}

export const metricsRoutes: FastifyPluginAsync<MetricsRoutesOptions> = async (app, { firewall }) => {
  // Only the firewall's own metrics: prom-client's default Node.js metrics
  // fail promtool's lint, and node_exporter already covers the process.
  const registry = new Registry();

  const labelNames = ['iface', 'direction', 'verdict', 'reason'] as const;
  const packets = new Counter({ name: 'xdpwall_packets_total', help: 'Packets by interface, direction, verdict and reason', labelNames, registers: [registry] });
  const bytes = new Counter({ name: 'xdpwall_bytes_total', help: 'Bytes (Ethernet frames) by interface, direction, verdict and reason', labelNames, registers: [registry] });
  const blocks = new Gauge({ name: 'xdpwall_blocks', help: 'CIDR block rules in force', registers: [registry] });
  const flows = new Gauge({ name: 'xdpwall_flows', help: 'Entries in the flow table', registers: [registry] });
  const interfaces = new Gauge({ name: 'xdpwall_interface_info', help: 'Attached interfaces and their XDP mode', labelNames: ['iface', 'xdp_mode'], registers: [registry] });

  app.get('/metrics', { schema: { tags: ['observe'], summary: 'Prometheus metrics', produces: ['text/plain'] } }, async (_request, reply) => {
    const stats = await firewall.stats();
    packets.reset();
    bytes.reset();
    for (const iface of stats.interfaces) {
      const name = iface.iface ?? `ifindex:${iface.ifindex}`;
      for (const direction of ['ingress', 'egress'] as const) {
        for (const [reason, counter] of Object.entries(iface[direction].reasons)) {
          const verdict = reason.startsWith('pass_') ? 'pass' : 'drop';
          packets.inc({ iface: name, direction, verdict, reason }, counter!.packets);
          bytes.inc({ iface: name, direction, verdict, reason }, counter!.bytes);
        }
      }
    }
    blocks.set(firewall.blocks.list({ limit: 1 }).total);
    flows.set(await firewall.flowCount());
    interfaces.reset();
    for (const { iface, xdpMode } of firewall.interfaces()) interfaces.set({ iface, xdp_mode: xdpMode }, 1);
    return reply.type(registry.contentType).send(await registry.metrics());
  });
};

// Metrics beside the counters of routes/metrics.ts, in the same registry:
// how long API requests take, and how full the tables an operator sizes are.
// Labels name routes (templates) and tables, never addresses.
import type { FastifyInstance } from 'fastify';
import { Gauge, Histogram, type Registry } from 'prom-client';
import type { ApiFirewall } from '../firewall.js';
import type { TableUsage } from '../../src/firewall.js';

/** Seconds; from a cached read (~1 ms) to a million-rule bulk import. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * xdpwall_api_request_duration_seconds{method,route,status}: one hook on the
 * root instance, so it times every route, including ones registered later.
 * `route` is the route's template ("/v1/blocks/:id"); requests that match no
 * route count as "unmatched", so a scanner cannot grow the label set.
 */
export function registerRequestDurations(app: FastifyInstance, registry: Registry): void {
  const durations = new Histogram({
    name: 'xdpwall_api_request_duration_seconds',
    help: 'API request durations by method, route template and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const methods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const method = methods.has(request.method) ? request.method : 'OTHER';
    durations.observe({ method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
}

/**
 * xdpwall_table_entries / xdpwall_table_capacity / xdpwall_table_fill_ratio
 * {table="cidr_v4"|"cidr_v6"|"flows"}, read at scrape time.
 */
export function registerTableMetrics(registry: Registry, firewall: Pick<ApiFirewall, 'tableUsage'>): void {
  // The three gauges are collected together (registry.metrics() starts every
  // collect in the same tick): they share one read per scrape.
  let pending: Promise<TableUsage[]> | undefined;
  const usage = (): Promise<TableUsage[]> => {
    if (!pending) {
      pending = firewall.tableUsage();
      void pending.finally(() => (pending = undefined)).catch(() => {});
    }
    return pending;
  };
  const gauge = (name: string, help: string, value: (usage: TableUsage) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['table'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const table of await usage()) this.set({ table: table.table }, value(table));
      },
    });
  };
  gauge('xdpwall_table_entries', 'Entries in use: CIDR rules per family, flows in the flow table', (t) => t.entries);
  gauge('xdpwall_table_capacity', 'Capacity of the table (capacity.cidrV4, capacity.cidrV6, the flow map size)', (t) => t.capacity);
  gauge(
    'xdpwall_table_fill_ratio',
    'entries / capacity (1 = full: new rules get CAPACITY_EXCEEDED, the flow table evicts its oldest flows)',
    (t) => (t.capacity > 0 ? t.entries / t.capacity : 0),
  );
}

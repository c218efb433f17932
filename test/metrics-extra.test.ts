// /metrics beyond the traffic counters: table fill and capacity, API request
// durations by route template (never by address or raw URL), promtool clean;
// and deploy/grafana/xdpwall.json checked offline against a real scrape:
// every query names metrics (and grouping labels) that the scrape has.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { openTestFirewall } from './lib/firewall.js';
import { ether, ipv4, udp } from './lib/packets.js';
import { dashboardProblems, readDashboard, scrapeNames } from './lib/grafana.js';

let firewall: Firewall;
let app: FastifyInstance;
let scrape: string;

beforeAll(async () => {
  firewall = await openTestFirewall({ cidrV4: 1000, cidrV6: 500, flows: 1024 });
  app = await buildApp({ firewall });
  for (const cidr of ['198.18.1.0/24', '198.18.2.0/24', '2001:db8::/32']) {
    expect((await app.inject({ method: 'POST', url: '/v1/blocks', payload: { cidr } })).statusCode).toBe(201);
  }
  // Traffic through the real program: a drop and a pass (which makes a flow).
  firewall.datapath.ingress.testRunSync({ data: ether(ipv4({ src: '198.18.1.9', dst: '198.18.0.2' }, udp({ sport: 1, dport: 53 }))) });
  firewall.datapath.ingress.testRunSync({ data: ether(ipv4({ src: '198.18.3.9', dst: '198.18.0.2' }, udp({ sport: 1, dport: 53 }))) });
  await app.inject('/v1/blocks/999');
  await app.inject('/v1/blocks/198.18.77.1');
  await app.inject('/no/such/198.18.77.1');
  scrape = (await app.inject('/metrics')).body;
}, 60_000);

afterAll(async () => {
  await app?.close();
  firewall?.close();
});

describe('/metrics', () => {
  it('reports table entries, capacity and fill ratio', () => {
    expect(scrape).toContain('xdpwall_table_entries{table="cidr_v4"} 2\n');
    expect(scrape).toContain('xdpwall_table_capacity{table="cidr_v4"} 1000\n');
    expect(scrape).toContain('xdpwall_table_fill_ratio{table="cidr_v4"} 0.002\n');
    expect(scrape).toContain('xdpwall_table_entries{table="cidr_v6"} 1\n');
    expect(scrape).toContain('xdpwall_table_fill_ratio{table="cidr_v6"} 0.002\n');
    expect(scrape).toContain('xdpwall_table_entries{table="flows"} 1\n');
    expect(scrape).toMatch(/^xdpwall_table_capacity\{table="flows"\} \d+$/m);
  });

  it('times API requests by route template, with unmatched routes folded into one label', () => {
    expect(scrape).toContain('xdpwall_api_request_duration_seconds_count{method="POST",route="/v1/blocks",status="201"} 3\n');
    expect(scrape).toContain('xdpwall_api_request_duration_seconds_count{method="GET",route="/v1/blocks/:id",status="404"} 1\n');
    expect(scrape).toContain('xdpwall_api_request_duration_seconds_count{method="GET",route="/v1/blocks/:id",status="400"} 1\n');
    expect(scrape).toContain('xdpwall_api_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1\n');
    expect(scrape).toMatch(/^xdpwall_api_request_duration_seconds_bucket\{le="\+Inf",method="POST",route="\/v1\/blocks",status="201"\} 3$/m);
  });

  it('carries no per-address labels', () => {
    expect(scrape).not.toMatch(/198\.18\.|2001:db8/);
    const labels = new Set([...scrapeNames(scrape).samples.values()].flatMap((set) => [...set]));
    // (xdp_mode and iface also label the interface gauges, which have samples once an interface is attached.)
    // cause: xdpwall_events_lost_total{cause="rate_cap"|"ring_full"}.
    expect([...labels].sort()).toEqual(['cause', 'direction', 'iface', 'le', 'method', 'reason', 'route', 'status', 'table', 'verdict']);
  });

  it('passes promtool check metrics', () => {
    const check = spawnSync('promtool', ['check', 'metrics'], { input: scrape, encoding: 'utf8' });
    if (check.error) throw new Error(`promtool is needed for this test (apt-get install prometheus): ${check.error.message}`);
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });
});

describe('deploy/grafana/xdpwall.json', () => {
  const dashboard = readDashboard();

  it('is a dashboard with unique panel ids, on a 24-column grid', () => {
    expect(dashboard.uid).toBe('xdpwall');
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(8);
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    for (const panel of dashboard.panels) {
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
    }
  });

  it('queries only metrics, and groups only by labels, that a scrape has (netns-tests/dashboard checks a live daemon)', () => {
    expect(dashboardProblems(dashboard, scrape, false)).toEqual([]);
  });
});

// /metrics for sampled events and policy rules, in the shared registry:
//   xdpwall_events_sampled_total              events the data plane emitted
//   xdpwall_events_lost_total{cause}          rate_cap | ring_full
//   xdpwall_event_clients_dropped_total       /v1/events, pcap clients too slow
//   xdpwall_event_listeners                   clients listening now
//   xdpwall_rule_packets_total{rule,hook,action}, xdpwall_rule_bytes_total{...}
// Per-rule series exist for policy rules only (a few thousand at most, by
// id); blocks are counted in aggregate by xdpwall_packets_total{reason=...},
// since one series per block would be one per address.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ApiFirewall } from '../firewall.js';
import { kernelRuleId } from '../../src/policy/engine.js';

export function registerEventMetrics(registry: Registry, firewall: Pick<ApiFirewall, 'events' | 'rules' | 'ruleHits'>): void {
  new Counter({
    name: 'xdpwall_events_sampled_total',
    help: 'Sampled packet events the data plane wrote to the ring buffer',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(Number(firewall.events.counters().sampled));
    },
  });
  new Counter({
    name: 'xdpwall_events_lost_total',
    help: 'Sampled packet events lost: over the events-per-second cap (rate_cap) or to a full ring buffer (ring_full)',
    labelNames: ['cause'] as const,
    registers: [registry],
    collect() {
      const { lostCap, lostRing } = firewall.events.counters();
      this.reset();
      this.inc({ cause: 'rate_cap' }, Number(lostCap));
      this.inc({ cause: 'ring_full' }, Number(lostRing));
    },
  });
  new Counter({
    name: 'xdpwall_event_clients_dropped_total',
    help: 'Clients of /v1/events and /v1/capture.pcap disconnected for not reading fast enough',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(firewall.events.counters().slowClients);
    },
  });
  new Gauge({
    name: 'xdpwall_event_listeners',
    help: 'Clients receiving sampled packet events now (the data plane samples only while this is above 0)',
    registers: [registry],
    collect() {
      this.set(firewall.events.listeners);
    },
  });

  const labelNames = ['rule', 'hook', 'action'] as const;
  // One read for both: registry.metrics() runs this collect before it reads either counter.
  const ruleBytes = new Counter({ name: 'xdpwall_rule_bytes_total', help: 'Bytes each policy rule matched', labelNames, registers: [] });
  new Counter({
    name: 'xdpwall_rule_packets_total',
    help: 'Packets each policy rule matched',
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      ruleBytes.reset();
      for (const rule of firewall.rules.all()) {
        const hits = firewall.ruleHits(kernelRuleId(rule.id));
        const labels = { rule: String(rule.id), hook: rule.hook, action: rule.action };
        this.inc(labels, hits ? Number(hits.packets) : 0);
        ruleBytes.inc(labels, hits ? Number(hits.bytes) : 0);
      }
    },
  });
  registry.registerMetric(ruleBytes);
}

// /metrics labels each counter with the verdict the kernel keyed it under.
// Egress filters nothing: a malformed packet leaving the host passes, counted
// under its malformed reason, and must show as verdict="pass" (a label guessed
// from the reason's name says "drop"). Real programs, BPF_PROG_TEST_RUN.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { assignIfslot } from '../src/datapath/datapath.js';
import { openTestFirewall, quietLog } from './lib/firewall.js';
import { IPPROTO, ether, ipv4, rawL4, udp } from './lib/packets.js';

const XDP_DROP = 1;
const TC_ACT_OK = 0;

let firewall: Firewall;
let app: FastifyInstance;

beforeAll(async () => {
  firewall = await openTestFirewall();
  // Test runs arrive on lo (ifindex 1), which nothing attached to: give it its counter slot as attach does.
  assignIfslot(firewall.datapath.maps, firewall.datapath.ifslots, 1, quietLog);
  app = await buildApp({ firewall });
}, 60_000);

afterAll(async () => {
  await app?.close();
  firewall?.close();
});

/** The value of one sample line of the exposition, or undefined when absent. */
function sample(body: string, name: string, labels: Record<string, string>): number | undefined {
  const text = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',');
  const line = body.split('\n').find((l) => l.startsWith(`${name}{${text}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('/metrics verdict labels', () => {
  it('takes the verdict from the counter key: a malformed packet on egress passes, on ingress it drops', async () => {
    // An IPv4 packet whose TCP header stops after 10 bytes: malformed_l4 in both directions.
    const cut = ether(ipv4({ src: '198.18.0.2', dst: '198.18.0.1' }, rawL4(IPPROTO.tcp, Buffer.alloc(10))));
    expect(firewall.datapath.egress.testRunSync({ data: cut }).retval).toBe(TC_ACT_OK);
    expect(firewall.datapath.egress.testRunSync({ data: cut }).retval).toBe(TC_ACT_OK);
    expect(firewall.datapath.ingress.testRunSync({ data: cut }).retval).toBe(XDP_DROP);

    const body = (await app.inject('/metrics')).body;
    const malformed = (direction: string, verdict: string) => ({ iface: 'ifindex:1', direction, verdict, reason: 'malformed_l4' });
    expect(sample(body, 'xdpwall_packets_total', malformed('egress', 'pass'))).toBe(2);
    expect(sample(body, 'xdpwall_bytes_total', malformed('egress', 'pass'))).toBe(2 * cut.length);
    expect(sample(body, 'xdpwall_packets_total', malformed('egress', 'drop'))).toBeUndefined();
    expect(sample(body, 'xdpwall_packets_total', malformed('ingress', 'drop'))).toBe(1);
    // /v1/stats agrees: the egress packets are passes.
    const stats = (await app.inject('/v1/stats')).json();
    expect(stats.totals.egress.verdicts).toEqual({ pass: { packets: 2, bytes: 2 * cut.length }, drop: { packets: 0, bytes: 0 } });
    expect(stats).not.toHaveProperty('series');
  });

  it('labels an ordinary pass as pass in both directions', async () => {
    const frame = ether(ipv4({ src: '198.18.0.1', dst: '198.18.0.2' }, udp({ sport: 4000, dport: 53 })));
    firewall.datapath.ingress.testRunSync({ data: frame });
    const body = (await app.inject('/metrics')).body;
    expect(sample(body, 'xdpwall_packets_total', { iface: 'ifindex:1', direction: 'ingress', verdict: 'pass', reason: 'pass_no_match' })).toBeGreaterThanOrEqual(1);
  });
});

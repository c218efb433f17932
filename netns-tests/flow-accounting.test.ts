// A known number of UDP datagrams of known size, answered by replies of a
// different known size, show up in /v1/flows as exactly those packets and
// bytes: requests as ingress, replies as egress, oriented peer → local host.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { hostAddress } from '../src/lab/netns.js';
import type { Flow } from './lib/api-client.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { ping, sendUdp, udpFrameLength } from './lib/traffic.js';

const ECHO_PORT = 9100;
const REQUEST_BYTES = 100;
const REPLY_BYTES = 60;
const COUNT = 7;

describe('flow accounting', () => {
  const world = new FirewallLab({ subnet: 30, echo: { port: ECHO_PORT, replyBytes: REPLY_BYTES } });

  beforeAll(() => world.setUp());
  afterAll(() => world.tearDown());

  it.each([
    ['ipv4', 42001, 32],
    ['ipv6', 42002, 128],
  ] as const)('counts %s requests as ingress and replies as egress, frame bytes included', async (family, srcPort, bits) => {
    const { lab, api } = world;
    const client = hostAddress(lab.client[family]);
    const server = hostAddress(lab.server[family]);
    const sent = await sendUdp(lab.client.netns, {
      address: server, port: ECHO_PORT, srcPort, count: COUNT, size: REQUEST_BYTES,
    });
    expect(sent).toEqual({ sent: COUNT, received: COUNT, receivedBytes: COUNT * REPLY_BYTES });

    const query = { limit: '100', proto: 'udp', port: String(ECHO_PORT), src: `${client}/${bits}`, dst: `${server}/${bits}` };
    // Counters may be served from a short-lived cache: poll briefly.
    const flow = await vi.waitFor(
      async () => {
        const { status, body } = await api.flows(query);
        expect(status).toBe(200);
        const match = body.items.find((f: Flow) => f.srcPort === srcPort);
        expect(match?.egress.packets).toBe(COUNT);
        return match!;
      },
      { timeout: 3_000, interval: 200 },
    );

    expect(flow).toMatchObject({
      proto: 'udp',
      src: client,
      srcPort,
      dst: server,
      dstPort: ECHO_PORT,
      iface: lab.serverIface,
      ingress: { packets: COUNT, bytes: COUNT * udpFrameLength(server, REQUEST_BYTES) },
      egress: { packets: COUNT, bytes: COUNT * udpFrameLength(server, REPLY_BYTES) },
      tcpFlags: [],
    });
    const [first, last] = [Date.parse(flow.firstSeen), Date.parse(flow.lastSeen)];
    expect(first).toBeLessThanOrEqual(last);
    expect(Math.abs(Date.now() - last)).toBeLessThan(60_000);
  });

  it.each([
    ['ipv4', 'icmp', 4101, 14 + 20 + 8 + 56],
    ['ipv6', 'icmpv6', 4102, 14 + 40 + 8 + 56],
  ] as const)('counts an %s ping and its replies as one flow keyed by the echo identifier', async (family, proto, id, frame) => {
    const { lab, api } = world;
    expect(await ping(lab.client.netns, lab.server[family], { count: 3, identifier: id })).toEqual({ transmitted: 3, received: 3 });
    const flow = await vi.waitFor(
      async () => {
        const { body } = await api.flows({ proto, limit: '100' });
        const match = body.items.find((f: Flow) => f.srcPort === id && f.dstPort === id);
        expect(match?.egress.packets).toBe(3);
        return match!;
      },
      { timeout: 3_000, interval: 200 },
    );
    expect(flow).toMatchObject({
      src: hostAddress(lab.client[family]),
      dst: hostAddress(lab.server[family]),
      ingress: { packets: 3, bytes: 3 * frame },
      egress: { packets: 3, bytes: 3 * frame },
    });
  });

  it('filters flows by peer, local address, protocol and port', async () => {
    const { api } = world;
    const v4 = await api.flows({ src: '198.18.30.1/32', proto: 'udp', port: String(ECHO_PORT) });
    expect(v4.body.items.map((f) => f.srcPort)).toEqual([42001]);
    const v6 = await api.flows({ dst: 'fd00:198:0:1e::/64', proto: 'udp' });
    expect(v6.body.items.map((f) => f.srcPort)).toEqual([42002]);
    const none = await api.flows({ proto: 'tcp' });
    expect(none.body.items).toEqual([]);
  });

  it('sorts by bytes and honours limit', async () => {
    const { body } = await world.api.flows({ sort: 'bytes', limit: '1', proto: 'udp' });
    expect(body.items).toHaveLength(1);
    // The IPv6 flow has 20 more bytes of IP header per frame.
    expect(body.items[0]?.srcPort).toBe(42002);
  });

  it('rejects a malformed filter with 400', async () => {
    const { status } = await world.api.request('GET', '/v1/flows?src=not-a-cidr');
    expect(status).toBe(400);
  });
});

// The lab itself, without the firewall: namespaces, veth, bounded traffic.
// If this suite fails, every other netns suite fails for the same reason.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listNetns, runInNetns } from '../src/lab/netns.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { ping, sendUdp } from './lib/traffic.js';

describe('lab helpers (no filter)', () => {
  const world = new FirewallLab({ subnet: 10, echo: { port: 9000, replyBytes: 60 }, daemon: false });

  beforeAll(() => world.setUp());
  afterAll(() => world.tearDown());

  it('creates both namespaces under the suite prefix with the veth inside them', async () => {
    const pair = world.lab;
    expect(await listNetns(pair.prefix)).toEqual([pair.client.netns, pair.server.netns]);
    const links = await runInNetns(pair.server.netns, ['ip', '-o', 'link', 'show', 'dev', pair.server.ifname]);
    expect(links.code).toBe(0);
    expect(links.stdout).toContain('state UP');
  });

  it.each(['ipv4', 'ipv6'] as const)('pings the server over %s', async (family) => {
    const pair = world.lab;
    expect(await ping(pair.client.netns, pair.server[family])).toEqual({ transmitted: 3, received: 3 });
  });

  it.each(['ipv4', 'ipv6'] as const)('gets one fixed-size UDP reply per datagram over %s', async (family) => {
    const pair = world.lab;
    const result = await sendUdp(pair.client.netns, {
      address: pair.server[family], port: 9000, srcPort: 40010, count: 5, size: 100,
    });
    expect(result).toEqual({ sent: 5, received: 5, receivedBytes: 5 * 60 });
  });

  it('reports what a stopped sender sent, even when the stop lands while it is starting', async () => {
    // The soak stops its sender at the end of each run, at any point in the sender's life.
    const pair = world.lab;
    for (const delayMs of [0, 5, 30, 400]) {
      const stop = new AbortController();
      const sending = sendUdp(pair.client.netns, {
        address: pair.server.ipv4, port: 9000, srcPort: 40011, count: 1_000, size: 10, intervalMs: 10, waitMs: 200, stop: stop.signal,
      });
      setTimeout(() => stop.abort(), delayMs);
      const result = await sending;
      expect(result.sent).toBeLessThan(1_000);
      expect(result.received).toBe(result.sent);
    }
  });

  it('refuses to send outside the lab ranges', async () => {
    await expect(ping(world.lab.client.netns, '192.0.2.1')).rejects.toThrow(/not a lab address/);
  });
});

// The lab itself, without the firewall: namespaces, veth, bounded traffic.
// If this suite fails, every other netns suite fails for the same reason.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listNetns, runInNetns } from '../src/lab/netns.js';
import { assertRoot, createLabPair, type LabPair } from './lib/lab-env.js';
import { ping, sendUdp, startUdpEcho, waitReachable, type UdpEchoServer } from './lib/traffic.js';

describe('lab helpers (no filter)', () => {
  let lab: LabPair | undefined;
  let echo: UdpEchoServer | undefined;

  beforeAll(async () => {
    assertRoot();
    lab = await createLabPair(10);
    await waitReachable(lab.client.netns, lab.server.ipv4);
    await waitReachable(lab.client.netns, lab.server.ipv6);
    echo = await startUdpEcho(lab.server.netns, 9000, 60);
  });

  afterAll(async () => {
    await echo?.stop();
    await lab?.destroy();
  });

  it('creates both namespaces under the suite prefix with the veth inside them', async () => {
    const pair = lab!;
    expect(await listNetns(pair.prefix)).toEqual([pair.client.netns, pair.server.netns]);
    const links = await runInNetns(pair.server.netns, ['ip', '-o', 'link', 'show', 'dev', pair.server.ifname]);
    expect(links.code).toBe(0);
    expect(links.stdout).toContain('state UP');
  });

  it.each(['ipv4', 'ipv6'] as const)('pings the server over %s', async (family) => {
    const pair = lab!;
    expect(await ping(pair.client.netns, pair.server[family], 3)).toEqual({ transmitted: 3, received: 3 });
  });

  it.each(['ipv4', 'ipv6'] as const)('gets one fixed-size UDP reply per datagram over %s', async (family) => {
    const pair = lab!;
    const result = await sendUdp(pair.client.netns, {
      address: pair.server[family], port: 9000, srcPort: 40010, count: 5, size: 100,
    });
    expect(result).toEqual({ sent: 5, received: 5, receivedBytes: 5 * 60 });
  });

  it('refuses to send outside the lab ranges', async () => {
    await expect(ping(lab!.client.netns, '192.0.2.1')).rejects.toThrow(/not a lab address/);
  });
});

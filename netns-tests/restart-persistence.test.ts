// Rules survive a daemon restart: SIGTERM leaves the programs attached (the
// kernel keeps enforcing with the pinned maps), and a new daemon on the same
// state directory lists and enforces the same blocks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostAddress, runInNetnsChecked } from '../src/lab/netns.js';
import type { BlockRule } from './lib/api-client.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { ping } from './lib/traffic.js';

describe('daemon restart', () => {
  const world = new FirewallLab({ subnet: 40, daemon: false });
  let rules: BlockRule[] = [];

  const pings = async (family: 'ipv4' | 'ipv6'): Promise<number> =>
    (await ping(world.lab.client.netns, world.lab.server[family])).received;
  const linkDetails = (): Promise<string> =>
    runInNetnsChecked(world.lab.server.netns, ['ip', '-d', 'link', 'show', 'dev', world.lab.server.ifname]);

  beforeAll(() => world.setUp());
  afterAll(() => world.tearDown());

  it('blocks an IPv4 and an IPv6 client address', async () => {
    const api = await world.startDaemon();
    for (const family of ['ipv4', 'ipv6'] as const) {
      const bits = family === 'ipv4' ? 32 : 128;
      const { status, body } = await api.createBlock(`${hostAddress(world.lab.client[family])}/${bits}`, { comment: family });
      expect(status).toBe(201);
      rules.push(body);
    }
    expect(await pings('ipv4')).toBe(0);
    expect(await pings('ipv6')).toBe(0);
    expect(await linkDetails()).toMatch(/xdp/);
  });

  it('exits 0 on SIGTERM and leaves the programs attached and enforcing', async () => {
    expect(await world.daemon.stop()).toBe(0);
    expect(await linkDetails()).toMatch(/xdp/);
    expect(await pings('ipv4')).toBe(0);
    expect(await pings('ipv6')).toBe(0);
  });

  it('restores the same blocks from the state directory and enforces them again', async () => {
    const api = await world.startDaemon();
    const { body } = await api.listBlocks();
    expect(body.total).toBe(2);
    expect(body.items.map(({ id, cidr, direction, comment, createdAt }) => ({ id, cidr, direction, comment, createdAt })))
      .toEqual(expect.arrayContaining(rules.map(({ id, cidr, direction, comment, createdAt }) => ({ id, cidr, direction, comment, createdAt }))));
    expect(await pings('ipv4')).toBe(0);
    expect(await pings('ipv6')).toBe(0);
  });

  it('still removes a restored block', async () => {
    const { api } = world;
    for (const rule of rules) expect((await api.deleteBlock(rule.id)).status).toBe(204);
    rules = [];
    expect(await pings('ipv4')).toBe(3);
    expect(await pings('ipv6')).toBe(3);
  });
});

// Rules survive a daemon restart: SIGTERM detaches cleanly (traffic flows
// while nothing filters), and a new daemon on the same state directory lists
// and enforces the same blocks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostAddress, runInNetnsChecked } from '../src/lab/netns.js';
import { ApiClient, type BlockRule } from './lib/api-client.js';
import { newDaemonState, removeDaemonState, startDaemon, type Daemon } from './lib/daemon.js';
import { assertBuilt, assertRoot, createLabPair, type LabPair } from './lib/lab-env.js';
import { teardown } from './lib/teardown.js';
import { ping, waitReachable } from './lib/traffic.js';

describe('daemon restart', () => {
  let lab: LabPair;
  let daemon: Daemon | undefined;
  const state = newDaemonState();
  let rules: BlockRule[] = [];

  const start = async (): Promise<ApiClient> => {
    daemon = await startDaemon({ ifaces: [lab.serverIface], state });
    return new ApiClient(daemon.baseUrl);
  };
  const pings = async (family: 'ipv4' | 'ipv6'): Promise<number> =>
    (await ping(lab.client.netns, lab.server[family], 3)).received;
  const linkDetails = (): Promise<string> =>
    runInNetnsChecked(lab.server.netns, ['ip', '-d', 'link', 'show', 'dev', lab.server.ifname]);

  beforeAll(async () => {
    assertRoot();
    assertBuilt();
    lab = await createLabPair(40);
    await waitReachable(lab.client.netns, lab.server.ipv4);
    await waitReachable(lab.client.netns, lab.server.ipv6);
  });

  afterAll(async () => {
    await teardown(
      () => daemon?.stop(),
      () => lab?.destroy(),
      () => removeDaemonState(state),
    );
  });

  it('blocks an IPv4 and an IPv6 client address', async () => {
    const api = await start();
    for (const family of ['ipv4', 'ipv6'] as const) {
      const bits = family === 'ipv4' ? 32 : 128;
      const { status, body } = await api.createBlock(`${hostAddress(lab.client[family])}/${bits}`, { comment: family });
      expect(status).toBe(201);
      rules.push(body);
    }
    expect(await pings('ipv4')).toBe(0);
    expect(await pings('ipv6')).toBe(0);
    expect(await linkDetails()).toMatch(/xdp/);
  });

  it('detaches on SIGTERM and exits 0, so traffic flows unfiltered', async () => {
    expect(await daemon!.stop()).toBe(0);
    expect(await linkDetails()).not.toMatch(/xdp/);
    expect(await pings('ipv4')).toBe(3);
    expect(await pings('ipv6')).toBe(3);
  });

  it('restores the same blocks from the state directory and enforces them again', async () => {
    const api = await start();
    const { body } = await api.listBlocks();
    expect(body.total).toBe(2);
    expect(body.items.map(({ id, cidr, direction, comment, createdAt }) => ({ id, cidr, direction, comment, createdAt })))
      .toEqual(expect.arrayContaining(rules.map(({ id, cidr, direction, comment, createdAt }) => ({ id, cidr, direction, comment, createdAt }))));
    expect(await pings('ipv4')).toBe(0);
    expect(await pings('ipv6')).toBe(0);
  });

  it('still removes a restored block', async () => {
    const api = new ApiClient(daemon!.baseUrl);
    for (const rule of rules) expect((await api.deleteBlock(rule.id)).status).toBe(204);
    rules = [];
    expect(await pings('ipv4')).toBe(3);
    expect(await pings('ipv6')).toBe(3);
  });
});

// A rule referencing a named list with real traffic between two namespaces:
// "drop udp dstPort 53 from list:bad" (added with the CLI) drops the
// client's IPv4 DNS datagrams while the client's IPv6 source, in no entry,
// passes; a PATCH of the list lifts it for that source and a PUT brings it
// back; deleting the list is refused while the rule uses it; the daemon
// stopped (the kernel keeps enforcing) and started again (the store and the
// recompile) keeps the rule and its list.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostAddress } from '../src/lab/netns.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { xdpwall } from './lib/cli.js';
import { sendUdp } from './lib/traffic.js';

const DNS = 53;
const COUNT = 10;

interface RuleBody {
  id: number;
  src: string | null;
  hits: { packets: number; bytes: number };
}

describe('a rule referencing a list, with real traffic', () => {
  const world = new FirewallLab({ subnet: 147, echo: { port: DNS, replyBytes: 32, lifetimeMs: 300_000 } });
  let env: Record<string, string> = {};
  const client = () => world.lab.client;
  const server = () => world.lab.server;
  /** Replies the client gets to COUNT datagrams sent to the server's port 53 over IPv4 or IPv6. */
  const dnsReplies = async (family: 4 | 6) =>
    (await sendUdp(client().netns, { address: family === 4 ? server().ipv4 : server().ipv6, port: DNS, srcPort: 40_053, count: COUNT, size: 32, intervalMs: 5 })).received;
  const api = () => world.api;

  beforeAll(async () => {
    await world.setUp();
    env = { XDPWALL_TOKEN: world.daemon.state.token };
  });
  afterAll(async () => {
    await world.tearDown();
  });

  it('drops udp 53 from list:bad while another source passes; the list changes what it drops; it survives a restart', async () => {
    const clientV4 = hostAddress(client().ipv4);
    expect(await dnsReplies(4)).toBe(COUNT);
    const put = await api().request('PUT', '/v1/lists/bad', { entries: [clientV4, '198.18.250.0/24'], action: 'none' });
    expect(put.status).toBe(200);
    expect(await dnsReplies(4)).toBe(COUNT); // action none: the list alone drops nothing

    const added = await xdpwall(['rule', 'add', 'drop', '--proto', 'udp', '--dst-port', String(DNS), '--src', 'list:bad'], world.daemon.baseUrl, env);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain('src list:bad');
    const id = Number(/added rule (\d+)/.exec(added.stdout)?.[1]);
    expect(await dnsReplies(4)).toBe(0);
    expect(await dnsReplies(6)).toBe(COUNT); // another source
    const rule = (await api().request<RuleBody>('GET', `/v1/rules/${id}`)).body;
    expect(rule.src).toBe('list:bad');
    expect(rule.hits.packets).toBeGreaterThanOrEqual(COUNT);

    const del = await api().request<{ error: { code: string } }>('DELETE', '/v1/lists/bad');
    expect(del.status).toBe(409);
    expect(del.body.error.code).toBe('LIST_IN_USE');

    expect((await api().request('PATCH', '/v1/lists/bad', { remove: [clientV4] })).status).toBe(200);
    expect(await dnsReplies(4)).toBe(COUNT);
    expect((await api().request('PUT', '/v1/lists/bad', { entries: [`${clientV4.split('.').slice(0, 3).join('.')}.0/24`], action: 'none' })).status).toBe(200);
    expect(await dnsReplies(4)).toBe(0);

    // Stopped, the kernel keeps enforcing; started again, the store and the recompile keep it.
    expect(await world.daemon.stop()).toBe(0);
    expect(await dnsReplies(4)).toBe(0);
    expect(await dnsReplies(6)).toBe(COUNT);
    await world.startDaemon();
    expect((await api().request<RuleBody>('GET', `/v1/rules/${id}`)).body.src).toBe('list:bad');
    expect(await dnsReplies(4)).toBe(0);
    expect(await dnsReplies(6)).toBe(COUNT);
    expect((await api().request('PATCH', '/v1/lists/bad', { add: ['198.18.251.0/24'] })).status).toBe(200);
    expect(await dnsReplies(4)).toBe(0);

    expect((await xdpwall(['rule', 'rm', String(id)], world.daemon.baseUrl, env)).code).toBe(0);
    expect(await dnsReplies(4)).toBe(COUNT);
    expect((await api().request('DELETE', '/v1/lists/bad')).status).toBe(204);
  });
});

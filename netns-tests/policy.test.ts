// The policy engine with real traffic between two namespaces: TCP through
// real sockets, ICMP through ping. Port rules and priorities (through the
// CLI), dry-run, default drop with replies passing and the failsafe SSH port
// reachable, egress drop, TTL expiry in real time (also while the daemon is
// down), and rules surviving a restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostAddress } from '../src/lab/netns.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { xdpwall } from './lib/cli.js';
import { ping, startTcpListener, tcpConnects, type UdpEchoServer } from './lib/traffic.js';

interface RuleBody {
  id: number;
  hits: { packets: number; bytes: number };
  wouldDrop?: { packets: number; bytes: number };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('policy rules with real traffic', () => {
  const world = new FirewallLab({ subnet: 70 });
  const listeners: UdpEchoServer[] = [];
  let env: Record<string, string> = {};
  const client = () => world.lab.client;
  const server = () => world.lab.server;
  const connect = (port: number) => tcpConnects(client().netns, server().ipv4, port);
  const connect6 = (port: number) => tcpConnects(client().netns, server().ipv6, port);
  const pings = async () => (await ping(client().netns, server().ipv4)).received;
  const api = () => world.api;

  beforeAll(async () => {
    await world.setUp();
    env = { XDPWALL_TOKEN: world.daemon.state.token };
    listeners.push(await startTcpListener(server().netns, [22, 8080, 9090]));
    listeners.push(await startTcpListener(client().netns, [7000]));
  });
  afterAll(async () => {
    for (const l of listeners) await l.stop();
    await world.tearDown();
  });

  it('a port rule added with the CLI drops TCP to that port only; rule ls shows its hits; rule rm lifts it', async () => {
    expect(await connect(8080)).toBe(true);
    const added = await xdpwall(['rule', 'add', 'drop', '--proto', 'tcp', '--dst-port', '8000-8080', '--comment', 'dev ports'], world.daemon.baseUrl, env);
    expect(added.code, added.stderr).toBe(0);
    const id = Number(/added rule (\d+)/.exec(added.stdout)?.[1]);
    expect(id).toBeGreaterThan(0);
    expect(await connect(8080)).toBe(false);
    expect(await connect6(8080)).toBe(false);
    expect(await connect(9090)).toBe(true);
    const listed = await xdpwall(['rule', 'ls'], world.daemon.baseUrl, env);
    expect(listed.stdout).toContain('dport 8000-8080');
    expect(listed.stdout).toContain('dev ports');
    const { body } = await api().request<RuleBody>('GET', `/v1/rules/${id}`);
    expect(body.hits.packets).toBeGreaterThan(0);
    expect((await xdpwall(['rule', 'rm', String(id)], world.daemon.baseUrl, env)).code).toBe(0);
    expect(await connect(8080)).toBe(true);
  });

  it('priorities: a pass for the client at 10 beats a drop for everyone at 100', async () => {
    const drop = await api().request<RuleBody>('POST', '/v1/rules', { action: 'drop', proto: 'tcp', dstPort: 9090, priority: 100 });
    expect(await connect(9090)).toBe(false);
    const pass = await api().request<RuleBody>('POST', '/v1/rules', {
      action: 'pass', proto: 'tcp', dstPort: 9090, priority: 10, src: hostAddress(client().ipv4),
    });
    expect(pass.status).toBe(201);
    expect(await connect(9090)).toBe(true);
    expect(await connect6(9090)).toBe(false); // the pass names the IPv4 address only
    for (const rule of [drop, pass]) await api().request('DELETE', `/v1/rules/${rule.body.id}`);
  });

  it('a dry-run rule lets ping through and counts what it would have dropped', async () => {
    const rule = await api().request<RuleBody>('POST', '/v1/rules', { action: 'drop', proto: 'icmp', dryRun: true });
    expect(await pings()).toBe(3);
    const { body } = await api().request<RuleBody>('GET', `/v1/rules/${rule.body.id}`);
    expect(body.wouldDrop!.packets).toBeGreaterThanOrEqual(3);
    const stats = await api().request<{ totals: { ingress: { reasons: Record<string, { packets: number }> } } }>('GET', '/v1/stats');
    expect(stats.body.totals.ingress.reasons.would_drop!.packets).toBeGreaterThanOrEqual(3);
    await api().request('DELETE', `/v1/rules/${rule.body.id}`);
  });

  it('default drop: inbound stops, the failsafe SSH port stays reachable, and replies to the host\'s own connections pass', async () => {
    expect((await api().request('PUT', '/v1/policy', { ingress: 'drop' })).status).toBe(200);
    expect(await pings()).toBe(0);
    expect(await connect(9090)).toBe(false);
    expect(await connect(22)).toBe(true); // failsafe: TCP 22 by default
    // The server opens connections and pings out: the answers come back in.
    expect(await tcpConnects(server().netns, client().ipv4, 7000)).toBe(true);
    expect((await ping(server().netns, client().ipv4)).received).toBe(3);
    expect((await ping(server().netns, client().ipv6)).received).toBe(3);
    const stats = await api().request<{ totals: { ingress: { reasons: Record<string, { packets: number }> } } }>('GET', '/v1/stats');
    const reasons = stats.body.totals.ingress.reasons;
    expect(reasons.drop_policy!.packets).toBeGreaterThan(0);
    expect(reasons.pass_reply!.packets).toBeGreaterThan(0);
    expect(reasons.pass_failsafe!.packets).toBeGreaterThan(0);
    expect((await api().request('PUT', '/v1/policy', { ingress: 'accept' })).status).toBe(200);
    expect(await pings()).toBe(3);
  });

  it('default drop on both hooks: the failsafe SSH port still connects, its answers leaving through egress as failsafe', async () => {
    expect((await api().request('PUT', '/v1/policy', { ingress: 'drop', egress: 'drop' })).status).toBe(200);
    expect(await connect(9090)).toBe(false);
    expect(await connect(22)).toBe(true);
    expect(await connect6(22)).toBe(true); // neighbour discovery leaves as failsafe too
    const stats = await api().request<{ totals: { egress: { reasons: Record<string, { packets: number }> } } }>('GET', '/v1/stats');
    expect(stats.body.totals.egress.reasons.pass_failsafe!.packets).toBeGreaterThan(0);
    expect((await api().request('PUT', '/v1/policy', { ingress: 'accept', egress: 'accept' })).status).toBe(200);
    expect(await connect(9090)).toBe(true);
  });

  it('an egress rule drops the server\'s answers (TC), counted', async () => {
    const rule = await api().request<RuleBody>('POST', '/v1/rules', { action: 'drop', hook: 'egress', proto: 'icmp', icmpType: 0 });
    expect(await pings()).toBe(0);
    const { body } = await api().request<RuleBody>('GET', `/v1/rules/${rule.body.id}`);
    expect(body.hits.packets).toBeGreaterThanOrEqual(3);
    await api().request('DELETE', `/v1/rules/${rule.body.id}`);
    expect(await pings()).toBe(3);
  });

  it('a rule with a ttl stops matching in real time, even with the daemon stopped; the rest survive the restart', async () => {
    const permanent = await api().request<RuleBody>('POST', '/v1/rules', { action: 'drop', proto: 'tcp', dstPort: 8080 });
    const shortLived = await api().request<RuleBody & { expiresAt: string }>('POST', '/v1/rules', { action: 'drop', proto: 'icmp', ttl: 3 });
    expect(shortLived.status).toBe(201);
    expect(await pings()).toBe(0);
    expect(await world.daemon.stop()).toBe(0);
    await sleep(Math.max(0, Date.parse(shortLived.body.expiresAt) - Date.now()) + 1_100);
    expect(await pings()).toBe(3); // the kernel checked the expiry itself
    expect(await connect(8080)).toBe(false); // still enforced without a daemon
    await world.startDaemon();
    const { body } = await api().request<{ items: Array<{ id: number }> }>('GET', '/v1/rules');
    await sleep(1_500); // one sweep
    const after = await api().request<{ items: Array<{ id: number }> }>('GET', '/v1/rules');
    expect(body.items.map((r) => r.id)).toContain(permanent.body.id);
    expect(after.body.items.map((r) => r.id)).toEqual([permanent.body.id]);
    expect(await connect(8080)).toBe(false);
    expect(await connect(9090)).toBe(true);
  });
});

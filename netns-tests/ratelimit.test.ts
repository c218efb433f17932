// Rate limits with real traffic between two namespaces: paced UDP senders
// (netns-tests/lib/bin/udp-rate.mjs) on the client, a counting socket on
// the server, the daemon limiting the server's interface. The rule is added
// with the CLI; the daemon's counters are checked against what arrived.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostAddress } from '../src/lab/netns.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { xdpwall } from './lib/cli.js';
import { addAddress, sendAtRate, startUdpSink, type UdpSink } from './lib/rate-traffic.js';
import { runInNetns } from '../src/lab/netns.js';
import { execFileSync } from 'node:child_process';

interface RuleBody {
  id: number;
  rate?: { pps: number | null; per: string };
  rateLimit?: { admitted: { packets: number }; dropped: { packets: number }; activeBuckets: number; bans: number };
}

const SUBNET = 148;
const PORT = 5353;
const LIMIT = 1000;

describe('rate limits with real traffic', () => {
  const world = new FirewallLab({ subnet: SUBNET, daemon: false });
  // six test suites share two cores: give the daemon's start (BPF verification) time
  const start = () => world.startDaemon({ startTimeoutMs: 90_000 });
  let sink: UdpSink | undefined;
  const second = `198.18.${SUBNET}.3`;

  beforeAll(async () => {
    await world.setUp();
    await start();
    await addAddress(world.lab.client.netns, world.lab.client.ifname, `${second}/24`);
  }, 180_000);
  afterAll(async () => {
    await sink?.stop().catch(() => undefined);
    await world.tearDown();
  });

  it('5,000 pps against a 1,000 pps per-source limit delivers 1,000 ± 5% per second for 5 s; a second source at 500 pps loses nothing', async () => {
    const env = { XDPWALL_TOKEN: world.daemon.state.token };
    const added = await xdpwall(
      ['rule', 'add', 'ratelimit', '--proto', 'udp', '--dst-port', String(PORT), '--pps', String(LIMIT), '--per', 'source'],
      world.daemon.baseUrl, env,
    );
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain(`${LIMIT} pps per source`);
    const id = Number(/added rule (\d+)/.exec(added.stdout)?.[1]);

    sink = await startUdpSink(world.lab.server.netns, PORT);
    const client = world.lab.client.netns;
    const to = hostAddress(world.lab.server.ipv4);
    // 7 s: the first second also spends the default burst (one second's worth); seconds 1..5
    // lie wholly inside the sending time (the last second's bin may be cut short)
    const [heavy, light] = await Promise.all([
      sendAtRate(client, { from: hostAddress(world.lab.client.ipv4), to, port: PORT, srcPort: 40001, pps: 5 * LIMIT, seconds: 7, size: 32 }),
      sendAtRate(client, { from: second, to, port: PORT, srcPort: 40002, pps: LIMIT / 2, seconds: 7, size: 32 }),
    ]);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the last datagrams land
    const counts = await sink.stop();
    sink = undefined;
    const heavyIn = counts.sources[hostAddress(world.lab.client.ipv4)];
    const lightIn = counts.sources[second];
    const report = { heavySent: heavy.perSecond, heavyDelivered: heavyIn?.perSecond, lightSent: light.sent, lightDelivered: lightIn?.total };
    console.log('rate limit, real traffic:', JSON.stringify(report));

    // The second source, under its own limit, loses nothing.
    expect(heavy.sent).toBe(35_000);
    expect(light.sent).toBe(3500);
    expect(lightIn?.total).toBe(3500);

    // The heavy source: seconds 1..5 (after the burst) at 1,000 ± 5% each.
    expect(heavyIn).toBeDefined();
    const steady = heavyIn!.perSecond.slice(1, 6).map((n) => n ?? 0);
    expect(steady).toHaveLength(5);
    const mean = steady.reduce((a, b) => a + b, 0) / 5;
    expect(Math.abs(mean - LIMIT) / LIMIT).toBeLessThanOrEqual(0.05);
    // Per second too, when the sender really offered more than the limit in every second
    // (on a loaded machine its timers can fall behind for a moment; the mean above still holds).
    if (heavy.perSecond.slice(0, 6).every((n) => n >= 1.1 * LIMIT)) {
      for (const n of steady) expect(Math.abs(n - LIMIT) / LIMIT).toBeLessThanOrEqual(0.05);
    }

    // The daemon's counters agree with what arrived.
    const { body } = await world.api.request<RuleBody>('GET', `/v1/rules/${id}`);
    expect(body.rate).toMatchObject({ pps: LIMIT, per: 'source' });
    expect(body.rateLimit!.admitted.packets).toBe(heavyIn!.total + lightIn!.total);
    expect(body.rateLimit!.admitted.packets + body.rateLimit!.dropped.packets).toBe(heavy.sent + light.sent);
    expect(body.rateLimit!.activeBuckets).toBe(2);
    const top = await world.api.request<{ items: Array<{ ruleId: number; source: string }> }>('GET', '/v1/ratelimits/top?limit=5');
    expect(top.status).toBe(200);
    await world.api.request('DELETE', `/v1/rules/${id}`);
  }, 120_000);

  it('buckets and their counters survive a daemon restart (pinned maps): a drained source is not given a fresh burst', async () => {
    const created = await world.api.request<RuleBody>('POST', '/v1/rules', {
      action: 'ratelimit', proto: 'udp', dstPort: PORT + 1, rate: { pps: 1, burst: 100, per: 'source' },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const client = world.lab.client.netns;
    const send = (pps: number, seconds: number) => sendAtRate(client, {
      from: hostAddress(world.lab.client.ipv4), to: hostAddress(world.lab.server.ipv4), port: PORT + 1, srcPort: 40003, pps, seconds, size: 16,
    });
    await send(300, 1); // 300 datagrams: the burst of 100 passes, the rest drops
    const before = (await world.api.request<RuleBody>('GET', `/v1/rules/${id}`)).body.rateLimit!;
    expect(before.admitted.packets).toBeGreaterThanOrEqual(100);
    expect(before.admitted.packets).toBeLessThanOrEqual(103);
    expect(before.dropped.packets).toBe(300 - before.admitted.packets);
    const stoppedAt = Date.now();
    expect(await world.daemon.stop()).toBe(0);
    await start();
    await send(100, 1);
    const elapsed = Math.ceil((Date.now() - stoppedAt) / 1000);
    const after = (await world.api.request<RuleBody>('GET', `/v1/rules/${id}`)).body.rateLimit!;
    // Counters kept; the drained bucket refilled only at 1 token per second meanwhile (a reset
    // bucket would have passed all 100).
    const admittedSince = after.admitted.packets - before.admitted.packets;
    console.log('rate limit across a restart:', JSON.stringify({ before, after, elapsedSeconds: elapsed }));
    expect(admittedSince).toBeLessThanOrEqual(elapsed + 2);
    expect(after.admitted.packets + after.dropped.packets).toBe(400);
    expect(after.activeBuckets).toBe(1);
    await world.api.request('DELETE', `/v1/rules/${id}`);
  }, 120_000);

  it('an hping3 SYN flood (bounded: 3,000 SYNs) against a per-rule SYN limit of 200 pps admits the burst plus the rate', async () => {
    let hping: string;
    try {
      hping = execFileSync('which', ['hping3'], { encoding: 'utf8' }).trim();
    } catch {
      throw new Error('hping3 is not installed (apt-get install hping3)');
    }
    const created = await world.api.request<RuleBody>('POST', '/v1/rules', {
      action: 'ratelimit', proto: 'tcp', tcpFlags: 'syn,!ack', dstPort: 443, rate: { pps: 200, per: 'rule' },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const started = Date.now();
    // -i u500: one SYN every 500 us (2,000 pps nominal), -c 3000: bounded
    const result = await runInNetns(world.lab.client.netns, [hping, '-q', '-S', '-p', '443', '-i', 'u500', '-c', '3000', hostAddress(world.lab.server.ipv4)], {
      timeoutMs: 60_000,
    });
    const seconds = (Date.now() - started) / 1000;
    const sent = Number(/(\d+) packets (?:tramitted|transmitted)/ // hping3 prints "tramitted"
      .exec(result.stdout + result.stderr)?.[1]);
    expect(sent).toBe(3000);
    const { body } = await world.api.request<RuleBody>('GET', `/v1/rules/${id}`);
    const { admitted, dropped } = body.rateLimit!;
    console.log('hping3 SYN flood:', JSON.stringify({ sent, seconds, admitted: admitted.packets, dropped: dropped.packets }));
    expect(admitted.packets + dropped.packets).toBe(3000);
    // burst (200) plus 200 per second of the flood, at most
    expect(admitted.packets).toBeLessThanOrEqual(200 + Math.ceil(200 * seconds));
    expect(admitted.packets).toBeGreaterThanOrEqual(200);
    expect(dropped.packets).toBeGreaterThan(0);
    const stats = await world.api.request<{ totals: { ingress: { reasons: Record<string, { packets: number }> } } }>('GET', '/v1/stats');
    expect(stats.body.totals.ingress.reasons.ratelimit!.packets).toBeGreaterThanOrEqual(dropped.packets);
    await world.api.request('DELETE', `/v1/rules/${id}`);
  }, 120_000);
});

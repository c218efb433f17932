// Auto-ban end to end with real traffic: a paced UDP flood from the client
// namespace over the veth against a per-source ratelimit rule with a ban.
// The data plane reports the source through xw_rl_reports once its drops in
// the window reach ban.afterDrops; the daemon turns the report into a TTL
// block (origin "auto") that drops the rest of the flood at the block stage
// (deny_src_cidr), expires after ban.ttl seconds, and the source then passes
// again under its rule's rate.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostAddress } from '../src/lab/netns.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { sendAtRate, startUdpSink, type UdpSink } from './lib/rate-traffic.js';
import { sendUdp } from './lib/traffic.js';

interface RuleBody {
  id: number;
  rateLimit?: { admitted: { packets: number }; dropped: { packets: number }; activeBuckets: number; bans: number };
}
interface BlockBody {
  id: number;
  cidr: string;
  direction: string;
  comment: string | null;
  createdAt: string;
  expiresAt?: string | null;
  origin?: string;
}
interface StatsBody {
  totals: { ingress: { reasons: Record<string, { packets: number } | undefined> } };
}

const SUBNET = 149;
const PORT = 5454;
const PPS = 100; // burst: one second's worth (100)
const BAN = { afterDrops: 50, within: 10, ttl: 3 };
const FLOOD_PPS = 2000;
const FLOOD_SECONDS = 2;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('auto-ban with real traffic', () => {
  const world = new FirewallLab({ subnet: SUBNET, daemon: false });
  let sink: UdpSink | undefined;

  beforeAll(async () => {
    await world.setUp();
    // five suites may share two cores: give the daemon's start (BPF verification) time
    await world.startDaemon({ startTimeoutMs: 90_000 });
  }, 180_000);
  afterAll(async () => {
    await sink?.stop().catch(() => undefined);
    await world.tearDown();
  });

  const autoBlocks = async (): Promise<BlockBody[]> => {
    const listed = await world.api.request<{ items: BlockBody[] }>('GET', '/v1/blocks?origin=auto');
    expect(listed.status).toBe(200);
    return listed.body.items;
  };
  const reasonPackets = async (reason: string): Promise<number> =>
    (await world.api.request<StatsBody>('GET', '/v1/stats')).body.totals.ingress.reasons[reason]?.packets ?? 0;
  const rateCounts = async (id: number) => (await world.api.request<RuleBody>('GET', `/v1/rules/${id}`)).body.rateLimit!;

  it('a flood over the limit gets its source a TTL block (origin auto) that drops as a block, expires after ttl, and the source passes again', async () => {
    const created = await world.api.request<RuleBody>('POST', '/v1/rules', {
      action: 'ratelimit', proto: 'udp', dstPort: PORT, rate: { pps: PPS, per: 'source' }, ban: BAN,
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect(await autoBlocks()).toEqual([]);

    const source = hostAddress(world.lab.client.ipv4);
    const to = hostAddress(world.lab.server.ipv4);
    sink = await startUdpSink(world.lab.server.netns, PORT, 120_000);
    const blockDropsBefore = await reasonPackets('deny_src_cidr');

    // The flood: 4,000 datagrams over 2 s. Its 150th or so (burst 100, then 50 drops) crosses the
    // threshold; the daemon reads reports every 200 ms, so the block lands early in the flood.
    let block: BlockBody | undefined;
    let seenAt = 0;
    const floodStarted = Date.now();
    const flood = sendAtRate(world.lab.client.netns, { from: source, to, port: PORT, srcPort: 40010, pps: FLOOD_PPS, seconds: FLOOD_SECONDS, size: 32 });
    let flooding = true;
    void flood.finally(() => (flooding = false)).catch(() => undefined);
    const waitUntil = Date.now() + 15_000;
    while (!block && Date.now() < waitUntil) {
      block = (await autoBlocks())[0];
      if (block) seenAt = Date.now();
      else await sleep(50);
    }
    const sent = await flood;
    const floodEnded = Date.now();
    expect(block, 'no auto block within 15 s of the flood starting').toBeDefined();
    expect(flooding).toBe(false);

    // The block: the source's /32, ingress, origin auto, ttl seconds, the comment naming the rule.
    expect(block).toMatchObject({
      cidr: `${source}/32`,
      direction: 'src',
      origin: 'auto',
      comment: `auto ban by rule ${id}: ${BAN.afterDrops} drops within ${BAN.within} s`,
    });
    // ttl seconds from when the daemon made it: after the flood started, before it was first listed
    expect(Date.parse(block!.expiresAt!)).toBeGreaterThanOrEqual(floodStarted + BAN.ttl * 1000);
    expect(Date.parse(block!.expiresAt!)).toBeLessThanOrEqual(seenAt + BAN.ttl * 1000);
    expect(await autoBlocks()).toHaveLength(1);

    // Every datagram is accounted for exactly once: admitted or dropped by the rule, or dropped by
    // the block; the rule saw at least the threshold's drops and made one ban.
    await sleep(300); // the last datagrams land
    const during = await rateCounts(id);
    const blockDrops = (await reasonPackets('deny_src_cidr')) - blockDropsBefore;
    const counted = await sink.stop();
    sink = undefined;
    const delivered = counted.sources[source]?.total ?? 0;
    const report = {
      sent: sent.sent, admitted: during.admitted.packets, rateDropped: during.dropped.packets, blockDrops, delivered,
      blockSeenMs: seenAt ? seenAt - Date.parse(block!.createdAt) : null, floodEndedBeforeExpiry: Date.parse(block!.expiresAt!) - floodEnded,
    };
    console.log('auto-ban flood:', JSON.stringify(report));
    expect(sent.sent).toBe(FLOOD_PPS * FLOOD_SECONDS);
    expect(during.admitted.packets + during.dropped.packets + blockDrops).toBe(sent.sent);
    expect(delivered).toBe(during.admitted.packets);
    expect(during.dropped.packets).toBeGreaterThanOrEqual(BAN.afterDrops);
    expect(during.bans).toBe(1);
    // The block landed while the flood was on (it was listed before the flood ended), and from
    // then on the source's datagrams dropped at the block stage, before the rule.
    expect(blockDrops).toBeGreaterThan(0);
    // at most the burst, the rate over the flood and one second of slack (the ban poll) got through
    expect(during.admitted.packets).toBeLessThanOrEqual(PPS + PPS * (FLOOD_SECONDS + 1));

    // After ttl the data plane stops matching the block and the daemon's sweep (every second)
    // removes it: gone from the list within ttl + a bounded slack.
    const gone = Date.parse(block!.expiresAt!) + 10_000;
    while ((await autoBlocks()).length > 0 && Date.now() < gone) await sleep(200);
    expect(await autoBlocks()).toEqual([]);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(block!.expiresAt!));

    // The source passes again, under its rule: 50 datagrams at once fit the refilled burst of 100.
    sink = await startUdpSink(world.lab.server.netns, PORT, 60_000);
    const blockDropsAfter = await reasonPackets('deny_src_cidr');
    const again = await sendUdp(world.lab.client.netns, { address: to, port: PORT, srcPort: 40011, count: 50, size: 32, intervalMs: 0, waitMs: 0 });
    expect(again.sent).toBe(50);
    await sleep(300);
    const afterwards = await rateCounts(id);
    const passed = await sink.stop();
    sink = undefined;
    expect(passed.sources[source]?.total).toBe(50);
    expect(afterwards.admitted.packets - during.admitted.packets).toBe(50);
    expect(afterwards.dropped.packets).toBe(during.dropped.packets);
    expect((await reasonPackets('deny_src_cidr')) - blockDropsAfter).toBe(0);
    expect(afterwards.bans).toBe(1);
    expect(await autoBlocks()).toEqual([]);
    await world.api.request('DELETE', `/v1/rules/${id}`);
  }, 120_000);
});

// The CrowdSec bouncer against the real Local API (Debian's crowdsec, run
// privately on 127.0.0.1 with `crowdsec -no-cs`, see src/lab/crowdsec-lapi.ts):
// a bouncer key from `cscli bouncers add`, decisions from `cscli decisions
// add --ip/--range` and `delete`. The daemon filters the server end of a
// lab veth pair; what the decisions ban is checked with real traffic from
// the client namespace (ping and UDP), so the kernel's maps are what is
// tested, and a range ban stops an address other than its first.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostAddress } from '../src/lab/netns.js';
import { run } from '../src/lab/run.js';
import { CrowdsecLapi, crowdsecMissing } from '../src/lab/crowdsec-lapi.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { teardown } from './lib/teardown.js';
import { ping, sendUdp } from './lib/traffic.js';

const ECHO_PORT = 9000;
/** A short resync, so the test sees several. */
const RESYNC = '3s';
const missing = crowdsecMissing();

describe.skipIf(missing !== undefined)(`CrowdSec bouncer on the real LAPI${missing ? ` (skipped: ${missing})` : ''}`, () => {
  const world = new FirewallLab({ subnet: 93, echo: { port: ECHO_PORT, replyBytes: 32 }, daemon: false });
  let lapi: CrowdsecLapi | undefined;
  let srcPort = 43000;
  const key = randomBytes(16).toString('hex');

  beforeAll(async () => {
    await world.setUp();
    lapi = await CrowdsecLapi.start();
    await lapi.addBouncer('xdpwall-netns-test', key);
    const config = join(lapi.dir, 'xdpwall.yaml');
    writeFileSync(config, `crowdsec: { url: "${lapi.url}", apiKey: "${key}", refresh: 500ms, resync: ${RESYNC} }\n`);
    await world.startDaemon({ args: ['--config', config], startTimeoutMs: 120_000 });
  });
  afterAll(() => teardown(() => world.tearDown(), () => lapi?.stop()));

  const client = (family: 'ipv4' | 'ipv6') => hostAddress(world.lab.client[family]);
  async function replies(family: 'ipv4' | 'ipv6'): Promise<{ ping: number; udp: number }> {
    const target = world.lab.server[family];
    const pings = await ping(world.lab.client.netns, target);
    const udp = await sendUdp(world.lab.client.netns, { address: target, port: ECHO_PORT, srcPort: srcPort++, count: 3, size: 32 });
    return { ping: pings.received, udp: udp.received };
  }
  async function crowdsecBlocks(): Promise<Array<{ cidr: string; expiresAt: string | null; origin: string }>> {
    const { body } = await world.api.request<{ items: Array<{ cidr: string; expiresAt: string | null; origin: string }> }>('GET', '/v1/blocks?origin=crowdsec');
    return body.items.map(({ cidr, expiresAt, origin }) => ({ cidr, expiresAt, origin }));
  }
  /** Waits (bounded) until the daemon's crowdsec blocks are exactly `cidrs`. */
  async function until(cidrs: string[], timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = (await crowdsecBlocks()).map((b) => b.cidr).sort();
      if (JSON.stringify(now) === JSON.stringify([...cidrs].sort())) return;
      if (Date.now() > deadline) throw new Error(`crowdsec blocks are ${JSON.stringify(now)}, not ${JSON.stringify(cidrs)}:\n${world.daemon.log().slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  it('follows the LAPI: /healthz reports the integration ok and traffic passes with no decision', async () => {
    const deadline = Date.now() + 20_000;
    let health: { status: string; integrations?: Array<{ name: string; state: string }> } | undefined;
    while (Date.now() < deadline) {
      health = (await world.api.request<typeof health>('GET', '/healthz')).body;
      if (health?.integrations?.[0]?.state === 'ok') break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(health).toMatchObject({ status: 'ok', integrations: [{ name: 'crowdsec', state: 'ok', entries: 0 }] });
    expect(await replies('ipv4')).toEqual({ ping: 3, udp: 3 });
  });

  it('a range ban (cscli decisions add --range) drops the client, which is not the range\'s first address; deleting it lets traffic through', async () => {
    expect(client('ipv4')).toBe('198.18.93.1');
    await lapi!.cscli(['decisions', 'add', '--range', '198.18.93.0/28', '--duration', '1h', '--type', 'ban']);
    const before = Date.now();
    await until(['198.18.93.0/28']);
    const [block] = await crowdsecBlocks();
    expect(block!.origin).toBe('crowdsec');
    // The decision's remaining time is the block's ttl (LAPI rounds nothing; we round up to a second).
    const ttlMs = Date.parse(block!.expiresAt!) - before;
    expect(ttlMs).toBeGreaterThan(3_600_000 - 15_000);
    expect(ttlMs).toBeLessThanOrEqual(3_601_000);
    expect(await replies('ipv4')).toEqual({ ping: 0, udp: 0 });
    expect(await replies('ipv6')).toEqual({ ping: 3, udp: 3 });
    await lapi!.cscli(['decisions', 'delete', '--range', '198.18.93.0/28']);
    await until([]);
    expect(await replies('ipv4')).toEqual({ ping: 3, udp: 3 });
  });

  it('IPv6: an address ban and a range ban drop the client; deleting them lets it through', async () => {
    await lapi!.cscli(['decisions', 'add', '--ip', client('ipv6'), '--duration', '2h']);
    await until([`${client('ipv6')}/128`]);
    expect(await replies('ipv6')).toEqual({ ping: 0, udp: 0 });
    expect(await replies('ipv4')).toEqual({ ping: 3, udp: 3 });
    await lapi!.cscli(['decisions', 'delete', '--ip', client('ipv6')]);
    await until([]);
    expect(await replies('ipv6')).toEqual({ ping: 3, udp: 3 });

    await lapi!.cscli(['decisions', 'add', '--range', 'fd00:198:0:5d::/64', '--duration', '2h']);
    await until(['fd00:198:0:5d::/64']);
    expect(await replies('ipv6')).toEqual({ ping: 0, udp: 0 });
    await lapi!.cscli(['decisions', 'delete', '--range', 'fd00:198:0:5d::/64']);
    await until([]);
    expect(await replies('ipv6')).toEqual({ ping: 3, udp: 3 });
  });

  /** The daemon's resync counters from /metrics. */
  async function resyncs(): Promise<{ runs: number; added: number; removed: number }> {
    const metrics = await (await fetch(`${world.daemon.baseUrl}/metrics`)).text();
    const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    return {
      runs: value('xdpwall_integration_resyncs_total{integration="crowdsec"}'),
      added: value('xdpwall_integration_resync_drift_total{integration="crowdsec",change="added"}'),
      removed: value('xdpwall_integration_resync_drift_total{integration="crowdsec",change="removed"}'),
    };
  }
  async function untilResyncs(runs: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await resyncs()).runs < runs) {
      if (Date.now() > deadline) throw new Error(`fewer than ${runs} resyncs within ${timeoutMs} ms:\n${world.daemon.log().slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  it('a decision no delta carries (LAPI 1.4 stamps created_at before the INSERT commits: a pull in between misses it for good) is enforced by the next resync, and so is a block removed behind the bouncer\'s back', async () => {
    const reference = '198.18.94.77';
    await lapi!.cscli(['decisions', 'add', '--ip', reference, '--duration', '1h']);
    await until([`${reference}/32`]);
    // The race's outcome, made exactly: a copy of that decision for the
    // client's address whose created_at is older than every pull. LAPI
    // answers a delta with created_at > the bouncer's last pull, so only a
    // startup=true pull carries it. (start_ip/end_ip are LAPI's integer form
    // of the address, linear in it.)
    const delta = 256 * (93 - 94) + (1 - 77);
    expect(client('ipv4')).toBe('198.18.93.1');
    const sql = `INSERT INTO decisions (created_at, updated_at, until, scenario, type, start_ip, end_ip, start_suffix, end_suffix, ip_size, scope, value, origin, simulated, alert_decisions)
      SELECT '2000-01-01 00:00:00+00:00', updated_at, until, scenario, type, start_ip + ${delta}, end_ip + ${delta}, start_suffix, end_suffix, ip_size, scope, '${client('ipv4')}', origin, simulated, alert_decisions
      FROM decisions WHERE value = '${reference}' ORDER BY id DESC LIMIT 1`;
    const before = await resyncs();
    const inserted = await run(['sqlite3', '-cmd', '.timeout 10000', join(lapi!.dir, 'data', 'crowdsec.db'), sql]);
    expect(inserted.code, inserted.stderr).toBe(0);
    const listed = JSON.parse(await lapi!.cscli(['decisions', 'list', '--ip', client('ipv4')])) as Array<{ decisions: Array<{ value: string }> }>;
    // LAPI has it (in the reference decision's alert, so cscli lists both).
    expect(listed.flatMap((alert) => alert.decisions.map((d) => d.value)).sort()).toEqual([client('ipv4'), reference]);
    // Deltas every 500 ms do not bring it; the next resync (every ${RESYNC}) does, and counts it as drift.
    await untilResyncs(before.runs + 1);
    await until([`${reference}/32`, `${client('ipv4')}/32`]);
    const after = await resyncs();
    expect(after.added - before.added).toBe(1);
    expect(after.removed - before.removed).toBe(0);
    expect(await replies('ipv4')).toEqual({ ping: 0, udp: 0 });

    // An operator removes the block by mistake: no delta restores it, the resync does.
    const removed = await world.api.request('DELETE', `/v1/blocks?cidr=${client('ipv4')}/32`);
    expect(removed.status).toBe(204);
    const beforeRemoval = await resyncs();
    await untilResyncs(beforeRemoval.runs + 1);
    await until([`${reference}/32`, `${client('ipv4')}/32`]);
    expect((await resyncs()).added - beforeRemoval.added).toBe(1);
    expect(await replies('ipv4')).toEqual({ ping: 0, udp: 0 });

    // Deleting the decisions (cscli expires them: "deleted" in the next delta) unblocks.
    await lapi!.cscli(['decisions', 'delete', '--ip', client('ipv4')]);
    await lapi!.cscli(['decisions', 'delete', '--ip', reference]);
    await until([]);
    expect(await replies('ipv4')).toEqual({ ping: 3, udp: 3 });
  });

  it('an IPv4 address ban drops the client; with the LAPI stopped the ban stays and /healthz says degraded with the reason', async () => {
    await lapi!.cscli(['decisions', 'add', '--ip', client('ipv4'), '--duration', '1h']);
    await until([`${client('ipv4')}/32`]);
    expect(await replies('ipv4')).toEqual({ ping: 0, udp: 0 });
    await lapi!.stop();
    const deadline = Date.now() + 20_000;
    let health: { status: string; integrations?: Array<{ state: string; reason?: string }> } | undefined;
    while (Date.now() < deadline) {
      health = (await world.api.request<typeof health>('GET', '/healthz')).body;
      if (health?.status === 'degraded') break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(health).toMatchObject({ status: 'degraded', integrations: [{ name: 'crowdsec', state: 'degraded' }] });
    expect(health!.integrations![0]!.reason).toMatch(/^crowdsec: cannot reach the Local API at http:\/\/127\.0\.0\.1:\d+\/v1\/decisions\/stream(\?startup=true)?: ECONNREFUSED$/);
    const metrics = await (await fetch(`${world.daemon.baseUrl}/metrics`)).text();
    expect(metrics).toContain('xdpwall_integration_up{integration="crowdsec"} 0');
    expect(await replies('ipv4')).toEqual({ ping: 0, udp: 0 });
    expect(world.daemon.log()).toMatch(/crowdsec: cannot reach the Local API/);
  });
});

// Sampled drop events with real traffic: the daemon filters the server's end
// of a veth pair, the client is blocked, and UDP datagrams from the client
// come back as /v1/events messages (one per datagram: the configuration
// samples deny_src_cidr 1 in 1), through `xdpwall events`, and as a pcap file
// that Debian's tshark reads with exactly the addresses and ports sent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hostAddress } from '../src/lab/netns.js';
import { run } from '../src/lab/run.js';
import { CLI_PATH } from './lib/lab-env.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { sendUdp, udpFrameLength } from './lib/traffic.js';
import { sseMessages } from '../cli/commands/events.js';
import type { DropEvent } from '../src/events/model.js';

const PORT = 9000;

describe('sampled drop events from the lab', { timeout: 240_000 }, () => {
  const world = new FirewallLab({ subnet: 83, echo: { port: PORT, replyBytes: 16, lifetimeMs: 300_000 }, daemon: false });
  const dir = mkdtempSync(join(tmpdir(), 'xwt-events-'));
  let client = '';
  let server = '';
  let blockId = 0;

  const headers = (): Record<string, string> => ({ authorization: `Bearer ${world.daemon.state.token}` });

  async function listeners(): Promise<number> {
    const res = await fetch(`${world.daemon.baseUrl}/v1/events/stats`, { headers: headers() });
    return ((await res.json()) as { listeners: number }).listeners;
  }

  async function waitForListeners(n: number): Promise<void> {
    // A CLI started on a busy machine (other suites, other builds) can take many seconds to connect.
    const deadline = Date.now() + 90_000;
    while ((await listeners()) < n) {
      if (Date.now() > deadline) throw new Error(`never ${n} listeners`);
      await sleep(50);
    }
  }

  /** Runs the CLI in the background (node, not npx), resolving to its output once it exits. */
  function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = spawn(process.execPath, [CLI_PATH, ...args, '--api', world.daemon.baseUrl], {
      env: { ...process.env, XDPWALL_TOKEN: world.daemon.state.token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    return new Promise((resolve) =>
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      }),
    );
  }

  beforeAll(async () => {
    await world.setUp();
    const config = join(dir, 'config.yaml');
    writeFileSync(config, 'events:\n  sample: { deny_src_cidr: 1 }\n  ratePerSecond: 10000\n  burst: 10000\n');
    await world.startDaemon({ args: ['--config', config], startTimeoutMs: 120_000 });
    client = hostAddress(world.lab.client.ipv4);
    server = hostAddress(world.lab.server.ipv4);
    const created = await world.api.createBlock(`${client}/32`);
    expect(created.status).toBe(201);
    blockId = created.body.id;
  });

  afterAll(async () => {
    await world.tearDown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('GET /v1/events streams one event per blocked datagram, with exact fields', async () => {
    const abort = new AbortController();
    const res = await fetch(`${world.daemon.baseUrl}/v1/events?reason=deny_src_cidr&src=${client}/32`, { headers: headers(), signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const events: DropEvent[] = [];
    const reading = (async () => {
      try {
        for await (const { event, data } of sseMessages(res.body as unknown as AsyncIterable<Uint8Array>)) {
          if (event !== 'message') continue;
          events.push(JSON.parse(data) as DropEvent);
          if (events.length === 5) return;
        }
      } catch {
        // aborted
      }
    })();
    await waitForListeners(1);
    const sent = await sendUdp(world.lab.client.netns, { address: server, port: PORT, srcPort: 43001, count: 5, size: 32, intervalMs: 20, waitMs: 100 });
    expect(sent).toMatchObject({ sent: 5, received: 0 });
    await Promise.race([reading, sleep(30_000)]);
    abort.abort();
    expect(events).toHaveLength(5);
    for (const event of events) {
      expect(event).toMatchObject({
        iface: world.lab.serverIface,
        direction: 'ingress',
        verdict: 'drop',
        reason: 'deny_src_cidr',
        rule: null,
        block: blockId,
        family: 4,
        src: client,
        dst: server,
        proto: 'udp',
        srcPort: 43001,
        dstPort: PORT,
        vlan: null,
        tcpFlags: [],
        length: udpFrameLength(server, 32),
      });
      const frame = Buffer.from(event.snapshot, 'base64');
      expect(frame.length).toBe(udpFrameLength(server, 32));
      expect(frame.subarray(frame.length - 32)).toEqual(Buffer.alloc(32, 0x71)); // the payload udp-send writes
    }
    // The gate closes with the last listener.
    const deadline = Date.now() + 5_000;
    while ((await listeners()) > 0 && Date.now() < deadline) await sleep(50);
    expect(await listeners()).toBe(0);
  });

  it('`xdpwall events --json --count 3` prints the events as they come', async () => {
    const done = cli(['events', '--reason', 'deny_src_cidr', '--json', '--count', '3']);
    await waitForListeners(1);
    await sendUdp(world.lab.client.netns, { address: server, port: PORT, srcPort: 43002, count: 3, size: 16, intervalMs: 20, waitMs: 100 });
    const { code, stdout, stderr } = await done;
    expect(code, stderr).toBe(0);
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as DropEvent);
    expect(lines.map((e) => [e.src, e.srcPort, e.dst, e.dstPort, e.reason])).toEqual(
      Array.from({ length: 3 }, () => [client, 43002, server, PORT, 'deny_src_cidr']),
    );
  });

  it('`xdpwall capture -w FILE` writes a pcap that tshark reads: the packets sent, cut at 128 bytes', async () => {
    const file = join(dir, 'drops.pcap');
    const done = cli(['capture', '-w', file, '--count', '4', '--seconds', '60', '--src', `${client}/32`]);
    await waitForListeners(1);
    await sendUdp(world.lab.client.netns, { address: server, port: PORT, srcPort: 43003, count: 2, size: 40, intervalMs: 20, waitMs: 50 });
    await sendUdp(world.lab.client.netns, { address: server, port: PORT, srcPort: 43004, count: 2, size: 300, intervalMs: 20, waitMs: 50 });
    const { code, stderr } = await done;
    expect(code, stderr).toBe(0);
    const tshark = await run(
      ['tshark', '-r', file, '-T', 'fields', '-E', 'separator=,', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'udp.srcport', '-e', 'udp.dstport', '-e', 'frame.len', '-e', 'frame.cap_len'],
      { timeoutMs: 30_000 },
    );
    expect(tshark.code, tshark.stderr).toBe(0);
    const small = udpFrameLength(server, 40);
    const large = udpFrameLength(server, 300);
    expect(tshark.stdout.trim().split('\n')).toEqual([
      `${client},${server},43003,${PORT},${small},${small}`,
      `${client},${server},43003,${PORT},${small},${small}`,
      `${client},${server},43004,${PORT},${large},128`,
      `${client},${server},43004,${PORT},${large},128`,
    ]);
  });

  it('counts what was sampled in /metrics', async () => {
    const text = await (await fetch(`${world.daemon.baseUrl}/metrics`)).text();
    const sampled = Number(/^xdpwall_events_sampled_total (\d+)$/m.exec(text)?.[1]);
    expect(sampled).toBeGreaterThanOrEqual(12);
    expect(text).toMatch(/^xdpwall_events_lost_total\{cause="rate_cap"\} 0$/m);
  });
});

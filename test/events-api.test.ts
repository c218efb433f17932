// /v1/events, /v1/events/stats, /v1/capture.pcap and the event metrics
// against a real Firewall (the compiled data plane with private maps): the
// packets are BPF_PROG_TEST_RUN frames through xw_ingress, the HTTP is real
// (a listening app), so the streams are read as a client reads them.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Firewall } from '../src/firewall.js';
import { Reason } from '../src/datapath/abi.js';
import { sseMessages } from '../cli/commands/events.js';
import type { DropEvent } from '../src/events/model.js';
import { openTestFirewall } from './lib/firewall.js';
import { ether, ipv4, udp } from './lib/packets.js';

const BLOCKED = '198.18.90.1';
const OTHER_BLOCKED = '198.18.91.1';
const LOCAL = '198.18.90.2';

let firewall: Firewall;
let app: FastifyInstance;
let base = '';
let blockId = 0;

function send(src: string, sport: number, count = 1): void {
  const frame = ether(ipv4({ src, dst: LOCAL }, udp({ sport, dport: 53, payload: Buffer.alloc(10, 0x5a) })));
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(frame.length, 4);
  ctx.writeUInt32LE(1, 12); // ingress_ifindex: loopback
  for (let i = 0; i < count; i++) firewall.datapath.ingress.testRunSync({ data: frame, ctxIn: ctx, dataSizeOut: 0 });
}

async function until(test: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  firewall = await openTestFirewall();
  blockId = (await firewall.addBlock({ cidr: `${BLOCKED}/32` })).rule.id;
  await firewall.addBlock({ cidr: `${OTHER_BLOCKED}/32` });
  app = await buildApp({ firewall });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
}, 120_000);

afterAll(async () => {
  await app?.close();
  firewall?.close();
});

beforeEach(() => {
  firewall.events.configure({ sample: new Map([[Reason.deny_src_cidr, 1]]), ratePerSecond: 0, burst: 1 });
});

describe('GET /v1/events', () => {
  it('streams the matching events only, opens the gate while listening and closes it after', async () => {
    const abort = new AbortController();
    const res = await fetch(`${base}/v1/events?reason=deny_src_cidr&src=${BLOCKED}/32`, { signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const events: DropEvent[] = [];
    const reading = (async () => {
      try {
        for await (const { event, data } of sseMessages(res.body as unknown as AsyncIterable<Uint8Array>)) {
          if (event === 'message') events.push(JSON.parse(data) as DropEvent);
        }
      } catch {
        // aborted
      }
    })();
    await until(() => firewall.events.listeners === 1, 'the listener');
    send(OTHER_BLOCKED, 1000, 2); // filtered out by src
    send(BLOCKED, 2000, 3);
    await until(() => events.length >= 3, 'three events');
    abort.abort();
    await reading;
    expect(events.map((e) => [e.src, e.srcPort, e.block, e.reason, e.dst, e.dstPort, e.proto])).toEqual(
      Array.from({ length: 3 }, () => [BLOCKED, 2000, blockId, 'deny_src_cidr', LOCAL, 53, 'udp']),
    );
    await until(() => firewall.events.listeners === 0, 'the listener to go');
    // Closed gate: nothing more is sampled.
    const before = firewall.events.counters().sampled;
    send(BLOCKED, 2001, 5);
    expect(firewall.events.counters().sampled).toBe(before);
  });

  it.each([
    ['reason=dropped', 'INVALID_ARGUMENT'],
    ['src=198.18.0.1/33', 'INVALID_CIDR'],
    ['rule=0', 'INVALID_REQUEST'],
    ['colour=red', 'INVALID_REQUEST'],
  ])('400 for ?%s (%s), nothing subscribed', async (query, code) => {
    const res = await fetch(`${base}/v1/events?${query}`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    expect(firewall.events.listeners).toBe(0);
  });
});

describe('closing the app', () => {
  it('ends the open streams (a daemon stopping does not wait for its event clients)', async () => {
    const second = await buildApp({ firewall });
    const url = await second.listen({ host: '127.0.0.1', port: 0 });
    const res = await fetch(`${url}/v1/events`);
    await until(() => firewall.events.listeners === 1, 'the listener');
    await second.close();
    expect((await res.text()).startsWith('retry: 2000')).toBe(true);
    expect(firewall.events.listeners).toBe(0);
  });
});

describe('GET /v1/capture.pcap', () => {
  it('ends after count packets: a pcap header and one record per packet, the frame bytes as sent', async () => {
    const res = fetch(`${base}/v1/capture.pcap?count=2&seconds=60&src=${BLOCKED}/32`);
    await until(() => firewall.events.listeners === 1, 'the capture');
    send(OTHER_BLOCKED, 1000, 1);
    send(BLOCKED, 3000, 4);
    const response = await res;
    expect(response.headers.get('content-type')).toBe('application/vnd.tcpdump.pcap');
    const body = Buffer.from(await response.arrayBuffer());
    const frame = ether(ipv4({ src: BLOCKED, dst: LOCAL }, udp({ sport: 3000, dport: 53, payload: Buffer.alloc(10, 0x5a) })));
    expect(body.length).toBe(24 + 2 * (16 + frame.length));
    expect(body.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(body.readUInt32LE(20)).toBe(1); // Ethernet
    for (const at of [24, 24 + 16 + frame.length]) {
      expect(body.readUInt32LE(at + 8)).toBe(frame.length);
      expect(body.readUInt32LE(at + 12)).toBe(frame.length);
      expect(body.subarray(at + 16, at + 16 + frame.length)).toEqual(frame);
      expect(Math.abs(body.readUInt32LE(at) - Date.now() / 1000)).toBeLessThan(120);
    }
    await until(() => firewall.events.listeners === 0, 'the capture to end');
  });

  it('ends after `seconds` with only a header when nothing matched', async () => {
    const response = await fetch(`${base}/v1/capture.pcap?seconds=1&reason=drop_rule`);
    expect(Buffer.from(await response.arrayBuffer()).length).toBe(24);
  });
});

describe('counters', () => {
  it('/v1/events/stats and /metrics report sampled and lost events', async () => {
    const stats = (await (await fetch(`${base}/v1/events/stats`)).json()) as Record<string, number>;
    expect(Object.keys(stats).sort()).toEqual(['listeners', 'lostCap', 'lostRing', 'sampled', 'slowClients']);
    expect(stats.sampled).toBe(Number(firewall.events.counters().sampled));
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain(`xdpwall_events_sampled_total ${stats.sampled}`);
    expect(metrics).toMatch(/^xdpwall_events_lost_total\{cause="rate_cap"\} 0$/m);
    expect(metrics).toMatch(/^xdpwall_events_lost_total\{cause="ring_full"\} 0$/m);
    expect(metrics).toMatch(/^xdpwall_event_clients_dropped_total 0$/m);
    expect(metrics).toMatch(/^xdpwall_event_listeners 0$/m);
  });

  it('/metrics has per-rule counters for policy rules', async () => {
    const rule = await firewall.rules.add({ action: 'drop', proto: 'udp', dstPort: 53 });
    send('198.18.92.1', 4000, 3);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^xdpwall_rule_packets_total\\{rule="${rule.id}",hook="ingress",action="drop"\\} 3$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^xdpwall_rule_bytes_total\\{rule="${rule.id}",hook="ingress",action="drop"\\} \\d+$`, 'm'));
    await firewall.rules.remove(rule.id);
  });
});

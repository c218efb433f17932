// Sampled packet events from the compiled data plane, through
// BPF_PROG_TEST_RUN in the real kernel: a dropped packet leaves exactly one
// xw_event with exact fields in the ring buffer, nothing is emitted while
// the gate is closed, the 1-in-N samplers and the token bucket (its clock
// fixed through xw_event_cfg.test_now_ns) count exactly, and a full ring is
// counted, not blocking. A test run repeats on one CPU, so the per-CPU
// samplers are deterministic. Needs root.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BpfObject, BpfRingBuffer, type BpfMap, type BpfProgram } from '@xdpwall/addon';
import { Action, Feature, Layout, MAPS, PROGRAMS, Reason, encodeRuleId, encodeRuleValue } from '../src/datapath/abi.js';
import { EVENT_MAPS, EVENTS_RING_BYTES, EVENT_SNAP_LEN, EventLayout, EventStat, decodeEvent, encodeEventCfg, type RawEvent } from '../src/events/abi.js';
import { IPPROTO, TCP, TPID_8021Q, ether, ipv4, ipv4Bytes, ipv4Mapped, ipv6, ipv6Bytes, rawL4, tcp, udp } from './lib/packets.js';

const OBJECT_PATH = new URL('../xdp/build/xdpwall.bpf.o', import.meta.url).pathname;
const LO = 1;
const XDP_DROP = 1;
const XDP_PASS = 2;
const TC_ACT_OK = 0;
const A4 = '198.51.100.7';
const B4 = '192.0.2.10';
const A6 = '2001:db8:aaaa::7';
const B6 = '2001:db8:bbbb::10';
const BLOCK_V4 = 42;
const BLOCK_V6 = 43;

let object: BpfObject;
let ingress: BpfProgram;
let egress: BpfProgram;
let maps: Record<string, BpfMap>;
let ring: BpfRingBuffer;

function xdpCtx(frameLength: number): Buffer {
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(frameLength, 4); // data_end
  ctx.writeUInt32LE(LO, 12); // ingress_ifindex
  return ctx;
}

const runIngress = (frame: Buffer, repeat = 1): number =>
  ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length), dataSizeOut: 0, repeat }).retval;

const u32 = (n: number): Buffer => encodeRuleId(n);

function setFeatures(features: number): void {
  const value = Buffer.alloc(Layout.config.size);
  value.writeUInt32LE(features, Layout.config.features);
  maps[MAPS.config]!.update(u32(0), value);
}

function configure(sample: Record<string, number>, cap: { rate: number; burst: number; nowNs?: bigint } = { rate: 0, burst: 1 }): void {
  const bySample = new Map(Object.entries(sample).map(([reason, every]) => [Reason[reason as keyof typeof Reason], every]));
  maps[EVENT_MAPS.cfg]!.update(u32(0), encodeEventCfg({ sample: bySample, ratePerSecond: cap.rate, burst: cap.burst, testNowNs: cap.nowNs }));
}

function zero(map: BpfMap, entries: number): void {
  for (let i = 0; i < entries; i++) map.update(u32(i), Buffer.alloc(map.valueStride));
}

function stat(which: keyof typeof EventStat): bigint {
  const bytes = maps[EVENT_MAPS.stats]!.lookup(u32(EventStat[which]))!;
  let sum = 0n;
  for (let off = 0; off < bytes.length; off += 8) sum += bytes.readBigUInt64LE(off);
  return sum;
}

function drain(): RawEvent[] {
  const out: RawEvent[] = [];
  for (;;) {
    const batch = ring.consume(4096);
    if (batch.length === 0) return out;
    for (const record of batch) {
      expect(record.length).toBe(EventLayout.event.size);
      out.push(decodeEvent(record)!);
    }
  }
}

beforeAll(async () => {
  object = BpfObject.open(OBJECT_PATH);
  for (const name of [MAPS.srcV4, MAPS.dstV4, MAPS.srcV6, MAPS.dstV6, MAPS.srcHostV4, MAPS.dstHostV4, MAPS.srcHostV6, MAPS.dstHostV6]) {
    object.setMapMaxEntries(name, 1024);
  }
  object.setMapMaxEntries(MAPS.ruleStats, 1024);
  object.setMapMaxEntries(MAPS.flows, 1024);
  await object.load();
  ingress = object.program(PROGRAMS.ingress);
  egress = object.program(PROGRAMS.egress);
  maps = Object.fromEntries(
    [...Object.values(MAPS), ...Object.values(EVENT_MAPS), 'xw_event_samplers', 'xw_event_bucket'].map((name) => [name, object.map(name)]),
  );
  maps[MAPS.srcHostV4]!.update(ipv4Bytes(A4), encodeRuleValue({ ruleId: BLOCK_V4, action: Action.deny, flags: 0 }));
  maps[MAPS.srcHostV6]!.update(ipv6Bytes(A6), encodeRuleValue({ ruleId: BLOCK_V6, action: Action.deny, flags: 0 }));
  ring = new BpfRingBuffer(maps[EVENT_MAPS.ring]!.fd);
});

afterAll(() => {
  ring?.close();
  object?.close();
});

beforeEach(() => {
  setFeatures(Feature.srcV4 | Feature.srcV6 | Feature.events);
  configure({ deny_src_cidr: 1 });
  zero(maps[EVENT_MAPS.stats]!, 3);
  zero(maps.xw_event_samplers!, 1);
  zero(maps.xw_event_bucket!, 1);
  drain();
});

const syn4 = ether(ipv4({ src: A4, dst: B4 }, tcp({ sport: 40000, dport: 443, flags: TCP.syn })));

describe('one dropped packet, one event', () => {
  it('an IPv4 SYN from a blocked source: every field', () => {
    expect(runIngress(syn4)).toBe(XDP_DROP);
    const events = drain();
    expect(events).toHaveLength(1);
    const { tsNs, ...event } = events[0]!;
    expect(tsNs).toBeGreaterThan(0n);
    expect(event).toEqual({
      ifindex: LO,
      ruleId: BLOCK_V4,
      len: syn4.length,
      reason: 'deny_src_cidr',
      verdict: 'drop',
      direction: 'ingress',
      family: 4,
      proto: IPPROTO.tcp,
      tcpFlags: TCP.syn,
      l4: true,
      vlan: null,
      sport: 40000,
      dport: 443,
      saddr: new Uint8Array(ipv4Mapped(A4)),
      daddr: new Uint8Array(ipv4Mapped(B4)),
      data: syn4,
    });
    expect(stat('sampled')).toBe(1n);
    expect(stat('lostCap')).toBe(0n);
    expect(stat('lostRing')).toBe(0n);
  });

  it('an IPv6 UDP datagram in a VLAN, longer than the snapshot: first 128 bytes, real length', () => {
    const frame = ether(ipv6({ src: A6, dst: B6 }, udp({ sport: 5353, dport: 53, payload: Buffer.alloc(300, 0xab) })), {
      vlans: [{ tpid: TPID_8021Q, vid: 77 }],
    });
    expect(runIngress(frame)).toBe(XDP_DROP);
    const [event, ...rest] = drain();
    expect(rest).toEqual([]);
    expect(event).toMatchObject({
      ruleId: BLOCK_V6,
      len: frame.length,
      reason: 'deny_src_cidr',
      family: 6,
      proto: IPPROTO.udp,
      l4: true,
      vlan: 77,
      sport: 5353,
      dport: 53,
      saddr: new Uint8Array(ipv6Bytes(A6)),
      daddr: new Uint8Array(ipv6Bytes(B6)),
    });
    expect(frame.length).toBeGreaterThan(EVENT_SNAP_LEN);
    expect(event!.data).toEqual(frame.subarray(0, EVENT_SNAP_LEN));
  });

  it('a malformed frame (no rule, no ports) seen on egress by the TC program', () => {
    configure({ malformed_l4: 1 });
    const frame = ether(ipv4({ src: B4, dst: A4 }, rawL4(IPPROTO.udp, Buffer.alloc(7))));
    expect(egress.testRunSync({ data: frame, dataSizeOut: 0 }).retval).toBe(TC_ACT_OK);
    const events = drain();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ ruleId: 0, reason: 'malformed_l4', verdict: 'pass', direction: 'egress', family: 4, l4: false, len: frame.length, data: frame });
  });
});

describe('the gate and the samplers', () => {
  it('emits nothing while XW_FEATURE_EVENTS is clear, and the packet is still dropped', () => {
    setFeatures(Feature.srcV4);
    expect(runIngress(syn4, 50)).toBe(XDP_DROP);
    expect(drain()).toEqual([]);
    expect(stat('sampled')).toBe(0n);
  });

  it('emits nothing for reasons sampled 0 in N (a pass with the defaults)', () => {
    const frame = ether(ipv4({ src: B4, dst: A4 }, udp({ sport: 1, dport: 2 })));
    expect(runIngress(frame, 20)).toBe(XDP_PASS);
    expect(drain()).toEqual([]);
  });

  it('1 in 100: 250 drops on one CPU give the 1st, 101st and 201st', () => {
    configure({ deny_src_cidr: 100 });
    runIngress(syn4, 250);
    expect(drain()).toHaveLength(3);
    expect(stat('sampled')).toBe(3n);
    // Runs may land on different CPUs (per-CPU countdowns), so again from zeroed samplers: 1st ... 301st.
    zero(maps.xw_event_samplers!, 1);
    runIngress(syn4, 301);
    expect(drain()).toHaveLength(4);
  });

  it('samples each reason on its own countdown', () => {
    configure({ deny_src_cidr: 10, malformed_l4: 3 });
    runIngress(syn4, 20); // 1st, 11th
    runIngress(ether(ipv4({ src: B4, dst: A4 }, rawL4(IPPROTO.udp, Buffer.alloc(7)))), 7); // 1st, 4th, 7th
    expect(drain().map((e) => e.reason)).toEqual(['deny_src_cidr', 'deny_src_cidr', 'malformed_l4', 'malformed_l4', 'malformed_l4']);
  });
});

describe('the token bucket (clock fixed by test_now_ns)', () => {
  const T0 = 1_000_000_000_000n;

  it('a burst of 5 at 10 events/s: 5 of 20, then 3 more after 300 ms', () => {
    configure({ deny_src_cidr: 1 }, { rate: 10, burst: 5, nowNs: T0 });
    runIngress(syn4, 20);
    expect(drain()).toHaveLength(5);
    expect(stat('lostCap')).toBe(15n);
    configure({ deny_src_cidr: 1 }, { rate: 10, burst: 5, nowNs: T0 + 300_000_000n });
    runIngress(syn4, 20);
    expect(drain()).toHaveLength(3);
    expect([stat('sampled'), stat('lostCap'), stat('lostRing')]).toEqual([8n, 32n, 0n]);
  });

  it('refills no further than the burst after a long quiet spell', () => {
    configure({ deny_src_cidr: 1 }, { rate: 1000, burst: 4, nowNs: T0 });
    runIngress(syn4, 10);
    configure({ deny_src_cidr: 1 }, { rate: 1000, burst: 4, nowNs: T0 + 3600n * 1_000_000_000n });
    runIngress(syn4, 10);
    expect(drain()).toHaveLength(8);
  });
});

describe('a full ring', () => {
  it('holds what fits and counts the rest, without slowing the verdict', () => {
    const perRecord = Math.ceil((8 + EventLayout.event.size) / 8) * 8; // header + record, 8-byte aligned
    const fits = Math.floor(EVENTS_RING_BYTES / perRecord);
    expect(runIngress(syn4, fits + 100)).toBe(XDP_DROP);
    expect([stat('sampled'), stat('lostRing')]).toEqual([BigInt(fits), 100n]);
    expect(drain()).toHaveLength(fits);
  });
});

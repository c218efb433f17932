// The control-plane side of sampled events without a kernel: decoding,
// filters, the configuration, the pcap format and a slow client's queue.
import { describe, expect, it } from 'vitest';
import { EventLayout, decodeEvent, encodeEventCfg } from '../src/events/abi.js';
import { compileEventFilter, toSampledPacket, type SampledPacket } from '../src/events/model.js';
import { eventCfgOf, parseEventSettings, DEFAULT_EVENT_SETTINGS } from '../src/events/settings.js';
import { ClientQueue } from '../src/events/client-queue.js';
import { pcapHeader, pcapRecord } from '../src/events/pcap.js';
import { POLICY_RULE_ID_BASE, Reason } from '../src/datapath/abi.js';
import { ConfigError, InvalidArgumentError, InvalidCidrError } from '../src/errors.js';
import { ipv4Mapped, ipv6Bytes } from './lib/packets.js';
import { formatEvent, sseMessages } from '../cli/commands/events.js';

const L = EventLayout.event;

function record(o: { ruleId?: number; reason?: number; family?: number; src?: Buffer; l4?: boolean; ifindex?: number; snap?: Buffer; len?: number } = {}): Buffer {
  const r = Buffer.alloc(L.size);
  r.writeBigUInt64LE(5_000_000_000n, L.tsNs);
  r.writeUInt32LE(o.ifindex ?? 7, L.ifindex);
  r.writeUInt32LE(o.ruleId ?? 0, L.ruleId);
  r.writeUInt32LE(o.len ?? 60, L.len);
  r.writeUInt16LE(o.reason ?? Reason.deny_src_cidr, L.reason);
  r.writeUInt8(1, L.verdict);
  r.writeUInt8(o.family ?? 4, L.family);
  r.writeUInt8(6, L.proto);
  r.writeUInt8(0x12, L.tcpFlags);
  r.writeUInt8(o.l4 === false ? 0 : 1, L.flags);
  r.writeUInt16BE(40000, L.sport);
  r.writeUInt16BE(443, L.dport);
  (o.src ?? ipv4Mapped('198.18.0.9')).copy(r, L.saddr);
  ipv4Mapped('198.19.0.1').copy(r, L.daddr);
  const snap = o.snap ?? Buffer.from([1, 2, 3]);
  snap.copy(r, L.data);
  r.writeUInt16LE(snap.length, L.snapLen);
  return r;
}

const ctx = { ifaceName: (i: number) => (i === 7 ? 'lab/veth0' : undefined), wallUs: (ns: bigint) => 1_700_000_000_000_000n + ns / 1000n };
const packet = (o: Parameters<typeof record>[0] = {}): SampledPacket => toSampledPacket(decodeEvent(record(o))!, ctx);

describe('decoding', () => {
  it('turns a record into the API event', () => {
    expect(packet({ ruleId: 12 }).event).toEqual({
      time: '2023-11-14T22:13:25.000Z',
      monotonicNs: '5000000000',
      iface: 'lab/veth0',
      ifindex: 7,
      direction: 'ingress',
      verdict: 'drop',
      reason: 'deny_src_cidr',
      rule: null,
      block: 12,
      family: 4,
      src: '198.18.0.9',
      dst: '198.19.0.1',
      proto: 'tcp',
      srcPort: 40000,
      dstPort: 443,
      vlan: null,
      tcpFlags: ['SYN', 'ACK'],
      length: 60,
      snapshot: Buffer.from([1, 2, 3]).toString('base64'),
    });
  });

  it('names a policy rule by its /v1/rules id; no ports without L4; a short record is not an event', () => {
    const p = packet({ ruleId: POLICY_RULE_ID_BASE + 3, reason: Reason.drop_rule, l4: false });
    expect(p.event).toMatchObject({ rule: 3, block: null, reason: 'drop_rule', srcPort: null, dstPort: null, tcpFlags: [] });
    expect(decodeEvent(Buffer.alloc(L.size - 1))).toBeUndefined();
  });
});

describe('filters', () => {
  it('reason (comma-separated), rule, block, src CIDR, iface', () => {
    const p = packet({ ruleId: 12 });
    const v6 = packet({ family: 6, src: ipv6Bytes('fd00:198::5') });
    expect(compileEventFilter({})(p)).toBe(true);
    expect(compileEventFilter({ reason: 'drop_rule,deny_src_cidr' })(p)).toBe(true);
    expect(compileEventFilter({ reason: 'drop_rule' })(p)).toBe(false);
    expect(compileEventFilter({ block: 12 })(p)).toBe(true);
    expect(compileEventFilter({ rule: 12 })(p)).toBe(false);
    expect(compileEventFilter({ src: '198.18.0.0/15' })(p)).toBe(true);
    expect(compileEventFilter({ src: '198.18.0.8/32' })(p)).toBe(false);
    expect(compileEventFilter({ src: '198.18.0.0/15' })(v6)).toBe(false);
    expect(compileEventFilter({ src: 'fd00:198::/48' })(v6)).toBe(true);
    expect(compileEventFilter({ iface: 'lab/veth0' })(p)).toBe(true);
    expect(compileEventFilter({ iface: 'eth0' })(p)).toBe(false);
  });

  it('refuses an unknown reason and a bad CIDR', () => {
    expect(() => compileEventFilter({ reason: 'dropped' })).toThrow(InvalidArgumentError);
    expect(() => compileEventFilter({ src: '198.18.0.1/40' })).toThrow(InvalidCidrError);
  });
});

describe('settings', () => {
  it('defaults: log 1 in 1, drops and would_drop 1 in 100, other passes never', () => {
    const cfg = eventCfgOf(DEFAULT_EVENT_SETTINGS);
    expect(cfg.sample.get(Reason.pass_log)).toBe(1);
    expect(cfg.sample.get(Reason.deny_src_cidr)).toBe(100);
    expect(cfg.sample.get(Reason.would_drop)).toBe(100);
    expect(cfg.sample.get(Reason.pass_no_match)).toBe(0);
    expect(cfg.sample.get(31)).toBe(100); // a drop reason added later is sampled too
    const bytes = encodeEventCfg(cfg);
    expect(bytes.readUInt32LE(EventLayout.cfg.sample + 4 * Reason.pass_log)).toBe(1);
    expect(bytes.readBigUInt64LE(EventLayout.cfg.ratePerSec)).toBe(1000n);
  });

  it('parses events: and refuses what it does not know', () => {
    expect(parseEventSettings({ sample: { drop_rule: 1, pass_no_match: 0 }, ratePerSecond: 50, burst: 10 })).toEqual({
      sample: { drop_rule: 1, pass_no_match: 0 },
      ratePerSecond: 50,
      burst: 10,
    });
    expect(() => parseEventSettings({ sample: { dropped: 1 } })).toThrow(ConfigError);
    expect(() => parseEventSettings({ sample: { drop_rule: -1 } })).toThrow(ConfigError);
    expect(() => parseEventSettings({ rate: 5 })).toThrow(ConfigError);
    expect(() => parseEventSettings({ burst: 0 })).toThrow(ConfigError);
  });
});

describe('pcap', () => {
  it('writes the libpcap 2.4 header (Ethernet, snaplen 128) and records with the original length', () => {
    expect(pcapHeader().toString('hex')).toBe('d4c3b2a1' + '0200' + '0400' + '00000000' + '00000000' + '80000000' + '01000000');
    const rec = pcapRecord(1_700_000_000_123_456n, Buffer.from([0xaa, 0xbb]), 1500);
    expect([rec.readUInt32LE(0), rec.readUInt32LE(4), rec.readUInt32LE(8), rec.readUInt32LE(12)]).toEqual([1_700_000_000, 123_456, 2, 1500]);
    expect(rec.subarray(16)).toEqual(Buffer.from([0xaa, 0xbb]));
  });
});

describe('a slow client', () => {
  function sink(acceptWrites: number) {
    const written: string[] = [];
    let drain: (() => void) | undefined;
    let budget = acceptWrites;
    return {
      written,
      sink: {
        write: (chunk: string | Buffer) => {
          written.push(String(chunk));
          return --budget > 0;
        },
        onceDrain: (callback: () => void) => (drain = callback),
      },
      drain: (more: number) => {
        budget = more;
        const d = drain;
        drain = undefined;
        d?.();
      },
    };
  }

  it('queues while the socket is full, flushes on drain, in order', () => {
    const s = sink(2);
    let overflows = 0;
    const q = new ClientQueue(s.sink, () => overflows++, 3);
    for (const c of ['a', 'b', 'c', 'd']) expect(q.push(c)).toBe(true);
    expect(s.written).toEqual(['a', 'b']);
    expect(q.pending).toBe(2);
    s.drain(10);
    expect(s.written).toEqual(['a', 'b', 'c', 'd']);
    expect([q.pending, overflows]).toEqual([0, 0]);
  });

  it('gives up on a client whose queue is full: once, and pushes after that are refused', () => {
    const s = sink(1);
    let overflows = 0;
    const q = new ClientQueue(s.sink, () => overflows++, 3);
    const results = ['a', 'b', 'c', 'd', 'e', 'f'].map((c) => q.push(c));
    expect(results).toEqual([true, true, true, true, false, false]);
    expect([overflows, q.pending]).toEqual([1, 0]);
    s.drain(10);
    expect(s.written).toEqual(['a']);
  });
});

describe('xdpwall events', () => {
  it('prints one line per event: time, verdict, reason, what decided, where, the packet', () => {
    expect(formatEvent(packet({ ruleId: 12 }).event)).toBe('22:13:25.000 drop deny_src_cidr block 12 lab/veth0 ingress tcp 198.18.0.9:40000 -> 198.19.0.1:443 [SYN,ACK] 60B');
    const v6 = packet({ family: 6, src: ipv6Bytes('fd00:198::5'), ruleId: POLICY_RULE_ID_BASE + 2, ifindex: 9 }).event;
    expect(formatEvent({ ...v6, dst: 'fd00:198::1' })).toBe('22:13:25.000 drop deny_src_cidr rule 2 ifindex:9 ingress tcp [fd00:198::5]:40000 -> [fd00:198::1]:443 [SYN,ACK] 60B');
  });

  it('splits a Server-Sent Events body into messages across chunk boundaries', async () => {
    async function* chunks() {
      yield Buffer.from('retry: 2000\n: listening\n\nid: 1\nda');
      yield new TextEncoder().encode('ta: {"a":1}\n\nevent: stats\ndata: {"sampled":3}\n\n');
    }
    const out = [];
    for await (const message of sseMessages(chunks())) out.push(message);
    expect(out).toEqual([{ event: 'message', data: '{"a":1}' }, { event: 'stats', data: '{"sampled":3}' }]);
  });
});

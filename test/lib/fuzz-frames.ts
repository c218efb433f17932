// Seeded frames for the parser fuzz: well-formed and deliberately broken
// Ethernet/VLAN/IPv4/IPv6/L4 stacks whose addresses often fall in or just
// outside the fuzz's deny rules, byte-level mutations of them, and raw noise.
// Every frame is a function of (seed, index), so a mismatch names a frame
// anyone can regenerate.
import { prng } from './prng.js';
import {
  IPPROTO, TPID_8021AD, TPID_8021Q, ether, icmp, icmpv6, ipv4, ipv6, rawL3, rawL4, tcp, udp,
  type Ipv6Ext, type L3Packet, type L4Segment, type VlanTag,
} from './packets.js';

type Random = () => number;

const int = (r: Random, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Random, items: readonly T[]): T => items[int(r, items.length)]!;
const chance = (r: Random, p: number): boolean => r() < p;
function bytes(r: Random, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 256) | 0;
  return out;
}

/** Addresses around the deny rules of the fuzz (see parser-fuzz.test.ts), and anywhere. */
const V4_NEAR = ['198.18.0.0', '198.18.7.', '198.18.9.', '198.19.128.', '198.19.255.', '10.0.0.', '10.1.', '203.0.113.', '198.18.20.'];
const V6_NEAR = ['fd00:198::', 'fd00:198:0:1::', 'fd00:198:1::', 'fd00:199::', '2001:db8::', '::ffff:c612:'];

function v4(r: Random): string {
  if (chance(r, 0.25)) return Array.from({ length: 4 }, () => int(r, 256)).join('.');
  const base = pick(r, V4_NEAR);
  const parts = base.split('.').filter((p) => p !== '');
  while (parts.length < 4) parts.push(String(int(r, 256)));
  return parts.slice(0, 4).join('.');
}

function v6(r: Random): string {
  if (chance(r, 0.2)) return Array.from({ length: 8 }, () => int(r, 0x10000).toString(16)).join(':');
  const base = pick(r, V6_NEAR);
  // ::ffff:198.18.7.x: an IPv4 rule's address inside an IPv6 header must not match it.
  if (base.startsWith('::ffff:')) return `${base}${(0x700 + int(r, 256)).toString(16)}`;
  return `${base}${int(r, 0x10000).toString(16)}`;
}

function l4(r: Random, family: 4 | 6): L4Segment {
  const payload = bytes(r, pick(r, [0, 0, 1, 7, 20, 64]));
  const port = () => (chance(r, 0.3) ? pick(r, [0, 53, 80, 443, 65535]) : int(r, 65536));
  switch (int(r, 7)) {
    case 0:
    case 1:
      return tcp({
        sport: port(), dport: port(), flags: int(r, 256), payload,
        options: chance(r, 0.3) ? bytes(r, int(r, 41)) : undefined,
        doff: chance(r, 0.15) ? int(r, 16) : undefined,
      });
    case 2:
    case 3:
      return udp({ sport: port(), dport: port(), payload });
    case 4: {
      const echo = chance(r, 0.5);
      const type = family === 4 ? (echo ? pick(r, [0, 8]) : int(r, 256)) : echo ? pick(r, [128, 129]) : int(r, 256);
      const build = chance(r, 0.8) === (family === 4) ? icmp : icmpv6; // now and then the other family's ICMP
      return build({ type, code: int(r, 256), rest: int(r, 2 ** 32), payload });
    }
    case 5:
      return rawL4(pick(r, [IPPROTO.gre, IPPROTO.esp, IPPROTO.sctp, IPPROTO.none, int(r, 256)]), bytes(r, int(r, 24)));
    default:
      // A transport header cut short: 0..(its size - 1) bytes.
      return rawL4(pick(r, [IPPROTO.tcp, IPPROTO.udp, IPPROTO.icmp, IPPROTO.icmpv6]), bytes(r, int(r, 20)));
  }
}

function ipv6Ext(r: Random): Ipv6Ext {
  switch (int(r, 5)) {
    case 0:
      return { type: 'hopopts', len: pick(r, [0, 0, 1, int(r, 32)]) }; // its PadN option covers at most 255 bytes
    case 1:
      return { type: 'routing', len: pick(r, [0, 1, int(r, 4)]) };
    case 2:
      return { type: 'dstopts', len: pick(r, [0, 2]) };
    case 3:
      return { type: 'fragment', offset: chance(r, 0.5) ? 0 : 8 * int(r, 8191), more: chance(r, 0.5) };
    default:
      return { type: 'ah', len: pick(r, [0, 1, 4, int(r, 256)]) };
  }
}

function l3(r: Random): L3Packet {
  const kind = int(r, 10);
  if (kind < 5) {
    const segment = l4(r, 4);
    return ipv4(
      {
        src: v4(r), dst: v4(r),
        options: chance(r, 0.15) ? bytes(r, int(r, 41)) : undefined,
        fragOffset: chance(r, 0.1) ? 8 * (1 + int(r, 8190)) : 0,
        moreFragments: chance(r, 0.1),
        version: chance(r, 0.03) ? int(r, 16) : undefined,
        ihl: chance(r, 0.05) ? int(r, 16) : undefined,
        totalLength: chance(r, 0.08) ? int(r, 1600) : undefined,
      },
      segment,
    );
  }
  if (kind < 9) {
    const exts = chance(r, 0.4) ? Array.from({ length: int(r, 9) }, () => ipv6Ext(r)) : [];
    return ipv6(
      {
        src: v6(r), dst: v6(r), ext: exts,
        version: chance(r, 0.03) ? int(r, 16) : undefined,
        payloadLength: chance(r, 0.08) ? int(r, 1600) : undefined,
      },
      l4(r, 6),
    );
  }
  return rawL3(pick(r, [0x0806, 0x88cc, 0x8847, 0x8863, int(r, 0x10000)]), bytes(r, int(r, 64)));
}

function vlans(r: Random): VlanTag[] {
  const depth = pick(r, [0, 0, 0, 0, 1, 1, 2, 3]);
  return Array.from({ length: depth }, () => ({ tpid: pick(r, [TPID_8021Q, TPID_8021AD]), vid: int(r, 4096), pcp: int(r, 8) }));
}

/** A stack of headers, well-formed or broken in one or two fields, perhaps padded or cut. */
function structured(r: Random): Buffer {
  let frame = ether(l3(r), { vlans: vlans(r), pad: chance(r, 0.2) });
  if (chance(r, 0.15)) frame = frame.subarray(0, 14 + int(r, frame.length - 13));
  if (chance(r, 0.1)) frame = Buffer.concat([frame, bytes(r, int(r, 32))]);
  return frame;
}

/** A structured frame with a few bytes changed, inserted or removed. */
function mutated(r: Random): Buffer {
  const frame = Buffer.from(structured(r));
  const edits = 1 + int(r, 4);
  let out = frame;
  for (let i = 0; i < edits; i++) {
    const at = int(r, out.length);
    switch (int(r, 4)) {
      case 0:
      case 1:
        out[at] = int(r, 256);
        break;
      case 2:
        out[at] = out[at]! ^ (1 << int(r, 8));
        break;
      default:
        out = Buffer.concat([out.subarray(0, at), bytes(r, int(r, 3)), out.subarray(at + int(r, 3))]);
    }
  }
  return out;
}

/** Noise behind a plausible Ethernet type. */
function noise(r: Random): Buffer {
  const frame = bytes(r, 14 + int(r, 120));
  if (chance(r, 0.7)) frame.writeUInt16BE(pick(r, [0x0800, 0x86dd, 0x8100, 0x88a8]), 12);
  return frame;
}

/** Frames of at least 14 bytes (BPF_PROG_TEST_RUN refuses shorter ones) and at most 1,514. */
export function fuzzFrame(seed: number, index: number): Buffer {
  const r = prng((Math.imul(seed, 0x9e3779b1) ^ index) | 0);
  const kind = r();
  let frame = kind < 0.55 ? structured(r) : kind < 0.9 ? mutated(r) : noise(r);
  if (frame.length < 14) frame = Buffer.concat([frame, Buffer.alloc(14 - frame.length)]);
  return frame.length > 1514 ? frame.subarray(0, 1514) : frame;
}

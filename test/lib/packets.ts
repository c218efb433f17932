// A small typed packet builder for BPF_PROG_TEST_RUN fixtures.
//
// Layers compose inside out: an L4 builder returns a segment, an L3 builder
// wraps it (and fills the checksums that depend on the pseudo-header), and
// ether() frames the result with optional VLAN tags. Every field can be
// overridden so fixtures can build exactly the malformed packet they need.
// Multi-byte fields are written big-endian, as on the wire.

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_LLDP = 0x88cc;
export const TPID_8021Q = 0x8100;
export const TPID_8021AD = 0x88a8;

export const IPPROTO = {
  hopopts: 0,
  icmp: 1,
  tcp: 6,
  udp: 17,
  routing: 43,
  fragment: 44,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  none: 59,
  dstopts: 60,
  sctp: 132,
} as const;

export const TCP = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20, ece: 0x40, cwr: 0x80 } as const;

/** An upper-layer segment, ready to be carried by IPv4 or IPv6. */
export interface L4Segment {
  proto: number;
  bytes: Buffer;
  /** Where the 16-bit checksum lives and what it covers, if it has one. */
  checksum?: { offset: number; pseudoHeader: boolean };
}

/** An L3 packet, ready to be framed. */
export interface L3Packet {
  ethertype: number;
  bytes: Buffer;
}

// ---------------------------------------------------------------- addresses

export function ipv4Bytes(addr: string): Buffer {
  const parts = addr.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`bad IPv4 address ${addr}`);
  }
  return Buffer.from(parts);
}

export function ipv6Bytes(addr: string): Buffer {
  const halves = addr.split('::');
  if (halves.length > 2) throw new Error(`bad IPv6 address ${addr}`);
  const groups = (s: string | undefined): number[] => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const all = [...head, ...new Array<number>(fill).fill(0), ...tail];
  if (all.length !== 8 || all.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) {
    throw new Error(`bad IPv6 address ${addr}`);
  }
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** ::ffff:a.b.c.d, the form the flow table stores IPv4 addresses in. */
export function ipv4Mapped(addr: string): Buffer {
  const out = Buffer.alloc(16);
  out.writeUInt16BE(0xffff, 10);
  ipv4Bytes(addr).copy(out, 12);
  return out;
}

function macBytes(mac: string): Buffer {
  const out = Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
  if (out.length !== 6) throw new Error(`bad MAC address ${mac}`);
  return out;
}

// ---------------------------------------------------------------- checksums

/** RFC 1071 one's-complement sum of 16-bit words, folded, not inverted. */
function sum16(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2 === 1) sum += (buf[buf.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

function fillChecksum(seg: L4Segment, pseudo: Buffer | null): Buffer {
  const bytes = Buffer.from(seg.bytes);
  if (!seg.checksum || seg.checksum.offset + 2 > bytes.length) return bytes;
  bytes.writeUInt16BE(0, seg.checksum.offset);
  const initial = seg.checksum.pseudoHeader && pseudo ? sum16(pseudo) : 0;
  bytes.writeUInt16BE(~sum16(bytes, initial) & 0xffff, seg.checksum.offset);
  return bytes;
}

// ---------------------------------------------------------------- L4

export interface TcpOptions {
  sport: number;
  dport: number;
  flags?: number;
  seq?: number;
  ack?: number;
  window?: number;
  /** TCP options, padded to 4 bytes; data offset follows unless overridden. */
  options?: Buffer;
  /** Data offset in 32-bit words (override to build a bad header). */
  doff?: number;
  payload?: Buffer;
}

export function tcp(o: TcpOptions): L4Segment {
  const options = padTo(o.options ?? Buffer.alloc(0), 4);
  const hdr = Buffer.alloc(20 + options.length);
  hdr.writeUInt16BE(o.sport, 0);
  hdr.writeUInt16BE(o.dport, 2);
  hdr.writeUInt32BE(o.seq ?? 1, 4);
  hdr.writeUInt32BE(o.ack ?? 0, 8);
  hdr.writeUInt8((o.doff ?? hdr.length / 4) << 4, 12);
  hdr.writeUInt8(o.flags ?? TCP.syn, 13);
  hdr.writeUInt16BE(o.window ?? 65535, 14);
  options.copy(hdr, 20);
  return {
    proto: IPPROTO.tcp,
    bytes: Buffer.concat([hdr, o.payload ?? Buffer.alloc(0)]),
    checksum: { offset: 16, pseudoHeader: true },
  };
}

export interface UdpOptions {
  sport: number;
  dport: number;
  payload?: Buffer;
}

export function udp(o: UdpOptions): L4Segment {
  const payload = o.payload ?? Buffer.alloc(0);
  const hdr = Buffer.alloc(8);
  hdr.writeUInt16BE(o.sport, 0);
  hdr.writeUInt16BE(o.dport, 2);
  hdr.writeUInt16BE(8 + payload.length, 4);
  return { proto: IPPROTO.udp, bytes: Buffer.concat([hdr, payload]), checksum: { offset: 6, pseudoHeader: true } };
}

export interface IcmpOptions {
  type: number;
  code?: number;
  /** The 4 bytes after the checksum (identifier and sequence for echo). */
  rest?: number;
  payload?: Buffer;
}

function icmpLike(proto: number, pseudoHeader: boolean, o: IcmpOptions): L4Segment {
  const hdr = Buffer.alloc(8);
  hdr.writeUInt8(o.type, 0);
  hdr.writeUInt8(o.code ?? 0, 1);
  hdr.writeUInt32BE(o.rest ?? 0, 4);
  return { proto, bytes: Buffer.concat([hdr, o.payload ?? Buffer.alloc(0)]), checksum: { offset: 2, pseudoHeader } };
}

export const icmp = (o: IcmpOptions): L4Segment => icmpLike(IPPROTO.icmp, false, o);
export const icmpv6 = (o: IcmpOptions): L4Segment => icmpLike(IPPROTO.icmpv6, true, o);

/** Any other upper layer: raw bytes under a protocol number. */
export function rawL4(proto: number, bytes: Buffer = Buffer.alloc(8)): L4Segment {
  return { proto, bytes };
}

// ---------------------------------------------------------------- IPv4

export interface Ipv4Options {
  src: string;
  dst: string;
  ttl?: number;
  id?: number;
  /** IP options, padded with End-of-list to 4 bytes. */
  options?: Buffer;
  /** Fragment offset in bytes (a multiple of 8). */
  fragOffset?: number;
  moreFragments?: boolean;
  dontFragment?: boolean;
  // Overrides for malformed packets:
  version?: number;
  ihl?: number;
  totalLength?: number;
}

export function ipv4(o: Ipv4Options, l4: L4Segment): L3Packet {
  const options = padTo(o.options ?? Buffer.alloc(0), 4);
  const hdr = Buffer.alloc(20 + options.length);
  const src = ipv4Bytes(o.src);
  const dst = ipv4Bytes(o.dst);
  const fragOffset = o.fragOffset ?? 0;
  if (fragOffset % 8 !== 0) throw new Error('IPv4 fragment offset must be a multiple of 8');
  // A non-first fragment carries payload, not a header: no checksum to fill.
  const segment = fragOffset === 0 ? fillChecksum(l4, ipv4Pseudo(src, dst, l4)) : l4.bytes;
  hdr.writeUInt8(((o.version ?? 4) << 4) | (o.ihl ?? hdr.length / 4), 0);
  hdr.writeUInt16BE(o.totalLength ?? hdr.length + segment.length, 2);
  hdr.writeUInt16BE(o.id ?? 0x1234, 4);
  const flags = (o.dontFragment ? 0x4000 : 0) | (o.moreFragments ? 0x2000 : 0);
  hdr.writeUInt16BE(flags | (fragOffset / 8), 6);
  hdr.writeUInt8(o.ttl ?? 64, 8);
  hdr.writeUInt8(l4.proto, 9);
  src.copy(hdr, 12);
  dst.copy(hdr, 16);
  options.copy(hdr, 20);
  hdr.writeUInt16BE(~sum16(hdr) & 0xffff, 10);
  return { ethertype: ETH_P_IP, bytes: Buffer.concat([hdr, segment]) };
}

function ipv4Pseudo(src: Buffer, dst: Buffer, l4: L4Segment): Buffer {
  const p = Buffer.alloc(12);
  src.copy(p, 0);
  dst.copy(p, 4);
  p.writeUInt8(l4.proto, 9);
  p.writeUInt16BE(l4.bytes.length, 10);
  return p;
}

// ---------------------------------------------------------------- IPv6

/** One IPv6 extension header, in the order it appears. */
export type Ipv6Ext =
  | { type: 'hopopts' | 'routing' | 'dstopts'; /** hdr ext len (8-byte units beyond the first 8) */ len?: number }
  | { type: 'fragment'; offset?: number; more?: boolean; id?: number }
  | { type: 'ah'; /** payload len (4-byte units, minus 2) */ len?: number };

const EXT_PROTO = {
  hopopts: IPPROTO.hopopts,
  routing: IPPROTO.routing,
  dstopts: IPPROTO.dstopts,
  fragment: IPPROTO.fragment,
  ah: IPPROTO.ah,
} as const;

function ipv6ExtBytes(ext: Ipv6Ext, next: number): Buffer {
  let out: Buffer;
  switch (ext.type) {
    case 'fragment': {
      const offset = ext.offset ?? 0;
      if (offset % 8 !== 0) throw new Error('IPv6 fragment offset must be a multiple of 8');
      out = Buffer.alloc(8);
      out.writeUInt16BE(offset | (ext.more ? 1 : 0), 2);
      out.writeUInt32BE(ext.id ?? 0xabcd, 4);
      break;
    }
    case 'ah': {
      const len = ext.len ?? 4; // 12-byte ICV with HMAC-SHA-96: (4 + 2) * 4 = 24 bytes
      out = Buffer.alloc((len + 2) * 4);
      out.writeUInt8(len, 1);
      out.writeUInt32BE(0x100, 4); // SPI
      break;
    }
    default: {
      const len = ext.len ?? 0;
      out = Buffer.alloc((len + 1) * 8);
      out.writeUInt8(len, 1);
      // Options area: one PadN option covering the rest of the header.
      out.writeUInt8(1, 2);
      out.writeUInt8(out.length - 4, 3);
      if (ext.type === 'routing') out.fill(0, 2); // type 0 routing, segments left 0
      break;
    }
  }
  out.writeUInt8(next, 0);
  return out;
}

export interface Ipv6Options {
  src: string;
  dst: string;
  hopLimit?: number;
  flowLabel?: number;
  ext?: Ipv6Ext[];
  // Overrides for malformed packets:
  version?: number;
  payloadLength?: number;
}

export function ipv6(o: Ipv6Options, l4: L4Segment): L3Packet {
  const src = ipv6Bytes(o.src);
  const dst = ipv6Bytes(o.dst);
  const exts = o.ext ?? [];
  const nonFirst = exts.some((e) => e.type === 'fragment' && (e.offset ?? 0) !== 0);
  const segment = nonFirst ? l4.bytes : fillChecksum(l4, ipv6Pseudo(src, dst, l4));
  const chain: Buffer[] = exts.map((ext, i) => {
    const following = exts[i + 1];
    return ipv6ExtBytes(ext, following ? EXT_PROTO[following.type] : l4.proto);
  });
  const first = exts[0];
  const payload = Buffer.concat([...chain, segment]);
  const hdr = Buffer.alloc(40);
  hdr.writeUInt32BE((((o.version ?? 6) << 28) | ((o.flowLabel ?? 0) & 0xfffff)) >>> 0, 0);
  hdr.writeUInt16BE(o.payloadLength ?? payload.length, 4);
  hdr.writeUInt8(first ? EXT_PROTO[first.type] : l4.proto, 6);
  hdr.writeUInt8(o.hopLimit ?? 64, 7);
  src.copy(hdr, 8);
  dst.copy(hdr, 24);
  return { ethertype: ETH_P_IPV6, bytes: Buffer.concat([hdr, payload]) };
}

function ipv6Pseudo(src: Buffer, dst: Buffer, l4: L4Segment): Buffer {
  const p = Buffer.alloc(40);
  src.copy(p, 0);
  dst.copy(p, 16);
  p.writeUInt32BE(l4.bytes.length, 32);
  p.writeUInt8(l4.proto, 39);
  return p;
}

// ---------------------------------------------------------------- other L3

export interface ArpOptions {
  op?: 1 | 2; // request, reply
  senderMac?: string;
  senderIp: string;
  targetIp: string;
}

export function arp(o: ArpOptions): L3Packet {
  const b = Buffer.alloc(28);
  b.writeUInt16BE(1, 0); // Ethernet
  b.writeUInt16BE(ETH_P_IP, 2);
  b.writeUInt8(6, 4);
  b.writeUInt8(4, 5);
  b.writeUInt16BE(o.op ?? 1, 6);
  macBytes(o.senderMac ?? '02:00:00:00:00:01').copy(b, 8);
  ipv4Bytes(o.senderIp).copy(b, 14);
  ipv4Bytes(o.targetIp).copy(b, 24);
  return { ethertype: ETH_P_ARP, bytes: b };
}

/** Any ethertype with raw bytes (LLDP, a bare VLAN TPID, ...). */
export function rawL3(ethertype: number, bytes: Buffer = Buffer.alloc(0)): L3Packet {
  return { ethertype, bytes };
}

// ---------------------------------------------------------------- Ethernet

export interface VlanTag {
  tpid: typeof TPID_8021Q | typeof TPID_8021AD;
  vid: number;
  pcp?: number;
}

export interface EtherOptions {
  dst?: string;
  src?: string;
  /** Outermost first. */
  vlans?: VlanTag[];
  /** Pad to the 60-byte Ethernet minimum, as a NIC would. Default false. */
  pad?: boolean;
}

export function ether(l3: L3Packet, o: EtherOptions = {}): Buffer {
  const tags = o.vlans ?? [];
  const hdr = Buffer.alloc(14 + 4 * tags.length);
  macBytes(o.dst ?? '02:00:00:00:00:02').copy(hdr, 0);
  macBytes(o.src ?? '02:00:00:00:00:01').copy(hdr, 6);
  tags.forEach((tag, i) => {
    hdr.writeUInt16BE(tag.tpid, 12 + 4 * i);
    hdr.writeUInt16BE(((tag.pcp ?? 0) << 13) | (tag.vid & 0x0fff), 14 + 4 * i);
  });
  hdr.writeUInt16BE(l3.ethertype, 12 + 4 * tags.length);
  const frame = Buffer.concat([hdr, l3.bytes]);
  return o.pad ? padTo(frame, 1, 60) : frame;
}

// ---------------------------------------------------------------- helpers

/** The first `length` bytes of a frame, as if the wire had cut it. */
export function truncate(frame: Buffer, length: number): Buffer {
  if (length > frame.length) throw new Error(`cannot truncate ${frame.length} bytes to ${length}`);
  return Buffer.from(frame.subarray(0, length));
}

/** Zero-pads to a multiple of `align`, and to at least `min` bytes. */
function padTo(buf: Buffer, align: number, min = 0): Buffer {
  const target = Math.max(min, Math.ceil(buf.length / align) * align);
  return target === buf.length ? buf : Buffer.concat([buf, Buffer.alloc(target - buf.length)]);
}

// The classic pcap format (libpcap 2.4, microsecond timestamps, Ethernet):
// what tshark, tcpdump and Wireshark read. Sampled packets carry at most
// EVENT_SNAP_LEN bytes of the frame, so the file says so in its snaplen and
// each record keeps the frame's real length (orig_len).
import { EVENT_SNAP_LEN } from './abi.js';

const PCAP_MAGIC_US = 0xa1b2c3d4;
const LINKTYPE_ETHERNET = 1;

export function pcapHeader(snapLen = EVENT_SNAP_LEN): Buffer {
  const out = Buffer.alloc(24);
  out.writeUInt32LE(PCAP_MAGIC_US, 0);
  out.writeUInt16LE(2, 4); // version 2.4
  out.writeUInt16LE(4, 6);
  out.writeInt32LE(0, 8); // thiszone: UTC
  out.writeUInt32LE(0, 12); // sigfigs
  out.writeUInt32LE(snapLen, 16);
  out.writeUInt32LE(LINKTYPE_ETHERNET, 20);
  return out;
}

/** One record: the captured bytes, stamped in microseconds since the epoch, with the frame's original length. */
export function pcapRecord(wallUs: bigint, frame: Buffer, origLen: number): Buffer {
  const out = Buffer.alloc(16 + frame.length);
  out.writeUInt32LE(Number(wallUs / 1_000_000n), 0);
  out.writeUInt32LE(Number(wallUs % 1_000_000n), 4);
  out.writeUInt32LE(frame.length, 8);
  out.writeUInt32LE(Math.max(origLen, frame.length), 12);
  frame.copy(out, 16);
  return out;
}

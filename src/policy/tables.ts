// Writes compiled rule tables into the kernel, double-buffered: the buffer
// packets are not reading is emptied and filled, then one write to
// xw_pol_active flips the table to it, and an update of xw_pol_sync waits
// for an RCU grace period, after which no packet still reads the old
// buffer (it is then free for the next change). A packet is classified
// entirely by the old rules or entirely by the new ones.
import type { BpfMap } from '@xdpwall/addon';
import {
  Layout, POL_PORT_SLOTS, POL_MAX_RULES, POL_FIELD_ALL, POL_PORT_BITMAPS, POL_BM_ALL, POL_BM_DPORT, POL_BM_PER_BUF, PolField, Action, RuleFlags, POLICY_MAPS,
  POLICY_SYNC_INNER, PolFlags, PolTable,
} from '../datapath/abi.js';
import { CapacityError } from '../errors.js';
import type { CompiledTable } from './compile.js';
import type { PrefixList } from './reference.js';
import { BITMAP_BYTES, arrayFields } from './compile.js';
import type { InstalledSlot } from './slots.js';

export interface PolicyMaps {
  active: BpfMap;
  meta: BpfMap;
  rules: BpfMap;
  bitmaps: BpfMap;
  addrs: BpfMap;
  ports: BpfMap;
  replies: BpfMap;
  sync: BpfMap;
  /** Blocks' ttl and dryRun (src/policy/block-meta.ts). */
  blockMeta: BpfMap;
  /** Protocol, all-ones and destination-port bitmaps, an array (see XW_POL_BM_PER_BUF in the ABI header). */
  arrayBitmaps: BpfMap;
  /** The inner map whose fd xw_pol_sync is updated with. */
  syncInner: BpfMap;
  /** What lets a packet about to drop skip the failsafe table (struct xw_failsafe_quick). */
  failsafeQuick: BpfMap;
  /** A protocol-and-port table's first rule per port interval (struct xw_pol_port_first). */
  portFirst: BpfMap;
}

/** The policy stage's maps of a loaded object. */
export function policyMapsOf(object: { map(name: string): BpfMap }): PolicyMaps {
  return {
    active: object.map(POLICY_MAPS.active),
    meta: object.map(POLICY_MAPS.meta),
    rules: object.map(POLICY_MAPS.rules),
    bitmaps: object.map(POLICY_MAPS.bitmaps),
    addrs: object.map(POLICY_MAPS.addrs),
    ports: object.map(POLICY_MAPS.ports),
    replies: object.map(POLICY_MAPS.replies),
    sync: object.map(POLICY_MAPS.sync),
    blockMeta: object.map(POLICY_MAPS.blockMeta),
    arrayBitmaps: object.map(POLICY_MAPS.arrayBitmaps),
    syncInner: object.map(POLICY_SYNC_INNER),
    failsafeQuick: object.map(POLICY_MAPS.failsafeQuick),
    portFirst: object.map(POLICY_MAPS.portFirst),
  };
}

const ACTION_CODES = { drop: Action.deny, pass: Action.allow, log: Action.log, ratelimit: Action.ratelimit } as const;

const u32 = (value: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return b;
};

function bitmapKey(table: number, buf: number, field: number, value: number): Buffer {
  const L = Layout.polBitmapKey;
  const key = Buffer.alloc(L.size);
  key.writeUInt8(table, L.table);
  key.writeUInt8(buf, L.buf);
  key.writeUInt8(field, L.field);
  key.writeUInt32LE(value >>> 0, L.value);
  return key;
}

function addrKey(table: number, buf: number, field: number, family: 4 | 6, bytes: Uint8Array, prefixLen: number): Buffer {
  const L = Layout.polAddrKey;
  const key = Buffer.alloc(L.size);
  key.writeUInt32LE(32 + prefixLen, L.prefixlen);
  key.writeUInt8(table, L.table);
  key.writeUInt8(buf, L.buf);
  key.writeUInt8(field, L.field);
  key.writeUInt8(family, L.family);
  key.set(bytes, L.addr);
  return key;
}

/** struct xw_pol_bitmap: the summary word (bit w: word w has a rule), then the words. */
export function encodeBitmap(bits: Uint8Array): Buffer {
  const value = Buffer.alloc(Layout.polBitmap.size);
  let summary = 0n;
  for (let w = 0; w < BITMAP_BYTES / 8; w++) {
    for (let b = w * 8; b < w * 8 + 8; b++) {
      if (bits[b] !== 0) {
        summary |= 1n << BigInt(w);
        break;
      }
    }
  }
  value.writeBigUInt64LE(summary, Layout.polBitmap.summary);
  value.set(bits, Layout.polBitmap.words);
  return value;
}

export function encodeRule(rule: CompiledTable['rules'][number]): Buffer {
  const L = Layout.polRule;
  const value = Buffer.alloc(L.size);
  value.writeUInt32LE(rule.kernelId >>> 0, L.ruleId);
  value.writeUInt8(ACTION_CODES[rule.action], L.action);
  value.writeUInt8((rule.dryRun ? RuleFlags.dryRun : 0) | (rule.ifaceDefault ? RuleFlags.ifaceDefault : 0), L.flags);
  value.writeUInt16LE(rule.slot ?? 0, L.slot);
  value.writeBigUInt64LE(rule.expiresNs, L.expiresNs);
  return value;
}

function encodeMeta(c: CompiledTable): Buffer {
  const L = Layout.polMeta;
  const value = Buffer.alloc(L.size);
  value.writeUInt32LE(c.words, L.words);
  value.writeUInt32LE(c.fields, L.fields);
  value.writeUInt8(c.defaultAction, L.defaultAction);
  value.writeUInt8(c.flags, L.flags);
  return value;
}

/** Keys a buffer holds in the hash and the trie, to empty it before its next use (addrs: runs of packed keys). */
interface Written {
  bitmaps: Buffer[];
  addrs: Buffer[];
}

export class PolicyTables {
  private readonly written = new Map<number, Written>();
  /** What each table last got (rules and settings), to skip a change that changes nothing. */
  private readonly applied = new Map<number, string>();

  private constructor(private readonly maps: PolicyMaps) {}

  /**
   * Takes over the maps (pinned ones may hold a previous run's tables, which
   * keep enforcing): learns what every buffer holds, so the inactive ones
   * can be emptied before use.
   */
  static async open(maps: PolicyMaps): Promise<PolicyTables> {
    const tables = new PolicyTables(maps);
    const bitmaps = await maps.bitmaps.lookupAll();
    for (let i = 0; i < bitmaps.count; i++) {
      const key = Buffer.from(bitmaps.keys.subarray(i * maps.bitmaps.keySize, (i + 1) * maps.bitmaps.keySize));
      tables.track(key.readUInt8(Layout.polBitmapKey.table), key.readUInt8(Layout.polBitmapKey.buf)).bitmaps.push(key);
    }
    const addrs = await maps.addrs.lookupAll();
    for (let i = 0; i < addrs.count; i++) {
      const key = Buffer.from(addrs.keys.subarray(i * maps.addrs.keySize, (i + 1) * maps.addrs.keySize));
      tables.track(key.readUInt8(Layout.polAddrKey.table), key.readUInt8(Layout.polAddrKey.buf)).addrs.push(key);
    }
    return tables;
  }

  private track(table: number, buf: number): Written {
    const slot = table * 2 + buf;
    let w = this.written.get(slot);
    if (!w) this.written.set(slot, (w = { bitmaps: [], addrs: [] }));
    return w;
  }

  /**
   * The rules (kernel id and slot) the active buffer of each table in
   * `tables` holds: the positions set in its all-ones bitmap. What a
   * previous run left enforcing, so a restart keeps the rules' slots and
   * their counters.
   */
  installedSlots(tables: readonly number[]): InstalledSlot[] {
    const out: InstalledSlot[] = [];
    for (const table of tables) {
      const buf = this.activeBuffer(table);
      const all = this.maps.bitmaps.lookup(bitmapKey(table, buf, POL_FIELD_ALL, 0));
      if (!all) continue;
      const base = (table * 2 + buf) * POL_MAX_RULES;
      for (let i = 0; i < POL_MAX_RULES; i++) {
        if ((all[Layout.polBitmap.words + (i >> 3)]! & (1 << (i & 7))) === 0) continue;
        const rule = this.maps.rules.lookup(u32(base + i));
        if (!rule) continue;
        out.push({ table, kernelId: rule.readUInt32LE(Layout.polRule.ruleId), slot: rule.readUInt16LE(Layout.polRule.slot) });
      }
    }
    return out;
  }

  /** The buffer packets read for this table now. */
  activeBuffer(table: number): number {
    return (this.maps.active.lookup(u32(table))?.readUInt32LE(0) ?? 0) & 1;
  }

  /** Makes `compiled` the table packets see, atomically for packets. */
  async apply(table: number, compiled: CompiledTable): Promise<void> {
    const digest = JSON.stringify([compiled.defaultAction, compiled.flags, compiled.rules], (key, value: unknown) =>
      typeof value === 'bigint' ? value.toString()
        : value instanceof Uint8Array ? [...value]
        : (key === 'srcList' || key === 'dstList') && value ? (value as PrefixList).version // not 100k entries
        : value,
    );
    if (this.applied.get(table) === digest) return;
    this.applied.delete(table);
    const next = this.activeBuffer(table) ^ 1;
    await this.empty(table, next);
    const written = this.track(table, next);
    const { maps } = this;

    // Protocol and destination port go to their arrays, the other fields to the hash.
    const arrayField = (field: number) => field === PolField.proto || field === PolField.dport;
    await this.writeArrayBitmaps(table, next, compiled);
    const bitmaps = [
      { field: POL_FIELD_ALL, value: 0, bits: compiled.all },
      ...compiled.bitmaps.filter((b) => !arrayField(b.field)),
    ];
    const bkeys = Buffer.concat(bitmaps.map((b) => bitmapKey(table, next, b.field, b.value)));
    const bvalues = Buffer.concat(bitmaps.map((b) => encodeBitmap(b.bits)));
    await maps.bitmaps.updateBatch(bkeys, bvalues, bitmaps.length);
    for (let i = 0; i < bitmaps.length; i++) written.bitmaps.push(bkeys.subarray(i * 8, (i + 1) * 8));

    if (compiled.addrs.length > 0) {
      // Packed in place: a list's 100k entries are one batch, not 100k small buffers.
      const n = compiled.addrs.length;
      const size = Layout.polAddrKey.size;
      const akeys = Buffer.alloc(n * size);
      const avalues = Buffer.alloc(n * 4);
      compiled.addrs.forEach((a, i) => {
        addrKey(table, next, PolField[a.field], a.prefix.family, a.prefix.bytes, a.prefix.prefixLen).copy(akeys, i * size);
        avalues.writeUInt32LE(a.value >>> 0, i * 4);
      });
      await maps.addrs.updateBatch(akeys, avalues, n);
      written.addrs.push(akeys);
    }

    for (const [field, intervals] of Object.entries(compiled.ports) as Array<['sport' | 'dport', Uint16Array]>) {
      const base = ((table * 2 + next) * 2 + (field === 'dport' ? 1 : 0)) * POL_PORT_SLOTS;
      const keys = Buffer.alloc(POL_PORT_SLOTS * 4);
      for (let s = 0; s < POL_PORT_SLOTS; s++) keys.writeUInt32LE(base + s, s * 4);
      const values = Buffer.from(intervals.buffer, intervals.byteOffset, intervals.byteLength); // little-endian u16[4] per slot
      await maps.ports.updateBatch(keys, values, POL_PORT_SLOTS);
    }

    const encoded = compiled.rules.map(encodeRule);
    if (compiled.rules.length > 0) {
      const base = (table * 2 + next) * POL_MAX_RULES;
      const keys = Buffer.concat(compiled.rules.map((_, i) => u32(base + i)));
      await maps.rules.updateBatch(keys, Buffer.concat(encoded), compiled.rules.length);
    }

    if (compiled.portFirst) {
      // Per interval a copy of the first TCP and the first UDP rule (all zeros, action 0: none).
      const first = compiled.portFirst;
      const entries = first.length / 2;
      const base = (table * 2 + next) * POL_PORT_BITMAPS; // entries <= POL_PORT_BITMAPS: writeArrayBitmaps checked
      const L = Layout.polPortFirst;
      const keys = Buffer.alloc(entries * 4);
      const values = Buffer.alloc(entries * L.size);
      for (let i = 0; i < entries; i++) {
        keys.writeUInt32LE(base + i, i * 4);
        const [tcp, udp] = [first[2 * i]!, first[2 * i + 1]!];
        if (tcp) encoded[tcp - 1]!.copy(values, i * L.size + L.tcp);
        if (udp) encoded[udp - 1]!.copy(values, i * L.size + L.udp);
      }
      await maps.portFirst.updateBatch(keys, values, entries);
    }

    maps.meta.update(u32(table * 2 + next), encodeMeta(compiled));
    const quick = table === PolTable.failsafe ? failsafeQuickOf(compiled) : null;
    if (quick) {
      // Covers the old table and the new one while packets may see either.
      const old = decodeFailsafeQuick(maps.failsafeQuick.lookup(u32(0)));
      maps.failsafeQuick.update(u32(0), encodeFailsafeQuick({ portsOnly: old.portsOnly && quick.portsOnly, dports: old.dports | quick.dports }));
    }
    maps.active.update(u32(table), u32(next));
    this.sync();
    if (quick) maps.failsafeQuick.update(u32(0), encodeFailsafeQuick(quick));
    this.applied.set(table, digest);
    // No packet reads the old buffer now: empty it, so a big list's entries
    // are held once, not twice, between changes. A failure here changes
    // nothing packets see; the keys stay tracked and the next change
    // empties the buffer before using it.
    await this.empty(table, next ^ 1).catch(() => undefined);
  }

  /**
   * xw_pol_bm's part of a buffer: the all-ones bitmap, and while the table
   * constrains them the 256 protocols' bitmaps (each protocol's, else the
   * wildcard's, else none) and every port interval's (0: the wildcard's).
   */
  private async writeArrayBitmaps(table: number, buf: number, compiled: CompiledTable): Promise<void> {
    const base = (table * 2 + buf) * POL_BM_PER_BUF;
    const fields = arrayFields(compiled);
    const write = async (first: number, entries: number, bits: (i: number) => Uint8Array | undefined) => {
      const empty = new Uint8Array(BITMAP_BYTES);
      const keys = Buffer.alloc(entries * 4);
      const values = Buffer.alloc(entries * Layout.polBitmap.size);
      for (let i = 0; i < entries; i++) {
        keys.writeUInt32LE(base + first + i, i * 4);
        encodeBitmap(bits(i) ?? empty).copy(values, i * Layout.polBitmap.size);
      }
      await this.maps.arrayBitmaps.updateBatch(keys, values, entries);
    };
    await write(POL_BM_ALL, 1, () => compiled.all);
    if (compiled.fields & (1 << PolField.proto)) await write(0, 256, fields.proto);
    if (compiled.fields & (1 << PolField.dport)) {
      const intervals = fields.dportIntervals;
      if (intervals > POL_PORT_BITMAPS) throw new CapacityError(`${intervals - 1} destination-port intervals exceed the data plane's ${POL_PORT_BITMAPS - 1}`);
      await write(POL_BM_DPORT, intervals, fields.dport);
    }
  }

  /** Returns once no running program can still read what it read before this call. */
  sync(): void {
    this.maps.sync.update(u32(0), u32(this.maps.syncInner.fd));
  }

  private async empty(table: number, buf: number): Promise<void> {
    const w = this.written.get(table * 2 + buf);
    if (!w) return;
    if (w.bitmaps.length > 0) await this.maps.bitmaps.deleteBatch(Buffer.concat(w.bitmaps), w.bitmaps.length);
    w.bitmaps = [];
    if (w.addrs.length > 0) {
      const keys = Buffer.concat(w.addrs);
      await this.maps.addrs.deleteBatch(keys, keys.length / this.maps.addrs.keySize);
    }
    this.written.delete(table * 2 + buf);
  }
}

/** struct xw_failsafe_quick: what a packet about to drop needs to skip the failsafe table. */
export interface FailsafeQuick {
  /** Every entry that can match TCP or UDP names destination ports (or there is none). */
  portsOnly: boolean;
  /** Bit (port & 63) of each destination port an entry covers. */
  dports: bigint;
}

/** The quick check of a compiled failsafe table. */
export function failsafeQuickOf(compiled: CompiledTable): FailsafeQuick {
  const portsOnly = compiled.rules.length === 0 || (compiled.flags & PolFlags.dportAll) !== 0;
  let dports = 0n;
  const intervals = compiled.ports.dport;
  if (portsOnly && intervals) {
    for (let port = 0; port < intervals.length; port++) if (intervals[port] !== 0) dports |= 1n << BigInt(port & 63);
  }
  return { portsOnly, dports };
}

function encodeFailsafeQuick(quick: FailsafeQuick): Buffer {
  const out = Buffer.alloc(Layout.failsafeQuick.size);
  out.writeBigUInt64LE(BigInt.asUintN(64, quick.dports), Layout.failsafeQuick.dports);
  out.writeUInt32LE(quick.portsOnly ? 1 : 0, Layout.failsafeQuick.portsOnly);
  return out;
}

function decodeFailsafeQuick(value: Buffer | null): FailsafeQuick {
  if (!value) return { portsOnly: false, dports: 0n };
  return { portsOnly: value.readUInt32LE(Layout.failsafeQuick.portsOnly) !== 0, dports: value.readBigUInt64LE(Layout.failsafeQuick.dports) };
}

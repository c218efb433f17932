// TypeScript mirror of xdp/include/xdpwall_abi.h: names, sizes, offsets,
// enum values and the codecs for every map key and value. test/abi.test.ts
// checks this file against the BTF of the compiled object.

export const ABI_VERSION = 4;

export const PROGRAMS = { ingress: 'xw_ingress', egress: 'xw_egress' } as const;

export const MAPS = {
  srcV4: 'xw_src_v4',
  dstV4: 'xw_dst_v4',
  srcV6: 'xw_src_v6',
  dstV6: 'xw_dst_v6',
  srcHostV4: 'xw_src_host_v4',
  dstHostV4: 'xw_dst_host_v4',
  srcHostV6: 'xw_src_host_v6',
  dstHostV6: 'xw_dst_host_v6',
  srcDir24: 'xw_src_dir24',
  dstDir24: 'xw_dst_dir24',
  srcDir24L2: 'xw_src_dir24_l2',
  dstDir24L2: 'xw_dst_dir24_l2',
  ifslots: 'xw_ifslots',
  ruleStats: 'xw_rule_stats',
  ruleHitCache: 'xw_rule_hit_cache',
  slotHits: 'xw_slot_hits',
  stats: 'xw_stats',
  flows: 'xw_flows',
  config: 'xw_config',
} as const;

export const DEFAULT_CAPACITY = {
  cidrV4: 1 << 20,
  cidrV6: 1 << 18,
  flows: 1 << 18,
} as const;

export const Direction = { ingress: 0, egress: 1 } as const;
export type DirectionName = keyof typeof Direction;

export const Verdict = { pass: 0, drop: 1 } as const;
export type VerdictName = keyof typeof Verdict;

/** enum xw_reason, by the names the API reports. */
export const Reason = {
  pass_no_match: 0,
  pass_non_ip: 1,
  pass_allow: 2,
  pass_failsafe: 3,
  pass_rule: 4,
  pass_reply: 5,
  would_drop: 6,
  pass_log: 7,
  would_ratelimit: 8,
  deny_src_cidr: 16,
  deny_dst_cidr: 17,
  malformed_l2: 18,
  malformed_ipv4: 19,
  malformed_ipv6: 20,
  ipv6_ext_limit: 21,
  malformed_l4: 22,
  drop_rule: 23,
  drop_policy: 24,
  ratelimit: 25,
} as const;
export type ReasonName = keyof typeof Reason;
export const REASON_FIRST_DROP = 16;
export const REASON_MAX = 26;

/** Whether packets counted under this reason passed. */
export const reasonPasses = (reason: number): boolean => reason < REASON_FIRST_DROP;

/** Dimensions of xw_stats (XW_STATS_INDEX): interface slots x direction x verdict x reason. */
export const STATS_IFSLOTS = 64;
export const STATS_REASONS = 32;
export const IFSLOT_IFINDEX_MAX = 1 << 16;
export const STATS_ENTRIES = STATS_IFSLOTS * 2 * 2 * STATS_REASONS;
/** The block hit cache in front of xw_rule_stats (XW_HIT_CACHE_*; see rule-hits.ts). */
export const HIT_CACHE_BITS = 10;
export const HIT_CACHE_SLOTS = 1 << HIT_CACHE_BITS;
export const HIT_CACHE_SCORE_NEW = 8;
export const HIT_CACHE_SCORE_MAX = 64;
/** XW_HIT_CACHE_INDEX(rule_id): the cache element a rule's hits may sit in, on each CPU. */
export const hitCacheIndex = (ruleId: number): number => Math.imul(ruleId, 0x9e3779b1) >>> (32 - HIT_CACHE_BITS);

/** Second-level DIR-24 blocks per direction at the default layout. */
export const DEFAULT_DIR24_BLOCKS = 4096;

/** XW_STATS_INDEX(ifslot, direction, verdict, reason). */
export function statsIndex(ifslot: number, direction: number, verdict: number, reason: number): number {
  return ((ifslot * 2 + direction) * 2 + verdict) * STATS_REASONS + reason;
}

/** The inverse of statsIndex. */
export function statsIndexParts(index: number): { ifslot: number; direction: number; verdict: number; reason: number } {
  const reason = index % STATS_REASONS;
  const rest = Math.floor(index / STATS_REASONS);
  return { ifslot: Math.floor(rest / 4), direction: Math.floor(rest / 2) % 2, verdict: rest % 2, reason };
}

export const Action = { deny: 1, allow: 2, log: 3, ratelimit: 4 } as const;
/** enum xw_cache: xw_flow_value.cachedVerdict. */
export const Cache = { none: 0, pass: 1 } as const;
export const RuleFlags = { dryRun: 1 << 0, ifaceDefault: 1 << 1 } as const;
/** enum xw_feature: bits of xw_config.features. */
export const Feature = { srcV4: 1 << 0, dstV4: 1 << 1, srcV6: 1 << 2, dstV6: 1 << 3, blockMeta: 1 << 4, v4HostFilter: 1 << 5, events: 1 << 16 } as const;

/** Sizes and field offsets of the ABI structs, in bytes. */
export const Layout = {
  lpmV4Key: { size: 8, prefixlen: 0, addr: 4 },
  lpmV6Key: { size: 20, prefixlen: 0, addr: 4 },
  hostV6Key: { size: 16, addr: 0 },
  ruleValue: { size: 8, ruleId: 0, action: 4, flags: 5, pad: 6 },
  counter: { size: 16, packets: 0, bytes: 8 },
  hitCache: { size: 24, ruleId: 0, score: 4, hits: 8 }, // hits: struct xw_counter
  statsKey: { size: 8, ifindex: 0, direction: 4, verdict: 5, reason: 6 },
  flowKey: { size: 44, src: 0, dst: 16, sport: 32, dport: 34, ifindex: 36, proto: 40, family: 41, pad: 42 },
  config: { size: 16, rulesGen: 0, features: 4, v4Default: 8 }, // v4Default: __u32[2], source then destination
  polMeta: { size: 16, words: 0, fields: 4, defaultAction: 8, flags: 9, pad: 10, pad2: 12 },
  polRule: { size: 16, ruleId: 0, action: 4, flags: 5, slot: 6, expiresNs: 8 },
  polBitmapKey: { size: 8, table: 0, buf: 1, field: 2, pad: 3, value: 4 },
  polBitmap: { size: 520, summary: 0, words: 8 },
  polAddrKey: { size: 24, prefixlen: 0, table: 4, buf: 5, field: 6, family: 7, addr: 8 },
  polPortSlot: { size: 8, interval: 0 },
  polPortFirst: { size: 32, tcp: 0, udp: 16 }, // each a struct xw_pol_rule (polRule)
  blockMeta: { size: 16, expiresNs: 0, flags: 8, pad: 9 },
  failsafeQuick: { size: 16, dports: 0, portsOnly: 8, pad: 12 },
  rlConf: {
    size: 72, pps: 0, bps: 8, pktCap: 16, bitCap: 24, pktFillNs: 32, bitFillNs: 40, banWithinNs: 48,
    banAfter: 56, per: 60, prefixV4: 61, prefixV6: 62, pad: 63, slotsV4: 64, pad2: 68,
  },
  rlKey: { size: 24, ruleId: 0, family: 4, prefixlen: 5, pad: 6, addr: 8 },
  rlKeyV4: { size: 8, ruleId: 0, addr: 4 },
  rlSlotV4: { size: 64, key: 0, bucket: 8 }, // key: rlKeyV4's bytes, 0 when free
  rlBucket: { size: 56, pktTokens: 0, bitTokens: 8, lastNs: 16, admitted: 24, dropped: 32, windowNs: 40, windowBase: 48 },
  rlStats: { size: 16, dropped: 0 }, // struct xw_counter
  rlReport: { size: 40, key: 0, timeNs: 24, drops: 32, pad: 36 },
  flowValue: {
    size: 56,
    dir: 0, // struct xw_counter[2]
    firstSeenNs: 32,
    lastSeenNs: 40,
    tcpFlags: 48, // __u8[2]
    cachedVerdict: 50,
    pad0: 51,
    rulesGen: 52,
  },
} as const;

// Host byte order is little-endian on every platform xdpwall targets;
// fields marked __be in the header are written big-endian explicitly.

export function lpmKeySize(family: 4 | 6): number {
  return family === 4 ? Layout.lpmV4Key.size : Layout.lpmV6Key.size;
}

/** Writes an LPM key at `offset` (batch buffers hold many back to back); v4 and v6 keys share offsets. */
export function writeLpmKey(target: Buffer, offset: number, bytes: Uint8Array, prefixLen: number): void {
  target.writeUInt32LE(prefixLen, offset + Layout.lpmV4Key.prefixlen);
  target.set(bytes, offset + Layout.lpmV4Key.addr);
}

export function encodeLpmKey(family: 4 | 6, bytes: Uint8Array, prefixLen: number): Buffer {
  const key = Buffer.alloc(lpmKeySize(family));
  writeLpmKey(key, 0, bytes, prefixLen);
  return key;
}

export interface RuleValue {
  ruleId: number;
  action: number;
  flags: number;
}

export function writeRuleValue(target: Buffer, offset: number, value: RuleValue): void {
  target.writeUInt32LE(value.ruleId, offset + Layout.ruleValue.ruleId);
  target.writeUInt8(value.action, offset + Layout.ruleValue.action);
  target.writeUInt8(value.flags, offset + Layout.ruleValue.flags);
}

export function encodeRuleValue(value: RuleValue): Buffer {
  const out = Buffer.alloc(Layout.ruleValue.size);
  writeRuleValue(out, 0, value);
  return out;
}

export function encodeRuleId(ruleId: number): Buffer {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(ruleId);
  return key;
}

export interface StatsKey {
  ifindex: number;
  direction: number;
  verdict: number;
  reason: number;
}

export function decodeStatsKey(buf: Buffer): StatsKey {
  return {
    ifindex: buf.readUInt32LE(Layout.statsKey.ifindex),
    direction: buf.readUInt8(Layout.statsKey.direction),
    verdict: buf.readUInt8(Layout.statsKey.verdict),
    reason: buf.readUInt16LE(Layout.statsKey.reason),
  };
}

export interface Counter {
  packets: bigint;
  bytes: bigint;
}

/** How many per-CPU slots a map's value holds (1 for ordinary maps). */
export function cpusOf(map: { perCpu: boolean; valueSize: number; valueStride: number }): number {
  return map.perCpu ? map.valueStride / (Math.ceil(map.valueSize / 8) * 8) : 1;
}

/** Sums one per-CPU value of struct xw_counter at `offset` over all CPUs. */
export function sumCounters(values: Buffer, offset: number, stride: number, cpus: number, fieldOffset = 0): Counter {
  const perCpu = stride / cpus;
  let packets = 0n;
  let bytes = 0n;
  for (let cpu = 0; cpu < cpus; cpu++) {
    const base = offset + cpu * perCpu + fieldOffset;
    packets += values.readBigUInt64LE(base + Layout.counter.packets);
    bytes += values.readBigUInt64LE(base + Layout.counter.bytes);
  }
  return { packets, bytes };
}

export interface FlowKey {
  src: Uint8Array; // 16 bytes, IPv4-mapped for IPv4
  dst: Uint8Array;
  sport: number;
  dport: number;
  ifindex: number;
  proto: number;
  family: 4 | 6;
}

export function decodeFlowKey(buf: Buffer, offset = 0): FlowKey {
  const L = Layout.flowKey;
  return {
    src: new Uint8Array(buf.subarray(offset + L.src, offset + L.src + 16)),
    dst: new Uint8Array(buf.subarray(offset + L.dst, offset + L.dst + 16)),
    sport: buf.readUInt16BE(offset + L.sport),
    dport: buf.readUInt16BE(offset + L.dport),
    ifindex: buf.readUInt32LE(offset + L.ifindex),
    proto: buf.readUInt8(offset + L.proto),
    family: buf.readUInt8(offset + L.family) === 4 ? 4 : 6,
  };
}

export function encodeFlowKey(key: FlowKey): Buffer {
  const L = Layout.flowKey;
  const buf = Buffer.alloc(L.size);
  buf.set(key.src, L.src);
  buf.set(key.dst, L.dst);
  buf.writeUInt16BE(key.sport, L.sport);
  buf.writeUInt16BE(key.dport, L.dport);
  buf.writeUInt32LE(key.ifindex, L.ifindex);
  buf.writeUInt8(key.proto, L.proto);
  buf.writeUInt8(key.family, L.family);
  return buf;
}

// ---------------------------------------------------------------- policy
// The rule tables of xdp/lib/rules.h and policy.h (see "policy" in the ABI header).

/** Policy maps, pinned like the others; xw_pol_sync_inner is internal (not pinned). */
export const POLICY_MAPS = {
  active: 'xw_pol_active',
  meta: 'xw_pol_meta',
  rules: 'xw_pol_rules',
  bitmaps: 'xw_pol_bitmaps',
  addrs: 'xw_pol_addrs',
  ports: 'xw_pol_ports',
  replies: 'xw_pol_replies',
  sync: 'xw_pol_sync',
  blockMeta: 'xw_block_meta',
  arrayBitmaps: 'xw_pol_bm',
  failsafeQuick: 'xw_failsafe_quick',
  portFirst: 'xw_pol_port_first',
} as const;
export const BLOCK_META_ENTRIES = 1 << 16;
export const POLICY_SYNC_INNER = 'xw_pol_sync_inner';

export const POL_MAX_RULES = 4096;
/** xw_pol_bm per table and buffer: protocol bitmaps (0..255), the all-ones (POL_BM_ALL), port intervals' (from POL_BM_DPORT). */
export const POL_PORT_BITMAPS = 2 * 4096;
export const POL_BM_ALL = 256;
export const POL_BM_DPORT = 257;
export const POL_BM_PER_BUF = POL_BM_DPORT + POL_PORT_BITMAPS;
/** Dense per-rule slots ("rule slots" in the ABI header): slot 0 means none. */
export const POL_SLOTS = 16384;
/** xw_pol_addrs entries per table and buffer: rules' prefixes and their lists' entries (distinct prefixes). */
export const POL_MAX_ADDRS = 1 << 18;
export const POL_WORDS = POL_MAX_RULES / 64;
export const POL_PORT_SLOTS = 65536 / 4;
export const POL_WILDCARD = 0xffff_ffff;
export const POL_REPLY_ENTRIES = 1 << 16;
export const POL_REPLY_TIMEOUT_NS = 300_000_000_000n;
export const POL_REPLY_REFRESH_NS = 1_000_000_000n;

/** enum xw_pol_table */
export const PolTable = { ingress: 0, egress: 1, failsafe: 2 } as const;
export type PolTableName = keyof typeof PolTable;
export const POL_TABLES = 3;

/** enum xw_pol_field; XW_FIELD__MAX doubles as the all-ones bitmap's field. */
export const PolField = {
  iface: 0,
  proto: 1,
  sport: 2,
  dport: 3,
  tcpFlags: 4,
  icmpType: 5,
  icmpCode: 6,
  vlan: 7,
  src: 8,
  dst: 9,
} as const;
export type PolFieldName = keyof typeof PolField;
export const POL_FIELD_ALL = 10;

/** enum xw_pol_default */
export const PolDefault = { accept: 0, drop: 1 } as const;
/** enum xw_pol_flags */
export const PolFlags = { replies: 1 << 0, dportAll: 1 << 1, portFirst: 1 << 2 } as const;

/** Kernel rule ids of policy rules carry this bit, so they never collide with block ids in xw_rule_stats. */
export const POLICY_RULE_ID_BASE = 0x8000_0000;
/**
 * Kernel rule ids of named lists (src/lists): LIST_RULE_ID_BASE + the list's
 * id, one per list, so xw_rule_stats counts per list. Below the DIR-24 limit
 * (0x1fffffff); block ids stay below it.
 */
export const LIST_RULE_ID_BASE = 0x1f00_0000;

// ---------------------------------------------------------------- rate limits
// Token buckets of ratelimit rules (see "rate limits" in the ABI header).

export const RATELIMIT_MAPS = {
  rules: 'xw_rl_rules',
  ruleBuckets: 'xw_rl_rule_buckets',
  bucketsV4: 'xw_rl_buckets_v4',
  buckets: 'xw_rl_buckets',
  stats: 'xw_rl_stats',
  reports: 'xw_rl_reports',
  reportBudget: 'xw_rl_report_budget',
} as const;
/** Only in the test build (xdp/build/xdpwall-testclock.bpf.o): the limiter's clock. */
export const TEST_CLOCK_MAP = 'xw_test_clock';

export const RL_SCALE = 1_000_000_000n;
export const DEFAULT_RL_BUCKETS = 1 << 17;
export const DEFAULT_RL_BUCKETS_V6 = 1 << 14;
export const RL_CAS_TRIES = 4;
/** The slots an IPv4 source's bucket may take in xw_rl_buckets_v4, from its first (rlSlotFirst). */
export const RL_PROBES = 8;
const RL_SLOT_HASH = 0x9e3779b97f4a7c15n;

/** An IPv4 bucket key's first slot among `slots`, as xw_rl_bucket_v4 computes it (key: rlKeyV4's bytes as a little-endian u64). */
export function rlSlotFirst(key: bigint, slots: number): number {
  return Number((((key * RL_SLOT_HASH) & 0xffff_ffff_ffff_ffffn) >> 32n) * BigInt(slots) >> 32n);
}
export const RL_REPORT_RATE = 1000;
export const RL_REPORT_RING = 1 << 16;

/** enum xw_rl_per */
export const RlPer = { source: 0, prefix: 1, rule: 2 } as const;

// ---------------------------------------------------------------- IPv6 prefixes by length
// The flat IPv6 tables (see "IPv6 prefixes by length" in the ABI header);
// filled by src/datapath/v6-lengths.ts.

export const V6_MAPS = {
  srcLen: 'xw_src_v6_len',
  dstLen: 'xw_dst_v6_len',
  srcNet: 'xw_src_v6_net',
  dstNet: 'xw_dst_v6_net',
  lengths: 'xw_v6_lengths',
  filter: 'xw_v6_filter',
} as const;

/** The filter of host routes and /64 entries: 2^V6_FILTER_BITS bits per direction, in u64 words. */
export const V6_FILTER_BITS = 22;
export const V6_FILTER_WORDS = 1 << (V6_FILTER_BITS - 6);

/** The filter bit of a /64 (a, b: the address's first two 32-bit words, big-endian). */
export const v6NetBit = (a: number, b: number): number =>
  Math.imul((a ^ Math.imul(b, 0x85ebca6b)) >>> 0, 0x9e3779b1) >>> (32 - V6_FILTER_BITS);

/** The filter bit of a host route (a..d: the address's 32-bit words, big-endian). */
export function v6HostBit(a: number, b: number, c: number, d: number): number {
  const cd = Math.imul((c ^ Math.imul(d, 0xc2b2ae35)) >>> 0, 0x27d4eb2f);
  return Math.imul((a ^ Math.imul((b ^ cd) >>> 0, 0x85ebca6b)) >>> 0, 0x9e3779b1) >>> (32 - V6_FILTER_BITS);
}

/** The filter bit of an IPv4 host route (XW_FEATURE_V4_HOST_FILTER; `host`: the address as a u32, host order). */
export const v4HostBit = (host: number): number => Math.imul((host ^ (host >>> 16)) >>> 0, 0x7feb352d) >>> (32 - V6_FILTER_BITS);

/** Prefixes kept in a /64's entry, lengths listed per step (a /64's, those below /64); more ask the trie. */
export const V6_PROBES = 8;

/** enum xw_v6_net_flags */
export const V6NetFlags = { deeper: 1 << 0, listed: 1 << 1 } as const;
/** enum xw_v6_flags */
export const V6Flags = { flat: 1 << 0, has64: 1 << 1, shortTrie: 1 << 2 } as const;

export const V6Layout = {
  v6Sub: { size: 16, low: 0, ruleId: 8, action: 12, len: 13, pad: 14 },
  v6Net: { size: 152, rule: 0, flags: 8, count: 12, longer: 16, sub: 24 }, // rule: struct xw_rule_value; longer: __u8[V6_PROBES]; sub: xw_v6_sub[V6_PROBES]
  v6Lengths: { size: 16, shorter: 0, count: 8, flags: 12 }, // shorter: __u8[V6_PROBES]
} as const;

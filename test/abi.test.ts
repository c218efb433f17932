// The TypeScript ABI mirror (src/datapath/abi.ts) against the BTF of the
// compiled object: struct sizes and field offsets, enum values, map and
// program names, map key/value types and default capacities, and the ABI
// version the object carries. Needs bpftool and llvm-objcopy; no kernel.
import { DIR24_BLOCK_PAIRS, DIR24_SLOTS } from '../src/datapath/dir24.js';
import { V6Flags, V6Layout, V6NetFlags, V6_FILTER_WORDS, V6_MAPS, V6_PROBES } from '../src/datapath/abi.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ABI_VERSION,
  Action,
  DEFAULT_CAPACITY,
  Direction,
  Layout,
  MAPS,
  PROGRAMS,
  REASON_FIRST_DROP,
  REASON_MAX,
  Reason,
  Cache,
  DEFAULT_DIR24_BLOCKS,
  Feature,
  IFSLOT_IFINDEX_MAX,
  RuleFlags,
  STATS_ENTRIES,
  STATS_REASONS,
  Verdict,
  POLICY_MAPS,
  POLICY_SYNC_INNER,
  POL_MAX_RULES,
  POL_SLOTS,
  POL_PORT_BITMAPS,
  POL_BM_PER_BUF,
  POL_MAX_ADDRS,
  POL_PORT_SLOTS,
  POL_REPLY_ENTRIES,
  POL_TABLES,
  POL_FIELD_ALL,
  PolDefault,
  PolField,
  PolFlags,
  PolTable,
  statsIndex,
  statsIndexParts,
  RATELIMIT_MAPS,
  DEFAULT_RL_BUCKETS,
  DEFAULT_RL_BUCKETS_V6,
  RL_REPORT_RING,
  RlPer,
} from '../src/datapath/abi.js';
import { EVENT_MAPS, EVENT_SNAP_LEN, EVENTS_RING_BYTES, EventFlags, EventLayout, EventStat, EVENT_STATS } from '../src/events/abi.js';

const OBJECT_PATH = new URL('../xdp/build/xdpwall.bpf.o', import.meta.url).pathname;

// ---------------------------------------------------------------- BTF access

interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
}
interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  members?: BtfMember[];
  values?: { name: string; val: number }[];
  vars?: { type_id: number; offset: number; size: number }[];
  nr_elems?: number;
}

let types: Map<number, BtfType>;

beforeAll(() => {
  const json = execFileSync('bpftool', ['btf', 'dump', 'file', OBJECT_PATH, 'format', 'raw', '-j'], { encoding: 'utf8' });
  types = new Map((JSON.parse(json) as { types: BtfType[] }).types.map((t) => [t.id, t]));
});

function byId(id: number): BtfType {
  const t = types.get(id);
  if (!t) throw new Error(`no BTF type ${id}`);
  return t;
}

function named(kind: string, name: string): BtfType {
  const found = [...types.values()].filter((t) => t.kind === kind && t.name === name);
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name} in the object's BTF, found ${found.length}`);
  return found[0]!;
}

/** Strips typedefs and qualifiers (__u32 -> unsigned int, const volatile ...). */
function resolve(id: number): BtfType {
  let t = byId(id);
  while (['TYPEDEF', 'CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'].includes(t.kind)) t = byId(t.type_id!);
  return t;
}

/** Bytes the libbpf map-definition macros encode as `int (*name)[value]`. */
function mapDefNumber(def: BtfType, field: string): number {
  const member = def.members?.find((m) => m.name === field);
  if (!member) throw new Error(`map definition has no ${field}`);
  const array = resolve(byId(member.type_id).type_id!);
  return array.nr_elems!;
}

/** The type a map definition's __type(key/value, T) names. */
function mapDefType(def: BtfType, field: 'key' | 'value'): BtfType {
  const member = def.members?.find((m) => m.name === field);
  if (!member) throw new Error(`map definition has no ${field}`);
  return resolve(byId(member.type_id).type_id!);
}

function mapDef(name: string): BtfType {
  return resolve(named('VAR', name).type_id!);
}

const snake = (camel: string) => camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

// ---------------------------------------------------------------- structs

const STRUCTS: Record<keyof typeof Layout, string> = {
  lpmV4Key: 'xw_lpm_v4_key',
  lpmV6Key: 'xw_lpm_v6_key',
  hostV6Key: 'xw_host_v6_key',
  ruleValue: 'xw_rule_value',
  counter: 'xw_counter',
  hitCache: 'xw_hit_cache',
  statsKey: 'xw_stats_key',
  flowKey: 'xw_flow_key',
  flowValue: 'xw_flow_value',
  config: 'xw_config',
  polMeta: 'xw_pol_meta',
  polRule: 'xw_pol_rule',
  polBitmapKey: 'xw_pol_bitmap_key',
  polBitmap: 'xw_pol_bitmap',
  polAddrKey: 'xw_pol_addr_key',
  polPortSlot: 'xw_pol_port_slot',
  polPortFirst: 'xw_pol_port_first',
  blockMeta: 'xw_block_meta',
  failsafeQuick: 'xw_failsafe_quick',
  rlConf: 'xw_rl_conf',
  rlKey: 'xw_rl_key',
  rlKeyV4: 'xw_rl_key_v4',
  rlSlotV4: 'xw_rl_slot_v4',
  rlBucket: 'xw_rl_bucket',
  rlStats: 'xw_rl_stats',
  rlReport: 'xw_rl_report',
};

describe('struct layouts', () => {
  it.each(Object.entries(STRUCTS))('Layout.%s matches struct %s', (layoutName, structName) => {
    const struct = named('STRUCT', structName);
    const { size, ...fields } = Layout[layoutName as keyof typeof Layout] as { size: number } & Record<string, number>;
    expect(struct.size).toBe(size);
    const btfOffsets = Object.fromEntries(struct.members!.map((m) => [m.name, m.bits_offset / 8]));
    const mirrorOffsets = Object.fromEntries(Object.entries(fields).map(([field, offset]) => [snake(field), offset]));
    // Every C field is mirrored and every mirrored field exists, at the same offset.
    expect(mirrorOffsets).toEqual(btfOffsets);
  });

  it('holds no implicit padding: fields tile each struct exactly', () => {
    for (const structName of Object.values(STRUCTS)) {
      const struct = named('STRUCT', structName);
      let end = 0;
      for (const member of struct.members!) {
        expect(member.bits_offset / 8, `${structName}.${member.name}`).toBe(end);
        end += sizeOf(member.type_id);
      }
      expect(end, structName).toBe(struct.size);
    }
  });
});

function sizeOf(id: number): number {
  const t = resolve(id);
  if (t.kind === 'ARRAY') {
    const array = t as BtfType & { type_id?: number; nr_elems: number };
    // bpftool's raw JSON names the element type "type_id"
    return array.nr_elems * sizeOf(array.type_id!);
  }
  if (t.size === undefined) throw new Error(`no size for BTF ${t.kind} ${t.name}`);
  return t.size;
}

// ---------------------------------------------------------------- enums

function enumValues(name: string): Record<string, number> {
  return Object.fromEntries(named('ENUM', name).values!.map((v) => [v.name, v.val]));
}

const upper = (prefix: string, values: Record<string, number>) =>
  Object.fromEntries(Object.entries(values).map(([k, v]) => [`${prefix}${snake(k).toUpperCase()}`, v]));

describe('enums', () => {
  it('xw_direction', () => {
    expect(enumValues('xw_direction')).toEqual({ ...upper('XW_DIR_', Direction), XW_DIR__MAX: 2 });
  });

  it('xw_verdict', () => {
    expect(enumValues('xw_verdict')).toEqual({ ...upper('XW_VERDICT_', Verdict), XW_VERDICT__MAX: 2 });
  });

  it('xw_reason', () => {
    expect(enumValues('xw_reason')).toEqual({
      ...upper('XW_REASON_', Reason),
      XW_REASON__FIRST_DROP: REASON_FIRST_DROP,
      XW_REASON__MAX: REASON_MAX,
    });
  });

  it('xw_action', () => {
    expect(enumValues('xw_action')).toEqual(upper('XW_ACTION_', Action));
  });

  it('xw_rule_flags', () => {
    expect(enumValues('xw_rule_flags')).toEqual(upper('XW_RULE_F_', RuleFlags));
  });

  it('xw_cache', () => {
    expect(enumValues('xw_cache')).toEqual(upper('XW_CACHE_', Cache));
  });

  it('xw_pol_table', () => {
    expect(enumValues('xw_pol_table')).toEqual({ ...upper('XW_POL_', PolTable), XW_POL_TABLES: POL_TABLES });
  });

  it('xw_pol_field', () => {
    expect(enumValues('xw_pol_field')).toEqual({ ...upper('XW_FIELD_', PolField), XW_FIELD__MAX: POL_FIELD_ALL });
  });

  it('xw_pol_default and xw_pol_flags', () => {
    expect(enumValues('xw_pol_default')).toEqual(upper('XW_POL_', PolDefault));
    expect(enumValues('xw_pol_flags')).toEqual(upper('XW_POL_F_', PolFlags));
  });

  it('xw_rl_per', () => {
    expect(enumValues('xw_rl_per')).toEqual(upper('XW_RL_PER_', RlPer));
  });

  it('xw_feature', () => {
    expect(enumValues('xw_feature')).toEqual(upper('XW_FEATURE_', Feature));
  });

  it('every reason fits the counter array with room to spare', () => {
    expect(REASON_MAX).toBeLessThanOrEqual(STATS_REASONS);
  });
});

// ---------------------------------------------------------------- objects

describe('programs and maps', () => {
  it('has both programs', () => {
    for (const name of Object.values(PROGRAMS)) expect(named('FUNC', name).name).toBe(name);
  });

  const MAP_TYPES: Record<string, [key: string, value: string]> = {
    [MAPS.srcV4]: ['xw_lpm_v4_key', 'xw_rule_value'],
    [MAPS.dstV4]: ['xw_lpm_v4_key', 'xw_rule_value'],
    [MAPS.srcV6]: ['xw_lpm_v6_key', 'xw_rule_value'],
    [MAPS.dstV6]: ['xw_lpm_v6_key', 'xw_rule_value'],
    [MAPS.srcHostV4]: ['unsigned int', 'xw_rule_value'], // __be32, resolved through its typedef
    [MAPS.dstHostV4]: ['unsigned int', 'xw_rule_value'],
    [MAPS.srcHostV6]: ['xw_host_v6_key', 'xw_rule_value'],
    [MAPS.dstHostV6]: ['xw_host_v6_key', 'xw_rule_value'],
    [MAPS.ruleStats]: ['unsigned int', 'xw_counter'],
    [MAPS.ruleHitCache]: ['unsigned int', 'xw_hit_cache'], // hitCacheIndex(rule id)
    [MAPS.slotHits]: ['unsigned int', 'xw_counter'], // policy rule slot
    [MAPS.stats]: ['unsigned int', 'xw_counter'], // XW_STATS_INDEX()
    [MAPS.ifslots]: ['unsigned int', 'unsigned int'],
    [MAPS.flows]: ['xw_flow_key', 'xw_flow_value'],
    [MAPS.config]: ['unsigned int', 'xw_config'],
    [POLICY_MAPS.active]: ['unsigned int', 'unsigned int'],
    [POLICY_MAPS.meta]: ['unsigned int', 'xw_pol_meta'],
    [POLICY_MAPS.rules]: ['unsigned int', 'xw_pol_rule'],
    [POLICY_MAPS.bitmaps]: ['xw_pol_bitmap_key', 'xw_pol_bitmap'],
    [POLICY_MAPS.addrs]: ['xw_pol_addr_key', 'unsigned int'],
    [POLICY_MAPS.ports]: ['unsigned int', 'xw_pol_port_slot'],
    [POLICY_MAPS.replies]: ['xw_flow_key', 'unsigned long long'],
    [POLICY_MAPS.blockMeta]: ['unsigned int', 'xw_block_meta'],
    [POLICY_MAPS.arrayBitmaps]: ['unsigned int', 'xw_pol_bitmap'],
    [POLICY_MAPS.failsafeQuick]: ['unsigned int', 'xw_failsafe_quick'],
    [POLICY_MAPS.portFirst]: ['unsigned int', 'xw_pol_port_first'],
    [RATELIMIT_MAPS.rules]: ['unsigned int', 'xw_rl_conf'],
    [RATELIMIT_MAPS.ruleBuckets]: ['unsigned int', 'xw_rl_bucket'],
    [RATELIMIT_MAPS.bucketsV4]: ['unsigned int', 'xw_rl_slot_v4'],
    [RATELIMIT_MAPS.buckets]: ['xw_rl_key', 'xw_rl_bucket'],
    [RATELIMIT_MAPS.stats]: ['unsigned int', 'xw_rl_stats'],
    [RATELIMIT_MAPS.reportBudget]: ['unsigned int', 'xw_rl_bucket'],
  };

  // Maps of the data plane's own working state: in the object, not in the ABI.
  const INTERNAL_MAPS = ['xw_pkt_scratch', POLICY_SYNC_INNER, 'xw_event_samplers', 'xw_event_bucket'];

  it('names exactly the maps the mirror lists (plus internal ones), in .maps', () => {
    const section = named('DATASEC', '.maps');
    const names = section.vars!.map((v) => byId(v.type_id).name).sort();
    expect(names).toEqual([...Object.values(MAPS), ...Object.values(POLICY_MAPS), ...Object.values(EVENT_MAPS), ...Object.values(RATELIMIT_MAPS), ...Object.values(V6_MAPS), ...INTERNAL_MAPS].sort());
  });

  it('pins every ABI map by name and no internal one', () => {
    for (const name of INTERNAL_MAPS) expect(mapDef(name).members!.map((m) => m.name)).not.toContain('pinning');
  });

  it.each(Object.entries(MAP_TYPES))('%s maps %s', (name, [key, value]) => {
    const def = mapDef(name);
    expect(mapDefType(def, 'key').name).toBe(key);
    expect(mapDefType(def, 'value').name).toBe(value);
    expect(mapDefNumber(def, 'pinning')).toBe(1); // LIBBPF_PIN_BY_NAME
  });

  it.each([MAPS.srcDir24, MAPS.dstDir24])('%s is a DIR-24 table: u32 slots for every /24, not pinned (rebuilt on start)', (name) => {
    const def = mapDef(name);
    expect(mapDefType(def, 'key').name).toBe('unsigned int');
    expect(mapDefType(def, 'value').name).toBe('unsigned long long'); // two u32 slots
    expect(mapDefNumber(def, 'max_entries')).toBe(DIR24_SLOTS / 2);
    expect(def.members!.map((m) => m.name)).not.toContain('pinning');
  });

  it.each([MAPS.srcDir24L2, MAPS.dstDir24L2])('%s is the DIR-24-8 second level: 256-slot blocks, not pinned', (name) => {
    const def = mapDef(name);
    expect(mapDefType(def, 'value').name).toBe('unsigned long long');
    expect(mapDefNumber(def, 'max_entries')).toBe(DEFAULT_DIR24_BLOCKS * DIR24_BLOCK_PAIRS);
    expect(def.members!.map((m) => m.name)).not.toContain('pinning');
  });

  it('xw_stats holds XW_STATS_ENTRIES counters, xw_ifslots one slot per ifindex below the limit', () => {
    expect(mapDefNumber(mapDef(MAPS.stats), 'max_entries')).toBe(STATS_ENTRIES);
    expect(mapDefNumber(mapDef(MAPS.ifslots), 'max_entries')).toBe(IFSLOT_IFINDEX_MAX);
    for (const index of [0, 1, 31, 32, 127, 128, STATS_ENTRIES - 1]) {
      const { ifslot, direction, verdict, reason } = statsIndexParts(index);
      expect(statsIndex(ifslot, direction, verdict, reason)).toBe(index);
    }
    expect(statsIndexParts(statsIndex(5, 1, 0, 22))).toEqual({ ifslot: 5, direction: 1, verdict: 0, reason: 22 });
  });

  it('default capacities agree', () => {
    expect(mapDefNumber(mapDef(MAPS.srcV4), 'max_entries')).toBe(DEFAULT_CAPACITY.cidrV4);
    expect(mapDefNumber(mapDef(MAPS.dstV4), 'max_entries')).toBe(DEFAULT_CAPACITY.cidrV4);
    expect(mapDefNumber(mapDef(MAPS.srcV6), 'max_entries')).toBe(DEFAULT_CAPACITY.cidrV6);
    expect(mapDefNumber(mapDef(MAPS.dstV6), 'max_entries')).toBe(DEFAULT_CAPACITY.cidrV6);
    expect(mapDefNumber(mapDef(MAPS.flows), 'max_entries')).toBe(DEFAULT_CAPACITY.flows);
  });

  it('policy capacities agree', () => {
    expect(mapDefNumber(mapDef(POLICY_MAPS.rules), 'max_entries')).toBe(POL_TABLES * 2 * POL_MAX_RULES);
    expect(mapDefNumber(mapDef(MAPS.slotHits), 'max_entries')).toBe(POL_SLOTS);
    expect(mapDefNumber(mapDef(POLICY_MAPS.arrayBitmaps), 'max_entries')).toBe(POL_TABLES * 2 * POL_BM_PER_BUF);
    expect(POL_BM_PER_BUF).toBe(256 + 1 + POL_PORT_BITMAPS);
    expect(POL_PORT_BITMAPS).toBe(2 * POL_MAX_RULES); // n ranges: at most 2n - 1 intervals, and interval 0
    // Both hooks' full tables and a full replacement of one, besides slot 0 (none).
    expect(POL_SLOTS).toBeGreaterThan(3 * POL_MAX_RULES);
    expect(mapDefNumber(mapDef(POLICY_MAPS.ports), 'max_entries')).toBe(POL_TABLES * 2 * 2 * POL_PORT_SLOTS);
    expect(mapDefNumber(mapDef(POLICY_MAPS.addrs), 'max_entries')).toBe(POL_TABLES * 2 * POL_MAX_ADDRS);
    expect(mapDefNumber(mapDef(POLICY_MAPS.replies), 'max_entries')).toBe(POL_REPLY_ENTRIES);
    expect(mapDefNumber(mapDef(POLICY_MAPS.sync), 'max_entries')).toBe(1);
  });

  it('rate-limit capacities agree; the report ring is a pinned ring buffer', () => {
    expect(mapDefNumber(mapDef(RATELIMIT_MAPS.rules), 'max_entries')).toBe(POL_SLOTS);
    expect(mapDefNumber(mapDef(RATELIMIT_MAPS.stats), 'max_entries')).toBe(POL_SLOTS);
    expect(mapDefNumber(mapDef(RATELIMIT_MAPS.ruleBuckets), 'max_entries')).toBe(POL_SLOTS);
    const slots = mapDef(RATELIMIT_MAPS.bucketsV4);
    expect(mapDefNumber(slots, 'max_entries')).toBe(DEFAULT_RL_BUCKETS);
    expect(mapDefNumber(slots, 'type')).toBe(2); // BPF_MAP_TYPE_ARRAY of slots
    expect(mapDefNumber(slots, 'map_flags')).toBe(1 << 10); // BPF_F_MMAPABLE: page-aligned, a slot per cache line
    expect(mapDefType(slots, 'value').name).toBe('xw_rl_slot_v4');
    expect(mapDefNumber(mapDef(RATELIMIT_MAPS.buckets), 'max_entries')).toBe(DEFAULT_RL_BUCKETS_V6);
    const ring = mapDef(RATELIMIT_MAPS.reports);
    expect(mapDefNumber(ring, 'type')).toBe(27); // BPF_MAP_TYPE_RINGBUF
    expect(mapDefNumber(ring, 'max_entries')).toBe(RL_REPORT_RING);
    expect(mapDefNumber(ring, 'pinning')).toBe(1);
  });

  it('carries ABI_VERSION in .rodata (xw_abi.version)', () => {
    const abiVar = named('VAR', 'xw_abi');
    const placement = named('DATASEC', '.rodata').vars!.find((v) => v.type_id === abiVar.id);
    expect(placement).toBeDefined();
    const struct = resolve(abiVar.type_id!);
    const version = struct.members!.find((m) => m.name === 'version')!;
    const rodata = sectionBytes('.rodata');
    expect(rodata.readUInt32LE(placement!.offset + version.bits_offset / 8)).toBe(ABI_VERSION);
  });
});

/** A section's raw bytes, extracted with llvm-objcopy. */
function sectionBytes(section: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'xw-abi-'));
  try {
    const out = join(dir, 'section.bin');
    execFileSync('llvm-objcopy', ['-O', 'binary', `--only-section=${section}`, OBJECT_PATH, out]);
    return readFileSync(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- events

describe('events (src/events/abi.ts)', () => {
  it.each([
    ['event', 'xw_event'],
    ['cfg', 'xw_event_cfg'],
  ] as const)('EventLayout.%s matches struct %s, with no holes', (layoutName, structName) => {
    const struct = named('STRUCT', structName);
    const { size, ...fields } = EventLayout[layoutName] as { size: number } & Record<string, number>;
    expect(struct.size).toBe(size);
    expect(Object.fromEntries(Object.entries(fields).map(([field, offset]) => [snake(field), offset]))).toEqual(
      Object.fromEntries(struct.members!.map((m) => [m.name, m.bits_offset / 8])),
    );
    let end = 0;
    for (const member of struct.members!) {
      expect(member.bits_offset / 8, `${structName}.${member.name}`).toBe(end);
      end += sizeOf(member.type_id);
    }
    expect(end).toBe(size);
  });

  it('enums, limits and the gate bit', () => {
    expect(enumValues('xw_event_stat')).toEqual({ ...upper('XW_EVSTAT_', EventStat), XW_EVSTAT__MAX: EVENT_STATS });
    expect(enumValues('xw_event_flags')).toEqual(upper('XW_EVENT_F_', EventFlags));
    expect(enumValues('xw_feature').XW_FEATURE_EVENTS).toBe(Feature.events);
    expect(sizeOf(named('STRUCT', 'xw_event').members!.find((m) => m.name === 'data')!.type_id)).toBe(EVENT_SNAP_LEN);
  });

  it('maps: a ring buffer of EVENTS_RING_BYTES, config and counters, none pinned', () => {
    expect(mapDefNumber(mapDef(EVENT_MAPS.ring), 'type')).toBe(27); // BPF_MAP_TYPE_RINGBUF
    expect(mapDefNumber(mapDef(EVENT_MAPS.ring), 'max_entries')).toBe(EVENTS_RING_BYTES);
    expect(mapDefType(mapDef(EVENT_MAPS.cfg), 'value').name).toBe('xw_event_cfg');
    expect(mapDefNumber(mapDef(EVENT_MAPS.stats), 'max_entries')).toBe(EVENT_STATS);
    for (const name of [...Object.values(EVENT_MAPS), 'xw_event_samplers', 'xw_event_bucket']) {
      expect(mapDef(name).members!.map((m) => m.name)).not.toContain('pinning');
    }
  });
});

// ---------------------------------------------------------------- IPv6 prefixes by length

describe('the flat IPv6 tables', () => {
  const V6_STRUCTS = { v6Sub: 'xw_v6_sub', v6Net: 'xw_v6_net', v6Lengths: 'xw_v6_lengths' } as const;

  it.each(Object.entries(V6_STRUCTS))('V6Layout.%s matches struct %s, with no implicit padding', (layoutName, structName) => {
    const struct = named('STRUCT', structName);
    const { size, ...fields } = V6Layout[layoutName as keyof typeof V6Layout] as { size: number } & Record<string, number>;
    expect(struct.size).toBe(size);
    expect(Object.fromEntries(Object.entries(fields).map(([field, offset]) => [snake(field), offset])))
      .toEqual(Object.fromEntries(struct.members!.map((m) => [m.name, m.bits_offset / 8])));
    let end = 0;
    for (const member of struct.members!) {
      expect(member.bits_offset / 8, `${structName}.${member.name}`).toBe(end);
      end += sizeOf(member.type_id);
    }
    expect(end).toBe(struct.size);
  });

  it('enums and the probe count agree', () => {
    expect(enumValues('xw_v6_flags')).toEqual(upper('XW_V6_', V6Flags));
    expect(enumValues('xw_v6_net_flags')).toEqual(upper('XW_V6_', V6NetFlags));
    const member = (name: string) => named('STRUCT', 'xw_v6_net').members!.find((m) => m.name === name)!;
    expect(sizeOf(member('longer').type_id)).toBe(V6_PROBES);
    expect(sizeOf(member('sub').type_id)).toBe(V6_PROBES * V6Layout.v6Sub.size);
  });

  it.each([
    [V6_MAPS.srcLen, 'xw_lpm_v6_key', 'xw_rule_value'],
    [V6_MAPS.dstLen, 'xw_lpm_v6_key', 'xw_rule_value'],
    [V6_MAPS.srcNet, 'unsigned long long', 'xw_v6_net'], // __be64, resolved through its typedef
    [V6_MAPS.dstNet, 'unsigned long long', 'xw_v6_net'],
  ])('%s maps %s to %s, sized for the IPv6 capacity, not pinned (rebuilt on start)', (name, key, value) => {
    const def = mapDef(name);
    expect(mapDefType(def, 'key').name).toBe(key);
    expect(mapDefType(def, 'value').name).toBe(value);
    expect(mapDefNumber(def, 'max_entries')).toBe(DEFAULT_CAPACITY.cidrV6);
    expect(def.members!.map((m) => m.name)).not.toContain('pinning');
  });

  it('xw_v6_filter: a u64 word per 64 bits, per direction, not pinned', () => {
    const def = mapDef(V6_MAPS.filter);
    expect(mapDefType(def, 'value').name).toBe('unsigned long long');
    expect(mapDefNumber(def, 'max_entries')).toBe(2 * V6_FILTER_WORDS);
    expect(def.members!.map((m) => m.name)).not.toContain('pinning');
  });

  it('xw_v6_lengths: one entry per direction, not pinned', () => {
    const def = mapDef(V6_MAPS.lengths);
    expect(mapDefType(def, 'value').name).toBe('xw_v6_lengths');
    expect(mapDefNumber(def, 'max_entries')).toBe(2);
    expect(def.members!.map((m) => m.name)).not.toContain('pinning');
  });
});

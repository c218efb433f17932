// Kernel memory the data plane's maps take, per map and per setting, from
// the maps' own definitions (type, key and value sizes, entries after the
// configured capacity is applied). The figures are what each map takes when
// full: preallocated maps (arrays, LRU hashes) take it when they are created,
// the others as rules arrive. Since kernel 5.11 all of it is charged to the
// daemon's memory cgroup, so a container or unit memory limit must hold it on
// top of the daemon's own RSS. test/memory.test.ts checks the formulas against
// what the kernel reports for the real maps.
import type { BpfMap } from '@xdpwall/addon';
import { MAPS, POLICY_MAPS, RATELIMIT_MAPS, V6_MAPS } from './abi.js';

export interface MapMemory {
  map: string;
  type: string;
  entries: number;
  /** The configuration key that sets `entries`, or "fixed". */
  sizedBy: string;
  /** Bytes when every entry is used (kernel structures included). */
  bytes: number;
}

/** What the daemon itself needs besides the maps: RSS during a 1M-rule import. */
export const DAEMON_RSS_BUDGET_BYTES = 600 * 2 ** 20;

const SIZED_BY: Record<string, string> = {
  [MAPS.srcV4]: 'capacity.cidrV4',
  [MAPS.dstV4]: 'capacity.cidrV4',
  [MAPS.srcHostV4]: 'capacity.cidrV4',
  [MAPS.dstHostV4]: 'capacity.cidrV4',
  [MAPS.srcV6]: 'capacity.cidrV6',
  [MAPS.dstV6]: 'capacity.cidrV6',
  [MAPS.srcHostV6]: 'capacity.cidrV6',
  [MAPS.dstHostV6]: 'capacity.cidrV6',
  [MAPS.ruleStats]: 'capacity.cidrV4 + capacity.cidrV6',
  [MAPS.flows]: 'capacity.flows',
  [RATELIMIT_MAPS.bucketsV4]: 'capacity.rateBuckets',
  [RATELIMIT_MAPS.buckets]: 'capacity.rateBucketsV6',
  [POLICY_MAPS.blockMeta]: 'capacity.timedBlocks',
  [V6_MAPS.srcLen]: 'capacity.cidrV6',
  [V6_MAPS.dstLen]: 'capacity.cidrV6',
  [V6_MAPS.srcNet]: 'capacity.cidrV6',
  [V6_MAPS.dstNet]: 'capacity.cidrV6',
};

// Kernel structure sizes on 64-bit (kernel/bpf/hashtab.c, lpm_trie.c).
const HTAB_ELEM_HEADER = 48; // struct htab_elem before the key
const HTAB_BUCKET = 16; // struct bucket: hlist_nulls_head + raw_spinlock_t
const LPM_NODE_HEADER = 40; // struct lpm_trie_node before data[]
const PERCPU_POINTER = 8;
const PAGE_BYTES = 4096;
const RINGBUF_META_BYTES = 4 * PAGE_BYTES; // struct bpf_ringbuf header, consumer and producer pages

const round8 = (n: number) => Math.ceil(n / 8) * 8;
const pow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));
/** kmalloc's size classes: powers of two, plus 96 and 192. */
const kmallocSize = (n: number) => (n > 64 && n <= 96 ? 96 : n > 128 && n <= 192 ? 192 : Math.max(8, pow2(n)));

type MapShape = Pick<BpfMap, 'name' | 'type' | 'keySize' | 'valueSize' | 'maxEntries'>;

/** Bytes a map takes when full, on a machine with `cpus` possible CPUs. */
export function mapBytes({ type, keySize, valueSize, maxEntries }: MapShape, cpus: number): number {
  const buckets = pow2(maxEntries) * HTAB_BUCKET;
  const element = HTAB_ELEM_HEADER + round8(keySize);
  switch (type) {
    case 'array':
      return maxEntries * round8(valueSize);
    case 'percpu_array':
      return maxEntries * (round8(valueSize) * cpus + PERCPU_POINTER);
    case 'hash':
    case 'lru_hash':
      return buckets + maxEntries * (element + round8(valueSize));
    case 'percpu_hash':
    case 'lru_percpu_hash':
      return buckets + maxEntries * (element + PERCPU_POINTER + round8(valueSize) * cpus);
    case 'lpm_trie':
      // Up to one intermediate node per stored prefix; data[] holds the key
      // without its 4-byte prefix length, then the value.
      return 2 * maxEntries * kmallocSize(LPM_NODE_HEADER + keySize - 4 + valueSize);
    case 'ringbuf':
      // max_entries is the data area in bytes; plus the consumer/producer pages and the page array (data mapped twice).
      return maxEntries + RINGBUF_META_BYTES + (2 * maxEntries / PAGE_BYTES + RINGBUF_META_BYTES / PAGE_BYTES) * PERCPU_POINTER;
    default:
      return maxEntries * (keySize + valueSize);
  }
}

export function mapMemory(maps: MapShape[], cpus: number): MapMemory[] {
  return maps.map((map) => ({
    map: map.name,
    type: map.type,
    entries: map.maxEntries,
    sizedBy: SIZED_BY[map.name] ?? 'fixed',
    bytes: mapBytes(map, cpus),
  }));
}

export const totalBytes = (rows: MapMemory[]) => rows.reduce((sum, row) => sum + row.bytes, 0);

/** The memory limit to give the daemon: its maps when full plus its RSS budget, rounded up to 64 MiB. */
export function memoryLimitBytes(rows: MapMemory[]): number {
  const unit = 64 * 2 ** 20;
  return Math.ceil((totalBytes(rows) + DAEMON_RSS_BUDGET_BYTES) / unit) * unit;
}

export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

// The kernel-memory figures the README, `xdpwall memory` and the Kubernetes
// limit rely on, checked against what the kernel reports for the real maps;
// and the one-line explanation a failed load gets.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfError, BpfObject, numPossibleCpus } from '@xdpwall/addon';
import { applyCapacity, plannedMapMemory } from '../src/datapath/datapath.js';
import { mapBytes, memoryLimitBytes, totalBytes } from '../src/datapath/memory.js';
import { explainLoadFailure, missingCapabilities } from '../src/datapath/load-errors.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { BLOCK_META_ENTRIES, DEFAULT_RL_BUCKETS, DEFAULT_RL_BUCKETS_V6 } from '../src/datapath/abi.js';

/** index.js's constructor (message, errno, code, op), which index.d.ts leaves undeclared. */
const bpfError = (message: string, errno: number, code: string) =>
  new (BpfError as unknown as new (...args: [string, number, string, string]) => BpfError)(message, errno, code, 'bpf_object__load');

const CAPACITY = { cidrV4: 4096, cidrV6: 2048, flows: 1024 };
let object: BpfObject;

beforeAll(async () => {
  object = BpfObject.open(BPF_OBJECT_PATH);
  applyCapacity(object, CAPACITY);
  await object.load();
});
afterAll(() => object?.close());

/** The kernel's own figure for a map: memlock in /proc/self/fdinfo. */
const memlock = (fd: number) => Number(/^memlock:\s+(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]);

describe('kernel memory per map', () => {
  it('matches the kernel within 1% for every map allocated at creation, and never under-estimates the others', () => {
    const cpus = numPossibleCpus();
    for (const name of object.mapNames()) {
      const map = object.map(name);
      const estimate = mapBytes(map, cpus);
      const kernel = memlock(map.fd);
      if (['array', 'percpu_array', 'lru_percpu_hash', 'lru_hash'].includes(map.type) && kernel > 65536) {
        expect(Math.abs(estimate - kernel) / kernel, `${name}: estimate ${estimate}, kernel ${kernel}`).toBeLessThan(0.01);
      } else {
        expect(estimate, `${name}: estimate ${estimate}, kernel ${kernel}`).toBeGreaterThanOrEqual(kernel - 8192); // page-rounded small maps
      }
    }
  });

  it('keeps the flow table independent of the CPU count, and grows the tries with their capacity', () => {
    const flows = (cpus: number) => plannedMapMemory(BPF_OBJECT_PATH, CAPACITY, cpus).find((row) => row.map === 'xw_flows')!;
    expect(flows(64).bytes).toBe(flows(2).bytes);
    expect(flows(2).sizedBy).toBe('capacity.flows');
    const small = totalBytes(plannedMapMemory(BPF_OBJECT_PATH, CAPACITY, 2));
    const large = totalBytes(plannedMapMemory(BPF_OBJECT_PATH, { ...CAPACITY, cidrV4: CAPACITY.cidrV4 * 16 }, 2));
    expect(large).toBeGreaterThan(small);
  });

  it('sizes the timed-block and rate-limit tables from their capacity settings, and the defaults without them', () => {
    const row = (capacity: Parameters<typeof plannedMapMemory>[1], map: string) =>
      plannedMapMemory(BPF_OBJECT_PATH, capacity, 2).find((r) => r.map === map)!;
    expect(row(CAPACITY, 'xw_block_meta')).toMatchObject({ entries: BLOCK_META_ENTRIES, sizedBy: 'capacity.timedBlocks' });
    expect(row({ ...CAPACITY, timedBlocks: 200_000 }, 'xw_block_meta').entries).toBe(200_000);
    expect(row(CAPACITY, 'xw_rl_buckets')).toMatchObject({ entries: DEFAULT_RL_BUCKETS_V6, sizedBy: 'capacity.rateBucketsV6' });
    expect(row({ ...CAPACITY, rateBucketsV6: 1000 }, 'xw_rl_buckets').entries).toBe(1000);
    expect(row({ ...CAPACITY, rateBuckets: 1000 }, 'xw_rl_buckets').entries).toBe(DEFAULT_RL_BUCKETS_V6);
    expect(row(CAPACITY, 'xw_rl_buckets_v4')).toMatchObject({ entries: DEFAULT_RL_BUCKETS, sizedBy: 'capacity.rateBuckets' });
    expect(row({ ...CAPACITY, rateBuckets: 1000 }, 'xw_rl_buckets_v4').entries).toBe(1000);
    expect(row({ ...CAPACITY, rateBucketsV6: 1000 }, 'xw_rl_buckets_v4').entries).toBe(DEFAULT_RL_BUCKETS);
  });

  it('rounds the memory limit up to 64 MiB above maps plus the daemon budget', () => {
    const rows = [{ map: 'm', type: 'array', entries: 1, sizedBy: 'fixed', bytes: 1 }];
    expect(memoryLimitBytes(rows)).toBe(640 * 2 ** 20);
  });
});

describe('explaining a failed load', () => {
  it('names the map that ran out of memory, the totals and what to change', () => {
    const error = bpfError(
      "bpf_object__load: Cannot allocate memory [ENOMEM]\nlibbpf: map 'xw_flows': failed to create: Cannot allocate memory(-12)",
      12, 'ENOMEM',
    );
    const text = explainLoadFailure(error, object, 2)!;
    expect(text).toMatch(/^the kernel ran out of memory creating map xw_flows \(\d+\.\d MiB when full, sized by capacity\.flows\); at this configuration on 2 CPUs the maps need up to \d+\.\d MiB \(largest: /);
    expect(text).toContain('lower capacity.cidrV4, capacity.cidrV6 or capacity.flows, or raise the daemon');
    expect(text).not.toContain('\n');
  });

  it('names missing capabilities', () => {
    const status = (capEff: string) => `Name:\tnode\nCapEff:\t${capEff}\n`;
    expect(missingCapabilities(status('000000c000001000'))).toEqual([]);
    expect(missingCapabilities(status('0000008000001000'))).toEqual(['CAP_PERFMON']);
    expect(missingCapabilities(status('0000000000201000'))).toEqual([]); // CAP_SYS_ADMIN covers BPF and PERFMON
    expect(missingCapabilities(status('0000000000000000'))).toEqual(['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN']);
  });

  it('says nothing more for failures it cannot explain', () => {
    expect(explainLoadFailure(bpfError('x', 22, 'EINVAL'), object, 2)).toBeUndefined();
    expect(explainLoadFailure(new Error('x'), object, 2)).toBeUndefined();
  });
});

// Helpers for rate-limit tests: the test build of the data plane (its
// limiter reads the clock from xw_test_clock), rules installed through the
// real PolicyEngine, frames from a source, and the limiter's counters.
import { BpfObject } from '@xdpwall/addon';
import { MAPS, PROGRAMS, RATELIMIT_MAPS, TEST_CLOCK_MAP } from '../../src/datapath/abi.js';
import { PolicyTables, policyMapsOf } from '../../src/policy/tables.js';
import { PolicyEngine, byEvaluationOrder, kernelRuleId } from '../../src/policy/engine.js';
import { parseRule, type PolicyRule, type RuleInput } from '../../src/policy/model.js';
import { RateLimitTables, rateLimitMapsOf } from '../../src/ratelimit/tables.js';
import { ether, ipv4, ipv6, udp } from './packets.js';
import { xdpCtx } from './policy.js';

export const TEST_CLOCK_OBJECT_PATH = new URL('../../xdp/build/xdpwall-testclock.bpf.o', import.meta.url).pathname;

export interface RateLab {
  object: BpfObject;
  engine: PolicyEngine;
  limits: RateLimitTables;
  /** Sets the limiter's clock (ns). */
  setClock(ns: bigint): void;
  /** Installs these ingress rules (ids 1, 2, ... in the order given; evaluated by priority); returns them. */
  install(inputs: RuleInput[]): Promise<PolicyRule[]>;
  /** One packet at the current clock: the XDP return code (1 drop, 2 pass). */
  run(frame: Buffer): number;
  /** `count` runs of the same packet at the current clock. */
  runRepeat(frame: Buffer, count: number): Promise<void>;
  /** Admitted and dropped packets of a rule (by its store id). */
  counts(id: number): { admitted: number; dropped: number; admittedBytes: number };
  close(): void;
}

export async function openRateLab(options: { bucketCapacity?: number } = {}): Promise<RateLab> {
  const object = BpfObject.open(TEST_CLOCK_OBJECT_PATH);
  for (const name of [MAPS.srcV4, MAPS.dstV4, MAPS.srcV6, MAPS.dstV6, MAPS.srcHostV4, MAPS.dstHostV4, MAPS.srcHostV6, MAPS.dstHostV6]) {
    object.setMapMaxEntries(name, 1024);
  }
  object.setMapMaxEntries(MAPS.ruleStats, 1 << 12);
  object.setMapMaxEntries(MAPS.flows, 1 << 12);
  object.setMapMaxEntries(RATELIMIT_MAPS.bucketsV4, options.bucketCapacity ?? 1 << 12);
  object.setMapMaxEntries(RATELIMIT_MAPS.buckets, options.bucketCapacity ?? 1 << 12);
  await object.load();
  let nowNs = 0n;
  const clockMap = object.map(TEST_CLOCK_MAP);
  const zero = Buffer.alloc(4);
  const clockValue = Buffer.alloc(8);
  const limits = new RateLimitTables(rateLimitMapsOf(object), () => nowNs);
  const engine = new PolicyEngine(await PolicyTables.open(policyMapsOf(object)), {
    clock: { wallMs: () => Date.parse('2026-12-02T12:00:00Z'), monotonicNs: () => nowNs },
    ifindexOf: () => undefined,
    rateLimits: limits,
  });
  const ingress = object.program(PROGRAMS.ingress);
  const lab: RateLab = {
    object,
    engine,
    limits,
    setClock(ns) {
      nowNs = ns;
      clockValue.writeBigUInt64LE(ns);
      clockMap.update(zero, clockValue);
    },
    async install(inputs) {
      const rules = inputs.map((input, i): PolicyRule => ({ ...parseRule(input, new Date()), id: i + 1, createdAt: '2026-12-02T12:00:00.000Z' }));
      await engine.install('ingress', [...rules].sort(byEvaluationOrder));
      return rules;
    },
    run: (frame) => ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0 }).retval,
    async runRepeat(frame, count) {
      if (count <= 0) return;
      if (count <= 4) {
        for (let i = 0; i < count; i++) lab.run(frame);
        return;
      }
      ingress.testRunSync({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0, repeat: count });
    },
    counts(id) {
      const s = limits.ruleStats(kernelRuleId(id));
      return { admitted: Number(s.admitted.packets), dropped: Number(s.dropped.packets), admittedBytes: Number(s.admitted.bytes) };
    },
    close: () => object.close(),
  };
  lab.setClock(1_000_000_000n);
  return lab;
}

/** A UDP frame from `src` (IPv4 or IPv6) to port 53, `len` bytes long in all (at least the headers). */
export function udpFrom(src: string, len = 64): Buffer {
  const v6 = src.includes(':');
  const headers = 14 + (v6 ? 40 : 20) + 8;
  const payload = Buffer.alloc(Math.max(0, len - headers), 0xab);
  const l4 = udp({ sport: 40000, dport: 53, payload });
  return ether(v6 ? ipv6({ src, dst: 'fd00:198::1' }, l4) : ipv4({ src, dst: '198.18.7.9' }, l4));
}

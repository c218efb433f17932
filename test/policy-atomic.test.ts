// A rule-set change is atomic for packets: while one packet runs through the
// program on a worker thread (runs of 1M until the tables have flipped four
// times under them), the main thread swaps 1,000 rules for 1,000 different
// ones, back and forth. Each set has exactly one rule the packet matches (a
// log rule, counted), at different positions; every run must be classified
// by one set or the other: counted under pass_log and under one of the two
// rules, never under no rule or another.
// Needs root.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { compileTable } from '../src/policy/compile.js';
import { PolTable } from '../src/datapath/abi.js';
import type { ClassRule } from '../src/policy/reference.js';
import { classRule, frameOf, loadPolicyObject, packet, rulePackets, statsPackets, xdpCtx, type LoadedPolicy } from './lib/policy.js';

let loaded: LoadedPolicy;
beforeAll(async () => {
  loaded = await loadPolicyObject(BPF_OBJECT_PATH);
});
afterAll(() => loaded?.close());

const N = 1000;
const PORT = 20_500;

/** 1,000 rules on distinct ports; the one for PORT sits at `position`; ids from `base`. */
function ruleSet(base: number, position: number): ClassRule[] {
  const ports = Array.from({ length: N }, (_, i) => 20_000 + i).filter((p) => p !== PORT);
  ports.splice(position, 0, PORT);
  return ports.map((port, i) => classRule({ kernelId: base + i, action: 'log', proto: 6, dstPort: { lo: port, hi: port } }));
}

it('swapping 1,000 rules for 1,000 others under a running packet stream leaves no packet classified by neither set', async () => {
  const setA = ruleSet(0x8000_0000 + 1, 10);
  const setB = ruleSet(0x8000_0000 + 10_001, 990);
  const compiledA = compileTable(setA);
  const compiledB = compileTable(setB);
  const idA = setA.find((r) => r.dstPort!.lo === PORT)!.kernelId;
  const idB = setB.find((r) => r.dstPort!.lo === PORT)!.kernelId;
  await loaded.tables.apply(PolTable.ingress, compiledA);

  const frame = frameOf(packet({ proto: 6, dport: PORT }));
  // Runs of 1M packets (about 25 ms each now) until the tables have flipped 4 times under them.
  const repeat = 1_000_000;
  let stop = false;
  let flips = 0;
  const flipper = (async () => {
    while (!stop) {
      await loaded.tables.apply(PolTable.ingress, flips % 2 === 0 ? compiledB : compiledA);
      flips++;
    }
  })();
  let runs = 0;
  try {
    while (runs < 2 || (flips < 4 && runs < 200)) {
      const result = await loaded.progs.ingress.testRun({ data: frame, ctxIn: xdpCtx(frame.length, 1), dataSizeOut: 0, repeat });
      expect(result.retval).toBe(2); // XDP_PASS
      runs++;
    }
  } finally {
    stop = true;
    await flipper;
  }
  const total = BigInt(runs * repeat);

  const hitsA = rulePackets(loaded, idA);
  const hitsB = rulePackets(loaded, idB);
  expect(statsPackets(loaded, 'ingress', 'pass', 'pass_log')).toBe(total);
  expect(statsPackets(loaded, 'ingress', 'pass', 'pass_no_match')).toBe(0n);
  expect(hitsA + hitsB).toBe(total);
  // The swaps happened while packets ran, and both sets classified some.
  expect(flips).toBeGreaterThanOrEqual(4);
  expect(hitsA).toBeGreaterThan(0n);
  expect(hitsB).toBeGreaterThan(0n);
}, 120_000);

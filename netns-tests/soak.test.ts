// A bounded soak (10 s at 50 requests/s, traffic flowing): no errors, and
// the latency and memory figures are reported (the netns suites share the
// machine with other work, so the bounded run keeps a modest rate). `npm run soak` runs the full
// 300 s version (scripts/soak.ts) and also checks memory growth.
import { describe, expect, it } from 'vitest';
import { runSoak } from './lib/soak.js';
import { assertBuilt, assertRoot } from './lib/lab-env.js';

describe('soak', () => {
  assertRoot();
  assertBuilt();

  it('serves 10 s of mixed reads and writes at 50 requests/s with traffic flowing, without an error', { timeout: 120_000 }, async () => {
    const report = await runSoak({ durationS: 10, rate: 50, subnet: 57, progress: (line) => console.error(`soak: ${line}`), progressEveryS: 5 });
    console.log(`soak (bounded): ${JSON.stringify(report)}`);
    expect(report.errorSamples).toEqual([]);
    expect(report.errors).toBe(0);
    expect(report.completed).toBe(report.sent);
    expect(report.sent).toBeGreaterThan(0);
    expect(report.traffic.sent).toBeGreaterThan(0);
    expect(report.traffic.errors).toEqual([]);
    expect(report.traffic.received).toBe(report.traffic.sent);
  });
});

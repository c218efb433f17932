// Time sources, injectable so tests are deterministic. The data plane stamps
// flows with bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC at tick granularity,
// the clock of process.hrtime.bigint() on Linux, a few milliseconds behind.
export interface Clock {
  wallMs(): number;
  monotonicNs(): bigint;
}

export const systemClock: Clock = {
  wallMs: () => Date.now(),
  monotonicNs: () => process.hrtime.bigint(),
};

/**
 * Converts CLOCK_MONOTONIC stamps from the kernel to ISO wall-clock times,
 * against one reading of both clocks taken now: every stamp converted by the
 * returned function shares it, so stamps keep their order (a flow's
 * firstSeen never comes out later than its lastSeen).
 */
export function monotonicToIso(clock: Clock): (stampNs: bigint) => string {
  const nowNs = clock.monotonicNs();
  const nowMs = clock.wallMs();
  return (stampNs) => new Date(nowMs - Number(nowNs - stampNs) / 1e6).toISOString();
}

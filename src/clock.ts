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

/** Converts a CLOCK_MONOTONIC stamp from the kernel to an ISO wall-clock time. */
export function monotonicToIso(clock: Clock, stampNs: bigint): string {
  const ageMs = Number(clock.monotonicNs() - stampNs) / 1e6;
  return new Date(clock.wallMs() - ageMs).toISOString();
}

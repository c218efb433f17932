// A real Firewall for tests: the compiled data plane loaded into the kernel
// with private (unpinned) maps, attached to nothing, and an in-memory store.
import { Firewall } from '../../src/firewall.js';
import { BPF_OBJECT_PATH } from '../../src/paths.js';
import type { Clock } from '../../src/clock.js';
import type { Config } from '../../src/config.js';
import type { FailsafeEntry } from '../../src/policy/failsafe.js';
import type { PolicyDefaults } from '../../src/policy/engine.js';

export const quietLog = { info: () => {}, warn: () => {} };

export async function openTestFirewall(
  capacity: Config['capacity'] = { cidrV4: 1024, cidrV6: 1024, flows: 1024 },
  clock?: Clock,
  policy: { policy?: PolicyDefaults; failsafe?: FailsafeEntry[]; storePath?: string } = {},
): Promise<Firewall> {
  const { firewall } = await Firewall.open(
    { objectPath: BPF_OBJECT_PATH, storePath: policy.storePath ?? ':memory:', pin: null, capacity, countersCacheMs: 1, clock, policy: policy.policy, failsafe: policy.failsafe },
    quietLog,
  );
  return firewall;
}

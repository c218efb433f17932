// Why loading the data plane failed, in terms an operator can act on: which
// capability is missing, or which map ran out of kernel memory, how much the
// maps need, and what to change. The full libbpf log stays in the daemon log.
import { readFileSync } from 'node:fs';
import { BpfError, type BpfObject } from '@xdpwall/addon';
import { mapMemory, mib, totalBytes } from './memory.js';

const CAPABILITIES = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21, CAP_PERFMON: 38, CAP_BPF: 39 } as const;

/** The capabilities among CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN this process lacks (CAP_SYS_ADMIN covers the first two). */
export function missingCapabilities(status = readFileSync('/proc/self/status', 'utf8')): string[] {
  const effective = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`);
  const has = (name: keyof typeof CAPABILITIES) => (effective >> BigInt(CAPABILITIES[name])) & 1n;
  const sysAdmin = has('CAP_SYS_ADMIN') === 1n;
  return (['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN'] as const).filter(
    (name) => has(name) === 0n && !(sysAdmin && name !== 'CAP_NET_ADMIN'),
  );
}

/**
 * A one-line explanation for a failed load, or undefined when there is
 * nothing more specific to say than the error itself.
 */
export function explainLoadFailure(error: unknown, object: BpfObject, cpus: number): string | undefined {
  if (!(error instanceof BpfError)) return undefined;
  if (error.code === 'ENOMEM') {
    const rows = mapMemory(object.mapNames().map((name) => object.map(name)), cpus);
    const failed = rows.find((row) => error.message.includes(`map '${row.map}': failed to create`));
    const which = failed
      ? `creating map ${failed.map} (${mib(failed.bytes)} when full, sized by ${failed.sizedBy})`
      : 'creating the maps';
    const largest = [...rows].sort((a, b) => b.bytes - a.bytes).slice(0, 3).map((row) => `${row.map} ${mib(row.bytes)}`);
    return (
      `the kernel ran out of memory ${which}; at this configuration on ${cpus} CPUs the maps need up to ` +
      `${mib(totalBytes(rows))} (largest: ${largest.join(', ')}): lower capacity.cidrV4, capacity.cidrV6 or ` +
      `capacity.flows, or raise the daemon's memory limit (systemd MemoryMax=, Kubernetes resources.limits.memory); ` +
      '`xdpwall memory --config FILE` prints the figures'
    );
  }
  if (error.code === 'EPERM' || error.code === 'EACCES') {
    const missing = missingCapabilities();
    if (missing.length) {
      return `the daemon lacks ${missing.join(' and ')}: it needs CAP_BPF, CAP_PERFMON (the verifier refuses the data plane's pointer comparisons without it) and CAP_NET_ADMIN`;
    }
  }
  return undefined;
}

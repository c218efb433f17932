// Per-suite lab environment: preconditions, a unique namespace prefix, a
// client/server namespace pair joined by a veth, and the sweep that removes
// them again (also namespaces left behind by earlier runs that died).
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createVethPair,
  deleteNetnsByPrefix,
  listNetns,
  deleteNetns,
  type VethEnd,
} from '../../src/lab/netns.js';
import { processExists } from '../../src/lab/run.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI_PATH = join(REPO_ROOT, 'dist', 'cli', 'main.js');

const TEST_NETNS_PREFIX = 'xwt-';

/** Throws a readable error unless this process is root (namespaces, XDP attach). */
export function assertRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('netns suites need root: run them as root');
}

/** Throws a readable error unless the daemon has been built. */
export function assertBuilt(): void {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` first`);
}

/** "xwt-<pid>-<random>-": unique to this process and suite. */
export function uniquePrefix(): string {
  return `${TEST_NETNS_PREFIX}${process.pid}-${randomBytes(2).toString('hex')}-`;
}

/** Deletes test namespaces whose creating process no longer exists. */
export async function sweepStaleTestNetns(): Promise<string[]> {
  const stale = (await listNetns(TEST_NETNS_PREFIX)).filter((name) => {
    const pid = Number(/^xwt-(\d+)-/.exec(name)?.[1]);
    return Number.isInteger(pid) && pid > 0 && !processExists(pid);
  });
  for (const name of stale) await deleteNetns(name);
  return stale;
}

export interface LabPair {
  prefix: string;
  /** Sends traffic; the remote peer in the daemon's flow records. */
  client: VethEnd;
  /** Where the daemon filters (the local host in flow records). */
  server: VethEnd;
  /** The daemon's --iface value for the server end: "NETNS/IFNAME". */
  serverIface: string;
  /** Removes every namespace with this suite's prefix. Idempotent. */
  destroy(): Promise<void>;
}

/**
 * Creates `<prefix>c` and `<prefix>s` joined by a veth pair. `subnet` picks the
 * third IPv4 octet and the IPv6 /64 so suites never share addresses.
 */
export async function createLabPair(subnet: number): Promise<LabPair> {
  if (!Number.isInteger(subnet) || subnet < 0 || subnet > 255) throw new Error(`subnet ${subnet} out of range`);
  await sweepStaleTestNetns();
  const prefix = uniquePrefix();
  const client: VethEnd = {
    netns: `${prefix}c`,
    ifname: 'xwc0',
    ipv4: `198.18.${subnet}.1/24`,
    ipv6: `fd00:198:0:${subnet.toString(16)}::1/64`,
  };
  const server: VethEnd = {
    netns: `${prefix}s`,
    ifname: 'xws0',
    ipv4: `198.18.${subnet}.2/24`,
    ipv6: `fd00:198:0:${subnet.toString(16)}::2/64`,
  };
  const destroy = async (): Promise<void> => {
    await deleteNetnsByPrefix(prefix);
  };
  try {
    await createVethPair({ a: client, b: server });
  } catch (error) {
    await destroy();
    throw error;
  }
  return { prefix, client, server, serverIface: `${server.netns}/${server.ifname}`, destroy };
}

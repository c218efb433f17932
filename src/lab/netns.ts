// Lab network namespaces: pairs of namespaces joined by a veth pair, and a way
// to run commands inside them.
//
// Everything is created inside the lab namespaces (`ip -n NS ...`): the root
// namespace's interfaces, routes and firewall are never touched. Addresses
// must come from the benchmarking ranges 198.18.0.0/15 and fd00:198::/48, so
// lab traffic can never leave for a real network.
//
// Commands that need /sys/fs/bpf run through `nsenter --net=...`, which only
// switches the network namespace; `ip netns exec` remounts /sys and hides bpffs.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run, runChecked, type RunOptions, type RunResult } from './run.js';

export const NETNS_DIR = '/run/netns';

/** One end of a veth pair: the namespace it lives in, its name and addresses (with prefix length). */
export interface VethEnd {
  netns: string;
  ifname: string;
  /** e.g. "198.18.0.1/24" */
  ipv4: string;
  /** e.g. "fd00:198::1/64" (added with nodad: usable at once) */
  ipv6: string;
}

export interface VethPair {
  a: VethEnd;
  b: VethEnd;
}

const LAB_RANGES = new BlockList();
LAB_RANGES.addSubnet('198.18.0.0', 15, 'ipv4');
LAB_RANGES.addSubnet('fd00:198::', 48, 'ipv6');

const NETNS_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/** The address part of "ADDR/LEN". */
export function hostAddress(cidr: string): string {
  return cidr.split('/')[0] ?? cidr;
}

/** True when the address (or CIDR) lies in 198.18.0.0/15 or fd00:198::/48. */
export function isLabAddress(address: string): boolean {
  const host = hostAddress(address);
  if (isIPv4(host)) return LAB_RANGES.check(host, 'ipv4');
  if (isIPv6(host)) return LAB_RANGES.check(host, 'ipv6');
  return false;
}

function assertNetnsName(name: string): void {
  if (!NETNS_NAME.test(name)) throw new Error(`invalid network namespace name "${name}"`);
}

function assertVethEnd(end: VethEnd): void {
  assertNetnsName(end.netns);
  if (!IFNAME.test(end.ifname)) throw new Error(`invalid interface name "${end.ifname}" (at most 15 characters)`);
  if (!isIPv4(hostAddress(end.ipv4)) || !isLabAddress(end.ipv4)) {
    throw new Error(`${end.ipv4} is not an IPv4 address in 198.18.0.0/15`);
  }
  if (!isIPv6(hostAddress(end.ipv6)) || !isLabAddress(end.ipv6)) {
    throw new Error(`${end.ipv6} is not an IPv6 address in fd00:198::/48`);
  }
}

export function netnsPath(name: string): string {
  assertNetnsName(name);
  return join(NETNS_DIR, name);
}

/** Names of existing namespaces starting with prefix, sorted. */
export async function listNetns(prefix = ''): Promise<string[]> {
  try {
    const names = await readdir(NETNS_DIR);
    return names.filter((name) => name.startsWith(prefix)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

export async function netnsExists(name: string): Promise<boolean> {
  assertNetnsName(name);
  return (await listNetns(name)).includes(name);
}

export async function createNetns(name: string): Promise<void> {
  assertNetnsName(name);
  await runChecked(['ip', 'netns', 'add', name]);
  await runChecked(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
}

/** Deletes the namespace (and with it its veth ends). Resolves false if it did not exist. */
export async function deleteNetns(name: string): Promise<boolean> {
  if (!(await netnsExists(name))) return false;
  await runChecked(['ip', 'netns', 'delete', name]);
  return true;
}

/** Deletes every namespace whose name starts with prefix; resolves to the names deleted. */
export async function deleteNetnsByPrefix(prefix: string): Promise<string[]> {
  if (prefix.length < 3) throw new Error(`refusing to sweep namespaces by the short prefix "${prefix}"`);
  const names = await listNetns(prefix);
  for (const name of names) await deleteNetns(name);
  return names;
}

async function configureEnd(end: VethEnd): Promise<void> {
  const ip = ['ip', '-n', end.netns];
  await runChecked([...ip, 'addr', 'add', end.ipv4, 'dev', end.ifname]);
  await runChecked([...ip, '-6', 'addr', 'add', end.ipv6, 'dev', end.ifname, 'nodad']);
  await runChecked([...ip, 'link', 'set', end.ifname, 'up']);
}

/**
 * Creates both namespaces and a veth pair between them, addressed and up.
 * On any failure the namespaces it created are deleted again.
 */
export async function createVethPair(pair: VethPair): Promise<void> {
  assertVethEnd(pair.a);
  assertVethEnd(pair.b);
  if (pair.a.netns === pair.b.netns) throw new Error('both veth ends are in the same namespace');
  const created: string[] = [];
  try {
    for (const end of [pair.a, pair.b]) {
      await createNetns(end.netns);
      created.push(end.netns);
    }
    // Created inside a's namespace with the peer moved straight into b's: never in the root namespace.
    await runChecked([
      'ip', '-n', pair.a.netns, 'link', 'add', pair.a.ifname, 'type', 'veth',
      'peer', 'name', pair.b.ifname, 'netns', pair.b.netns,
    ]);
    await configureEnd(pair.a);
    await configureEnd(pair.b);
  } catch (error) {
    for (const name of created) await deleteNetns(name).catch(() => undefined);
    throw error;
  }
}

/** argv that runs `argv` inside the namespace, keeping this mount namespace (and bpffs). */
export function nsenterArgv(netns: string, argv: readonly string[]): string[] {
  return ['nsenter', `--net=${netnsPath(netns)}`, '--', ...argv];
}

/** Runs argv inside the namespace; resolves with the result whatever the exit status. */
export function runInNetns(netns: string, argv: readonly string[], options?: RunOptions): Promise<RunResult> {
  return run(nsenterArgv(netns, argv), options);
}

/** Runs argv inside the namespace and throws unless it exits 0; resolves with stdout. */
export function runInNetnsChecked(netns: string, argv: readonly string[], options?: RunOptions): Promise<string> {
  return runChecked(nsenterArgv(netns, argv), options);
}

/** Starts a long-running process inside the namespace (the caller stops it by PID). */
export function spawnInNetns(netns: string, argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const [file, ...args] = nsenterArgv(netns, argv);
  return spawn(file as string, args, options);
}

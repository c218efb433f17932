// An exclusive lock on a directory (the state directory, the bpffs pin
// directory) so that two daemons never share one. flock(2) on the directory
// itself: no lock file to leave behind, and the kernel releases it when the
// holder exits, kill -9 included. A refusal names the holder's pid, found in
// /proc/locks by the directory's device and inode.
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { flockExclusive } from '@xdpwall/addon';
import { LockedError } from './errors.js';

export interface DirLock {
  readonly path: string;
  /** Idempotent. */
  release(): void;
}

/** Takes the lock or throws LockedError naming the holder; `what` names the directory in the message. */
export function lockDirectory(path: string, what: string): DirLock {
  const fd = openSync(path, 'r');
  let taken = false;
  try {
    taken = flockExclusive(fd);
  } finally {
    if (!taken) closeSync(fd);
  }
  if (!taken) {
    const holder = lockHolder(path);
    throw new LockedError(
      `${what} ${path} is locked by another xdpwall process${holder ? ` (pid ${holder})` : ''}: one daemon per state directory and pin directory`,
    );
  }
  let open = true;
  return {
    path,
    release() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

/** The pid /proc/locks gives for a FLOCK on this file, if any. */
export function lockHolder(path: string): number | undefined {
  const { dev, ino } = statSync(path);
  const device = `${hex(major(dev))}:${hex(minor(dev))}:${ino}`;
  // "1: FLOCK  ADVISORY  WRITE 4242 00:2a:1234 0 EOF"
  for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === 'FLOCK' && fields[5]?.toLowerCase() === device) return Number(fields[4]);
  }
  return undefined;
}

// glibc's gnu_dev_major/minor; /proc/locks prints them as two-digit hex.
const major = (dev: number): number => Number(((BigInt(dev) >> 8n) & 0xfffn) | ((BigInt(dev) >> 32n) & ~0xfffn));
const minor = (dev: number): number => Number((BigInt(dev) & 0xffn) | ((BigInt(dev) >> 12n) & ~0xffn));
const hex = (n: number): string => n.toString(16).padStart(2, '0');

// Start-up checks that turn the system's failures into one line an operator
// can act on, before anything is loaded into the kernel.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../src/errors.js';

/**
 * Creates the state directory and its missing parents, one level at a time.
 * mkdirSync({recursive: true}) loops forever at 100% CPU where a parent
 * refuses new entries without saying EACCES (e.g. under /proc), so each
 * level is created on its own and the first refusal is reported.
 */
export function ensureStateDir(dir: string): void {
  const missing: string[] = [];
  let existing = dir;
  while (!existsSync(existing)) {
    missing.unshift(existing);
    if (dirname(existing) === existing) break;
    existing = dirname(existing);
  }
  if (!statSync(existing).isDirectory()) {
    throw new ConfigError(`state directory ${dir}: ${existing} exists and is not a directory`);
  }
  for (const path of missing) {
    try {
      mkdirSync(path, { mode: 0o700 });
    } catch (error) {
      throw new ConfigError(`cannot create the state directory ${dir}: ${(error as Error).message}`);
    }
  }
}

/** A unix socket needs an existing directory; the kernel's EACCES for a missing one misleads. */
export function checkSocketDir(path: string): void {
  const dir = dirname(path);
  if (!existsSync(dir)) throw new ConfigError(`cannot listen on unix:${path}: the directory ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new ConfigError(`cannot listen on unix:${path}: ${dir} is not a directory`);
}

/** A listen failure (address in use, not available, no permission) as one line. */
export function listenError(address: string, error: unknown): ConfigError {
  const { code, message } = error as NodeJS.ErrnoException;
  const why: Record<string, string> = {
    EADDRINUSE: 'the address is already in use (another xdpwall?)',
    EADDRNOTAVAIL: 'no local interface has that address',
    EACCES: 'permission denied',
  };
  return new ConfigError(`cannot listen on ${address}: ${(code && why[code]) ?? message}`);
}

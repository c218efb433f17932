// The API's unix socket is root/group-only from its first moment. Setting
// the mode after listen() leaves a window in which anyone may connect (and a
// connection made then outlives any later chmod), and umask is process-wide
// (other threads create files too). So: listen inside a fresh 0700 directory
// that nobody else can enter, set mode and group there, then rename the
// socket into place. The rename is atomic, so at `path` the socket only ever
// exists with its final permissions.
import { chmodSync, chownSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError } from '../errors.js';

export const SOCKET_MODE = 0o660;

export interface SocketPermissions {
  mode: number;
  /** Group owner; the daemon's own group when absent. */
  gid?: number;
}

/**
 * Calls `listenAt` with a private path, gives the socket its permissions and
 * moves it to `path` (replacing a socket left by a crashed run). The private
 * path is short (`DIR/.xw-XXXXXX/s`) because socket paths are limited to
 * 107 bytes.
 */
export async function listenPrivately(path: string, permissions: SocketPermissions, listenAt: (privatePath: string) => Promise<unknown>): Promise<void> {
  let dir: string;
  try {
    dir = mkdtempSync(join(dirname(path), '.xw-')); // mkdtemp makes it 0700
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw new ConfigError(`cannot create the API socket ${path}: ${code === 'ENOENT' ? `directory ${dirname(path)} does not exist` : message}`);
  }
  const privatePath = join(dir, 's');
  try {
    await listenAt(privatePath);
    chmodSync(privatePath, permissions.mode);
    if (permissions.gid !== undefined) chownSync(privatePath, -1, permissions.gid);
    renameSync(privatePath, path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A group name or number from the config, as a gid. */
export function resolveGroup(group: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(group)) return Number(group);
  const line = readFileSync(groupFile, 'utf8')
    .split('\n')
    .find((entry) => entry.split(':')[0] === group);
  const gid = line === undefined ? NaN : Number(line.split(':')[2]);
  if (!Number.isInteger(gid)) throw new ConfigError(`api.socketGroup: no group named "${group}" in ${groupFile}`);
  return gid;
}

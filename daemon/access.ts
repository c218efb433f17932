// The daemon's side of access control: the access store in the state
// directory, the rate limiter, TLS material and the socket's group, all from
// the config, ready for buildApp and listen.
import { readFileSync } from 'node:fs';
import type { ApiAccess } from '../api/app.js';
import type { Config } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { AccessStore } from '../src/auth/access.js';
import { accessStorePathIn } from '../src/auth/store.js';
import { RateLimiter } from '../src/auth/rate-limit.js';
import { resolveGroup, SOCKET_MODE, type SocketPermissions } from '../src/auth/unix-socket.js';

export interface DaemonAccess {
  access: ApiAccess;
  tls?: { cert: Buffer; key: Buffer };
  socket: SocketPermissions;
  close(): void;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(`${what}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

export function openDaemonAccess(config: Config): DaemonAccess {
  const { api } = config;
  // Resolve and read everything that can fail before opening the store.
  const tls = api.tls && { cert: readPem(api.tls.cert, 'api.tls.cert'), key: readPem(api.tls.key, 'api.tls.key') };
  const socket: SocketPermissions = { mode: SOCKET_MODE, ...(api.socketGroup !== undefined && { gid: resolveGroup(api.socketGroup) }) };
  const store = AccessStore.open(accessStorePathIn(config.stateDir), { synchronous: 'NORMAL', auditRetention: api.auditRetention });
  return {
    access: {
      listener: config.listen,
      store,
      hostNames: api.hostNames,
      publicMetrics: api.publicMetrics,
      rateLimiter: new RateLimiter(api.rateLimit),
    },
    ...(tls && { tls }),
    socket,
    close: () => store.close(),
  };
}

// The `api:` section of the daemon's config file: who may reach the API.
//
//   api:
//     hostNames: [fw1.example.net]    # Host header names accepted besides the listener's own address
//     publicMetrics: true             # false: /metrics needs a read token on TCP
//     socketGroup: xdpwall            # group of the unix socket (mode 0660); default: the daemon's group
//     tls: { cert: /etc/xdpwall/tls.crt, key: /etc/xdpwall/tls.key }
//     rateLimit: { burst: 100, perSecond: 20 }   # changes per principal
//     auditRetention: 100000          # audit rows kept
import { ConfigError } from '../errors.js';
import { DEFAULT_AUDIT_RETENTION } from './audit.js';
import type { RateLimit } from './rate-limit.js';

export interface ApiConfig {
  hostNames: string[];
  publicMetrics: boolean;
  socketGroup?: string;
  tls?: { cert: string; key: string };
  rateLimit: RateLimit;
  auditRetention: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { burst: 100, perSecond: 20 };

const KEYS = ['hostNames', 'publicMetrics', 'socketGroup', 'tls', 'rateLimit', 'auditRetention'];

function mapping(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${what} must be a mapping`);
  return value as Record<string, unknown>;
}

function positive(value: unknown, what: string, fallback: number, integer = true): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new ConfigError(`${what} must be a positive ${integer ? 'integer' : 'number'}`);
  }
  return value;
}

function nonEmptyString(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${what} must be a non-empty string`);
  return value;
}

export function parseApiConfig(value: unknown): ApiConfig {
  const api = mapping(value, 'api');
  const unknown = Object.keys(api).filter((key) => !KEYS.includes(key));
  if (unknown.length > 0) throw new ConfigError(`api: unknown key ${unknown.join(', ')} (known: ${KEYS.join(', ')})`);

  const hostNames = api.hostNames ?? [];
  if (!Array.isArray(hostNames)) throw new ConfigError('api.hostNames must be a list of names');
  if (api.publicMetrics !== undefined && typeof api.publicMetrics !== 'boolean') throw new ConfigError('api.publicMetrics must be true or false');
  const tls = api.tls === undefined ? undefined : mapping(api.tls, 'api.tls');
  const rateLimit = mapping(api.rateLimit, 'api.rateLimit');
  return {
    hostNames: hostNames.map((name, i) => nonEmptyString(name, `api.hostNames[${i}]`).toLowerCase()),
    publicMetrics: api.publicMetrics ?? true,
    ...(api.socketGroup !== undefined && { socketGroup: String(api.socketGroup) }),
    ...(tls && { tls: { cert: nonEmptyString(tls.cert, 'api.tls.cert'), key: nonEmptyString(tls.key, 'api.tls.key') } }),
    rateLimit: {
      burst: positive(rateLimit.burst, 'api.rateLimit.burst', DEFAULT_RATE_LIMIT.burst),
      perSecond: positive(rateLimit.perSecond, 'api.rateLimit.perSecond', DEFAULT_RATE_LIMIT.perSecond, false),
    },
    auditRetention: positive(api.auditRetention, 'api.auditRetention', DEFAULT_AUDIT_RETENTION),
  };
}

// The access layer's parts on their own: token storage, the rate limiter on
// a stepped clock, the self lock-out guard (both directions, IPv6, mapped
// addresses), audit retention, the `api:` config section and the lab token.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AccessStore } from '../src/auth/access.js';
import { accessStorePathIn } from '../src/auth/store.js';
import { RateLimiter } from '../src/auth/rate-limit.js';
import { SelfLockoutGuard } from '../src/auth/lockout.js';
import { scopeAllows } from '../src/auth/tokens.js';
import { parseApiConfig, DEFAULT_RATE_LIMIT } from '../src/auth/config.js';
import { ensureLabToken, LAB_TOKEN_FILE } from '../src/lab/token.js';
import { listenPrivately } from '../src/auth/unix-socket.js';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'xw-auth-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

describe('tokens', () => {
  it('stores only a digest, and verifies the secret in a second connection at once', () => {
    const path = accessStorePathIn(tempDir());
    const cli = AccessStore.open(path, { synchronous: 'FULL' });
    const daemon = AccessStore.open(path, { synchronous: 'NORMAL' });
    try {
      expect(daemon.tokens.verify('xdpw_' + 'A'.repeat(43))).toBeUndefined();
      const { token, info } = cli.tokens.create('ops', 'write');
      expect(token).toMatch(/^xdpw_[A-Za-z0-9_-]{43}$/);
      expect(daemon.tokens.verify(token)).toEqual(info);
      cli.tokens.revoke('ops');
      expect(daemon.tokens.verify(token)).toBeUndefined();
      // The name is free again once revoked; the old secret stays dead.
      const again = cli.tokens.create('ops', 'read');
      expect(daemon.tokens.verify(again.token)?.scope).toBe('read');
      expect(daemon.tokens.verify(token)).toBeUndefined();
    } finally {
      cli.close();
      daemon.close();
    }
    const file = readFileSync(path).toString('latin1') + readFileSync(`${path}-wal`, { flag: 'a+' }).toString('latin1');
    expect(file).not.toMatch(/xdpw_/);
  });

  it.each([['unix'], ['local'], ['anonymous'], [''], ['-x'], ['a b'], ['x'.repeat(65)]])('refuses the name %j', (name) => {
    const store = AccessStore.open(':memory:', { synchronous: 'NORMAL' });
    try {
      expect(() => store.tokens.create(name, 'read')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    } finally {
      store.close();
    }
  });

  it('orders scopes read < write < admin', () => {
    expect([scopeAllows('read', 'write'), scopeAllows('write', 'write'), scopeAllows('admin', 'write'), scopeAllows('write', 'admin')]).toEqual([false, true, true, false]);
  });
});

describe('RateLimiter', () => {
  it('gives a burst, then one request per 1/perSecond, with whole-second Retry-After', () => {
    let now = 1_000;
    const limiter = new RateLimiter({ burst: 2, perSecond: 4 }, () => now);
    expect([limiter.take('a'), limiter.take('a')]).toEqual([{ allowed: true }, { allowed: true }]);
    expect(limiter.take('a')).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(limiter.take('b')).toEqual({ allowed: true });
    now += 249;
    expect(limiter.take('a').allowed).toBe(false);
    now += 1;
    expect(limiter.take('a').allowed).toBe(true);
    now += 10_000; // refills to the burst, not beyond
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')].map((d) => d.allowed)).toEqual([true, true, false]);
  });

  it('rounds Retry-After up at slow rates', () => {
    const limiter = new RateLimiter({ burst: 1, perSecond: 0.1 }, () => 0);
    limiter.take('a');
    expect(limiter.take('a')).toEqual({ allowed: false, retryAfterSeconds: 10 });
  });
});

describe('SelfLockoutGuard', () => {
  const guard = new SelfLockoutGuard({ remote: '::ffff:198.18.5.9', local: '198.18.0.2' });

  it.each([
    ['198.18.5.9', 'src'],
    ['198.18.5.0/24', 'src'],
    ['0.0.0.0/0', 'src'],
    ['198.18.0.2/32', 'dst'],
    ['198.18.0.0/16', 'dst'],
  ] as const)('refuses %s (%s)', (cidr, direction) => {
    expect(() => guard.check({ cidr, direction })).toThrow(expect.objectContaining({ code: 'SELF_LOCKOUT' }));
    expect(() => guard.check({ cidr, direction, force: true })).not.toThrow();
  });

  it.each([
    ['198.18.0.2/32', 'src'],
    ['198.18.5.9/32', 'dst'],
    ['198.18.6.0/24', 'src'],
    ['::/0', 'src'],
    ['not a cidr', 'src'],
  ] as const)('allows %s (%s)', (cidr, direction) => {
    expect(() => guard.check({ cidr, direction })).not.toThrow();
  });

  it('works for IPv6 clients', () => {
    const v6 = new SelfLockoutGuard({ remote: '2001:db8::7', local: '2001:db8::1' });
    expect(() => v6.check({ cidr: '2001:db8::/32' })).toThrow(/2001:db8::7/);
    expect(() => v6.check({ cidr: '2001:db8::1/128', direction: 'dst' })).toThrow(/2001:db8::1/);
    expect(() => v6.check({ cidr: '0.0.0.0/0' })).not.toThrow();
  });

  it('is idle for loopback and unix-socket clients', () => {
    expect(new SelfLockoutGuard({ remote: '127.0.0.1', local: '127.0.0.1' }).idle).toBe(true);
    expect(new SelfLockoutGuard({ remote: '::1', local: '::1' }).idle).toBe(true);
    expect(new SelfLockoutGuard({}).idle).toBe(true);
    expect(guard.idle).toBe(false);
  });

  it('names the first offending bulk item', async () => {
    const items = Array.from({ length: 20_000 }, (_, i) => ({ cidr: `10.${i >> 8}.${i & 255}.0/24` }));
    items[17_000] = { cidr: '198.18.0.0/15' };
    await expect(guard.checkMany(items)).rejects.toThrow(/^items\[17000\]: /);
    await expect(guard.checkMany(items, true)).resolves.toBeUndefined();
  });
});

describe('AuditLog', () => {
  it('keeps at most the configured number of rows, newest last', () => {
    const store = AccessStore.open(':memory:', { synchronous: 'NORMAL', auditRetention: 10 });
    try {
      for (let i = 0; i < 600; i++) {
        store.audit.append({ time: new Date(i * 1000).toISOString(), principal: 'p', remote: null, method: 'POST', route: '/v1/blocks', status: 201, detail: { count: i } });
      }
      const kept = store.audit.list({ limit: 1000 });
      // Pruning runs every 256 inserts: 600 rows leave the last prune at 512 (keeps 10) plus 88 since.
      expect(kept).toHaveLength(98);
      expect(kept.at(-1)!.detail.count).toBe(599);
      expect(store.audit.list({ limit: 2, since: new Date(595_000).toISOString() }).map((e) => e.detail.count)).toEqual([595, 596]);
    } finally {
      store.close();
    }
  });
});

describe('api config', () => {
  it('has defaults', () => {
    expect(parseApiConfig(undefined)).toEqual({ hostNames: [], publicMetrics: true, rateLimit: DEFAULT_RATE_LIMIT, auditRetention: 100_000 });
  });

  it('reads every key, host names lowercased', () => {
    const api = {
      hostNames: ['FW1.example.net'],
      publicMetrics: false,
      socketGroup: 'xdpwall',
      tls: { cert: '/c', key: '/k' },
      rateLimit: { burst: 5, perSecond: 0.5 },
      auditRetention: 10,
    };
    expect(parseApiConfig(api)).toEqual({ ...api, hostNames: ['fw1.example.net'] });
  });

  it.each([
    [{ hostname: ['x'] }, /unknown key hostname/],
    [{ hostNames: 'x' }, /api.hostNames must be a list/],
    [{ publicMetrics: 'no' }, /api.publicMetrics must be true or false/],
    [{ tls: { cert: '/c' } }, /api.tls.key must be a non-empty string/],
    [{ rateLimit: { burst: 0 } }, /api.rateLimit.burst must be a positive integer/],
    [{ rateLimit: { perSecond: -1 } }, /api.rateLimit.perSecond must be a positive number/],
  ])('refuses %j', (api, message) => {
    expect(() => parseApiConfig(api)).toThrow(message);
  });
});

describe('lab token', () => {
  it('makes an admin token once, keeps it in a 0600 file, and replaces it when revoked', () => {
    const stateDir = tempDir();
    const first = ensureLabToken(stateDir);
    expect(ensureLabToken(stateDir)).toBe(first);
    const file = join(stateDir, LAB_TOKEN_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toBe(`${first}\n`);

    const store = AccessStore.open(accessStorePathIn(stateDir), { synchronous: 'FULL' });
    try {
      expect(store.tokens.verify(first)).toMatchObject({ name: 'lab', scope: 'admin' });
      store.tokens.revoke('lab');
      const second = ensureLabToken(stateDir);
      expect(second).not.toBe(first);
      expect(store.tokens.verify(second)).toMatchObject({ name: 'lab', scope: 'admin' });
    } finally {
      store.close();
    }
  });
});

describe('listenPrivately', () => {
  it('says which directory is missing, in one line', async () => {
    await expect(listenPrivately('/nonexistent-xw/api.sock', { mode: 0o660 }, async () => {})).rejects.toThrow(
      'cannot create the API socket /nonexistent-xw/api.sock: directory /nonexistent-xw does not exist',
    );
  });
});

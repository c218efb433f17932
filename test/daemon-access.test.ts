// Access control in the real daemon: the unix socket's mode and group are set
// before it accepts anyone (checked by connecting as another user), the token
// CLI run as a process against the daemon's state directory while it serves,
// and a TLS round trip with a self-signed certificate.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { startDaemon, type RunningDaemon } from '../daemon/serve.js';
import { pinDirFor } from '../src/firewall.js';
import { ApiClient } from '../cli/client.js';
import { listenPrivately, resolveGroup, SOCKET_MODE } from '../src/auth/unix-socket.js';
import { CLI_PATH } from '../netns-tests/lib/lab-env.js';
import { run } from '../src/lab/run.js';

const silent = pino({ level: 'silent' });
const NOBODY = 65534;
const NOGROUP = resolveGroup('nogroup');
const cleanups: Array<() => void> = [];
afterAll(() => cleanups.reverse().forEach((cleanup) => cleanup()));

/** A state directory whose socket other users could reach if its mode let them (the directory is 0711). */
function newStateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'xw-access-'));
  chmodSync(dir, 0o711);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function daemonWith(stateDir: string, listen: string, api: object): Promise<RunningDaemon> {
  const configFile = join(stateDir, 'config.json');
  writeFileSync(configFile, JSON.stringify({ api }));
  const instance = `test-access-${process.pid}-${cleanups.length}`;
  cleanups.push(() => rmSync(pinDirFor('/sys/fs/bpf', instance), { recursive: true, force: true }));
  const daemon = await startDaemon(loadConfig(configFile, { stateDir, listen, instance, logLevel: 'silent' }), silent);
  cleanups.push(() => void daemon.stop());
  return daemon;
}

/** Tries to connect to a unix socket as uid nobody with only `gid`; "connected" or the errno code. */
function connectAs(gid: number, path: string): string {
  const script = `require('net').connect(${JSON.stringify(path)}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`;
  const result = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${gid}`, '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8', timeout: 10_000 });
  return result.stdout.trim() || result.stderr.trim();
}

/** The built CLI as a process; asynchronous, because the daemon it talks to runs in this process. */
async function cli(args: string[], env: Record<string, string> = {}) {
  const { code, stdout, stderr } = await run([process.execPath, CLI_PATH, ...args], { timeoutMs: 15_000, env });
  return { status: code, stdout, stderr };
}

describe('the unix socket', () => {
  it('is never reachable at its path before it has its mode: it is bound in a private directory and renamed', async () => {
    const dir = newStateDir();
    const path = join(dir, 'api.sock');
    const { createServer } = await import('node:net');
    const server = createServer();
    cleanups.push(() => server.close());
    await listenPrivately(path, { mode: SOCKET_MODE, gid: NOGROUP }, async (privatePath) => {
      await new Promise<void>((resolve) => server.listen(privatePath, resolve));
      // Listening now: the real path does not exist yet, and the private directory admits only its owner.
      expect(existsSync(path)).toBe(false);
      expect(statSync(join(privatePath, '..')).mode & 0o777).toBe(0o700);
      expect(connectAs(NOGROUP, privatePath)).toBe('EACCES');
    });
    const socket = statSync(path);
    expect(socket.isSocket()).toBe(true);
    expect([socket.mode & 0o777, socket.gid]).toEqual([0o660, NOGROUP]);
    expect(existsSync(join(server.address() as string, '..'))).toBe(false);
  });

  it('admits the configured group and refuses other users, with no token; "unix" is the audited principal', async () => {
    const stateDir = newStateDir();
    const path = join(stateDir, 'api.sock');
    await daemonWith(stateDir, `unix:${path}`, { socketGroup: 'nogroup' });
    const socket = statSync(path);
    expect([socket.mode & 0o777, socket.gid]).toEqual([0o660, NOGROUP]);
    // Fails if the mode were 0666: then any user could connect.
    expect(connectAs(1, path)).toBe('EACCES');
    expect(connectAs(NOGROUP, path)).toBe('connected');

    const client = new ApiClient(`unix:${path}`);
    expect((await client.call('POST', '/v1/blocks', { cidr: '198.18.80.0/24' })).status).toBe(201);
    const audit = await client.call<{ items: Array<{ principal: string; remote: string | null; status: number }> }>('GET', '/v1/audit');
    expect(audit.body.items.at(-1)).toMatchObject({ principal: 'unix', remote: null, status: 201 });
  });
});

describe('token CLI and TLS against a running daemon', () => {
  it('creates a token the running daemon accepts at once, over https, and revokes it', { timeout: 120_000 }, async () => {
    const stateDir = newStateDir();
    const cert = join(stateDir, 'tls.crt');
    const key = join(stateDir, 'tls.key');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert,
    ], { stdio: 'ignore' });
    const daemon = await daemonWith(stateDir, '127.0.0.1:0', { tls: { cert, key } });
    const port = (daemon.app.server.address() as { port: number }).port;
    const api = `https://127.0.0.1:${port}`;
    const tlsEnv = { NODE_EXTRA_CA_CERTS: cert };

    // Started before the token exists: the daemon must see it without a restart.
    const created = await cli(['token', 'create', 'ops', '--scope', 'write', '--state-dir', stateDir]);
    expect(created.status, created.stderr).toBe(0);
    expect(created.stderr).toBe('');
    expect(created.stdout).toMatch(/^xdpw_[A-Za-z0-9_-]{43}\n$/);
    const token = created.stdout.trim();

    const listed = await cli(['token', 'ls', '--state-dir', stateDir]);
    expect(listed.stdout).toMatch(/^NAME +SCOPE +CREATED\nops +write +\d{4}-/);
    expect(listed.stdout).not.toContain(token);

    const blocked = await cli(['block', '198.18.81.0/24', '--api', api], { ...tlsEnv, XDPWALL_TOKEN: token });
    expect(blocked.status, blocked.stderr).toBe(0);
    expect(blocked.stdout).toContain('blocked 198.18.81.0/24');
    const anonymous = await cli(['blocks', '--api', api], tlsEnv);
    expect(anonymous.stderr).toMatch(/^xdpwall: UNAUTHENTICATED: /);
    const untrusted = await cli(['blocks', '--api', api, '--token', token]);
    expect(untrusted.status).not.toBe(0);
    expect(untrusted.stderr).toMatch(/SELF_SIGNED|self.signed/i);

    // A direct https request trusting the certificate: /healthz is public.
    const health = await new Promise<number>((resolve, reject) =>
      httpsRequest({ host: '127.0.0.1', port, path: '/healthz', ca: readFileSync(cert) }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject).end(),
    );
    expect(health).toBe(200);

    expect((await cli(['token', 'revoke', 'ops', '--state-dir', stateDir])).status).toBe(0);
    const revoked = await cli(['blocks', '--api', api], { ...tlsEnv, XDPWALL_TOKEN: token });
    expect(revoked.status).toBe(1);
    expect(revoked.stderr).toMatch(/^xdpwall: UNAUTHENTICATED: the token is unknown or revoked\n$/);
    const again = await cli(['token', 'revoke', 'ops', '--state-dir', stateDir]);
    expect([again.status, again.stderr]).toEqual([1, 'xdpwall: NOT_FOUND: no token named "ops"\n']);

    // The trail names the CLI's own changes too.
    const admin = (await cli(['token', 'create', 'auditor', '--scope', 'admin', '--state-dir', stateDir])).stdout.trim();
    const audit = await cli(['audit', '--json', '--api', api], { ...tlsEnv, XDPWALL_TOKEN: admin });
    const entries = JSON.parse(audit.stdout) as Array<{ principal: string; route: string; status: number }>;
    expect(entries.map((e) => `${e.principal} ${e.route} ${e.status}`)).toEqual([
      'local token create 0',
      'ops /v1/blocks 201',
      'local token revoke 0',
      'local token create 0',
    ]);
  });
});

// A private CrowdSec Local API for tests and benchmarks: Debian's `crowdsec`
// run as `crowdsec -no-cs` (the LAPI alone, no log acquisition) with its own
// configuration, SQLite database and port under a fresh temporary directory,
// so it never touches /etc/crowdsec's database or a system service. The
// Central API is off (no online_client section): it runs offline. Stopped by
// its own PID; the directory is removed.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError, run } from './run.js';

export const CROWDSEC_BIN = '/usr/bin/crowdsec';
export const CSCLI_BIN = '/usr/bin/cscli';
const DIR_PREFIX = 'xwt-crowdsec-';

/** Why the LAPI cannot run here (undefined when it can): the binaries or their default files are missing. */
export function crowdsecMissing(): string | undefined {
  for (const path of [CROWDSEC_BIN, CSCLI_BIN, '/etc/crowdsec/profiles.yaml']) {
    if (!existsSync(path)) return `${path} is missing: install Debian's crowdsec package (scripts/setup.sh does)`;
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

export interface LapiOptions {
  /** Run it (and cscli) inside this network namespace (/run/netns/NAME) instead of this one. */
  netns?: string;
  timeoutMs?: number;
}

export class CrowdsecLapi {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly netns: string | undefined,
  ) {}

  /** argv run inside the LAPI's namespace (nsenter keeps the mount namespace: bpffs stays visible). */
  inNetns(argv: readonly string[]): string[] {
    return this.netns ? ['nsenter', `--net=/run/netns/${this.netns}`, ...argv] : [...argv];
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get configPath(): string {
    return join(this.dir, 'config.yaml');
  }

  get logPath(): string {
    return join(this.dir, 'lapi.log');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Writes the configuration, registers a machine for cscli, starts the LAPI and waits until it answers. */
  static async start(options: LapiOptions = {}): Promise<CrowdsecLapi> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const missing = crowdsecMissing();
    if (missing) throw new Error(missing);
    const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
    const lapi = new CrowdsecLapi(dir, await freePort(), options.netns);
    try {
      lapi.configure();
      await lapi.cscli(['machines', 'add', 'xdpwall-lab', '--auto', '-f', join(dir, 'local_api_credentials.yaml')]);
      await lapi.spawn(timeoutMs);
      return lapi;
    } catch (error) {
      await lapi.stop();
      throw error;
    }
  }

  private configure(): void {
    const { dir } = this;
    for (const sub of ['data', 'hub', 'notifications']) mkdirSync(join(dir, sub));
    copyFileSync('/etc/crowdsec/profiles.yaml', join(dir, 'profiles.yaml'));
    writeFileSync(join(dir, 'simulation.yaml'), 'simulation: off\n');
    writeFileSync(this.configPath, [
      'common:',
      '  daemonize: false',
      '  log_media: stdout',
      '  log_level: info',
      `  working_dir: ${dir}`,
      'config_paths:',
      `  config_dir: ${dir}/`,
      `  data_dir: ${dir}/data/`,
      `  simulation_path: ${dir}/simulation.yaml`,
      `  hub_dir: ${dir}/hub/`,
      `  index_path: ${dir}/hub/.index.json`,
      `  notification_dir: ${dir}/notifications/`,
      '  plugin_dir: /usr/lib/crowdsec/plugins/',
      'cscli:',
      '  output: json',
      '  color: no',
      'db_config:',
      '  log_level: warning',
      '  type: sqlite',
      `  db_path: ${dir}/data/crowdsec.db`,
      '  use_wal: true',
      '  flush:',
      '    max_items: 5000000',
      'api:',
      '  client:',
      '    insecure_skip_verify: false',
      `    credentials_path: ${dir}/local_api_credentials.yaml`,
      '  server:',
      '    log_level: info',
      `    listen_uri: 127.0.0.1:${this.port}`,
      `    profiles_path: ${dir}/profiles.yaml`,
      '    trusted_ips: [127.0.0.1]',
      // No online_client: the Central API stays off (offline).
      'prometheus:',
      '  enabled: false',
      '',
    ].join('\n'));
  }

  private async spawn(timeoutMs: number): Promise<void> {
    const log = openSync(this.logPath, 'a');
    const [file, ...args] = this.inNetns([CROWDSEC_BIN, '-c', this.configPath, '-no-cs']);
    const child = spawn(file!, args, { stdio: ['ignore', log, log], cwd: this.dir });
    closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`crowdsec exited during start-up:\n${this.log()}`);
      if (await this.answers()) return;
      if (Date.now() > deadline) throw new Error(`crowdsec LAPI not answering on ${this.url} within ${timeoutMs} ms:\n${this.log()}`);
      await sleep(100);
    }
  }

  /** Whether the LAPI answers (403 without a bouncer key means it is up). */
  private async answers(): Promise<boolean> {
    const url = `${this.url}/v1/decisions/stream`;
    if (this.netns) {
      const probe = `fetch(${JSON.stringify(url)}).then((r) => process.exit(r.status === 403 ? 0 : 1), () => process.exit(1))`;
      return (await run(this.inNetns([process.execPath, '-e', probe]), { timeoutMs: 30_000 })).code === 0;
    }
    try {
      return (await fetch(url, { signal: AbortSignal.timeout(1_000) })).status === 403;
    } catch {
      return false;
    }
  }

  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Runs cscli against this LAPI's configuration; throws when it fails. */
  async cscli(args: readonly string[], timeoutMs = 120_000): Promise<string> {
    const argv = this.inNetns([CSCLI_BIN, '-c', this.configPath, ...args]);
    const result = await run(argv, { timeoutMs });
    if (result.code !== 0) throw new CommandError(argv, result);
    return result.stdout;
  }

  /** `cscli bouncers add NAME -k KEY`. */
  async addBouncer(name: string, key: string): Promise<void> {
    await this.cscli(['bouncers', 'add', name, '-k', key]);
  }

  /** `cscli decisions import`: many decisions at once (the way to load 100k). */
  async importDecisions(decisions: ReadonlyArray<{ value: string; scope: 'Ip' | 'Range'; duration: string }>): Promise<void> {
    const file = join(this.dir, `import-${Date.now()}.json`);
    writeFileSync(file, JSON.stringify(decisions.map((d) => ({ ...d, type: 'ban', origin: 'xdpwall-lab', reason: 'bench' }))));
    try {
      // LAPI's SQLite may be locked by a bouncer's pull ("database is locked"): the import is refused whole, so retry.
      for (let attempt = 1; ; attempt++) {
        try {
          await this.cscli(['decisions', 'import', '-i', file], 600_000);
          return;
        } catch (error) {
          if (attempt >= 5 || !/database is locked/.test((error as Error).message)) throw error;
          await sleep(1_000);
        }
      }
    } finally {
      rmSync(file, { force: true });
    }
  }

  /** Stops the LAPI (SIGTERM by PID, SIGKILL after 10 s) and removes its directory. Idempotent. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    if (this.dir.includes(DIR_PREFIX)) rmSync(this.dir, { recursive: true, force: true });
  }
}

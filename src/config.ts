// Daemon configuration: defaults, then a YAML/JSON file, then flags.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from './errors.js';
import { BLOCK_META_ENTRIES, DEFAULT_CAPACITY, DEFAULT_RL_BUCKETS, DEFAULT_RL_BUCKETS_V6 } from './datapath/abi.js';
import { parseApiConfig, type ApiConfig } from './auth/config.js';
import { parseFailsafe, type FailsafeEntry } from './policy/failsafe.js';
import { parseEventSettings, type EventSettings } from './events/settings.js';
import { parseDuration } from './duration.js';
import type { CrowdsecConfig } from './integrations/crowdsec.js';
import { parseFeeds, type FeedConfig } from './lists/feed-config.js';
import { DEFAULT_SNAPSHOT_MAX_AGE_MS } from './flows/snapshot.js';

export type PolicyDefault = 'accept' | 'drop';

export const ATTACH_MODES = ['auto', 'native', 'generic'] as const;
export type AttachMode = (typeof ATTACH_MODES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export interface InterfaceConfig {
  /** "IFNAME" or "NETNS/IFNAME" (a namespace under /run/netns). */
  name: string;
  mode: AttachMode;
  /** This interface's own default policy per hook (`policy:` in its entry), over the global one. */
  policy?: Partial<Record<'ingress' | 'egress', PolicyDefault>>;
}

export type ListenAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export interface Config {
  interfaces: InterfaceConfig[];
  listen: ListenAddress;
  stateDir: string;
  /** Names this instance's bpffs pin directory; defaults to a digest of stateDir. */
  instance: string;
  bpffsRoot: string;
  /**
   * rateBuckets: IPv4 rate-limit source bucket slots (xw_rl_buckets_v4; twice the sources expected at once); default DEFAULT_RL_BUCKETS.
   * rateBucketsV6: IPv6 ones (xw_rl_buckets); default DEFAULT_RL_BUCKETS_V6.
   * timedBlocks: blocks with a ttl, a dry run or an origin's expiry in force at once (xw_block_meta);
   * default BLOCK_META_ENTRIES. A CrowdSec feed of 100k decisions needs more than the default.
   */
  capacity: { cidrV4: number; cidrV6: number; flows: number; rateBuckets?: number; rateBucketsV6?: number; timedBlocks?: number };
  /** Request bodies larger than this get 413. */
  bodyLimitBytes: number;
  /** How long counter snapshots are reused by hot API reads. */
  countersCacheMs: number;
  /** How long a snapshot of the flow table may answer GET /v1/flows, at most (src/flows/snapshot.ts). */
  flowSnapshotMaxAgeMs: number;
  logLevel: LogLevel;
  /** Tokens, Host names, TLS, the socket's group, rate limits: src/auth/config.ts. */
  api: ApiConfig;
  /** Take XDP hooks that run a program this instance does not own (serve --force). */
  force: boolean;
  /** How often the daemon checks that its links are still attached (and re-attaches). */
  healthCheckMs: number;
  /** Default policy per hook (`policy:`); PUT /v1/policy overrides it, stored. */
  policy: { ingress: PolicyDefault; egress: PolicyDefault };
  /** What stays reachable whatever else says (`failsafe:`); only from this file. */
  failsafe: FailsafeEntry[];
  /** The --rules file the daemon follows (`rulesFile:`); src/fleet/rules-file.ts. */
  rulesFile: string | undefined;
  /** Sampled packet events (`events:`): 1 in N per reason, and the kernel's cap. */
  events: EventSettings;
  /** The CrowdSec bouncer (`crowdsec: {url, apiKey, refresh, resync}`); off when absent. */
  crowdsec?: CrowdsecConfig;
  /** Blocklist feeds filling named lists (`feeds:`); src/lists/feeds.ts. */
  feeds: FeedConfig[];
}

/** Flags as the CLI hands them over; every field optional. */
export interface ConfigOverrides {
  interfaces?: string[];
  mode?: AttachMode;
  listen?: string;
  stateDir?: string;
  instance?: string;
  logLevel?: Config['logLevel'];
  force?: boolean;
  rulesFile?: string;
}

export const DEFAULT_LISTEN = '127.0.0.1:7070';
export const DEFAULT_STATE_DIR = '/var/lib/xdpwall';

export function parseListen(text: string): ListenAddress {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (!path) throw new ConfigError(`listen "${text}" has no socket path`);
    return { kind: 'unix', path: resolve(path) };
  }
  const match = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || !match[1] || port > 65535) {
    throw new ConfigError(`listen "${text}" is neither HOST:PORT nor unix:PATH`);
  }
  return { kind: 'tcp', host: match[1], port };
}

export function formatListen(listen: ListenAddress): string {
  if (listen.kind === 'unix') return `unix:${listen.path}`;
  return listen.host.includes(':') ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}`;
}

function isAttachMode(value: unknown): value is AttachMode {
  return typeof value === 'string' && (ATTACH_MODES as readonly string[]).includes(value);
}

function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

function positiveInt(value: unknown, what: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(`${what} must be a positive integer`);
  }
  return value;
}

type FileConfig = Record<string, unknown>;

function readConfigFile(path: string): FileConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid YAML: ${(error as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${path} must be a mapping`);
  return parsed as FileConfig;
}

function fileInterfaces(value: unknown, defaultMode: AttachMode): InterfaceConfig[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError('interfaces must be a list');
  return value.map((entry): InterfaceConfig => {
    if (typeof entry === 'string') return { name: entry, mode: defaultMode };
    const { name, mode, policy } = (entry ?? {}) as { name?: unknown; mode?: unknown; policy?: unknown };
    if (typeof name !== 'string' || !name) throw new ConfigError('each interface needs a name');
    if (mode !== undefined && !isAttachMode(mode)) throw new ConfigError(`interface ${name}: mode must be auto, native or generic`);
    if (policy === undefined || policy === null) return { name, mode: mode ?? defaultMode };
    return { name, mode: mode ?? defaultMode, policy: parseHookDefaults(policy, `interface ${name}: policy`) };
  });
}

/**
 * Builds the configuration. Example file (YAML; JSON works too):
 *
 *   interfaces: [eth0, { name: eth1, mode: generic, policy: { ingress: accept } }]   # policy: this interface's own default
 *   mode: auto
 *   listen: 127.0.0.1:7070        # or unix:/run/xdpwall/api.sock
 *   stateDir: /var/lib/xdpwall
 *   capacity: { cidrV4: 1048576, cidrV6: 262144, flows: 262144, rateBuckets: 131072, rateBucketsV6: 16384, timedBlocks: 65536 }
 *   policy: { ingress: drop }     # default accept; replies to this host's own flows still pass
 *   failsafe: [{proto: tcp, port: 22}, {cidr: 198.18.9.0/24}]   # default: TCP 22, UDP 68 and 546, ICMPv6 133-137
 *   events: { sample: { drop_rule: 1 }, ratePerSecond: 1000, burst: 1000 }   # default: log 1 in 1, drops 1 in 100
 *   crowdsec: { url: http://127.0.0.1:8080, apiKey: KEY, refresh: 10s, resync: 10m }   # or apiKeyFile: PATH; resync: off
 */
export function loadConfig(configFile: string | undefined, overrides: ConfigOverrides = {}): Config {
  const file = configFile ? readConfigFile(configFile) : {};
  const fileMode = file.mode;
  if (fileMode !== undefined && !isAttachMode(fileMode)) throw new ConfigError('mode must be auto, native or generic');
  const mode: AttachMode = overrides.mode ?? fileMode ?? 'auto';
  const listed = fileInterfaces(file.interfaces, mode);
  // --iface replaces the file's list; an interface the file lists keeps its own default policy.
  const interfaces = overrides.interfaces?.length
    ? overrides.interfaces.map((name): InterfaceConfig => {
      const policy = listed.find((i) => i.name === name)?.policy;
      return policy ? { name, mode, policy } : { name, mode };
    })
    : listed;
  for (const { name } of interfaces) validateInterfaceName(name);

  const stateDir = resolve(overrides.stateDir ?? stringField(file, 'stateDir') ?? DEFAULT_STATE_DIR);
  const capacity = (file.capacity ?? {}) as Record<string, unknown>;
  const logLevel = overrides.logLevel ?? stringField(file, 'logLevel') ?? 'info';
  if (!isLogLevel(logLevel)) throw new ConfigError(`logLevel "${logLevel}" must be one of ${LOG_LEVELS.join(', ')}`);
  const instance =
    overrides.instance ?? stringField(file, 'instance') ?? createHash('sha256').update(stateDir).digest('hex').slice(0, 12);
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(instance) || instance.startsWith('.')) {
    throw new ConfigError(`instance "${instance}" must be 1-64 letters, digits, '.', '_' or '-'`);
  }
  return {
    interfaces,
    listen: parseListen(overrides.listen ?? stringField(file, 'listen') ?? DEFAULT_LISTEN),
    stateDir,
    instance,
    bpffsRoot: stringField(file, 'bpffsRoot') ?? '/sys/fs/bpf',
    capacity: {
      cidrV4: positiveInt(capacity.cidrV4, 'capacity.cidrV4', DEFAULT_CAPACITY.cidrV4),
      cidrV6: positiveInt(capacity.cidrV6, 'capacity.cidrV6', DEFAULT_CAPACITY.cidrV6),
      flows: positiveInt(capacity.flows, 'capacity.flows', DEFAULT_CAPACITY.flows),
      ...(capacity.rateBuckets !== undefined && { rateBuckets: positiveInt(capacity.rateBuckets, 'capacity.rateBuckets', DEFAULT_RL_BUCKETS) }),
      ...(capacity.rateBucketsV6 !== undefined && {
        rateBucketsV6: positiveInt(capacity.rateBucketsV6, 'capacity.rateBucketsV6', DEFAULT_RL_BUCKETS_V6),
      }),
      ...(capacity.timedBlocks !== undefined && { timedBlocks: positiveInt(capacity.timedBlocks, 'capacity.timedBlocks', BLOCK_META_ENTRIES) }),
    },
    bodyLimitBytes: positiveInt(file.bodyLimitBytes, 'bodyLimitBytes', 1 << 20),
    countersCacheMs: positiveInt(file.countersCacheMs, 'countersCacheMs', 250),
    flowSnapshotMaxAgeMs: positiveInt(file.flowSnapshotMaxAgeMs, 'flowSnapshotMaxAgeMs', DEFAULT_SNAPSHOT_MAX_AGE_MS),
    logLevel,
    api: parseApiConfig(file.api),
    force: overrides.force ?? false,
    healthCheckMs: positiveInt(file.healthCheckMs, 'healthCheckMs', 1000),
    policy: parsePolicy(file.policy),
    failsafe: parseFailsafe(file.failsafe),
    events: parseEventSettings(file.events),
    ...(file.crowdsec !== undefined && file.crowdsec !== null && { crowdsec: parseCrowdsec(file.crowdsec) }),
    feeds: parseFeeds(file.feeds),
    rulesFile: overrides.rulesFile ?? stringField(file, 'rulesFile'),
  };
}

/** The interfaces that have their own default policy, as the policy engine takes them. */
export function interfaceDefaults(config: Pick<Config, 'interfaces'>): Array<{ iface: string; policy: Partial<Config['policy']> }> {
  return config.interfaces.flatMap((i) => (i.policy ? [{ iface: i.name, policy: { ...i.policy } }] : []));
}

function parseCrowdsec(value: unknown): CrowdsecConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError('crowdsec must be a mapping like {url: http://127.0.0.1:8080, apiKey: KEY, refresh: 10s}');
  }
  const section = value as Record<string, unknown>;
  for (const key of Object.keys(section)) {
    if (!['url', 'apiKey', 'apiKeyFile', 'refresh', 'resync'].includes(key)) throw new ConfigError(`crowdsec.${key}: unknown key (url, apiKey, apiKeyFile, refresh, resync)`);
  }
  const url = stringField(section, 'url');
  let parsed: URL | undefined;
  try {
    parsed = url === undefined ? undefined : new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    throw new ConfigError(`crowdsec.url must be the Local API's http(s) URL, e.g. http://127.0.0.1:8080, not ${JSON.stringify(url)}`);
  }
  const keyFile = stringField(section, 'apiKeyFile');
  let apiKey = stringField(section, 'apiKey');
  if ((apiKey === undefined) === (keyFile === undefined)) throw new ConfigError('crowdsec: give apiKey or apiKeyFile (a key from `cscli bouncers add NAME`)');
  if (keyFile !== undefined) {
    try {
      apiKey = readFileSync(keyFile, 'utf8').trim();
    } catch (error) {
      throw new ConfigError(`crowdsec.apiKeyFile: cannot read ${keyFile}: ${(error as Error).message}`);
    }
  }
  if (!apiKey || /[\r\n]/.test(apiKey)) throw new ConfigError('crowdsec: the API key is empty or spans lines');
  // resync: a duration, or 0 / "0" / "off" / false for none beyond start and recovery.
  const resync = section.resync;
  const resyncMs = resync === 0 || resync === '0' || resync === 'off' || resync === false ? 0 : parseDuration(resync ?? '10m', 'crowdsec.resync');
  return { url: parsed.href.replace(/\/+$/, ''), apiKey, refreshMs: parseDuration(section.refresh ?? '10s', 'crowdsec.refresh'), resyncMs };
}

function parsePolicy(value: unknown): Config['policy'] {
  const policy: Config['policy'] = { ingress: 'accept', egress: 'accept' };
  if (value === undefined || value === null) return policy;
  return { ...policy, ...parseHookDefaults(value, 'policy') };
}

/** `{ingress: drop, egress: accept}`, either hook optional; `where` names it in errors. */
function parseHookDefaults(value: unknown, where: string): Partial<Config['policy']> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`${where} must be a mapping like {ingress: drop, egress: accept}`);
  }
  const policy: Partial<Config['policy']> = {};
  for (const [hook, action] of Object.entries(value)) {
    if (hook !== 'ingress' && hook !== 'egress') throw new ConfigError(`${where}.${hook}: only ingress and egress have a default policy`);
    if (action !== 'accept' && action !== 'drop') throw new ConfigError(`${where}.${hook} must be accept or drop`);
    policy[hook] = action;
  }
  return policy;
}

function stringField(file: FileConfig, key: string): string | undefined {
  const value = file[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new ConfigError(`${key} must be a string`);
  return value;
}

export function validateInterfaceName(name: string): void {
  const parts = name.split('/');
  const valid =
    parts.length <= 2 &&
    parts.every((p) => p.length > 0 && !p.startsWith('.')) &&
    /^[A-Za-z0-9_.@:-]{1,15}$/.test(parts.at(-1)!) &&
    (parts.length === 1 || /^[A-Za-z0-9_.-]{1,64}$/.test(parts[0]!));
  if (!valid) throw new ConfigError(`interface "${name}" is not IFNAME or NETNS/IFNAME`);
}

// The daemon: lock the state and pin directories, load and restore, put the
// programs on the interfaces (swapping them into the links a previous run
// left), serve the API, and keep checking that the links are still attached.
// Stopping leaves the links and pinned maps: the kernel keeps enforcing
// until the next start swaps them or `xdpwall detach` removes them. A start
// that fails never detaches anything. Failing to attach any configured
// interface is fatal: a firewall that starts without protecting what it was
// told to is worse than one that refuses to start.
import { rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { pino, type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildApp, type ApiFirewall } from '../api/app.js';
import { Firewall, pinDirFor, storePathIn } from '../src/firewall.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { formatListen, interfaceDefaults, type Config } from '../src/config.js';
import { ConfigError, LockedError } from '../src/errors.js';
import { lockDirectory } from '../src/lock.js';
import { VERSION } from '../src/version.js';
import { openDaemonAccess, type DaemonAccess } from './access.js';
import { listenPrivately } from '../src/auth/unix-socket.js';
import { FeedRunner } from '../src/lists/feeds.js';
import { RulesFile } from '../src/fleet/rules-file.js';
import { resolve } from 'node:path';
import { checkSocketDir, ensureStateDir, listenError } from './startup.js';
import { backgroundNice, lowerBackgroundThreads } from './thread-priority.js';
import { CROWDSEC_ORIGIN, CrowdsecBouncer } from '../src/integrations/crowdsec.js';

export interface RunningDaemon {
  app: FastifyInstance;
  firewall: Firewall;
  /** Re-checks the links now (what the periodic check and SIGHUP do). */
  verify(): void;
  /** Stops serving and checking, closes the store; the links stay. Idempotent. */
  stop(): Promise<void>;
}

/** The compiled data plane; XDPWALL_BPF_OBJECT points elsewhere (upgrade tests, packagers). */
const objectPath = (): string => process.env.XDPWALL_BPF_OBJECT || BPF_OBJECT_PATH;

export async function startDaemon(config: Config, log: Logger = pino({ level: config.logLevel })): Promise<RunningDaemon> {
  const startedAt = performance.now();
  ensureStateDir(config.stateDir);
  if (config.listen.kind === 'unix') checkSocketDir(config.listen.path);
  const stateLock = lockDirectory(config.stateDir, 'state directory');
  let firewall: Firewall | undefined;
  let access: DaemonAccess | undefined;
  let app: FastifyInstance | undefined;
  let building: Promise<FastifyInstance> | undefined;
  let removeSocket = (): void => undefined;
  try {
    // Before anything reaches the kernel: a live socket belongs to another daemon.
    if (config.listen.kind === 'unix') await assertSocketFree(config.listen.path);
    access = openDaemonAccess(config);
    const pinDir = pinDirFor(config.bpffsRoot, config.instance);
    // Compiling the API's schemas takes most of a second: done while the kernel loads the programs.
    const late = lateFirewall();
    building = buildApp({ firewall: late.firewall, access: access.access, tls: access.tls, bodyLimitBytes: config.bodyLimitBytes, logger: log, version: VERSION });
    building.catch(() => undefined); // awaited below, or closed on failure
    const opened = await Firewall.open(
      {
        objectPath: objectPath(),
        storePath: storePathIn(config.stateDir),
        pin: { bpffsRoot: config.bpffsRoot, dir: pinDir },
        capacity: config.capacity,
        countersCacheMs: config.countersCacheMs,
        flowSnapshotMaxAgeMs: config.flowSnapshotMaxAgeMs,
        policy: config.policy,
        failsafe: config.failsafe,
        events: config.events,
        ifaceDefaults: interfaceDefaults(config),
        // Maps an earlier start filled keep enforcing while this one reconciles them after listening.
        restoreLater: true,
      },
      log,
    );
    firewall = opened.firewall;
    late.bind(firewall);
    if (opened.restored) log.info({ pinDir, ...opened.restored, phasesMs: opened.phasesMs }, 'rules reconciled with the kernel');
    else {
      log.info({ pinDir, phasesMs: opened.phasesMs }, 'adopted maps an earlier start filled: serving while they are reconciled with the store (changes wait for it)');
      opened.restoring?.then(
        (report) => log.info({ pinDir, ...report, restoredMs: Math.round(performance.now() - startedAt) }, 'rules reconciled with the kernel'),
        () => undefined, // logged by the firewall, which retries
      );
    }
    for (const iface of config.interfaces) firewall.attach(iface, { force: config.force });
    await firewall.refreshPolicy();
    firewall.datapath.retire();
    if (config.rulesFile) {
      const rulesFile = new RulesFile(resolve(config.rulesFile), firewall, log);
      firewall.rulesFile = rulesFile;
      // The file's changes wait for a deferred restore: it starts now, not once the API listens.
      firewall.beginRestore();
      await rulesFile.start();
    }
    if (config.feeds.length > 0) {
      const feeds = new FeedRunner(config.feeds, firewall.lists, log);
      firewall.feeds = feeds;
      feeds.start();
    }
    app = await building;
    removeSocket = await listen(app, config, access);
    firewall.beginRestore();
  } catch (error) {
    (firewall?.feeds as FeedRunner | undefined)?.stop();
    (firewall?.rulesFile as RulesFile | undefined)?.stop();
    await (app ?? (await building?.catch(() => undefined)))?.close();
    firewall?.abandonRestore();
    await firewall?.restoreEnded();
    firewall?.close();
    access?.close();
    stateLock.release();
    throw error;
  }
  log.info(
    { listen: formatListen(config.listen), interfaces: config.interfaces.length, startMs: Math.round(performance.now() - startedAt), sinceProcessStartMs: Math.round(performance.now()) },
    'xdpwall serving',
  );
  if (config.interfaces.length === 0) log.warn('no interface configured (--iface or interfaces:): nothing is filtered');

  const running = firewall;
  const runningAccess = access!;
  const verify = (): void => {
    running.retryRestore();
    try {
      running.verifyInterfaces();
    } catch (error) {
      log.error({ err: error }, 'interface check failed');
    }
  };
  const monitor = setInterval(verify, config.healthCheckMs);
  monitor.unref();
  // Expired rules already stopped matching in the kernel; this clears them out.
  let sweeping = false;
  const sweeper = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    running.sweepExpired()
      .then((swept) => (swept.rules.length > 0 || swept.blocks > 0) && log.info(swept, 'removed expired rules and blocks'))
      .catch((error: unknown) => log.error({ err: error }, 'removing expired rules failed'))
      .finally(() => (sweeping = false));
  }, 1000);
  sweeper.unref();
  running.bans?.start();

  let bouncer: CrowdsecBouncer | undefined;
  if (config.crowdsec) {
    bouncer = new CrowdsecBouncer(config.crowdsec, running.originBlocks(CROWDSEC_ORIGIN), { log });
    const current = bouncer;
    running.integrations.register(CROWDSEC_ORIGIN, () => current.status());
    log.info({ url: config.crowdsec.url, refreshMs: config.crowdsec.refreshMs, resyncMs: config.crowdsec.resyncMs }, 'crowdsec: bouncer started');
    bouncer.start();
  }

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      clearInterval(monitor);
      clearInterval(sweeper);
      await bouncer?.stop();
      (running.feeds as FeedRunner | undefined)?.stop();
      (running.rulesFile as RulesFile | undefined)?.stop();
      await app.close();
      await running.restoreEnded();
      running.close();
      runningAccess.close();
      removeSocket();
      stateLock.release();
      log.info('xdpwall stopped; the programs stay attached and enforcing (xdpwall detach removes them)');
    })());
  return { app, firewall: running, verify, stop };
}

/**
 * The firewall as the API sees it, before Firewall.open has returned: routes
 * and metrics reach it only when a request comes, and the daemon listens
 * only once it is bound.
 */
function lateFirewall(): { firewall: ApiFirewall; bind(firewall: Firewall): void } {
  let bound: Firewall | undefined;
  const firewall = new Proxy({} as ApiFirewall, {
    get(_target, key) {
      if (!bound) throw new Error(`the firewall is not open yet (${String(key)})`);
      const value: unknown = Reflect.get(bound, key, bound);
      return typeof value === 'function' ? value.bind(bound) : value;
    },
  });
  return { firewall, bind: (opened) => void (bound = opened) };
}

/** Refuses a unix socket path another process still answers on; a dead one (crashed run) is fine. */
async function assertSocketFree(path: string): Promise<void> {
  const answered = await new Promise<boolean | Error>((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      resolve(error.code === 'ECONNREFUSED' || error.code === 'ENOENT' ? false : error);
    });
  });
  if (answered === false) return;
  const why = answered === true ? 'another process is listening on it' : `cannot tell whether it is in use (${answered.message})`;
  throw new LockedError(`unix socket ${path}: ${why}; not removing it`);
}

/** Listens; resolves to a cleanup that removes the socket file only while it is still ours. */
async function listen(app: FastifyInstance, config: Config, access: DaemonAccess): Promise<() => void> {
  const { listen } = config;
  try {
    if (listen.kind === 'tcp') {
      await app.listen({ host: listen.host, port: listen.port });
      return () => undefined;
    }
    await assertSocketFree(listen.path); // again: the check before loading was a while ago
    rmSync(listen.path, { force: true }); // a socket left by a crashed run
    // Mode 0660 and the configured group before the socket accepts anyone.
    await listenPrivately(listen.path, access.socket, (path) => app.listen({ path }));
  } catch (error) {
    throw error instanceof ConfigError || error instanceof LockedError ? error : listenError(formatListen(listen), error);
  }
  const { ino } = statSync(listen.path);
  return () => {
    try {
      if (statSync(listen.path).ino === ino) rmSync(listen.path);
    } catch {
      // already gone
    }
  };
}

/** Runs until SIGTERM or SIGINT, then shuts down; SIGHUP re-checks the interfaces at once. */
export async function runDaemon(config: Config): Promise<void> {
  const log = pino({ level: config.logLevel });
  // Before the store's and the flows' workers start, so each is found as it comes online.
  const priority = lowerBackgroundThreads(backgroundNice(process.env.XDPWALL_BACKGROUND_NICE), (error) =>
    log.warn({ err: error }, 'cannot lower the background threads\' priority: the event loop shares the CPU with them'),
  );
  const daemon = await startDaemon(config, log).catch((error: unknown) => {
    priority.stop();
    throw error;
  });
  // Logs go to stdout (journald or the container runtime): there is no log file to reopen.
  const onHangup = () => {
    log.info({ signal: 'SIGHUP' }, 're-checking interfaces and links');
    daemon.verify();
    log.info({ interfaces: daemon.firewall.interfaces().map(({ iface, state, reason }) => ({ iface, state, reason })) }, 'interfaces checked');
  };
  process.on('SIGHUP', onHangup);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'shutting down');
      process.off('SIGHUP', onHangup);
      priority.stop();
      daemon.stop().then(resolve, (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exitCode = 1;
        resolve();
      });
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
}

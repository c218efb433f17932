// The daemon: load and restore, attach, serve the API, and on SIGTERM/SIGINT
// detach and stop. Failing to attach any configured interface is fatal: a
// firewall that starts without protecting what it was told to is worse than
// one that refuses to start.
import { mkdirSync, rmSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app.js';
import { Firewall, pinDirFor, storePathIn } from '../firewall.js';
import { BPF_OBJECT_PATH } from '../paths.js';
import { formatListen, type Config } from '../config.js';
import { VERSION } from '../version.js';
import { openDaemonAccess, type DaemonAccess } from './access.js';
import { listenPrivately } from '../auth/unix-socket.js';

export interface RunningDaemon {
  app: FastifyInstance;
  firewall: Firewall;
  /** Stops serving, detaches from every interface, closes the store. Idempotent. */
  stop(): Promise<void>;
}

export async function startDaemon(config: Config, log: Logger = pino({ level: config.logLevel })): Promise<RunningDaemon> {
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const access = openDaemonAccess(config);
  const pinDir = pinDirFor(config.bpffsRoot, config.instance);
  const { firewall, restored } = await Firewall.open(
    {
      objectPath: BPF_OBJECT_PATH,
      storePath: storePathIn(config.stateDir),
      pin: { bpffsRoot: config.bpffsRoot, dir: pinDir },
      capacity: config.capacity,
      countersCacheMs: config.countersCacheMs,
    },
    log,
  ).catch((error: unknown) => {
    access.close();
    throw error;
  });
  log.info({ pinDir, ...restored }, 'rules restored into the kernel');

  let app: FastifyInstance | undefined;
  try {
    for (const iface of config.interfaces) firewall.attach(iface);
    app = await buildApp({ firewall, access: access.access, tls: access.tls, bodyLimitBytes: config.bodyLimitBytes, logger: log, version: VERSION });
    await listen(app, config, access);
  } catch (error) {
    await app?.close();
    firewall.close();
    access.close();
    throw error;
  }
  log.info({ listen: formatListen(config.listen), interfaces: config.interfaces.length }, 'xdpwall serving');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await app.close();
      firewall.close();
      access.close();
      if (config.listen.kind === 'unix') rmSync(config.listen.path, { force: true });
      log.info('xdpwall stopped');
    })());
  return { app, firewall, stop };
}

async function listen(app: FastifyInstance, config: Config, access: DaemonAccess): Promise<void> {
  const { listen } = config;
  if (listen.kind === 'tcp') {
    await app.listen({ host: listen.host, port: listen.port });
    return;
  }
  // Mode 0660 and the configured group before the socket accepts anyone.
  await listenPrivately(listen.path, access.socket, (path) => app.listen({ path }));
}

/** Runs until SIGTERM or SIGINT, then shuts down cleanly. */
export async function runDaemon(config: Config): Promise<void> {
  const log = pino({ level: config.logLevel });
  const daemon = await startDaemon(config, log);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'shutting down');
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

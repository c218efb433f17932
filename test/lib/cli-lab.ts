// For CLI tests: a real Firewall (see firewall.ts) with the API served on a
// unix socket in a temporary directory, set up before the file's tests and
// torn down after them.
import { afterAll, beforeAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app.js';
import type { Firewall } from '../../src/firewall.js';
import { openTestFirewall } from './firewall.js';

export interface CliLab {
  firewall: Firewall;
  app: FastifyInstance;
  /** The temporary directory (the socket is in it; tests may put files there). */
  dir: string;
  /** The --api value for the CLI: unix:PATH. */
  api: string;
}

/** Registers beforeAll/afterAll hooks; the returned object is filled in once beforeAll has run. */
export function serveOnSocket(prefix: string, capacity: Parameters<typeof openTestFirewall>[0]): CliLab {
  const lab = {} as CliLab;
  beforeAll(async () => {
    lab.firewall = await openTestFirewall(capacity);
    lab.dir = mkdtempSync(join(tmpdir(), prefix));
    lab.app = await buildApp({ firewall: lab.firewall });
    await lab.app.listen({ path: join(lab.dir, 'api.sock') });
    lab.api = `unix:${join(lab.dir, 'api.sock')}`;
  }, 60_000);
  afterAll(async () => {
    await lab.app?.close();
    lab.firewall?.close();
    if (lab.dir) rmSync(lab.dir, { recursive: true, force: true });
  });
  return lab;
}

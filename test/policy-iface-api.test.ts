// Per-interface default policies through the configuration and the API: the
// file's `interfaces[].policy` reaches the firewall, GET /v1/policy lists
// them under `interfaces`, and PUT /v1/policy changes only the hooks'
// defaults. (What they do to packets: policy-iface-default.test.ts.)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import { Firewall } from '../src/firewall.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { interfaceDefaults, loadConfig } from '../src/config.js';
import { quietLog } from './lib/firewall.js';

let dir: string;
let firewall: Firewall;
let app: FastifyInstance;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xw-policy-iface-'));
  const path = join(dir, 'xdpwall.yaml');
  writeFileSync(path, 'interfaces: [eth0, { name: lab/veth1, policy: { ingress: accept, egress: drop } }]\npolicy: { ingress: drop }\n');
  const config = loadConfig(path);
  ({ firewall } = await Firewall.open(
    {
      objectPath: BPF_OBJECT_PATH, storePath: ':memory:', pin: null, capacity: { cidrV4: 1024, cidrV6: 1024, flows: 1024 }, countersCacheMs: 1,
      policy: config.policy, ifaceDefaults: interfaceDefaults(config),
    },
    quietLog,
  ));
  app = await buildApp({ firewall });
}, 60_000);

afterAll(async () => {
  await app?.close();
  firewall?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('per-interface default policy in the API', () => {
  it('GET /v1/policy lists the configured interfaces; PUT changes only the hooks\' defaults', async () => {
    const interfaces = [{ iface: 'lab/veth1', ingress: 'accept', egress: 'drop' }];
    expect((await app.inject({ method: 'GET', url: '/v1/policy' })).json()).toEqual({ ingress: 'drop', egress: 'accept', interfaces });
    const put = await app.inject({ method: 'PUT', url: '/v1/policy', payload: { ingress: 'accept' } });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toEqual({ ingress: 'accept', egress: 'accept', interfaces });
    expect((await app.inject({ method: 'PUT', url: '/v1/policy', payload: { interfaces: [] } })).statusCode).toBe(400);
  });
});

// The daemon's lifecycle on the real kernel, without traffic: it serves on
// a unix socket, keeps rules across a restart (store restored, pinned maps
// adopted), refuses a second daemon on its directories or socket, and
// refuses to start on an interface it cannot attach to, leaving nothing
// behind.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { objPin } from '@xdpwall/addon';
import { loadConfig } from '../src/config.js';
import { startDaemon } from '../daemon/serve.js';
import { pinDirFor } from '../src/firewall.js';
import { Datapath } from '../src/datapath/datapath.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { ApiClient } from '../cli/client.js';
import { encodeLpmKey } from '../src/datapath/abi.js';
import { parseCidr } from '../src/rules/cidr.js';

const stateDir = mkdtempSync(join(tmpdir(), 'xw-daemon-'));
const socket = join(stateDir, 'api.sock');
const instance = `test-${process.pid}`;
const config = loadConfig(undefined, { stateDir, listen: `unix:${socket}`, instance, logLevel: 'silent' });
const pinDir = pinDirFor(config.bpffsRoot, instance);
const silent = pino({ level: 'silent' });

afterAll(() => {
  rmSync(pinDir, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
});

describe('daemon lifecycle', () => {
  it('serves on a unix socket and keeps rules across a restart', async () => {
    const first = await startDaemon(config, silent);
    const client = new ApiClient(`unix:${socket}`);
    let blockId: number;
    try {
      const created = await client.call<{ id: number; cidr: string }>('POST', '/v1/blocks', { cidr: '198.18.42.0/25', comment: 'kept' });
      expect(created.status).toBe(201);
      blockId = created.body.id;
      const mapDirs = readdirSync(pinDir).filter((name) => name.startsWith('maps-'));
      expect(mapDirs).toEqual([expect.stringMatching(/^maps-v\d+-[0-9a-f]{12}$/)]);
      expect(existsSync(join(pinDir, mapDirs[0]!, 'xw_src_v4'))).toBe(true);
    } finally {
      await first.stop();
    }
    expect(existsSync(socket)).toBe(false);

    // While the daemon is down, the pinned trie (where a /25 lives) still holds the rule.
    const cidr = parseCidr('198.18.42.0/25');
    const adopted = await Datapath.load({ objectPath: BPF_OBJECT_PATH, pin: { bpffsRoot: config.bpffsRoot, dir: pinDir }, capacity: config.capacity }, silent);
    try {
      expect(adopted.maps.srcV4.lookup(encodeLpmKey(4, cidr.bytes, cidr.prefixLen))?.readUInt32LE(0)).toBe(blockId);
    } finally {
      adopted.close();
    }

    const second = await startDaemon(config, silent);
    try {
      const listed = await client.call<{ items: Array<{ id: number; cidr: string; comment: string }> }>('GET', '/v1/blocks');
      expect(listed.body.items).toEqual([expect.objectContaining({ id: blockId, cidr: '198.18.42.0/25', comment: 'kept' })]);
      expect(second.firewall.datapath.maps.srcV4.lookup(encodeLpmKey(4, cidr.bytes, cidr.prefixLen))?.readUInt32LE(0)).toBe(blockId);
      await expect(client.call('POST', '/v1/blocks', { cidr: '198.18.42.1/25' })).rejects.toThrow(/^INVALID_CIDR: .*host bits/);
    } finally {
      await second.stop();
    }
  });

  it('refuses to start when an interface cannot be attached, and cleans up', async () => {
    const broken = loadConfig(undefined, { stateDir, listen: `unix:${socket}`, instance, logLevel: 'silent', interfaces: ['xwnosuchif0'] });
    await expect(startDaemon(broken, silent)).rejects.toThrow(/cannot attach to xwnosuchif0: if_nametoindex/);
    expect(existsSync(socket)).toBe(false);
    // The store was closed: a new daemon opens it at once.
    const again = await startDaemon(config, silent);
    await again.stop();
  });

  it('refuses a second daemon on its state directory, its pin directory or its unix socket, naming the holder', async () => {
    const first = await startDaemon(config, silent);
    const otherState = mkdtempSync(join(tmpdir(), 'xw-daemon-other-'));
    try {
      await expect(startDaemon(config, silent)).rejects.toMatchObject({
        code: 'INSTANCE_LOCKED', message: expect.stringContaining(`state directory ${stateDir} is locked by another xdpwall process (pid ${process.pid})`),
      });
      const samePins = loadConfig(undefined, { stateDir: otherState, listen: 'unix:' + join(otherState, 'api.sock'), instance, logLevel: 'silent' });
      await expect(startDaemon(samePins, silent)).rejects.toMatchObject({
        code: 'INSTANCE_LOCKED', message: expect.stringContaining(`pin directory ${pinDir} is locked by another xdpwall process (pid ${process.pid})`),
      });
      const sameSocket = loadConfig(undefined, { stateDir: otherState, listen: `unix:${socket}`, instance: `${instance}-other`, logLevel: 'silent' });
      await expect(startDaemon(sameSocket, silent)).rejects.toMatchObject({
        code: 'INSTANCE_LOCKED', message: expect.stringContaining(`unix socket ${socket}: another process is listening on it; not removing it`),
      });
      expect(existsSync(socket)).toBe(true);
      expect((await new ApiClient(`unix:${socket}`).call('GET', '/healthz')).status).toBe(200);
    } finally {
      await first.stop();
      rmSync(otherState, { recursive: true, force: true });
      rmSync(pinDirFor(config.bpffsRoot, `${instance}-other`), { recursive: true, force: true });
    }
  });

  it('pins maps of another layout in another directory, and refuses a mismatched pin it finds in its own', async () => {
    const dir = pinDirFor(config.bpffsRoot, `${instance}-layout`);
    const load = (flows: number) =>
      Datapath.load({ objectPath: BPF_OBJECT_PATH, pin: { bpffsRoot: config.bpffsRoot, dir }, capacity: { ...config.capacity, flows } }, silent);
    try {
      const first = await load(4096);
      const firstMaps = first.pins!.maps;
      first.close();
      const second = await load(8192);
      try {
        expect(second.pins!.maps).not.toBe(firstMaps);
        expect(second.maps.flows.maxEntries).toBe(8192);
        // A flow table of the wrong size where the 4096-entry layout expects its own.
        rmSync(join(firstMaps, 'xw_flows'));
        objPin(second.maps.flows.fd, join(firstMaps, 'xw_flows'));
      } finally {
        second.close();
      }
      await expect(load(4096)).rejects.toMatchObject({
        code: 'DATAPATH_ERROR', message: expect.stringMatching(/does not match the object[^]*it is not reused/),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

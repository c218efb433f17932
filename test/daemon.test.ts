// The daemon's lifecycle on the real kernel, without traffic: it serves on
// a unix socket, keeps rules across a restart (store restored, pinned maps
// adopted), and refuses to start on an interface it cannot attach to,
// leaving nothing behind.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { startDaemon } from '../src/daemon/serve.js';
import { pinDirFor } from '../src/firewall.js';
import { Datapath } from '../src/datapath/datapath.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { ApiClient } from '../src/cli/client.js';
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
      expect(existsSync(join(pinDir, 'xw_src_v4'))).toBe(true);
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
    await expect(startDaemon(broken, silent)).rejects.toThrow(/cannot attach XDP to xwnosuchif0/);
    expect(existsSync(socket)).toBe(false);
    // The store was closed: a new daemon opens it at once.
    const again = await startDaemon(config, silent);
    await again.stop();
  });
});

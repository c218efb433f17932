// A start that adopts maps an earlier start filled (FirewallOptions.restoreLater,
// as the daemon opens it) returns before reconciling them: the maps keep what
// they held, changes wait behind the reconcile, and once it has run the kernel
// holds exactly the store. Maps not known to be filled are reconciled before
// open() returns. Real store file, real pinned maps.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Firewall, type FirewallOptions } from '../src/firewall.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';
import { RuleStore } from '../src/rules/store.js';
import { parseCidr } from '../src/rules/cidr.js';
import { RESTORE_MARKER } from '../src/datapath/restore-marker.js';
import { quietLog } from './lib/firewall.js';
import { buildApp } from '../api/app.js';
import { RESTORING } from '../api/routes/observe.js';

const BPFFS = '/sys/fs/bpf';
const state = mkdtempSync(join(tmpdir(), 'xw-restore-later-'));
const pinDir = join(BPFFS, 'xdpwall', `test-restore-later-${process.pid}`);
const options: FirewallOptions = {
  objectPath: BPF_OBJECT_PATH,
  storePath: join(state, 'rules.sqlite'),
  pin: { bpffsRoot: BPFFS, dir: pinDir },
  capacity: { cidrV4: 1024, cidrV6: 1024, flows: 1024 },
  countersCacheMs: 1,
  restoreLater: true,
};
const marker = join(state, RESTORE_MARKER);
const hostKey = (cidr: string) => Buffer.from(parseCidr(cidr).bytes);

afterAll(() => {
  rmSync(pinDir, { recursive: true, force: true });
  rmSync(state, { recursive: true, force: true });
});

describe('restoring after serving', () => {
  it('reconciles new maps before open() returns, and marks them filled', async () => {
    const { firewall, restored, restoring } = await Firewall.open(options, quietLog);
    try {
      expect(restoring).toBeUndefined();
      expect(restored).toEqual({ added: 0, removed: 0, kept: 0 });
      expect(existsSync(marker)).toBe(true);
      await firewall.addBlock({ cidr: '198.18.0.1/32' });
      expect(firewall.restore()).toEqual({ state: 'done' });
    } finally {
      firewall.close();
    }
  });

  it('adopts filled maps as they are, holds changes until the reconcile, then matches the store', async () => {
    // While no daemon runs, the store gains a rule the kernel lacks and loses one it holds.
    const store = new RuleStore(options.storePath);
    const [kept] = store.findByCidr('198.18.0.1/32');
    store.insertIfAbsent({ cidr: parseCidr('198.18.0.2/32'), direction: 'src', comment: null, createdAt: new Date(0).toISOString() });
    store.delete(kept!.id);
    store.close();

    const { firewall, restored, restoring } = await Firewall.open(options, quietLog);
    try {
      expect(restored).toBeUndefined();
      expect(restoring).toBeDefined();
      expect(firewall.restore()).toEqual({ state: 'running' });
      const hosts = firewall.datapath.maps.srcHostV4;
      // The previous run's entries enforce meanwhile.
      expect(hosts.lookup(hostKey('198.18.0.1/32'))).not.toBeNull();
      expect(hosts.lookup(hostKey('198.18.0.2/32'))).toBeNull();
      const app = await buildApp({ firewall });
      const health = async () => (await app.inject({ method: 'GET', url: '/healthz' })).json<{ status: string; degraded?: unknown[] }>();
      expect(await health()).toMatchObject({ status: 'degraded', degraded: [{ restore: 'running', reason: RESTORING }] });
      // A change waits for the reconcile, which waits for beginRestore.
      let added = false;
      const adding = firewall.addBlock({ cidr: '198.18.0.3/32' }).then((result) => {
        added = true;
        return result;
      });
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
      expect(added).toBe(false);
      expect(firewall.blocks.usage()[4].count).toBe(2); // counted before serving, the pending add included
      firewall.beginRestore();
      expect((await adding).created).toBe(true);
      await firewall.restoreEnded();
      expect(firewall.restore()).toEqual({ state: 'done' });
      expect((await health()).status).toBe('ok');
      await app.close();
      expect(hosts.lookup(hostKey('198.18.0.1/32'))).toBeNull();
      expect(hosts.lookup(hostKey('198.18.0.2/32'))).not.toBeNull();
      expect(hosts.lookup(hostKey('198.18.0.3/32'))).not.toBeNull();
      expect((await hosts.lookupAll()).count).toBe(2);
    } finally {
      firewall.close();
    }
  });

  it('reconciles before returning when the marker names other maps, and abandons a restore never begun', async () => {
    writeFileSync(marker, JSON.stringify({ mapsDir: 'maps-v1-000000000000', configMapId: 1 }));
    const eager = await Firewall.open(options, quietLog);
    expect(eager.restoring).toBeUndefined();
    expect(eager.restored).toEqual({ added: 0, removed: 0, kept: 2 });
    eager.firewall.close();

    const opened = await Firewall.open(options, quietLog);
    expect(opened.restoring).toBeDefined();
    opened.firewall.abandonRestore();
    await opened.firewall.restoreEnded();
    expect(opened.firewall.restore()).toMatchObject({ state: 'failed', reason: expect.stringMatching(/abandoned/) });
    // Until a restore succeeds, changes are refused and nothing of them is stored: applied over an
    // index that lacks the pinned rules, they would rewrite DIR-24 slots those rules share.
    const count = () => opened.firewall.blocks.usage()[4].count;
    const before = count();
    await expect(opened.firewall.addBlock({ cidr: '198.18.9.0/24' })).rejects.toMatchObject({ code: 'DATAPATH_ERROR' });
    expect(count()).toBe(before);
    opened.firewall.retryRestore();
    await opened.firewall.restoreEnded();
    expect(opened.firewall.restore()).toEqual({ state: 'done' });
    expect((await opened.firewall.addBlock({ cidr: '198.18.9.0/24' })).created).toBe(true);
    expect(count()).toBe(before + 1);
    opened.firewall.close();
  });
});

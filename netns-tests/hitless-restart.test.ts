// Filtering never stops: a blocked source streaming through the lab gets no
// packet through a restart, a crash (kill -9) and restart, or an upgrade to
// an object of another ABI version, and an allowed one loses none; the same
// with 1M rules. The daemon owns its hook: a second daemon on the same state
// or pin directory refuses, naming the holder; a program it does not own is
// refused unless --force; a failed start detaches nothing; a deleted and
// recreated interface is reported degraded, then re-attached.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfObject, xdpAttach, xdpDetach, xdpQuery } from '../addon/index.js';
import { ABI_VERSION } from '../src/datapath/abi.js';
import { hostAddress, runInNetnsChecked } from '../src/lab/netns.js';
import type { InterfaceInfo } from './lib/api-client.js';
import { newDaemonState, removeDaemonState, startDaemon, type Daemon } from './lib/daemon.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { CLI_PATH, REPO_ROOT } from './lib/lab-env.js';
import { teardown } from './lib/teardown.js';
import { ping, sendUdp, waitReachable, type UdpSendResult } from './lib/traffic.js';

const ECHO_PORT = 7600;
const PIN_ROOT = '/sys/fs/bpf/xdpwall';
/** What the issue asks for: back to attached (or reported degraded) within 5 s. */
const REATTACH_MS = 5_000;
/** Bounds a stream (one datagram every 10 ms); it stops 2 s after the restart. */
const STREAM = 10_000;

interface Streams {
  blocked: UdpSendResult;
  allowed: UdpSendResult;
}

describe('hitless restart, upgrade and hook ownership', () => {
  const world = new FirewallLab({ subnet: 60, echo: { port: ECHO_PORT, replyBytes: 16, lifetimeMs: 1_500_000 } });
  const workDir = mkdtempSync(join(tmpdir(), 'xwt-restart-'));
  const upgradedObject = join(workDir, 'xdpwall.bpf.o');
  const fixtureObject = join(workDir, 'addon-test.bpf.o');

  const pinDir = (): string => join(PIN_ROOT, world.daemon.state.instance);
  const mapDirs = (): string[] => readdirSync(pinDir()).filter((name) => name.startsWith('maps-'));
  const pings = async (family: 'ipv4' | 'ipv6'): Promise<number> =>
    (await ping(world.lab.client.netns, world.lab.server[family])).received;
  const interfaces = async (): Promise<InterfaceInfo[]> => (await world.api.interfaces()).body.items;

  beforeAll(async () => {
    // The "upgrade": the same sources built as another ABI version.
    execFileSync('make', ['-s', '-C', join(REPO_ROOT, 'xdp'), `BUILD=${workDir}`, `CLANG=clang -DXW_ABI_VERSION=${ABI_VERSION + 100}`]);
    execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', '-c',
      join(REPO_ROOT, 'test', 'fixtures', 'addon-test.bpf.c'), '-o', fixtureObject]);
    await world.setUp();
    expect((await world.api.createBlock(`${hostAddress(world.lab.client.ipv4)}/32`)).status).toBe(201);
  });

  afterAll(() => teardown(() => world.tearDown(), () => rmSync(workDir, { recursive: true, force: true })));

  /**
   * A blocked (IPv4) and an allowed (IPv6) UDP stream from the client to the
   * echo responder, both running before, through and 2 s after `during`.
   * STREAM only bounds them: they stop once `during` is done.
   */
  async function streamsThrough(during: () => Promise<void>): Promise<Streams> {
    const { client, server } = world.lab;
    const stop = new AbortController();
    const send = (address: string, srcPort: number) =>
      sendUdp(client.netns, { address, port: ECHO_PORT, srcPort, count: STREAM, size: 32, intervalMs: 10, waitMs: 1_000, stop: stop.signal });
    const [blocked, allowed] = [send(server.ipv4, 41_000), send(server.ipv6, 41_001)];
    let sending = true;
    // Also handles a sender failing while `during` runs.
    const settled = Promise.allSettled([blocked, allowed]).finally(() => (sending = false));
    await sleep(500);
    try {
      await during();
      await sleep(2_000);
      // Streams that ended before the new daemon served would prove nothing about the swap.
      expect(sending, 'the streams outlast the restart').toBe(true);
    } finally {
      stop.abort();
      await settled;
    }
    return { blocked: await blocked, allowed: await allowed };
  }

  /** Restarts the world's daemon (stop or kill, then start) inside the streams; logs what it measured. */
  async function restartUnderTraffic(what: string, go: (daemon: Daemon) => Promise<unknown>, env?: Record<string, string>): Promise<Streams> {
    let servingMs = 0;
    const streams = await streamsThrough(async () => {
      await go(world.daemon);
      const start = performance.now();
      await world.startDaemon({ startTimeoutMs: 300_000, ...(env ? { env } : {}) });
      servingMs = performance.now() - start;
    });
    console.info(`${what}: restart-to-serving ${Math.round(servingMs)} ms; blocked ${streams.blocked.received}/${streams.blocked.sent} through, allowed ${streams.allowed.received}/${streams.allowed.sent} answered`);
    return streams;
  }

  const expectNoGap = ({ blocked, allowed }: Streams): void => {
    expect(blocked.sent).toBeGreaterThan(0);
    expect(blocked.received).toBe(0);
    expect(allowed.sent).toBeGreaterThan(0);
    expect(allowed.received).toBe(allowed.sent);
  };

  it('a restart (SIGTERM, start) lets no blocked packet through and loses no allowed one', async () => {
    expectNoGap(await restartUnderTraffic('restart', async (daemon) => expect(await daemon.stop()).toBe(0)));
    expect(world.daemon.log()).toMatch(/programs swapped into the pinned links/);
    expect(world.daemon.log()).toMatch(/adopting pinned maps/);
  });

  it('kill -9 and a start: the same', async () => {
    expectNoGap(await restartUnderTraffic('kill -9', (daemon) => daemon.kill()));
  });

  it('an upgrade to another ABI version swaps the programs in with fresh maps refilled from the store, and back', async () => {
    const before = mapDirs();
    expect(before).toEqual([expect.stringMatching(new RegExp(`^maps-v${ABI_VERSION}-[0-9a-f]{12}$`))]);
    const streams = await restartUnderTraffic('upgrade', async (daemon) => expect(await daemon.stop()).toBe(0), {
      XDPWALL_BPF_OBJECT: upgradedObject,
    });
    expectNoGap(streams);
    expect(mapDirs()).toEqual([expect.stringMatching(new RegExp(`^maps-v${ABI_VERSION + 100}-[0-9a-f]{12}$`))]);
    expect(world.daemon.log()).toMatch(/new maps, filled from the store/);
    expect((await world.api.listBlocks()).body.total).toBe(1);

    expectNoGap(await restartUnderTraffic('downgrade', async (daemon) => expect(await daemon.stop()).toBe(0)));
    expect(mapDirs()).toEqual(before.map((name) => expect.stringMatching(new RegExp(`^${name.slice(0, -12)}`))));
  });

  it('a start that fails (its port taken) leaves the programs of the crashed daemon enforcing', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const address = taken.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      await world.daemon.kill();
      await expect(startDaemon({ ifaces: [world.lab.serverIface], state: world.daemon.state, args: ['--listen', `127.0.0.1:${port}`] }))
        .rejects.toThrow(/CONFIG_ERROR: cannot listen on .*: the address is already in use/);
      expect(await pings('ipv4')).toBe(0);
      expect(await pings('ipv6')).toBe(3);
    } finally {
      taken.close();
      await world.startDaemon();
    }
  });

  it('a second daemon on the same state directory or the same pin directory refuses, naming the holder', async () => {
    const holder = world.daemon.pid;
    await expect(startDaemon({ ifaces: [world.lab.serverIface], state: world.daemon.state }))
      .rejects.toThrow(new RegExp(`INSTANCE_LOCKED: state directory \\S+ is locked by another xdpwall process \\(pid ${holder}\\)`));
    const other = newDaemonState();
    try {
      await expect(startDaemon({ ifaces: [world.lab.serverIface], state: { ...other, instance: world.daemon.state.instance } }))
        .rejects.toThrow(new RegExp(`INSTANCE_LOCKED: pin directory \\S+ is locked by another xdpwall process \\(pid ${holder}\\)`));
    } finally {
      removeDaemonState(other);
    }
    expect(await pings('ipv4')).toBe(0);
    expect((await world.api.request<{ status: string }>('GET', '/healthz')).body.status).toBe('ok');
  });

  it("refuses a hook running a program it does not own (another tool's, another instance's) unless --force; detach removes its links", async () => {
    const clientIface = `${world.lab.client.netns}/${world.lab.client.ifname}`;
    const tool = BpfObject.open(fixtureObject);
    const other = newDaemonState();
    let forced: Daemon | undefined;
    try {
      await tool.load();
      xdpAttach(clientIface, tool.program('xdp_test').fd, 'generic');
      const toolProgram = tool.program('xdp_test').id;
      await expect(startDaemon({ ifaces: [clientIface], state: other }))
        .rejects.toThrow(new RegExp(`HOOK_BUSY: ${clientIface} already runs xdp program 'xdp_test' \\(id ${toolProgram}\\)`));
      await expect(startDaemon({ ifaces: [world.lab.serverIface], state: other }))
        .rejects.toThrow(/HOOK_BUSY: \S+ already runs xdp program 'xw_ingress' \(id \d+\) through link \d+/);
      expect(xdpQuery(clientIface).progId).toBe(toolProgram);
      expect(await pings('ipv4')).toBe(0);

      forced = await startDaemon({ ifaces: [clientIface], state: other, args: ['--force'] });
      expect(xdpQuery(clientIface).progId).not.toBe(toolProgram);
      expect(forced.log()).toMatch(/removing a program this instance does not own/);
      expect(await forced.stop()).toBe(0);
      expect(xdpQuery(clientIface).progId).not.toBe(0); // stopping leaves the links

      const detached = execFileSync(process.execPath, [CLI_PATH, 'detach', '--state-dir', other.stateDir, '--instance', other.instance], { encoding: 'utf8' });
      expect(detached).toMatch(new RegExp(`${clientIface}: detached xdp link \\d+ running xdp program 'xw_ingress' \\(id \\d+\\)`));
      expect(detached).toMatch(new RegExp(`${clientIface}: detached tcx_egress link \\d+ running sched_cls program 'xw_egress'`));
      expect(xdpQuery(clientIface).progId).toBe(0);
    } finally {
      await teardown(
        () => forced?.stop(),
        () => tool.close(),
        () => xdpQuery(clientIface).progId !== 0 && xdpDetach(clientIface),
        () => removeDaemonState(other),
      );
    }
  });

  it('detach refuses while the daemon runs (it would re-attach)', () => {
    const { stateDir, instance } = world.daemon.state;
    const result = spawnSync(process.execPath, [CLI_PATH, 'detach', '--state-dir', stateDir, '--instance', instance], { encoding: 'utf8' });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`is locked by another xdpwall process \\(pid ${world.daemon.pid}\\)[^\\n]*; stop the daemon first`));
  });

  it('SIGHUP is logged, re-checks the interfaces and leaves the daemon serving', async () => {
    process.kill(world.daemon.pid, 'SIGHUP');
    expect(await waitFor(async () => /"msg":"interfaces checked"/.test(world.daemon.log()))).toBe(true);
    expect(world.daemon.log()).toMatch(/"signal":"SIGHUP","msg":"re-checking interfaces and links"/);
    expect((await world.api.request<{ status: string }>('GET', '/healthz')).body.status).toBe('ok');
    expect(await pings('ipv4')).toBe(0);
  });

  it('reports degraded while its interface is gone and re-attaches when it comes back', async () => {
    const { client, server, serverIface } = world.lab;
    const before = (await interfaces())[0]!;
    await runInNetnsChecked(server.netns, ['ip', 'link', 'del', server.ifname]);

    const degraded = await waitFor(async () => (await interfaces())[0]!.state === 'degraded');
    expect(degraded).toBe(true);
    expect((await interfaces())[0]).toMatchObject({ iface: serverIface, state: 'degraded', reason: expect.stringMatching(/is gone|no longer attached/) });
    expect((await world.api.request('GET', '/healthz')).body).toMatchObject({ status: 'degraded', degraded: [{ iface: serverIface }] });
    const metrics = await (await fetch(`${world.daemon.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^xdpwall_degraded 1$/m);
    expect(metrics).toContain(`xdpwall_interface_attached{iface="${serverIface}"} 0`);
    expect(world.daemon.log()).toMatch(/interface degraded: not filtering/);

    // The same names again: a new interface (new ifindex in the kernel's eyes).
    await runInNetnsChecked(client.netns, ['ip', 'link', 'add', client.ifname, 'type', 'veth', 'peer', 'name', server.ifname, 'netns', server.netns]);
    for (const end of [client, server]) {
      await runInNetnsChecked(end.netns, ['ip', 'addr', 'add', end.ipv4, 'dev', end.ifname]);
      await runInNetnsChecked(end.netns, ['ip', '-6', 'addr', 'add', end.ipv6, 'dev', end.ifname, 'nodad']);
      await runInNetnsChecked(end.netns, ['ip', 'link', 'set', end.ifname, 'up']);
    }
    expect(await waitFor(async () => (await interfaces())[0]!.state === 'attached')).toBe(true);
    expect((await interfaces())[0]).toEqual({ ...before, ifindex: expect.any(Number), state: 'attached' });
    expect(world.daemon.log()).toMatch(/re-attached/);
    await waitReachable(client.netns, server.ipv6);
    expect(await pings('ipv4')).toBe(0);
    expect(await pings('ipv6')).toBe(3);
    expect((await world.api.request('GET', '/healthz')).body).toMatchObject({ status: 'ok' });
    expect(await (await fetch(`${world.daemon.baseUrl}/metrics`)).text()).toMatch(/^xdpwall_degraded 0$/m);
  });

  it('with 1M rules a restart and an upgrade let nothing through either (restart-to-serving time logged)', { timeout: 600_000 }, async () => {
    const total = 1_000_000;
    const chunk = 250_000;
    for (let first = 0; first < total; first += chunk) {
      // Host routes in 10.0.0.0/12: only ever map entries, never a destination.
      const items = Array.from({ length: chunk }, (_, i) => {
        const n = first + i;
        return { cidr: `10.${n >>> 16}.${(n >>> 8) & 255}.${n & 255}/32` };
      });
      const response = await fetch(`${world.daemon.baseUrl}/v1/blocks/bulk`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${world.daemon.state.token}` },
        body: JSON.stringify({ items }), signal: AbortSignal.timeout(300_000),
      });
      expect(response.status).toBe(200);
    }
    expect((await world.api.listBlocks()).body.total).toBe(total + 1);
    expectNoGap(await restartUnderTraffic('restart, 1M rules', async (daemon) => expect(await daemon.stop(60_000)).toBe(0)));
    expectNoGap(await restartUnderTraffic('upgrade, 1M rules', async (daemon) => expect(await daemon.stop(60_000)).toBe(0), {
      XDPWALL_BPF_OBJECT: upgradedObject,
    }));
  });
});

/** Polls `check` every 200 ms until it holds or REATTACH_MS pass. */
async function waitFor(check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + REATTACH_MS;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(200);
  }
}

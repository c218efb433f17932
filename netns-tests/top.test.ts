// `xdpwall top` in a real terminal (tmux, on a private server socket): it
// shows the lab's flows and, once a block is in force, the drop reason with a
// rate; q quits and gives the terminal back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { hostAddress } from '../src/lab/netns.js';
import { run } from '../src/lab/run.js';
import { CLI_PATH } from './lib/lab-env.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { sendUdp, type UdpSendResult } from './lib/traffic.js';

const ECHO_PORT = 9000;

describe('xdpwall top under tmux', () => {
  const world = new FirewallLab({ subnet: 71, echo: { port: ECHO_PORT, replyBytes: 64, lifetimeMs: 300_000 } });
  const socket = `xwt-top-${process.pid}`;
  const session = 'top';
  const traffic = new AbortController();
  let sender: Promise<UdpSendResult> | undefined;

  const tmux = (...args: string[]) => run(['tmux', '-L', socket, ...args], { timeoutMs: 10_000 });
  const screen = async (): Promise<string> => (await tmux('capture-pane', '-p', '-t', session)).stdout;
  async function waitForScreen(test: (text: string) => boolean, timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let text = '';
    while (Date.now() < deadline) {
      text = await screen();
      if (test(text)) return text;
      await sleep(250);
    }
    throw new Error(`the screen never matched; last screen:\n${text}`);
  }

  beforeAll(async () => {
    await world.setUp();
    sender = sendUdp(world.lab.client.netns, {
      address: world.lab.server.ipv4, port: ECHO_PORT, srcPort: 43000, count: 3_000, size: 64, intervalMs: 20, waitMs: 100, stop: traffic.signal,
    });
    const started = await tmux(
      'new-session', '-d', '-s', session, '-x', '150', '-y', '40',
      '-e', `XDPWALL_TOKEN=${world.daemon.state.token}`,
      process.execPath, CLI_PATH, 'top', '--api', world.daemon.baseUrl,
    );
    expect(started.code, started.stderr).toBe(0);
  });

  afterAll(async () => {
    traffic.abort();
    await sender?.catch(() => undefined);
    // Only this suite's tmux server (its own socket).
    await tmux('kill-server');
    await world.tearDown();
  });

  it('shows the top flows and pass rates of the lab, refreshed', async () => {
    const client = hostAddress(world.lab.client.ipv4);
    const text = await waitForScreen((t) => t.includes(`${client}:43000`) && /pass_no_match\s+ingress\s+[1-9]/.test(t));
    expect(text).toMatch(/^xdpwall top — http:\/\/127\.0\.0\.1:\d+ — \d\d:\d\d:\d\d {3}in: pass [\d.,]+ pkt\/s, drop [\d.]+ pkt\/s {3}\(q quits\)/);
    expect(text).toMatch(/udp\s+198\.18\.71\.1:43000\s+198\.18\.71\.2:9000\s+\S+xws0\s+[\d,]+/);
    const clock = /— (\d\d:\d\d:\d\d)/.exec(text)![1];
    await waitForScreen((t) => /— (\d\d:\d\d:\d\d)/.exec(t)?.[1] !== clock, 5_000);
  });

  it('shows a drop reason with its rate once the client is blocked', async () => {
    const cidr = `${hostAddress(world.lab.client.ipv4)}/32`;
    expect((await world.api.createBlock(cidr)).status).toBe(201);
    const text = await waitForScreen((t) => /deny_src_cidr\s+ingress\s+[1-9]/.test(t));
    // Drops are listed before passes.
    expect(text.indexOf('deny_src_cidr')).toBeLessThan(text.indexOf('pass_no_match'));
    // XW_TOP_CAPTURE=FILE keeps a frame for the README.
    if (process.env.XW_TOP_CAPTURE) writeFileSync(process.env.XW_TOP_CAPTURE, await waitForScreen((t) => /deny_src_cidr\s+ingress\s+[1-9]/.test(t)));
  });

  it('lists the busiest rules with their hit rates', async () => {
    expect((await world.api.deleteBlockByCidr(`${hostAddress(world.lab.client.ipv4)}/32`)).status).toBe(204);
    const created = await fetch(`${world.daemon.baseUrl}/v1/rules`, {
      method: 'POST',
      headers: { authorization: `Bearer ${world.daemon.state.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'pass', src: `${hostAddress(world.lab.client.ipv4)}/32`, proto: 'udp', dstPort: ECHO_PORT, comment: 'lab stream' }),
    });
    expect(created.status, await created.clone().text()).toBe(201);
    const { id } = (await created.json()) as { id: number };
    const text = await waitForScreen((t) => new RegExp(`^${id}\\s+pass\\s+src 198\\.18\\.71\\.1(?:/32)? udp port 9000\\s+[1-9][\\d.,]*\\s+[\\d,]+\\s+lab stream\\s*$`, 'm').test(t));
    expect(text).toMatch(/^RULE\s+ACTION\s+MATCH\s+HITS\/S\s+HITS\s+COMMENT$/m);
  });

  it('quits on q and restores the terminal', async () => {
    expect((await tmux('send-keys', '-t', session, 'q')).code).toBe(0);
    const deadline = Date.now() + 10_000;
    while ((await tmux('has-session', '-t', session)).code === 0) {
      if (Date.now() > deadline) throw new Error(`top did not quit:\n${await screen()}`);
      await sleep(100);
    }
  });
});

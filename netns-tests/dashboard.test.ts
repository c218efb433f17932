// The web dashboard in a real browser (Debian's chromium, headless, driven by
// playwright-core) against the real daemon and live lab traffic: it asks for
// the token, shows the lab's flows and rates, its chart advances, a block
// added in the page stops a ping in the lab and removing it there lets the
// ping through again; no console errors throughout.
// XW_SCREENSHOT=docs/dashboard.png saves the README's screenshot on the way.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { hostAddress } from '../src/lab/netns.js';
import { FirewallLab } from './lib/firewall-lab.js';
import { ping, sendUdp, type UdpSendResult } from './lib/traffic.js';
import { dashboardProblems, readDashboard } from '../test/lib/grafana.js';

const CHROMIUM = '/usr/bin/chromium';
const ECHO_PORT = 9000;

describe('the web dashboard at /ui', () => {
  const world = new FirewallLab({ subnet: 70, echo: { port: ECHO_PORT, replyBytes: 200, lifetimeMs: 300_000 } });
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];
  const traffic = new AbortController();
  let senders: Promise<UdpSendResult[]> | undefined;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup.sh (it installs chromium)`);
    await world.setUp();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => consoleErrors.push(error.message));
  });

  afterAll(async () => {
    traffic.abort();
    await senders?.catch(() => undefined);
    await browser?.close();
    await world.tearDown();
  });

  /** Steady UDP over IPv4 and IPv6 until the suite ends (bounded: 3,000 datagrams each). */
  function startTraffic(): void {
    const { client, server } = world.lab;
    senders = Promise.all(
      (['ipv4', 'ipv6'] as const).map((family, i) =>
        sendUdp(client.netns, { address: server[family], port: ECHO_PORT, srcPort: 42000 + i, count: 3_000, size: 100, intervalMs: 20, waitMs: 100, stop: traffic.signal }),
      ),
    );
  }

  const samples = async (): Promise<number> => Number((await page.locator('#chart').getAttribute('data-samples')) ?? 0);
  const rateOf = async (direction: string, reason: string): Promise<number> => {
    const row = page.locator(`#rates tbody tr[data-direction="${direction}"][data-reason="${reason}"] td:nth-child(3)`);
    return (await row.count()) === 0 ? 0 : Number((await row.textContent())!.replace(/,/g, ''));
  };

  it('asks for the token, then shows the interface', async () => {
    await page.goto(`${world.daemon.baseUrl}/ui`);
    await page.locator('#token-input').fill(world.daemon.state.token);
    await page.locator('#token-form button[type=submit]').click();
    const row = page.locator('#interfaces tbody tr', { hasText: world.lab.serverIface });
    await row.waitFor({ timeout: 10_000 });
    expect(await row.textContent()).toContain('attached');
    // The daemon's API has /v1/rules, so the rules section shows; sections for routes it lacks stay hidden.
    await page.locator('#rules').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.evaluate("sessionStorage.getItem('xdpwall.token')")).toBe(world.daemon.state.token);
  });

  it("shows the lab's flows and per-reason rates, and the chart advances", async () => {
    startTraffic();
    const clientV4 = hostAddress(world.lab.client.ipv4);
    const clientV6 = hostAddress(world.lab.client.ipv6);
    await page.locator('#flows tbody tr', { hasText: `${clientV4}:42000` }).waitFor({ timeout: 15_000 });
    await page.locator('#flows tbody tr', { hasText: `[${clientV6}]:42001` }).waitFor({ timeout: 15_000 });
    await expect.poll(() => rateOf('ingress', 'pass_no_match'), { timeout: 10_000 }).toBeGreaterThan(10);
    await expect.poll(() => rateOf('egress', 'pass_no_match'), { timeout: 10_000 }).toBeGreaterThan(10);
    const before = await samples();
    await expect.poll(samples, { timeout: 10_000 }).toBeGreaterThan(before + 2);
    expect(await page.locator('#chart canvas').count()).toBeGreaterThan(0);
  });

  it('a block added in the page stops a ping in the lab; removing it there lets the ping through', async () => {
    const { client, server } = world.lab;
    const cidr = `${hostAddress(client.ipv4)}/32`;
    expect((await ping(client.netns, server.ipv4)).received).toBe(3);

    await page.locator('#block-form input[name=cidr]').fill(cidr);
    await page.locator('#block-form input[name=comment]').fill('from the dashboard');
    await page.locator('#block-form button[type=submit]').click();
    await page.locator('#message', { hasText: `blocked ${cidr}` }).waitFor({ timeout: 10_000 });
    expect(await ping(client.netns, server.ipv4)).toEqual({ transmitted: 3, received: 0 });

    // The IPv4 datagrams are now dropped: the drop rate shows, and the block leads the dropped sources.
    await expect.poll(() => rateOf('ingress', 'deny_src_cidr'), { timeout: 10_000 }).toBeGreaterThan(10);
    await page.locator('#dropped tbody tr', { hasText: cidr }).waitFor({ timeout: 10_000 });
    // Let the chart draw a while with both passes (IPv6) and drops (IPv4) for the screenshot.
    if (process.env.XW_SCREENSHOT) {
      await page.waitForTimeout(20_000);
      await page.screenshot({ path: process.env.XW_SCREENSHOT, fullPage: true });
    }

    await page.locator('#blocks tbody tr', { hasText: cidr }).locator('button.remove').click();
    await page.locator('#message', { hasText: `unblocked ${cidr}` }).waitFor({ timeout: 10_000 });
    expect(await ping(client.netns, server.ipv4)).toEqual({ transmitted: 3, received: 3 });
    expect((await world.api.listBlocks()).body.items).toEqual([]);
  });

  it("deploy/grafana/xdpwall.json queries only metrics and labels the live daemon's /metrics has", async () => {
    const scrape = await (await fetch(`${world.daemon.baseUrl}/metrics`)).text();
    expect(dashboardProblems(readDashboard(), scrape, true)).toEqual([]);
  });

  it('stays free of console errors and escapes what the API says', async () => {
    // A comment is data, never markup.
    const created = await world.api.createBlock('198.18.71.0/24', { comment: '<img src=x onerror=alert(1)>' });
    expect(created.status).toBe(201);
    const cell = page.locator('#blocks tbody tr', { hasText: '198.18.71.0/24' }).locator('td:nth-child(6)');
    await cell.waitFor({ timeout: 10_000 });
    expect(await cell.textContent()).toBe('<img src=x onerror=alert(1)>');
    expect(await page.locator('#blocks img').count()).toBe(0);
    expect(consoleErrors).toEqual([]);
  });
});

// Nothing acknowledged is lost: the daemon is killed with SIGKILL while
// 1,000 single POSTs (8 in flight) and one bulk import run, then restarted
// on the same state, round after round. Every 201 must be in the store (same
// id, same CIDR) and in the kernel's pinned host hash; the store and the
// kernel must hold the same rules; each bulk import is there whole or not at
// all (whole if it was acknowledged). Bounded: XW_KILL_ROUNDS rounds
// (default 3), each stopped by its kill; the kill point is seeded.
import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prng } from '../test/lib/prng.js';
import { ApiClient, type BlockRule } from './lib/api-client.js';
import { newDaemonState, removeDaemonState, startDaemon, type Daemon } from './lib/daemon.js';
import { assertBuilt, assertRoot } from './lib/lab-env.js';

const ROUNDS = Number(process.env.XW_KILL_ROUNDS ?? 3);
const POSTS_PER_ROUND = 1000;
const IN_FLIGHT = 8;
const BULK_ITEMS = 5000;
const SEED = 0x6b696c6c;

/** The round's i-th single address and bulk address: disjoint ranges of 10.0.0.0/8 (never sent to). */
const singleAddress = (round: number, i: number) => `10.${round}.${i >> 8}.${i & 255}`;
const bulkAddress = (round: number, i: number) => `10.${100 + round}.${i >> 8}.${i & 255}`;

/** Every rule the daemon lists. */
async function listAll(api: ApiClient): Promise<BlockRule[]> {
  const rules: BlockRule[] = [];
  for (let offset = 0; ; offset += 1000) {
    const { status, body } = await api.listBlocks({ limit: '1000', offset: String(offset) });
    expect(status).toBe(200);
    rules.push(...body.items);
    if (rules.length >= body.total) return rules;
  }
}

/**
 * The IPv4 host routes in the pinned source host hash, as "a.b.c.d/32".
 * Looked up anywhere under the instance's pin directory (its layout may
 * group the maps in a versioned subdirectory).
 */
function kernelHostRoutes(instance: string): Set<string> {
  const root = join('/sys/fs/bpf/xdpwall', instance);
  const pins = readdirSync(root, { recursive: true }).map(String).filter((name) => basename(name) === 'xw_src_host_v4');
  expect(pins, `one pinned source host hash under ${root}`).toHaveLength(1);
  const path = join(root, pins[0]!);
  const entries = JSON.parse(execFileSync('bpftool', ['-j', 'map', 'dump', 'pinned', path], { maxBuffer: 256 << 20 }).toString()) as Array<{ key: string[] }>;
  return new Set(entries.map(({ key }) => `${key.map((byte) => Number.parseInt(byte, 16)).join('.')}/32`));
}

describe('kill -9 during writes', () => {
  assertRoot();
  assertBuilt();
  const state = newDaemonState();
  let daemon: Daemon | undefined;
  const random = prng(SEED);
  /** id -> CIDR of every 201 so far, over all rounds. */
  const acknowledged = new Map<number, string>();
  const bulks: Array<{ round: number; acknowledged: boolean }> = [];

  afterAll(async () => {
    await daemon?.stop();
    removeDaemonState(state);
  });

  it(`loses nothing acknowledged over ${ROUNDS} rounds`, { timeout: 60_000 + ROUNDS * 60_000 }, async () => {
    // This test writes as fast as it can: lift the per-principal rate limit.
    const config = join(state.stateDir, 'config.json');
    writeFileSync(config, JSON.stringify({ api: { rateLimit: { burst: 1_000_000, perSecond: 1_000_000 } } }));
    const start = () => startDaemon({ ifaces: [], state, config });
    for (let round = 0; round < ROUNDS; round++) {
      daemon = await start();
      const api = new ApiClient(daemon.baseUrl, state.token);
      const killAfter = 100 + Math.floor(random() * 800); // acknowledgements this round
      let acks = 0;
      let next = 0;
      let killed = false;
      const victim = daemon;
      const kill = () => {
        if (killed) return;
        killed = true;
        process.kill(victim.pid, 'SIGKILL');
      };
      const bulk = fetch(`${daemon.baseUrl}/v1/blocks/bulk`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${state.token}` },
        body: JSON.stringify({ items: Array.from({ length: BULK_ITEMS }, (_, i) => ({ cidr: bulkAddress(round, i) })) }),
      }).then((response) => response.ok, () => false);
      const worker = async () => {
        while (!killed && next < POSTS_PER_ROUND) {
          const cidr = `${singleAddress(round, next++)}/32`;
          try {
            const { status, body } = await api.createBlock(cidr);
            if (status !== 201) throw new Error(`POST ${cidr} answered ${status}: ${JSON.stringify(body)}`);
            acknowledged.set(body.id, body.cidr);
            if (++acks >= killAfter) kill();
          } catch (error) {
            if (!killed) throw error;
          }
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
      kill();
      bulks.push({ round, acknowledged: await bulk });
      await daemon.stop(); // reaps the killed process

      daemon = await start();
      const restarted = new ApiClient(daemon.baseUrl, state.token);
      const stored = await listAll(restarted);
      const byId = new Map(stored.map((rule) => [rule.id, rule.cidr]));
      for (const [id, cidr] of acknowledged) expect(byId.get(id), `acknowledged rule ${id} ${cidr}`).toBe(cidr);
      const kernel = kernelHostRoutes(state.instance);
      expect(kernel.size).toBe(stored.length);
      for (const rule of stored) expect(kernel.has(rule.cidr), `${rule.cidr} enforced`).toBe(true);
      for (const { round: r, acknowledged: acked } of bulks) {
        const present = stored.filter((rule) => rule.cidr.startsWith(`10.${100 + r}.`)).length;
        expect([0, BULK_ITEMS], `bulk of round ${r}`).toContain(present);
        if (acked) expect(present).toBe(BULK_ITEMS);
      }
      await daemon.stop();
      daemon = undefined;
    }
    expect(acknowledged.size).toBeGreaterThan(ROUNDS * 100 - 1);
  });
});

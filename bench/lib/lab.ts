// Benchmark namespaces: a sender and a receiver joined by one veth pair,
// created through src/lab/netns.ts (inside the namespaces only) and removed
// by the run's cleanup. Addresses are from 198.18.0.0/15 and fd00:198::/48.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface, type Interface } from 'node:readline';
import { createVethPair, deleteNetns, nsenterArgv, runInNetnsChecked } from '../../src/lab/netns.js';
import { run } from '../../src/lab/run.js';
import type { Cleanup } from './cleanup.js';

export interface BenchLab {
  sender: { netns: string; ifname: string; mac: string };
  receiver: { netns: string; ifname: string; mac: string; ipv4: string };
}

export async function createBenchLab(runId: string, cleanup: Cleanup): Promise<BenchLab> {
  const sender = { netns: `${runId}s`, ifname: 'xwbs0', ipv4: '198.19.255.1/30', ipv6: 'fd00:198:0:ffff::1/64' };
  const receiver = { netns: `${runId}r`, ifname: 'xwbr0', ipv4: '198.19.255.2/30', ipv6: 'fd00:198:0:ffff::2/64' };
  cleanup.add(`delete namespace ${sender.netns}`, () => deleteNetns(sender.netns).then(() => undefined));
  cleanup.add(`delete namespace ${receiver.netns}`, () => deleteNetns(receiver.netns).then(() => undefined));
  await createVethPair({ a: sender, b: receiver });
  return {
    sender: { netns: sender.netns, ifname: sender.ifname, mac: await macOf(sender.netns, sender.ifname) },
    receiver: { netns: receiver.netns, ifname: receiver.ifname, mac: await macOf(receiver.netns, receiver.ifname), ipv4: '198.19.255.2' },
  };
}

async function macOf(netns: string, ifname: string): Promise<string> {
  const [link] = JSON.parse(await runInNetnsChecked(netns, ['ip', '-j', 'link', 'show', 'dev', ifname])) as Array<{ address: string }>;
  if (!link) throw new Error(`no ${ifname} in ${netns}`);
  return link.address;
}

/** Frames the interface has taken in: for veth, every frame its XDP program saw (including those it dropped). */
export async function rxPackets(netns: string, ifname: string): Promise<number> {
  const [link] = JSON.parse(await runInNetnsChecked(netns, ['ip', '-s', '-j', 'link', 'show', 'dev', ifname])) as Array<{
    stats64: { rx: { packets: number } };
  }>;
  if (!link) throw new Error(`no ${ifname} in ${netns}`);
  return link.stats64.rx.packets;
}

/**
 * A digest of the root namespace's nftables ruleset (which includes
 * iptables-nft rules): read-only, to show the run left it as it was.
 */
export async function rootFirewallDigest(): Promise<string> {
  const nft = await run(['nft', 'list', 'ruleset']);
  return createHash('sha256').update(nft.stdout).digest('hex').slice(0, 16);
}

/** A child process speaking one JSON line per request and reply. */
export class LineChild<Req, Rep> {
  private readonly lines: Interface;
  private readonly pending: Array<(line: string) => void> = [];
  private exited = false;

  private constructor(private readonly child: ChildProcess) {
    this.lines = createInterface({ input: child.stdout! });
    this.lines.on('line', (line) => this.pending.shift()?.(line));
    child.on('exit', () => {
      this.exited = true;
      for (const resolve of this.pending.splice(0)) resolve(JSON.stringify({ error: 'child exited' }));
    });
  }

  /** Starts argv inside `netns` (or here when null); stderr passes through. */
  static start<Req, Rep>(netns: string | null, argv: readonly string[], cleanup: Cleanup): LineChild<Req, Rep> {
    const full = netns ? nsenterArgv(netns, argv) : [...argv];
    const child = spawn(full[0] as string, full.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    const wrapper = new LineChild<Req, Rep>(child);
    cleanup.add(`stop child ${child.pid ?? '?'}`, () => wrapper.stop());
    return wrapper;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends one request; rejects past the deadline after killing the child. */
  request(req: Req, timeoutMs: number): Promise<Rep> {
    if (this.exited) return Promise.reject(new Error('child has exited'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.child.kill('SIGTERM');
        reject(new Error(`child ${this.child.pid} gave no answer within ${timeoutMs} ms (killed)`));
      }, timeoutMs);
      this.pending.push((line) => {
        clearTimeout(timer);
        resolve(JSON.parse(line) as Rep);
      });
      this.child.stdin!.write(`${JSON.stringify(req)}\n`);
    });
  }

  /** Ends the child: a polite close of stdin, then SIGKILL by PID if it lingers. */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.stdin!.end();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve();
      }, 3000);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

// The daemon's workers run at a higher nice value than its event loop
// (daemon/thread-priority.ts); the threads node started first keep theirs. Checked in a child process of its own, so
// the renicing touches no thread of the test runner.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BACKGROUND_NICE, backgroundNice } from '../daemon/thread-priority.js';
import { ConfigError } from '../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'xw-nice-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Seen {
  /** The main thread's nice value before and after. */
  mainBefore: number;
  mainAfter: number;
  /** tid -> nice of every other thread after the scan. */
  others: Record<string, number>;
  /** The threads running when lowerBackgroundThreads was called. */
  atStart: number[];
  /** The worker's own thread id and the value it set itself before the scan. */
  workerTid: number;
  reniced: number;
}

/**
 * Runs lowerBackgroundThreads(nice) in a fresh node process (started at
 * `startNice` more than this one) that has a
 * worker (which sets its own nice to `workerNice` unless 0) and libuv pool
 * threads (an fs.readFile), and reports every thread's nice value.
 */
function run(nice: number, workerNice: number, startNice = 0): Seen {
  const script = join(dir, `probe-${nice}-${workerNice}-${startNice}.mts`);
  writeFileSync(
    script,
    `
import { getPriority, setPriority } from 'node:os';
import { readdirSync, readFile } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { lowerBackgroundThreads } from ${JSON.stringify(resolve('daemon/thread-priority.ts'))};
const mainBefore = getPriority(process.pid);
const priority = lowerBackgroundThreads(${nice});
const atStart = readdirSync('/proc/self/task').map(Number);
await new Promise((done) => readFile(process.execPath, () => done(undefined)));
const worker = new Worker(
  "const { parentPort } = require('node:worker_threads');" +
  "const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());" +
  "if (${workerNice} > 0) require('node:os').setPriority(tid, ${workerNice});" +
  "parentPort.postMessage(tid); parentPort.once('message', () => process.exit(0));",
  { eval: true },
);
const workerTid = await new Promise((done) => worker.once('message', done));
const reniced = priority.scan();
const others = {};
for (const tid of readdirSync('/proc/self/task').map(Number)) if (tid !== process.pid) others[tid] = getPriority(tid);
console.log(JSON.stringify({ mainBefore, mainAfter: getPriority(process.pid), others, atStart, workerTid, reniced }));
priority.stop();
worker.postMessage('exit');
`,
  );
  const command = [process.execPath, '--import', 'tsx', script];
  const output = startNice > 0 ? execFileSync('nice', ['-n', String(startNice), ...command], { encoding: 'utf8' }) : execFileSync(command[0]!, command.slice(1), { encoding: 'utf8' });
  return JSON.parse(output) as Seen;
}

describe('background thread priority', () => {
  it('raises the threads started later (a worker) to the loop\'s nice value + 10, and leaves those running at start (the loop, V8\'s)', () => {
    const seen = run(BACKGROUND_NICE, 0);
    expect(seen.mainAfter).toBe(seen.mainBefore);
    // V8's platform threads, node's own and libuv's pool (started by loading the modules) ran before.
    expect(seen.atStart.length).toBeGreaterThanOrEqual(6);
    for (const tid of seen.atStart) if (tid !== seen.workerTid) expect(seen.others[tid] ?? seen.mainAfter).toBe(seen.mainBefore);
    expect(seen.atStart).not.toContain(seen.workerTid);
    expect(seen.others[seen.workerTid]).toBe(Math.min(19, seen.mainBefore + BACKGROUND_NICE));
    const later = Object.keys(seen.others).map(Number).filter((tid) => !seen.atStart.includes(tid));
    for (const tid of later) expect(seen.others[tid]).toBe(Math.min(19, seen.mainBefore + BACKGROUND_NICE));
  });

  it('never lowers a thread already nicer than the value (that needs CAP_SYS_NICE)', () => {
    const seen = run(BACKGROUND_NICE, 15);
    // Reniced to +10 as it came online, it then set 15 itself; the scan after leaves that.
    expect(seen.others[seen.workerTid]).toBe(seen.mainBefore + BACKGROUND_NICE <= 15 ? 15 : Math.min(19, seen.mainBefore + BACKGROUND_NICE));
    expect(seen.mainAfter).toBe(seen.mainBefore);
  });

  it('is relative to the loop: a daemon started at nice 3 keeps its loop there and puts a worker at 13', () => {
    const seen = run(BACKGROUND_NICE, 0, 3);
    expect(seen.mainBefore).toBeGreaterThanOrEqual(3);
    expect(seen.mainAfter).toBe(seen.mainBefore);
    expect(seen.others[seen.workerTid]).toBe(Math.min(19, seen.mainBefore + BACKGROUND_NICE));
  });

  it('0 leaves every thread as it started', () => {
    const seen = run(0, 0);
    expect(seen.reniced).toBe(0);
    for (const nice of Object.values(seen.others)) expect(nice).toBe(seen.mainBefore);
  });

  it.each([
    [undefined, BACKGROUND_NICE],
    ['', BACKGROUND_NICE],
    ['0', 0],
    ['19', 19],
    ['5', 5],
  ])('XDPWALL_BACKGROUND_NICE=%s is %i', (value, nice) => {
    expect(backgroundNice(value)).toBe(nice);
  });

  it.each(['-1', '20', '2.5', 'high', ' '])('XDPWALL_BACKGROUND_NICE=%j is a configuration error', (value) => {
    expect(() => backgroundNice(value)).toThrow(ConfigError);
  });
});

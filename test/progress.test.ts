// The CLI's progress display: a bar redrawn in place on a terminal (at most
// every 100 ms of the injected clock), plain lines at each tenth elsewhere.
import { describe, expect, it } from 'vitest';
import { Progress } from '../cli/progress.js';
import { pollProgress } from '../cli/commands/list.js';

function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, isTTY, columns: 100, write: (text: string) => writes.push(text) };
}

describe('Progress', () => {
  it('draws a bar in place on a terminal, throttled, and clears it when done', () => {
    const out = sink(true);
    let now = 0;
    const progress = new Progress(out, { label: 'import', totalBytes: 1000 << 10, now: () => now });
    progress.update(250 << 10, 100);
    now = 50;
    progress.update(300 << 10, 120); // within 100 ms: not drawn
    now = 150;
    progress.update(500 << 10, 200);
    progress.phase('waiting');
    progress.done();
    expect(out.writes).toEqual([
      `\r\x1b[Kimport [##########${' '.repeat(30)}] 25% 250.0 KiB of 1000.0 KiB, 100 items`,
      `\r\x1b[Kimport [####################${' '.repeat(20)}] 50% 500.0 KiB of 1000.0 KiB, 200 items`,
      '\r\x1b[Kimport: waiting',
      '\r\x1b[K',
    ]);
  });

  it('prints a plain line at each tenth of a known size elsewhere', () => {
    const out = sink(false);
    const progress = new Progress(out, { label: 'import', totalBytes: 1000 });
    for (const bytes of [50, 120, 150, 390, 1000]) progress.update(bytes, bytes / 10);
    progress.phase('waiting');
    progress.done();
    expect(out.writes.join('')).toBe(
      'import: 10% (120 B of 1000 B, 12 items)\nimport: 30% (390 B of 1000 B, 39 items)\nimport: waiting\n',
    );
  });

  it('counts bytes when the size is unknown (a pipe)', () => {
    const out = sink(false);
    const progress = new Progress(out, { label: 'import' });
    progress.update(10 << 20, 1);
    progress.update(17 << 20, 2);
    progress.update(40 << 20, 3);
    expect(out.writes).toEqual(['import: sent 17.0 MiB, 2 items\n', 'import: sent 40.0 MiB, 3 items\n']);
  });
});

describe('Progress.count (the daemon-side phases of `list put`)', () => {
  it('redraws the phase in place on a terminal, throttled', () => {
    const out = sink(true);
    let now = 0;
    const progress = new Progress(out, { label: 'list l1', now: () => now });
    progress.count('store', 0, 1_000_000);
    now = 50;
    progress.count('store', 10, 1_000_000); // within 100 ms: not drawn
    now = 200;
    progress.count('kernel', 16_384, 1_000_000);
    progress.done();
    expect(out.writes).toEqual([
      '\r\x1b[Klist l1: store 0 of 1,000,000 entries (0%)',
      '\r\x1b[Klist l1: kernel 16,384 of 1,000,000 entries (1%)',
      '\r\x1b[K',
    ]);
  });

  it('prints a plain line per phase and per tenth elsewhere', () => {
    const out = sink(false);
    const progress = new Progress(out, { label: 'list l1' });
    for (const [phase, done] of [['store', 0], ['store', 0], ['kernel', 0], ['kernel', 50], ['kernel', 99], ['kernel', 100]] as const) progress.count(phase, done, 100);
    expect(out.writes.join('')).toBe(
      'list l1: store 0 of 100 entries (0%)\nlist l1: kernel 0 of 100 entries (0%)\nlist l1: kernel 50 of 100 entries (50%)\nlist l1: kernel 99 of 100 entries (99%)\nlist l1: kernel 100 of 100 entries (100%)\n',
    );
  });
});

describe('pollProgress', () => {
  it("shows the daemon's answers until stopped, skipping failed polls and idle answers", async () => {
    const answers: Array<object | Error> = [
      new Error('404 NOT_FOUND'),
      { name: 'l1', active: true, phase: 'store', done: 0, total: 3 },
      { name: 'l1', active: true, phase: 'kernel', done: 2, total: 3 },
      { name: 'l1', active: false },
    ];
    const paths: string[] = [];
    let exhausted!: () => void;
    const allAsked = new Promise<void>((resolve) => (exhausted = resolve));
    const client = {
      call: async <T>(method: string, path: string) => {
        paths.push(`${method} ${path}`);
        const answer = answers.shift();
        if (answers.length === 0) exhausted();
        if (answer === undefined) return { status: 200, body: { name: 'l1', active: false } as T };
        if (answer instanceof Error) throw answer;
        return { status: 200, body: answer as T };
      },
    };
    const shown: string[] = [];
    const poller = pollProgress(client, 'l 1', { count: (phase, done, total) => shown.push(`${phase} ${done}/${total}`) }, 1);
    await allAsked;
    await poller.stop();
    const asked = paths.length;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(paths.length).toBe(asked); // stopped: no more polls
    expect(paths[0]).toBe('GET /v1/lists/l%201/progress');
    expect(shown).toEqual(['store 0/3', 'kernel 2/3']);
  });
});

// The CLI's progress display: a bar redrawn in place on a terminal (at most
// every 100 ms of the injected clock), plain lines at each tenth elsewhere.
import { describe, expect, it } from 'vitest';
import { Progress } from '../cli/progress.js';

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

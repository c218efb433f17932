// The store's one connection is shared by every service that writes (blocks,
// their ttl and dryRun, rules, the sweeper), each under its own lock: a
// transaction that starts while another is open waits for it, in order; one
// started from inside another's work joins it; a failed one frees the queue.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RuleStore } from '../src/rules/store.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('RuleStore.transaction', () => {
  let store: RuleStore;
  beforeEach(() => {
    store = new RuleStore(':memory:');
  });
  afterEach(() => store.close());

  it('runs overlapping transactions one after the other, each committed', async () => {
    const log: string[] = [];
    const work = (name: string) => async () => {
      log.push(`${name} begins`);
      store.setSetting(name, 1);
      await tick(); // yields while open, as sliced work does
      log.push(`${name} ends`);
    };
    await Promise.all([store.transaction('a', work('a')), store.transaction('b', work('b')), store.transaction('c', work('c'))]);
    expect(log).toEqual(['a begins', 'a ends', 'b begins', 'b ends', 'c begins', 'c ends']);
    expect(['a', 'b', 'c'].map((key) => store.getSetting(key))).toEqual([1, 1, 1]);
  });

  it('joins a transaction started inside another one: both commit or roll back together', async () => {
    await store.transaction('outer', async () => {
      store.setSetting('outer', 1);
      await store.transaction('inner', async () => {
        await tick();
        store.setSetting('inner', 1);
      });
    });
    expect([store.getSetting('outer'), store.getSetting('inner')]).toEqual([1, 1]);
    await expect(
      store.transaction('outer', async () => {
        await store.transaction('inner', () => store.setSetting('rolled back', 1));
        throw new Error('outer fails');
      }),
    ).rejects.toThrow(/outer fails/);
    expect(store.getSetting('rolled back')).toBeUndefined();
  });

  it('a failed transaction rolls back and lets the next one run', async () => {
    const failed = store.transaction('failing', async () => {
      store.setSetting('lost', 1);
      await tick();
      throw new Error('injected');
    });
    const next = store.transaction('next', () => store.setSetting('kept', 1));
    await expect(failed).rejects.toThrow(/injected/);
    await next;
    expect([store.getSetting('lost'), store.getSetting('kept')]).toEqual([undefined, 1]);
  });
});

describe('RuleStore.close', () => {
  it('returns with every connection closed: nothing touches the directory afterwards', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xw-close-'));
    try {
      for (let round = 0; round < 3; round++) {
        const store = new RuleStore(join(dir, 'rules.sqlite'));
        store.setSetting('round', round);
        store.close();
        // The checkpoint worker's connection was the last to close: the log is
        // checkpointed, its files are gone, and nothing recreates the store.
        expect(readdirSync(dir)).toEqual(['rules.sqlite']);
        store.close(); // twice is harmless
        const copy = readFileSync(join(dir, 'rules.sqlite'));
        rmSync(join(dir, 'rules.sqlite'));
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(readdirSync(dir)).toEqual([]);
        writeFileSync(join(dir, 'rules.sqlite'), copy);
      }
      const reopened = new RuleStore(join(dir, 'rules.sqlite'));
      expect(reopened.getSetting('round')).toBe(2);
      reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

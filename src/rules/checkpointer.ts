// Moves the rule store's write-ahead log into the database file on a worker
// thread. SQLite's automatic checkpoint runs inside the COMMIT that crosses
// its threshold, on the event loop: after a million-rule import that is the
// larger part of a second-long stall. The store turns it off and tells this
// worker after each commit; the worker, on a connection of its own, copies
// the log once it passes the same threshold. PASSIVE checkpoints take no
// lock a writer waits for, and a crash in between loses nothing (the log is
// replayed on the next open).
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** SQLite's own default: checkpoint once the log holds 1000 pages of 4 KiB. */
const CHECKPOINT_BYTES = 1000 * 4096;

// A worker from source text, so it runs the same from dist/ and under tsx.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { statSync } = require('node:fs');
const Database = require(workerData.sqlite);
const db = new Database(workerData.path, { timeout: 0 });
const walSize = () => { try { return statSync(workerData.path + '-wal').size; } catch { return 0; } };
parentPort.on('message', (message) => {
  if (message === 'close') { db.close(); parentPort.close(); return; }
  if (walSize() < workerData.threshold) return;
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
});
`;

export class Checkpointer {
  private readonly worker: Worker;

  constructor(path: string) {
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, sqlite, threshold: CHECKPOINT_BYTES } });
    // A checkpoint that fails (or a worker that dies) costs only log size:
    // the next commit retries, and the log is replayed on the next open.
    this.worker.on('error', () => {});
    this.worker.unref();
  }

  /** A transaction committed: checkpoint if the log has grown enough. */
  committed(): void {
    this.worker.postMessage('commit');
  }

  close(): void {
    this.worker.postMessage('close');
  }
}

// Moves the rule store's write-ahead log into the database file on a worker
// thread. SQLite's automatic checkpoint runs inside the COMMIT that crosses
// its threshold, on the event loop: after a million-rule import that is the
// larger part of a second-long stall. The store turns it off and tells this
// worker after each commit; the worker, on a connection of its own, copies
// the log once it passes the same threshold. PASSIVE checkpoints take no
// lock a writer waits for, and a crash in between loses nothing (the log is
// replayed on the next open).
//
// close() is synchronous: it waits (bounded) until the worker has closed its
// connection, so the store's own close is the last one, checkpoints, and
// removes the -wal and -shm files before it returns. A caller may then remove
// the directory: nothing touches it afterwards. (A worker still starting when
// the store closed used to open, and so create, the file after that.)
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** SQLite's own default: checkpoint once the log holds 1000 pages of 4 KiB. */
const CHECKPOINT_BYTES = 1000 * 4096;

/** How long close() waits for the worker to finish a checkpoint and close. */
const CLOSE_WAIT_MS = 10_000;

// A worker from source text, so it runs the same from dist/ and under tsx.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { statSync } = require('node:fs');
const Database = require(workerData.sqlite);
const closed = new Int32Array(workerData.closed);
let db;
try { db = new Database(workerData.path, { timeout: 0, fileMustExist: true }); } catch {}
const walSize = () => { try { return statSync(workerData.path + '-wal').size; } catch { return 0; } };
parentPort.on('message', (message) => {
  if (message === 'close') {
    try { db?.close(); } finally { Atomics.store(closed, 0, 1); Atomics.notify(closed, 0); parentPort.close(); }
    return;
  }
  if (!db || walSize() < workerData.threshold) return;
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
});
`;

export class Checkpointer {
  private readonly worker: Worker;
  /** Set to 1 by the worker once its connection is closed. */
  private readonly closed = new Int32Array(new SharedArrayBuffer(4));
  private exited = false;

  constructor(path: string) {
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { path, sqlite, threshold: CHECKPOINT_BYTES, closed: this.closed.buffer },
    });
    // A checkpoint that fails (or a worker that dies) costs only log size:
    // the next commit retries, and the log is replayed on the next open.
    this.worker.on('error', () => {});
    this.worker.on('exit', () => (this.exited = true));
    this.worker.unref();
  }

  /** A transaction committed: checkpoint if the log has grown enough. */
  committed(): void {
    this.worker.postMessage('commit');
  }

  /** Returns once the worker's connection is closed (or the worker is gone). */
  close(): void {
    if (this.exited) return;
    this.worker.postMessage('close');
    Atomics.wait(this.closed, 0, 0, CLOSE_WAIT_MS);
  }
}

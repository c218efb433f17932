// Stores a large batch of blocks on a worker thread, in one transaction on
// a connection of its own. better-sqlite3 is synchronous: on the event loop
// the COMMIT of a million-row transaction alone blocked for 0.5-0.8 s (the
// log written and synced), and single inserts stalled for tens of ms when
// SQLite's cache spilled. On the worker, the API keeps answering: its own
// connection reads the last committed state meanwhile (WAL). Writers are
// still one at a time: the caller holds the WriteLock, and BEGIN IMMEDIATE
// keeps other processes out as before. The batch reaches the worker in
// shared memory (block-batch.ts columns()): nothing is copied on the loop.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { BlockBatchColumns } from './block-batch.js';

export interface BulkInsertResult {
  /** Index in the batch of each created rule, in insert order. */
  index: Uint32Array;
  /** Id of each created rule. */
  ids: Float64Array;
  perFamily: Record<4 | 6, number>;
}

export interface BulkInsertJob {
  path: string;
  busyTimeoutMs: number;
  createdAt: string;
  /** New rules each family may still take (capacity minus stored); more fails the lot. */
  room: Record<4 | 6, number>;
  maxRuleId: number;
}

/** Thrown when the batch would exceed `room`: nothing was stored. */
export class BulkCapacityError extends Error {
  constructor(readonly perFamily: Record<4 | 6, number>) {
    super('capacity exceeded');
  }
}

/** Thrown when the caller set the abort flag before the COMMIT: nothing was stored. */
export class BulkAbortedError extends Error {
  constructor() {
    super('the bulk insert was aborted');
  }
}

/**
 * For a caller that enforces the rows while they are being stored: `onRows`
 * gets the created rows (batch index and id) in insert order, a part at a
 * time, before the COMMIT; setting `abort[0]` to 1 makes the worker roll
 * back at its next check (unless it has committed already).
 */
export interface BulkInsertProgress {
  onRows(index: Uint32Array, ids: Float64Array): void;
  abort: Int32Array;
}

/** Created rows per progress message. */
export const PROGRESS_ROWS = 16_384;

/** Thrown when SQLite hands out an id above `maxRuleId`: nothing was stored. */
export class BulkRuleIdError extends Error {
  constructor(readonly id: number) {
    super(`rule id ${id} is too large`);
  }
}

// A worker from source text, so it runs the same from dist/ and under tsx.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const { job, families, prefixLens, dsts, networks, texts, textEnds, comments, abort, progressRows } = workerData;
const db = new Database(job.path, { timeout: job.busyTimeoutMs });
let result;
try {
  db.pragma('synchronous = FULL');
  db.pragma('cache_size = -65536');
  db.pragma('wal_autocheckpoint = 0');
  db.pragma('foreign_keys = ON');
  const insert = db.prepare(
    'INSERT INTO blocks (cidr, family, prefix_len, network, direction, comment, created_at) ' +
    'VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (cidr, direction) DO NOTHING');
  const commentOf = new Map(comments);
  const count = families.length;
  const index = new Uint32Array(count);
  const ids = new Float64Array(count);
  const perFamily = { 4: 0, 6: 0 };
  let created = 0;
  const bytes = Buffer.from(networks.buffer, networks.byteOffset, networks.byteLength);
  const textBytes = Buffer.from(texts.buffer, texts.byteOffset, texts.byteLength);
  let posted = 0;
  const post = () => {
    const part = { kind: 'rows', index: index.slice(posted, created), ids: ids.slice(posted, created) };
    parentPort.postMessage(part, [part.index.buffer, part.ids.buffer]);
    posted = created;
  };
  db.exec('BEGIN IMMEDIATE');
  for (let i = 0; i < count; i++) {
    if ((i & 4095) === 0 && abort && Atomics.load(abort, 0) !== 0) { result = { kind: 'aborted' }; break; }
    const text = textBytes.toString('latin1', i === 0 ? 0 : textEnds[i - 1], textEnds[i]);
    const family = families[i];
    const network = bytes.subarray(i * 16, i * 16 + (family === 4 ? 4 : 16));
    const r = insert.run(text, family, prefixLens[i], network, dsts[i] ? 'dst' : 'src', commentOf.get(i) ?? null, job.createdAt);
    if (r.changes > 0) {
      const id = Number(r.lastInsertRowid);
      if (id > job.maxRuleId) { result = { kind: 'ruleId', id }; break; }
      index[created] = i;
      ids[created] = id;
      created++;
      perFamily[family]++;
      if (progressRows && created - posted >= progressRows) post();
    }
  }
  if (!result && abort && Atomics.load(abort, 0) !== 0) result = { kind: 'aborted' };
  if (!result && progressRows && created > posted) post();
  if (!result && (perFamily[4] > job.room[4] || perFamily[6] > job.room[6])) result = { kind: 'capacity', perFamily };
  if (result) db.exec('ROLLBACK');
  else {
    db.exec('COMMIT');
    result = { kind: 'ok', index: index.slice(0, created), ids: ids.slice(0, created), perFamily };
  }
} catch (error) {
  try { if (db.inTransaction) db.exec('ROLLBACK'); } catch {}
  result = { kind: 'error', message: String(error && error.message), code: error && error.code, sqlite: error instanceof Database.SqliteError };
} finally {
  try { db.close(); } catch {}
}
parentPort.postMessage(result, result.kind === 'ok' ? [result.index.buffer, result.ids.buffer] : []);
`;

type WorkerResult =
  | { kind: 'rows'; index: Uint32Array; ids: Float64Array }
  | { kind: 'aborted' }
  | { kind: 'ok'; index: Uint32Array; ids: Float64Array; perFamily: Record<4 | 6, number> }
  | { kind: 'capacity'; perFamily: Record<4 | 6, number> }
  | { kind: 'ruleId'; id: number }
  | { kind: 'error'; message: string; code: unknown; sqlite: boolean };

/**
 * Runs the insert on a worker; rejects with SqliteError (mapped by the
 * store), BulkCapacityError, BulkRuleIdError or (with `progress`) BulkAbortedError.
 */
export async function insertOnWorker(job: BulkInsertJob, batch: BlockBatchColumns, progress?: BulkInsertProgress): Promise<BulkInsertResult> {
  const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { sqlite, job, ...batch, abort: progress?.abort, progressRows: progress ? PROGRESS_ROWS : 0 },
  });
  try {
    const result = await new Promise<WorkerResult>((resolve, reject) => {
      worker.on('message', (message: WorkerResult) => {
        if (message.kind !== 'rows') resolve(message);
        else {
          try {
            progress?.onRows(message.index, message.ids);
          } catch (error) {
            reject(error);
          }
        }
      });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the bulk insert worker exited with ${code}`)));
    });
    switch (result.kind) {
      case 'ok':
        return { index: result.index, ids: result.ids, perFamily: result.perFamily };
      case 'capacity':
        throw new BulkCapacityError(result.perFamily);
      case 'ruleId':
        throw new BulkRuleIdError(result.id);
      case 'aborted':
        throw new BulkAbortedError();
      case 'rows':
        throw new Error('unreachable');
      case 'error':
        if (result.sqlite && typeof result.code === 'string') throw new Database.SqliteError(result.message, result.code);
        throw Object.assign(new Error(result.message), { code: result.code });
    }
  } finally {
    await worker.terminate();
  }
}

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
// It opens its transaction at once and stores the parts it is sent as they
// come ("part": rows of the batch from `first`), then checks capacity and
// commits on "end", or rolls back on "abort" (or the abort flag, checked
// every 4096 rows). The first failure rolls back and is the result.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const { job, abort, progressRows } = workerData;
let db;
let insert;
let index = new Uint32Array(1 << 16);
let ids = new Float64Array(1 << 16);
const perFamily = { 4: 0, 6: 0 };
let created = 0;
let posted = 0;
let done = false;
const aborted = () => abort && Atomics.load(abort, 0) !== 0;
const post = () => {
  const part = { kind: 'rows', index: index.slice(posted, created), ids: ids.slice(posted, created) };
  parentPort.postMessage(part, [part.index.buffer, part.ids.buffer]);
  posted = created;
};
const finish = (result) => {
  done = true;
  try {
    if (db && db.inTransaction) {
      if (result) db.exec('ROLLBACK');
      else {
        db.exec('COMMIT');
        result = { kind: 'ok', index: index.slice(0, created), ids: ids.slice(0, created), perFamily };
      }
    }
  } catch (error) {
    try { if (db.inTransaction) db.exec('ROLLBACK'); } catch {}
    result = failure(error);
  }
  try { if (db) db.close(); } catch {}
  if (!result) result = { kind: 'error', message: 'the bulk insert has no transaction', code: undefined, sqlite: false };
  parentPort.postMessage(result, result.kind === 'ok' ? [result.index.buffer, result.ids.buffer] : []);
  parentPort.close();
};
const failure = (error) => ({ kind: 'error', message: String(error && error.message), code: error && error.code, sqlite: error instanceof Database.SqliteError });
const storePart = ({ first, families, prefixLens, dsts, networks, texts, textEnds, comments }) => {
  const commentOf = comments.length > 0 ? new Map(comments) : null;
  const count = families.length;
  if (created + count > index.length) {
    const size = Math.max(index.length * 2, created + count);
    const grownIndex = new Uint32Array(size); grownIndex.set(index.subarray(0, created)); index = grownIndex;
    const grownIds = new Float64Array(size); grownIds.set(ids.subarray(0, created)); ids = grownIds;
  }
  const bytes = Buffer.from(networks.buffer, networks.byteOffset, networks.byteLength);
  const textBytes = Buffer.from(texts.buffer, texts.byteOffset, texts.byteLength);
  for (let i = 0; i < count; i++) {
    if ((i & 4095) === 0 && aborted()) return { kind: 'aborted' };
    const text = textBytes.toString('latin1', i === 0 ? 0 : textEnds[i - 1], textEnds[i]);
    const family = families[i];
    const network = bytes.subarray(i * 16, i * 16 + (family === 4 ? 4 : 16));
    const r = insert.run(text, family, prefixLens[i], network, dsts[i] ? 'dst' : 'src', (commentOf && commentOf.get(i)) ?? null, job.createdAt);
    if (r.changes > 0) {
      const id = Number(r.lastInsertRowid);
      if (id > job.maxRuleId) return { kind: 'ruleId', id };
      index[created] = first + i;
      ids[created] = id;
      created++;
      perFamily[family]++;
      if (progressRows && created - posted >= progressRows) post();
    }
  }
  return undefined;
};
try {
  db = new Database(job.path, { timeout: job.busyTimeoutMs });
  db.pragma('synchronous = FULL');
  db.pragma('cache_size = -65536');
  db.pragma('wal_autocheckpoint = 0');
  db.pragma('foreign_keys = ON');
  insert = db.prepare(
    'INSERT INTO blocks (cidr, family, prefix_len, network, direction, comment, created_at) ' +
    'VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (cidr, direction) DO NOTHING');
  db.exec('BEGIN IMMEDIATE');
  parentPort.postMessage({ kind: 'begun' });
} catch (error) {
  finish(failure(error));
}
parentPort.on('message', (message) => {
  if (done) return;
  try {
    if (message.kind === 'abort' || aborted()) return finish({ kind: 'aborted' });
    if (message.kind === 'part') {
      const failed = storePart(message);
      if (failed) finish(failed);
      return;
    }
    // end
    if (progressRows && created > posted) post();
    if (perFamily[4] > message.room[4] || perFamily[6] > message.room[6]) return finish({ kind: 'capacity', perFamily });
    finish(undefined);
  } catch (error) {
    finish(failure(error));
  }
});
`;

type WorkerResult =
  | { kind: 'begun' }
  | { kind: 'rows'; index: Uint32Array; ids: Float64Array }
  | { kind: 'aborted' }
  | { kind: 'ok'; index: Uint32Array; ids: Float64Array; perFamily: Record<4 | 6, number> }
  | { kind: 'capacity'; perFamily: Record<4 | 6, number> }
  | { kind: 'ruleId'; id: number }
  | { kind: 'error'; message: string; code: unknown; sqlite: boolean };

/** Part of a batch sent to the worker: the columns of rows `first` .. `first + families.length` (comments by row within the part). */
export type BulkPart = BlockBatchColumns;

/**
 * One bulk insert on a worker thread, fed part by part: the worker opens its
 * transaction (BEGIN IMMEDIATE: the caller holds the WriteLock) and stores
 * each part as it arrives, so a body can be stored while the rest of it is
 * still being read and checked. end() commits if the rows fit `room`;
 * abort() rolls back. `result` settles once: with the created rows, or
 * SqliteError (mapped by the store), BulkCapacityError, BulkRuleIdError or
 * BulkAbortedError.
 */
export class BulkInsert {
  readonly result: Promise<BulkInsertResult>;
  private readonly worker: Worker;
  private settled = false;

  constructor(job: Omit<BulkInsertJob, 'room'>, progress?: BulkInsertProgress) {
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { sqlite, job, abort: progress?.abort, progressRows: progress ? PROGRESS_ROWS : 0 },
    });
    const worker = this.worker;
    const settled = new Promise<WorkerResult>((resolve, reject) => {
      worker.on('message', (message: WorkerResult) => {
        if (message.kind === 'begun') return;
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
    this.result = settled.then(outcome, (error: unknown) => { throw error; }).finally(() => {
      this.settled = true;
      void worker.terminate();
    });
    // Observed here; callers await `result` when they need it.
    this.result.catch(() => undefined);
  }

  /** Sends rows `first` .. of the batch; their arrays are handed over (transferred), not copied. */
  push(first: number, part: BulkPart): void {
    if (this.settled) return;
    const transfer = [part.families, part.prefixLens, part.dsts, part.networks, part.texts, part.textEnds]
      .map((array) => array.buffer)
      .filter((buffer): buffer is ArrayBuffer => buffer instanceof ArrayBuffer);
    this.worker.postMessage({ kind: 'part', first, ...part }, [...new Set(transfer)]);
  }

  /** Commits if the stored rows fit `room` (rolls back otherwise); resolves with the result. */
  end(room: Record<4 | 6, number>): Promise<BulkInsertResult> {
    if (!this.settled) this.worker.postMessage({ kind: 'end', room });
    return this.result;
  }

  /** Rolls back; resolves once the worker has (whatever the outcome). */
  async abort(): Promise<void> {
    if (!this.settled) this.worker.postMessage({ kind: 'abort' });
    await this.result.catch(() => undefined);
  }
}

function outcome(result: WorkerResult): BulkInsertResult {
  switch (result.kind) {
    case 'ok':
      return { index: result.index, ids: result.ids, perFamily: result.perFamily };
    case 'capacity':
      throw new BulkCapacityError(result.perFamily);
    case 'ruleId':
      throw new BulkRuleIdError(result.id);
    case 'aborted':
      throw new BulkAbortedError();
    case 'begun':
    case 'rows':
      throw new Error('unreachable');
    case 'error':
      if (result.sqlite && typeof result.code === 'string') throw new Database.SqliteError(result.message, result.code);
      throw Object.assign(new Error(result.message), { code: result.code });
  }
}

/**
 * Runs the insert of a whole batch on a worker; rejects as BulkInsert does
 * (BulkAbortedError only with `progress`).
 */
export async function insertOnWorker(job: BulkInsertJob, batch: BlockBatchColumns, progress?: BulkInsertProgress): Promise<BulkInsertResult> {
  const { room, ...rest } = job;
  const insert = new BulkInsert(rest, progress);
  insert.push(0, batch);
  return insert.end(room);
}

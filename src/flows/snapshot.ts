// Flow queries answered from a snapshot of the kernel's flow table, so that a
// query costs the main thread O(limit), not a walk of a million flows.
//
// A refresh reads the table a page at a time (BpfMap.lookupBatch: the system
// call runs on the thread pool) and hands each page, without copying, to a
// worker thread that owns the snapshot (src/flows/snapshot-engine.ts: typed
// arrays, ~100 bytes a flow) and runs every query's filter and top-N there;
// the main thread decodes only the flows returned. Each answer says when its
// snapshot was taken (asOf).
//
// Freshness: a snapshot answers while it is younger than
// min(maxAgeMs, REUSE_FACTOR x the time it took to build): a small table
// rebuilds in a few ms, so its answers stay as good as a fresh walk; a
// million-flow table is walked about once per (that age - AHEAD_FACTOR build
// times) while clients ask, however many. A query that finds the snapshot too
// old waits for the next refresh (one at a time, shared by all). While queries
// keep coming (the last within KEEP_WARM_MS) the next refresh starts by timer
// AHEAD_FACTOR build times before the snapshot's end, so a steady stream of
// queries does not wait; once they stop, so do the walks. At most
// `maxWaiting` distinct queries wait or run at once (identical ones share one
// answer); more get 503 QUERY_QUEUE_FULL with Retry-After.
import { Worker } from 'node:worker_threads';
import type { BatchLookupPage } from '@xdpwall/addon';
import type { FlowTable } from '../datapath/counters.js';
import { Direction, Layout } from '../datapath/abi.js';
import { TimeSlicer, type Slicer } from '../event-loop.js';
import type { Clock } from '../clock.js';
import { QueryQueueFullError } from '../errors.js';
import { compileFlowQuery, flowRecordsSliced, type CompiledQuery, type FlowQuery, type FlowRecord } from './query.js';
import { flowSnapshotEngine, type EngineLayout, type EngineSelection, type FlowSnapshotEngineApi } from './snapshot-engine.js';

/** Flows per kernel read. */
export const SNAPSHOT_PAGE = 8192;
/** Distinct queries that may wait or run at once. */
export const DEFAULT_MAX_WAITING = 16;
/** How long a snapshot may answer, at most (config flowSnapshotMaxAgeMs). */
export const DEFAULT_SNAPSHOT_MAX_AGE_MS = 2000;
/** A snapshot answers for at most this many times its build time: refreshes take at most ~1/REUSE_FACTOR of the time. */
export const REUSE_FACTOR = 4;
/** The next refresh starts this many build times before the snapshot's end, so it is ready before the end. */
export const AHEAD_FACTOR = 1.5;
/** After the last query, snapshots are kept fresh this long without waiting for a query to ask. */
export const KEEP_WARM_MS = 10_000;
/** Tables read faster than this are not kept warm: a query waits for so short a read. */
export const KEEP_WARM_MIN_BUILD_MS = 20;

/** One page of the walk: BpfMap.lookupBatch's answer (the start when `cursor` is null). */
export type FlowPageReader = (cursor: Buffer | null) => Promise<BatchLookupPage>;

/** The engine as the main thread drives it: on a worker (WorkerSnapshotEngine) or in-process (tests). */
export interface SnapshotEngine {
  begin(generation: number, stride: number, cpus: number): void;
  /** The page's buffers may be handed over (detached): the caller does not use them again. */
  page(page: BatchLookupPage): void;
  /** Rejects with the first error of begin/page since begin. */
  commit(): Promise<number>;
  abort(): void;
  release(): void;
  query(query: CompiledQuery): Promise<EngineSelection>;
  bytes(): Promise<number>;
  close(): Promise<void>;
}

export const ENGINE_LAYOUT: EngineLayout = {
  keySize: Layout.flowKey.size,
  key: Layout.flowKey,
  valueSize: Layout.flowValue.size,
  value: Layout.flowValue,
  counter: Layout.counter,
};
// The engine reads ingress then egress counters, back to back.
if (Direction.ingress !== 0 || Direction.egress !== 1) throw new Error('xw_flow_value.dir is [ingress, egress]');

/** The engine in this thread: what tests use to check the logic without a worker. */
export class LocalSnapshotEngine implements SnapshotEngine {
  private readonly engine = flowSnapshotEngine(ENGINE_LAYOUT);
  private failure: unknown;

  begin(generation: number, stride: number, cpus: number): void {
    this.failure = undefined;
    try {
      this.engine.begin(generation, stride, cpus);
    } catch (error) {
      this.failure = error;
    }
  }

  page({ keys, values, count }: BatchLookupPage): void {
    if (this.failure !== undefined) return;
    try {
      this.engine.page(keys, values, count);
    } catch (error) {
      this.failure = error;
    }
  }

  async commit(): Promise<number> {
    if (this.failure !== undefined) {
      this.engine.abort();
      throw this.failure;
    }
    return this.engine.commit();
  }

  abort(): void {
    this.engine.abort();
  }

  release(): void {
    this.engine.release();
  }

  async query(query: CompiledQuery): Promise<EngineSelection> {
    return this.engine.query(query);
  }

  async bytes(): Promise<number> {
    return this.engine.bytes();
  }

  async close(): Promise<void> {
    this.engine.release();
    this.engine.abort();
  }
}

// The worker runs the engine's own source text, so it is the same from dist/ and under tsx or vitest.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
// esbuild with keepNames (tsx, vitest) wraps inner functions in __name(fn, "name"): the helper lives outside the function.
const __name = (fn) => fn;
const engine = (${flowSnapshotEngine.toString()})(workerData.layout);
let failure = null;
parentPort.on('message', (m) => {
  try {
    switch (m.op) {
      case 'begin': failure = null; engine.begin(m.generation, m.stride, m.cpus); return;
      case 'page': if (failure === null) engine.page(m.keys, m.values, m.count); return;
      case 'abort': engine.abort(); return;
      case 'release': engine.release(); return;
      case 'commit': {
        if (failure !== null) { engine.abort(); throw failure; }
        parentPort.postMessage({ id: m.id, result: engine.commit() });
        return;
      }
      case 'query': {
        const s = engine.query(m.query);
        parentPort.postMessage({ id: m.id, result: s }, [s.keys.buffer, s.values.buffer]);
        return;
      }
      case 'bytes': parentPort.postMessage({ id: m.id, result: engine.bytes() }); return;
    }
  } catch (error) {
    if (m.id === undefined) { if (failure === null) failure = error; return; }
    parentPort.postMessage({ id: m.id, error: { message: String(error && error.message), name: String(error && error.name) } });
  }
});
`;

/** The whole of an ArrayBuffer can be handed to the worker; a view into a larger one is copied. */
function transferable(buffer: Buffer): { bytes: Uint8Array; transfer: ArrayBuffer[] } {
  const whole = buffer.byteOffset === 0 && buffer.byteLength === buffer.buffer.byteLength && buffer.buffer instanceof ArrayBuffer;
  if (whole) return { bytes: buffer, transfer: [buffer.buffer as ArrayBuffer] };
  const copy = new Uint8Array(buffer.byteLength);
  copy.set(buffer);
  return { bytes: copy, transfer: [copy.buffer] };
}

/**
 * The engine on a worker thread, started on first use. If the worker dies,
 * what waits on it fails, `onLost` is told (its snapshot is gone) and the
 * next call starts a new one.
 */
export class WorkerSnapshotEngine implements SnapshotEngine {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: never) => void; reject: (error: unknown) => void }>();
  private closed = false;

  constructor(private readonly onLost: (error: Error) => void = () => {}) {}

  private start(): Worker {
    if (this.worker) return this.worker;
    if (this.closed) throw new Error('the flow snapshot worker was closed');
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { layout: ENGINE_LAYOUT } });
    worker.unref(); // an idle snapshot does not keep the process alive
    worker.on('message', (m: { id: number; result?: unknown; error?: { message: string; name: string } }) => {
      const waiter = this.pending.get(m.id);
      if (!waiter) return;
      this.pending.delete(m.id);
      if (m.error) waiter.reject(Object.assign(new Error(`flow snapshot worker: ${m.error.message}`), { name: m.error.name }));
      else waiter.resolve(m.result as never);
    });
    const lost = (error: Error): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const { reject } of this.pending.values()) reject(error);
      this.pending.clear();
      this.onLost(error);
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`the flow snapshot worker exited with ${code}`)));
    this.worker = worker;
    return worker;
  }

  private call<T>(message: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<T> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: never) => void, reject });
      worker.postMessage({ ...message, id }, transfer);
    });
  }

  begin(generation: number, stride: number, cpus: number): void {
    this.start().postMessage({ op: 'begin', generation, stride, cpus });
  }

  page({ keys, values, count }: BatchLookupPage): void {
    const k = transferable(keys);
    const v = transferable(values);
    this.start().postMessage({ op: 'page', keys: k.bytes, values: v.bytes, count }, [...k.transfer, ...v.transfer]);
  }

  commit(): Promise<number> {
    return this.call({ op: 'commit' });
  }

  abort(): void {
    this.worker?.postMessage({ op: 'abort' });
  }

  release(): void {
    this.worker?.postMessage({ op: 'release' });
  }

  query(query: CompiledQuery): Promise<EngineSelection> {
    return this.call({ op: 'query', query });
  }

  bytes(): Promise<number> {
    return this.call({ op: 'bytes' });
  }

  /** Stops the worker for good: later calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    for (const { reject } of this.pending.values()) reject(new Error('the flow snapshot worker was closed'));
    this.pending.clear();
    if (worker) await worker.terminate();
  }
}

export interface FlowSnapshotsOptions {
  read: FlowPageReader;
  /** Bytes of one flow's values (all CPUs) and the CPU slots in them. */
  layout: { stride: number; cpus: number };
  clock: Clock;
  ifaceName: (ifindex: number) => string | undefined;
  /** Default: a worker thread. */
  engine?: SnapshotEngine;
  maxAgeMs?: number;
  maxWaiting?: number;
  /** count() also answers from a snapshot this young (the counters cache). */
  countMaxAgeMs: number;
  /** A slicer per decoding (default: TimeSlicer); tests count the turns. */
  slicer?: () => Slicer;
  log?: { warn(details: object, message: string): void };
  /** Milliseconds from any origin, for a refresh's build time (default performance.now); tests fake it. */
  elapsedMs?: () => number;
  /** Default KEEP_WARM_MS; 0: refresh only when a query asks. */
  keepWarmMs?: number;
  /** Runs `run` in `ms` (default: an unref'd setTimeout); returns a cancel. Tests run it by hand. */
  timer?: (run: () => void, ms: number) => () => void;
}

const unrefTimer = (run: () => void, ms: number): (() => void) => {
  const handle = setTimeout(run, ms);
  handle.unref();
  return () => clearTimeout(handle);
};

export interface FlowAnswer {
  items: FlowRecord[];
  /** Wall-clock ms when the walk of the snapshot answering began. */
  asOfMs: number;
}

interface Snapshot {
  generation: number;
  asOfMs: number;
  count: number;
  buildMs: number;
}

/** Queries and counts the flow table from a shared snapshot (see the file's comment). */
export class FlowSnapshots {
  private readonly engine: SnapshotEngine;
  private readonly maxAgeMs: number;
  private current: Snapshot | undefined;
  private refreshing: Promise<Snapshot> | undefined;
  private generation = 0;
  private readonly pending = new Map<string, Promise<FlowAnswer>>();
  private lastQueryMs: number | undefined;
  private cancelWarm: (() => void) | undefined;
  private closed = false;
  /** Refreshes started so far (tests and measurements read it). */
  refreshes = 0;

  constructor(private readonly options: FlowSnapshotsOptions) {
    this.maxAgeMs = options.maxAgeMs ?? DEFAULT_SNAPSHOT_MAX_AGE_MS;
    this.engine = options.engine ?? new WorkerSnapshotEngine((error) => {
      this.current = undefined;
      options.log?.warn({ err: error }, 'the flow snapshot worker stopped; the next query starts a new one');
    });
  }

  /** How long `snapshot` may answer. */
  private freshForMs(snapshot: Snapshot): number {
    return Math.min(this.maxAgeMs, REUSE_FACTOR * snapshot.buildMs);
  }

  /** The query's flows, largest first, and the snapshot's time; 400 for a bad query, 503 beyond maxWaiting. */
  query(query: FlowQuery): Promise<FlowAnswer> {
    const compiled = compileFlowQuery(query);
    const key = JSON.stringify([compiled.limit, compiled.sort, query.src, query.dst, compiled.proto, compiled.port]);
    const shared = this.pending.get(key);
    if (shared) return shared;
    const max = this.options.maxWaiting ?? DEFAULT_MAX_WAITING;
    if (this.pending.size >= max) {
      throw new QueryQueueFullError(`${max} distinct flow queries are already waiting or running: retry shortly`);
    }
    const answer = this.answer(compiled).finally(() => this.pending.delete(key));
    this.pending.set(key, answer);
    return answer;
  }

  /** Entries in the table: a snapshot's count while it may answer (or is younger than countMaxAgeMs), else a new one's. */
  async count(): Promise<number> {
    const now = this.options.clock.wallMs();
    const snapshot = this.current;
    if (snapshot && now - snapshot.asOfMs < Math.max(this.options.countMaxAgeMs, this.freshForMs(snapshot))) return snapshot.count;
    return (await this.fresh(now)).count;
  }

  /** Drops the snapshot's memory and stops the worker. */
  async close(): Promise<void> {
    this.closed = true;
    this.cancelWarm?.();
    this.current = undefined;
    await this.engine.close();
  }

  /** When the next refresh should start: AHEAD_FACTOR build times before `snapshot` may no longer answer. */
  private aheadAtMs(snapshot: Snapshot): number {
    return snapshot.asOfMs + this.freshForMs(snapshot) - AHEAD_FACTOR * snapshot.buildMs;
  }

  /**
   * Reading ahead pays only if the snapshot read will answer for at least
   * as long as it takes to read (freshFor >= (1 + AHEAD_FACTOR) x build):
   * with a slower read (a busy machine, a table near a million flows with a
   * small maxAgeMs) snapshots are read only when queries wait for them, one
   * walk per batch of waiting queries, instead of back to back.
   */
  private worthReadingAhead(snapshot: Snapshot): boolean {
    return this.freshForMs(snapshot) >= (1 + AHEAD_FACTOR) * snapshot.buildMs;
  }

  private refreshAhead(): void {
    this.refresh().catch((error: unknown) => this.options.log?.warn({ err: error }, 'a background refresh of the flow snapshot failed'));
  }

  /**
   * While queries came within keepWarmMs, schedules the refresh that replaces
   * `snapshot` before it ends (for tables that take KEEP_WARM_MIN_BUILD_MS or
   * more to read).
   */
  private keepWarm(snapshot: Snapshot): void {
    this.cancelWarm?.();
    this.cancelWarm = undefined;
    const keepWarmMs = this.options.keepWarmMs ?? KEEP_WARM_MS;
    const now = this.options.clock.wallMs();
    if (this.closed || keepWarmMs <= 0 || snapshot.buildMs < KEEP_WARM_MIN_BUILD_MS || !this.worthReadingAhead(snapshot)) return;
    if (this.lastQueryMs === undefined || now - this.lastQueryMs > keepWarmMs) return;
    const timer = this.options.timer ?? unrefTimer;
    const delayMs = Math.max(0, this.aheadAtMs(snapshot) - now);
    this.cancelWarm = timer(() => {
      this.cancelWarm = undefined;
      if (!this.closed && !this.refreshing && this.current === snapshot) this.refreshAhead();
    }, delayMs);
  }

  /** A snapshot that may answer a query arriving at `arrivedMs`: the current one if young enough, else one begun after it arrived. */
  private async fresh(arrivedMs: number): Promise<Snapshot> {
    for (;;) {
      const snapshot = this.current;
      if (snapshot && (snapshot.asOfMs >= arrivedMs || arrivedMs - snapshot.asOfMs < this.freshForMs(snapshot))) return snapshot;
      await this.refresh();
    }
  }

  private async answer(query: CompiledQuery): Promise<FlowAnswer> {
    const { clock, ifaceName } = this.options;
    const arrived = clock.wallMs();
    this.lastQueryMs = arrived;
    let snapshot = await this.fresh(arrived);
    // Late in its life (no timer did it: the first query after a quiet spell): start the next one now.
    if (!this.refreshing && clock.wallMs() > this.aheadAtMs(snapshot) && this.worthReadingAhead(snapshot)) this.refreshAhead();
    let selection = await this.engine.query(query);
    for (let retried = false; selection.generation !== snapshot.generation; retried = true) {
      if (this.current && this.current.generation === selection.generation) {
        // A newer snapshot was committed between the two: its answer stands.
        snapshot = this.current;
        break;
      }
      if (retried) throw new Error('the flow snapshot changed under a query twice');
      // The engine no longer holds the snapshot (released, or a new worker after one died): read again.
      if (this.current === snapshot) this.current = undefined;
      snapshot = await this.fresh(arrived);
      selection = await this.engine.query(query);
    }
    const V = Layout.flowValue.size;
    const table: FlowTable = {
      keys: Buffer.from(selection.keys.buffer, selection.keys.byteOffset, selection.keys.byteLength),
      values: Buffer.from(selection.values.buffer, selection.values.byteOffset, selection.values.byteLength),
      count: selection.count, stride: V, cpus: 1,
    };
    const order = Array.from({ length: selection.count }, (_, i) => i);
    const slicer = this.options.slicer?.() ?? new TimeSlicer();
    return { items: await flowRecordsSliced(table, order, clock, ifaceName, slicer), asOfMs: snapshot.asOfMs };
  }

  /** The refresh under way, or a new one. */
  private refresh(): Promise<Snapshot> {
    if (!this.refreshing) {
      this.refreshing = this.build().finally(() => {
        this.refreshing = undefined;
      });
    }
    return this.refreshing;
  }

  private async build(): Promise<Snapshot> {
    const { read, layout, clock } = this.options;
    const generation = ++this.generation;
    this.refreshes++;
    const asOfMs = clock.wallMs();
    const elapsed = this.options.elapsedMs ?? (() => performance.now());
    const t0 = elapsed();
    // The snapshot in use is kept while the new one is built only if it may still answer meanwhile: else its memory goes first.
    const old = this.current;
    if (old && asOfMs - old.asOfMs >= this.freshForMs(old)) {
      this.current = undefined;
      this.engine.release();
    }
    this.engine.begin(generation, layout.stride, layout.cpus);
    try {
      let cursor: Buffer | null = null;
      do {
        const page: BatchLookupPage = await read(cursor);
        if (this.closed) throw new Error('the flow snapshots were closed');
        cursor = page.cursor;
        this.engine.page(page);
      } while (cursor);
    } catch (error) {
      this.engine.abort();
      throw error;
    }
    const count = await this.engine.commit();
    const snapshot = { generation, asOfMs, count, buildMs: elapsed() - t0 };
    this.current = snapshot;
    this.keepWarm(snapshot);
    return snapshot;
  }
}

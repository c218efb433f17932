// Flow queries against the kernel's flow table without holding the event
// loop: the table is read a page at a time (BpfMap.lookupBatch, on a worker
// thread), every flow of a page is offered to the waiting queries' selections
// (src/flows/query.ts), and the loop is given back between steps of
// SCAN_STEP flows whenever the slicer says the slice is used up.
//
// Concurrent queries share passes instead of each walking the table: a query
// that arrives while a pass runs waits for the next one, identical queries
// waiting together share one selection, and at most `maxWaiting` distinct
// queries wait (more get 503 QUERY_QUEUE_FULL with Retry-After). So one pass
// runs at a time and its cost is bounded by maxWaiting selections, however
// many clients ask.
import type { BatchLookupPage } from '@xdpwall/addon';
import type { FlowTable } from '../datapath/counters.js';
import { TimeSlicer, type Slicer } from '../event-loop.js';
import type { Clock } from '../clock.js';
import { QueryQueueFullError } from '../errors.js';
import { DEFAULT_FLOW_LIMIT, FlowSelection, type FlowQuery, type FlowRecord } from './query.js';

/** Flows offered between two questions to the slicer. */
export const SCAN_STEP = 1024;
/** Flows per kernel read. */
export const SCAN_PAGE = 4096;
/** Distinct queries that may wait for the next pass. */
export const DEFAULT_MAX_WAITING = 16;

/** One page of the walk: BpfMap.lookupBatch's answer (the start when `cursor` is null). */
export type FlowPageReader = (cursor: Buffer | null) => Promise<BatchLookupPage>;

/**
 * Walks the table once, offering every flow, in table order, to every
 * selection; asks `slicer` before each step of `step` flows but the first (a
 * table of N flows asks ceil(N / step) - 1 times, wherever its pages end).
 * Returns the number of flows walked.
 */
export async function scanFlowTable(
  read: FlowPageReader,
  layout: { stride: number; cpus: number },
  selections: readonly FlowSelection[],
  slicer: Slicer,
  step = SCAN_STEP,
): Promise<number> {
  let cursor: Buffer | null = null;
  let seen = 0;
  let nextAsk = step;
  do {
    const page: BatchLookupPage = await read(cursor);
    const table: FlowTable = { keys: page.keys, values: page.values, count: page.count, stride: layout.stride, cpus: layout.cpus };
    for (let from = 0; from < page.count; ) {
      if (seen + from === nextAsk) {
        nextAsk += step;
        if (slicer.due) await slicer.next();
      }
      const to = Math.min(page.count, nextAsk - seen);
      for (const selection of selections) selection.offer(table, from, to, seen);
      from = to;
    }
    seen += page.count;
    cursor = page.cursor;
  } while (cursor);
  return seen;
}

export interface FlowScannerOptions {
  read: FlowPageReader;
  /** Bytes of one flow's values (all CPUs) and the CPU slots in them. */
  layout: { stride: number; cpus: number };
  clock: Clock;
  ifaceName: (ifindex: number) => string | undefined;
  /** A slicer per pass (default: TimeSlicer); tests count the turns. */
  slicer?: () => Slicer;
  maxWaiting?: number;
  /** How long a pass's flow count answers count() (the counters cache). */
  countMaxAgeMs: number;
}

interface Waiting {
  selection: FlowSelection;
  settle: Array<{ resolve: (records: FlowRecord[]) => void; reject: (error: unknown) => void }>;
}

/** Queries and counts the flow table in shared, sliced passes (see the file's comment). */
export class FlowScanner {
  private readonly waiting = new Map<string, Waiting>();
  private countWaiters: Array<{ resolve: (count: number) => void; reject: (error: unknown) => void }> = [];
  private running = false;
  private lastCount: { count: number; atMs: number } | undefined;
  /** Passes run so far (tests and the stall measurement read it). */
  passes = 0;

  constructor(private readonly options: FlowScannerOptions) {}

  /** The query's flows, largest first; 400 for a bad query before anything is read. */
  query(query: FlowQuery): Promise<FlowRecord[]> {
    const selection = new FlowSelection(query);
    const key = JSON.stringify([query.limit ?? DEFAULT_FLOW_LIMIT, query.sort ?? 'bytes', query.src, query.dst, query.proto, query.port]);
    let waiting = this.waiting.get(key);
    if (!waiting) {
      const max = this.options.maxWaiting ?? DEFAULT_MAX_WAITING;
      if (this.waiting.size >= max) {
        throw new QueryQueueFullError(`${max} distinct flow queries already wait for the next pass over the flow table: retry shortly`);
      }
      this.waiting.set(key, (waiting = { selection, settle: [] }));
    }
    const settled = new Promise<FlowRecord[]>((resolve, reject) => waiting.settle.push({ resolve, reject }));
    this.start();
    return settled;
  }

  /** Entries in the table: the last pass's count while it is fresh, else a pass's. */
  count(): Promise<number> {
    const last = this.lastCount;
    if (last && this.options.clock.wallMs() - last.atMs < this.options.countMaxAgeMs) return Promise.resolve(last.count);
    const counted = new Promise<number>((resolve, reject) => this.countWaiters.push({ resolve, reject }));
    this.start();
    return counted;
  }

  private start(): void {
    if (this.running) return;
    this.running = true;
    void this.drain().finally(() => {
      this.running = false;
    });
  }

  private async drain(): Promise<void> {
    while (this.waiting.size > 0 || this.countWaiters.length > 0) {
      const batch = [...this.waiting.values()];
      const counts = this.countWaiters;
      this.waiting.clear();
      this.countWaiters = [];
      const { read, layout, clock, ifaceName } = this.options;
      const slicer = this.options.slicer?.() ?? new TimeSlicer();
      this.passes++;
      let count: number;
      try {
        count = await scanFlowTable(read, layout, batch.map((w) => w.selection), slicer);
      } catch (error) {
        for (const { settle } of batch) for (const { reject } of settle) reject(error);
        for (const { reject } of counts) reject(error);
        continue;
      }
      this.lastCount = { count, atMs: clock.wallMs() };
      for (const { resolve } of counts) resolve(count);
      for (const { selection, settle } of batch) {
        try {
          const records = await selection.recordsSliced(clock, ifaceName, slicer);
          for (const { resolve } of settle) resolve(records);
        } catch (error) {
          for (const { reject } of settle) reject(error);
        }
      }
    }
  }
}

// One short-lived snapshot per counter map: hot API reads (dashboards
// polling /v1/flows and /v1/stats) share a batch read instead of each walking
// a map of up to a million entries; concurrent misses share one read.
import { LRUCache } from 'lru-cache';

export class SnapshotCache<T extends object> {
  private readonly cache: LRUCache<'snapshot', T>;

  constructor(read: () => Promise<T>, ttlMs: number) {
    this.cache = new LRUCache<'snapshot', T>({ max: 1, ttl: ttlMs, ttlResolution: 0, fetchMethod: read });
  }

  async get(): Promise<T> {
    return (await this.cache.fetch('snapshot'))!;
  }

  invalidate(): void {
    this.cache.clear();
  }
}

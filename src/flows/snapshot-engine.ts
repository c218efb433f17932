// The flow table's snapshot and the queries over it, meant to run on a worker
// thread (src/flows/snapshot.ts). The snapshot is the kernel's pages as read
// (keys and values in typed arrays, per-CPU values merged into one slot on
// the way in), about 100 bytes a flow; a query filters every flow and keeps
// the top `limit` in a bounded heap, then hands back only those flows' bytes.
//
// `flowSnapshotEngine` is self-contained (no imports, no outer names) because
// the worker runs its source text (Function.prototype.toString); tests call
// it in-process. Its order is the reference query's (src/flows/query.ts):
// value descending, then table order.

/** Offsets the engine reads, from Layout (src/datapath/abi.ts), handed over as data. */
export interface EngineLayout {
  keySize: number;
  key: { src: number; dst: number; sport: number; dport: number; proto: number };
  valueSize: number;
  value: { dir: number; firstSeenNs: number; lastSeenNs: number; tcpFlags: number };
  counter: { size: number; packets: number; bytes: number };
}

/** A compiled flow query (src/flows/query.ts compile()): plain data, so it crosses to the worker. */
export interface EngineQuery {
  limit: number;
  sort: 'bytes' | 'packets' | 'lastSeen';
  src?: { bytes: Uint8Array; bits: number };
  dst?: { bytes: Uint8Array; bits: number };
  proto?: number;
  port?: number;
}

/** The flows a query selected, ranked: `count` keys and one merged value each. */
export interface EngineSelection {
  keys: Uint8Array;
  values: Uint8Array;
  count: number;
  /** The snapshot's generation and the flows it holds. */
  generation: number;
  flows: number;
}

export interface FlowSnapshotEngineApi {
  /** Starts a new snapshot of values `stride` bytes wide in `cpus` slots; drops one being built. */
  begin(generation: number, stride: number, cpus: number): void;
  /** Adds `count` flows (packed keys, values of `stride` bytes); the arrays may be kept as they are. */
  page(keys: Uint8Array, values: Uint8Array, count: number): void;
  /** The snapshot being built becomes the one queried (the previous is dropped); its flow count. */
  commit(): number;
  /** Drops the snapshot being built. */
  abort(): void;
  /** Drops the snapshot queried (its memory); queries then answer generation -1 until the next commit. */
  release(): void;
  query(query: EngineQuery): EngineSelection;
  /** Bytes held by the snapshots (queried and being built). */
  bytes(): number;
}

export function flowSnapshotEngine(layout: EngineLayout): FlowSnapshotEngineApi {
  const K = layout.keySize;
  const V = layout.valueSize;
  const KO = layout.key;
  const VO = layout.value;
  const C = layout.counter;
  const SORTS = ['bytes', 'packets', 'lastSeen'];
  const TWO32 = 4294967296;

  interface Chunk {
    keys: Uint8Array; values: Uint8Array; keyView: DataView; valueView: DataView; count: number; start: number;
    /** Each flow's value for a sort, as a double: made by the first query with that sort (8 bytes a flow each). */
    sorted: Record<string, Float64Array | undefined>;
  }
  interface Snapshot { chunks: Chunk[]; count: number; generation: number; bytes: number }
  interface Building extends Snapshot { stride: number; cpus: number }

  let current: Snapshot = { chunks: [], count: 0, generation: 0, bytes: 0 };
  let building: Building | null = null;

  const view = (a: Uint8Array): DataView => new DataView(a.buffer, a.byteOffset, a.byteLength);

  /** One slot per flow from `cpus` slots: counters summed exactly (two 32-bit halves), first the earliest non-zero, last the latest, flags ORed. */
  function merge(values: Uint8Array, count: number, stride: number, cpus: number): Uint8Array {
    const slot = stride / cpus;
    const out = new Uint8Array(count * V);
    const src = view(values);
    const dst = view(out);
    // a < b as unsigned 64-bit numbers, compared by halves: stamps pass 2^53 ns after 104 days of uptime.
    const less = (a: number, b: number): boolean => {
      const ah = src.getUint32(a + 4, true);
      const bh = src.getUint32(b + 4, true);
      return ah < bh || (ah === bh && src.getUint32(a, true) < src.getUint32(b, true));
    };
    const zero = (at: number): boolean => src.getUint32(at, true) === 0 && src.getUint32(at + 4, true) === 0;
    for (let i = 0; i < count; i++) {
      const o = i * V;
      for (let c = 0; c < 4; c++) {
        const field = VO.dir + c * 8;
        let lo = 0;
        let hi = 0;
        for (let cpu = 0; cpu < cpus; cpu++) {
          const at = i * stride + cpu * slot + field;
          lo += src.getUint32(at, true);
          hi += src.getUint32(at + 4, true);
        }
        const carry = Math.floor(lo / TWO32);
        dst.setUint32(o + field, lo - carry * TWO32, true);
        dst.setUint32(o + field + 4, (hi + carry) >>> 0, true);
      }
      let firstAt = -1;
      let lastAt = -1;
      let flagsIn = 0;
      let flagsOut = 0;
      for (let cpu = 0; cpu < cpus; cpu++) {
        const base = i * stride + cpu * slot;
        const f = base + VO.firstSeenNs;
        if (!zero(f) && (firstAt < 0 || less(f, firstAt))) firstAt = f;
        const l = base + VO.lastSeenNs;
        if (lastAt < 0 || less(lastAt, l)) lastAt = l;
        flagsIn |= values[base + VO.tcpFlags]!;
        flagsOut |= values[base + VO.tcpFlags + 1]!;
      }
      // The stamps are copied: exact to the nanosecond.
      if (firstAt >= 0) out.set(values.subarray(firstAt, firstAt + 8), o + VO.firstSeenNs);
      if (lastAt >= 0) out.set(values.subarray(lastAt, lastAt + 8), o + VO.lastSeenNs);
      out[o + VO.tcpFlags] = flagsIn;
      out[o + VO.tcpFlags + 1] = flagsOut;
    }
    return out;
  }

  /** The chunk's column of values for `sort` (bytes and packets summed over both directions, lastSeen as it is). */
  function column(chunk: Chunk, sort: string, snapshot: Snapshot): Float64Array {
    const made = chunk.sorted[sort];
    if (made) return made;
    const { valueView, count } = chunk;
    const col = new Float64Array(count);
    const at0 = sort === 'lastSeen' ? VO.lastSeenNs : VO.dir + (sort === 'bytes' ? C.bytes : C.packets);
    const summed = sort !== 'lastSeen';
    for (let i = 0; i < count; i++) {
      const at = i * V + at0;
      let value = valueView.getUint32(at, true) + valueView.getUint32(at + 4, true) * TWO32;
      if (summed) value += valueView.getUint32(at + C.size, true) + valueView.getUint32(at + C.size + 4, true) * TWO32;
      col[i] = value;
    }
    chunk.sorted[sort] = col;
    snapshot.bytes += col.byteLength;
    return col;
  }

  function prefixMatches(keys: Uint8Array, at: number, prefix: { bytes: Uint8Array; bits: number }): boolean {
    const whole = prefix.bits >> 3;
    for (let i = 0; i < whole; i++) if (keys[at + i] !== prefix.bytes[i]) return false;
    const rest = prefix.bits & 7;
    if (rest === 0) return true;
    const mask = (0xff << (8 - rest)) & 0xff;
    return ((keys[at + whole]! ^ prefix.bytes[whole]!) & mask) === 0;
  }

  return {
    begin(generation, stride, cpus) {
      if (!Number.isInteger(cpus) || cpus < 1 || stride % cpus !== 0 || stride / cpus < V) {
        throw new RangeError(`a flow value of ${stride} bytes does not split into ${cpus} slots of at least ${V} bytes`);
      }
      building = { chunks: [], count: 0, generation, bytes: 0, stride, cpus };
    },

    page(keys, values, count) {
      const b = building;
      if (!b) throw new Error('page() before begin()');
      if (count === 0) return;
      if (keys.byteLength < count * K || values.byteLength < count * b.stride) throw new RangeError('a page is shorter than its count');
      const kept = b.cpus === 1 && b.stride === V ? values.subarray(0, count * V) : merge(values, count, b.stride, b.cpus);
      const ks = keys.subarray(0, count * K);
      b.chunks.push({ keys: ks, values: kept, keyView: view(ks), valueView: view(kept), count, start: b.count, sorted: {} });
      b.count += count;
      b.bytes += ks.byteLength + kept.byteLength;
    },

    commit() {
      const b = building;
      if (!b) throw new Error('commit() before begin()');
      building = null;
      current = { chunks: b.chunks, count: b.count, generation: b.generation, bytes: b.bytes };
      return b.count;
    },

    abort() {
      building = null;
    },

    release() {
      // Generation -1: a query answered meanwhile is told it saw no snapshot.
      current = { chunks: [], count: 0, generation: -1, bytes: 0 };
    },

    bytes() {
      return current.bytes + (building ? building.bytes : 0);
    },

    query(q) {
      if (!SORTS.includes(q.sort) || !Number.isInteger(q.limit) || q.limit < 1) throw new RangeError('a compiled flow query');
      const snapshot = current;
      const limit = q.limit;
      // A min-heap of (value, index): the root ranks lowest (smaller value, or equal value and later in the table).
      const hv = new Float64Array(limit);
      const hi = new Float64Array(limit);
      let size = 0;
      const below = (a: number, b: number): boolean => hv[a]! < hv[b]! || (hv[a] === hv[b] && hi[a]! > hi[b]!);
      const swap = (a: number, b: number): void => {
        const v = hv[a]!;
        hv[a] = hv[b]!;
        hv[b] = v;
        const x = hi[a]!;
        hi[a] = hi[b]!;
        hi[b] = x;
      };
      const { proto, port, src, dst } = q;
      const filtered = proto !== undefined || port !== undefined || src !== undefined || dst !== undefined;
      for (const chunk of snapshot.chunks) {
        const { keys, keyView, count, start } = chunk;
        const col = column(chunk, q.sort, snapshot);
        for (let i = 0; i < count; i++) {
          const value = col[i]!;
          // Below the kept minimum: out whatever the filters say (the cheap test first).
          if (size === limit && value < hv[0]!) continue;
          if (filtered) {
            const k = i * K;
            if (proto !== undefined && keys[k + KO.proto] !== proto) continue;
            if (port !== undefined && keyView.getUint16(k + KO.sport) !== port && keyView.getUint16(k + KO.dport) !== port) continue;
            if (src && !prefixMatches(keys, k + KO.src, src)) continue;
            if (dst && !prefixMatches(keys, k + KO.dst, dst)) continue;
          }
          const index = start + i;
          if (size < limit) {
            let n = size++;
            hv[n] = value;
            hi[n] = index;
            while (n > 0) {
              const parent = (n - 1) >> 1;
              if (!below(n, parent)) break;
              swap(n, parent);
              n = parent;
            }
            continue;
          }
          if (value < hv[0]! || (value === hv[0] && index > hi[0]!)) continue;
          hv[0] = value;
          hi[0] = index;
          for (let n = 0; ; ) {
            const left = 2 * n + 1;
            const right = left + 1;
            let least = n;
            if (left < size && below(left, least)) least = left;
            if (right < size && below(right, least)) least = right;
            if (least === n) break;
            swap(n, least);
            n = least;
          }
        }
      }
      const order = Array.from({ length: size }, (_, n) => n).sort((a, b) => (below(a, b) ? 1 : below(b, a) ? -1 : 0));
      const keysOut = new Uint8Array(size * K);
      const valuesOut = new Uint8Array(size * V);
      const chunks = snapshot.chunks;
      order.forEach((n, rank) => {
        const index = hi[n]!;
        let lo = 0;
        let up = chunks.length - 1;
        while (lo < up) {
          const mid = (lo + up + 1) >> 1;
          if (chunks[mid]!.start <= index) lo = mid;
          else up = mid - 1;
        }
        const chunk = chunks[lo]!;
        const i = index - chunk.start;
        keysOut.set(chunk.keys.subarray(i * K, (i + 1) * K), rank * K);
        valuesOut.set(chunk.values.subarray(i * V, (i + 1) * V), rank * V);
      });
      return { keys: keysOut, values: valuesOut, count: size, generation: snapshot.generation, flows: snapshot.count };
    },
  };
}

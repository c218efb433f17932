// A list's entries as sorted, unique keys: IPv4 as numbers (network address
// * 64 + prefix length, exact in a double), IPv6 as canonical text. Diffs
// and lookups are then merges and binary searches over typed arrays, not
// sets of strings: a million-entry list is one 8 MB Float64Array instead of
// a million map entries.
import { parseCidr, type Cidr } from '../rules/cidr.js';
import type { Slicer } from '../event-loop.js';

export interface EntryKeys {
  /** IPv4 entries, ascending (v4Key). */
  readonly v4: Float64Array;
  /** IPv6 entries as canonical text, ascending (code unit order, as `<` compares). */
  readonly v6: readonly string[];
}

export const EMPTY_KEYS: EntryKeys = { v4: new Float64Array(0), v6: [] };

export const v4Key = (address: number, prefixLen: number): number => address * 64 + prefixLen;
export const v4KeyPrefixLen = (key: number): number => key % 64;
export const v4KeyAddress = (key: number): number => Math.floor(key / 64);

/** Canonical text of an IPv4 key, e.g. "198.18.0.0/15". */
export function v4KeyText(key: number): string {
  const a = v4KeyAddress(key);
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${v4KeyPrefixLen(key)}`;
}

/** The key of a parsed CIDR: a number for IPv4, the canonical text for IPv6. */
export function keyOfCidr(cidr: Cidr): number | string {
  return cidr.family === 4 ? v4Key(cidr.bytes.readUInt32BE(0), cidr.prefixLen) : cidr.text;
}

/**
 * The key of "a.b.c.d" or "a.b.c.d/len" written canonically (no leading
 * zeros, no host bits, len 1-32), else -1: every other form, and every
 * error, is the general parser's (parseCidr), which says what is wrong.
 */
export function canonicalV4Key(s: string): number {
  return canonicalV4KeyAt(s, 0, s.length);
}

/** canonicalV4Key of s.slice(start, end), without making that string. */
export function canonicalV4KeyAt(s: string, start: number, end: number): number {
  const n = end;
  let address = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  let i = start;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + c - 48;
      if (octet > 255) return -1;
      digits++;
    } else if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      address = address * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c === 47) {
      break;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  address = address * 256 + octet;
  let prefixLen = 32;
  if (i < n) {
    i++;
    if (i === n) return -1;
    prefixLen = 0;
    for (let first = i; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57 || (i > first && prefixLen === 0)) return -1;
      prefixLen = prefixLen * 10 + c - 48;
      if (prefixLen > 32) return -1;
    }
    if (prefixLen === 0) return -1;
  }
  if (address % 2 ** (32 - prefixLen) !== 0) return -1;
  return v4Key(address, prefixLen);
}

export const keyCount = (keys: EntryKeys): number => keys.v4.length + keys.v6.length;

/** The key of a canonical text. */
export function keyOfText(text: string): number | string {
  const key = canonicalV4Key(text);
  return key >= 0 ? key : keyOfCidr(parseCidr(text));
}

/** Whether the keys hold `key`. */
export const holdsKey = (keys: EntryKeys, key: number | string): boolean =>
  typeof key === 'number' ? hasKey(keys.v4, key) : hasKey(keys.v6, key);

/** The canonical texts of the keys in [from, to) of their order: IPv4 ascending, then IPv6. */
export function keyTexts(keys: EntryKeys, from = 0, to = keyCount(keys)): string[] {
  const { v4, v6 } = keys;
  const texts: string[] = [];
  const end = Math.min(to, keyCount(keys));
  for (let i = Math.max(from, 0); i < end; i++) texts.push(i < v4.length ? v4KeyText(v4[i]!) : v6[i - v4.length]!);
  return texts;
}

export function sameKeys(a: EntryKeys, b: EntryKeys): boolean {
  if (a.v4.length !== b.v4.length || a.v6.length !== b.v6.length) return false;
  for (let i = 0; i < a.v4.length; i++) if (a.v4[i] !== b.v4[i]) return false;
  for (let i = 0; i < a.v6.length; i++) if (a.v6[i] !== b.v6[i]) return false;
  return true;
}

/**
 * Keys as one value for the store: the IPv4 count (u32 LE, then 4 bytes of
 * padding), the IPv4 keys (f64 in host order), then the IPv6 texts joined by "\n".
 * A million IPv4 entries are 8 MB, written without making a string each.
 */
export function encodeKeys(keys: EntryKeys): Buffer {
  const v6 = Buffer.from(keys.v6.join('\n'), 'utf8');
  const out = Buffer.allocUnsafe(8 + keys.v4.length * 8 + v6.length);
  out.writeUInt32LE(keys.v4.length, 0);
  out.writeUInt32LE(0, 4);
  out.set(new Uint8Array(keys.v4.buffer, keys.v4.byteOffset, keys.v4.byteLength), 8);
  v6.copy(out, 8 + keys.v4.length * 8);
  return out;
}

export function decodeKeys(value: Uint8Array): EntryKeys {
  const buffer = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const count = buffer.readUInt32LE(0);
  const v4 = new Float64Array(count);
  new Uint8Array(v4.buffer).set(buffer.subarray(8, 8 + count * 8));
  const rest = buffer.toString('utf8', 8 + count * 8);
  return { v4, v6: rest === '' ? [] : rest.split('\n') };
}

/** Keys of canonical texts (as stored). */
export function keysOfTexts(texts: readonly string[]): EntryKeys {
  const collector = new KeyCollector();
  for (const text of texts) collector.add(keyOfText(text));
  return collector.finish();
}

/** Gathers keys in any order; finish() sorts them and says whether any came twice. */
export class KeyCollector {
  private v4 = new Float64Array(1024);
  private v4Count = 0;
  private readonly v6: string[] = [];

  add(key: number | string): void {
    if (typeof key === 'string') {
      this.v6.push(key);
      return;
    }
    if (this.v4Count === this.v4.length) {
      const grown = new Float64Array(this.v4.length * 2);
      grown.set(this.v4);
      this.v4 = grown;
    }
    this.v4[this.v4Count++] = key;
  }

  get size(): number {
    return this.v4Count + this.v6.length;
  }

  finish(): EntryKeys {
    return { v4: uniqueSorted(this.v4.slice(0, this.v4Count).sort()), v6: uniqueSorted(this.v6.sort()) };
  }

  /** finish(), sorting IPv4 in runs merged between turns of the event loop. */
  async finishSliced(slicer: Slicer): Promise<EntryKeys> {
    const v4 = await sortSliced(this.v4.slice(0, this.v4Count), slicer);
    return { v4: uniqueSorted(v4), v6: uniqueSorted(this.v6.sort()) };
  }
}

/** Keys per run sorted in one go (a few milliseconds). */
const SORT_RUN = 1 << 15;

/** Sorts `keys` (ascending): runs sorted natively, then merged pairwise, looking at the slicer between steps. */
async function sortSliced(keys: Float64Array, slicer: Slicer): Promise<Float64Array> {
  const n = keys.length;
  for (let from = 0; from < n; from += SORT_RUN) {
    keys.subarray(from, Math.min(n, from + SORT_RUN)).sort();
    if (slicer.due) await slicer.next();
  }
  let src: Float64Array = keys;
  let dst: Float64Array = new Float64Array(n);
  for (let width = SORT_RUN; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(n, lo + width);
      const hi = Math.min(n, lo + 2 * width);
      let i = lo;
      let j = mid;
      let k = lo;
      while (i < mid && j < hi) dst[k++] = src[j]! < src[i]! ? src[j++]! : src[i++]!;
      while (i < mid) dst[k++] = src[i++]!;
      while (j < hi) dst[k++] = src[j++]!;
      if (slicer.due) await slicer.next();
    }
    [src, dst] = [dst, src];
  }
  return src;
}

function uniqueSorted<A extends Float64Array | string[]>(sorted: A): A {
  let out = 0;
  for (let i = 0; i < sorted.length; i++) {
    if (i === 0 || sorted[i] !== sorted[out - 1]) sorted[out++] = sorted[i]!;
  }
  if (out === sorted.length) return sorted;
  return (sorted instanceof Float64Array ? sorted.slice(0, out) : sorted.slice(0, out)) as A;
}

/** Whether an ascending array holds `key` (binary search). */
export function hasKey<K extends number | string>(sorted: ArrayLike<K>, key: K): boolean {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo < sorted.length && sorted[lo] === key;
}

/** Membership of keys asked in ascending order: each call moves a cursor, so a sweep is linear. */
export class AscendingProbe<K extends number | string> {
  private at = 0;

  constructor(private readonly sorted: ArrayLike<K>) {}

  has(key: K): boolean {
    const { sorted } = this;
    while (this.at < sorted.length && sorted[this.at]! < key) this.at++;
    return this.at < sorted.length && sorted[this.at] === key;
  }
}

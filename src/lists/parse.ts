// Named lists as text: one address or CIDR per line. `#` and `;` start a
// comment, anywhere on a line, so FireHOL netsets ("# ..." headers, bare
// CIDRs) and Spamhaus DROP/EDROP ("1.10.16.0/20 ; SBL256894") parse as they
// are. Entries are canonicalised (parseCidr) and deduplicated into sorted
// keys (keys.ts): IPv4 ascending, then IPv6. A bad line fails the whole list,
// named by its line number, so a truncated download never replaces a good list.
//
// A million lines take the fast path: canonical IPv4 is read from the body's
// characters into a number, with no string, regex or object per line;
// anything else goes through parseCidr.
import { parseCidr, type Cidr } from '../rules/cidr.js';
import { InvalidArgumentError, InvalidCidrError, TooBroadError, XdpwallError } from '../errors.js';
import { TimeSlicer, type Slicer } from '../event-loop.js';
import { KeyCollector, canonicalV4Key, canonicalV4KeyAt, keyCount, keyOfCidr, keyTexts, type EntryKeys } from './keys.js';

/** Entries per list (the kernel's tables hold a few million prefixes at most). */
export const MAX_LIST_ENTRIES = 2_000_000;

/** Canonical, deduplicated entries as sorted keys. */
export class ParsedEntries {
  constructor(readonly keys: EntryKeys) {}

  get count(): number {
    return keyCount(this.keys);
  }

  /** The canonical texts, in key order (made on each call). */
  get texts(): string[] {
    return keyTexts(this.keys);
  }
}

/** Parses one entry; /0 is refused (the default policy is the way to drop everything). */
export function parseEntry(input: string, where: string): Cidr {
  let cidr: Cidr;
  try {
    cidr = parseCidr(input);
  } catch (error) {
    if (error instanceof XdpwallError) throw new InvalidCidrError(`${where}: ${error.message}`);
    throw error;
  }
  if (cidr.prefixLen === 0) throw new TooBroadError(`${where}: ${cidr.text} covers everything: set the default policy instead (PUT /v1/policy)`);
  return cidr;
}

/** Collects entries; finish() deduplicates and sorts them. */
export class EntrySet {
  private readonly keys = new KeyCollector();

  /** An entry as given (`where` names it in errors). */
  addInput(input: string, where: string): void {
    const key = canonicalV4Key(input);
    if (key >= 0) this.keys.add(key);
    else this.add(parseEntry(input, where));
  }

  /** The entry text.slice(start, end). */
  addAt(text: string, start: number, end: number, where: string): void {
    const key = canonicalV4KeyAt(text, start, end);
    if (key >= 0) this.keys.add(key);
    else this.add(parseEntry(text.slice(start, end), where));
  }

  add(cidr: Cidr): void {
    this.keys.add(keyOfCidr(cidr));
  }

  /** An entry already canonical, by its key. */
  addKey(key: number | string): void {
    this.keys.add(key);
  }

  finish(): ParsedEntries {
    return checked(this.keys.finish());
  }

  /** finish(), giving the event loop back between steps of the sort. */
  async finishSliced(slicer: Slicer): Promise<ParsedEntries> {
    return checked(await this.keys.finishSliced(slicer));
  }
}

function checked(keys: EntryKeys): ParsedEntries {
  if (keyCount(keys) > MAX_LIST_ENTRIES) throw new InvalidArgumentError(`a list holds at most ${MAX_LIST_ENTRIES} entries`);
  return new ParsedEntries(keys);
}

/** Entries between looks at the slicer (a look reads the clock). */
const ENTRIES_PER_LOOK = 2048;

export function parseEntryArray(entries: readonly string[], field = 'entries'): ParsedEntries {
  const set = new EntrySet();
  entries.forEach((entry, i) => set.addInput(entry, `${field}[${i}]`));
  return set.finish();
}

/** parseEntryArray in slices of the event loop (a request's million entries). */
export async function parseEntryArraySliced(entries: readonly string[], slicer: Slicer = new TimeSlicer(), field = 'entries'): Promise<ParsedEntries> {
  const set = new EntrySet();
  for (let i = 0; i < entries.length; i++) {
    set.addInput(entries[i]!, `${field}[${i}]`);
    if (i % ENTRIES_PER_LOOK === 0 && slicer.due) await slicer.next();
  }
  return set.finishSliced(slicer);
}

/** Parses a list file (plain, FireHOL netset, Spamhaus DROP). */
export function parseListText(text: string): ParsedEntries {
  const set = new EntrySet();
  const at = { line: 0, start: 0 };
  while (addLines(set, text, at, Infinity));
  return set.finish();
}

/** parseListText in slices of the event loop (a request's 17 MB body). */
export async function parseListTextSliced(text: string, slicer: Slicer = new TimeSlicer()): Promise<ParsedEntries> {
  const set = new EntrySet();
  const at = { line: 0, start: 0 };
  while (addLines(set, text, at, ENTRIES_PER_LOOK)) if (slicer.due) await slicer.next();
  return set.finishSliced(slicer);
}

/** Adds up to `lines` lines from `at` on and moves `at` past them; false once the text is done. */
function addLines(set: EntrySet, text: string, at: { line: number; start: number }, lines: number): boolean {
  let { line, start } = at;
  for (let n = 0; n < lines && start <= text.length; n++) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    line++;
    addFirstWord(set, text, start, end, line);
    start = end + 1;
  }
  at.line = line;
  at.start = start;
  return start <= text.length;
}

/**
 * Adds the line's entry: its first whitespace-separated word once comments
 * are cut (Spamhaus' formats and some netsets carry more columns after it).
 * Scans ASCII in place; a non-ASCII character (maybe Unicode whitespace)
 * before the word ends sends the line the general way.
 */
function addFirstWord(set: EntrySet, text: string, start: number, end: number, line: number): void {
  let from = -1;
  let to = end;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c > 127) {
      const word = firstWordOf(text.slice(start, end));
      if (word !== '') set.addInput(word, `line ${line}`);
      return;
    }
    const cut = c === 35 || c === 59;
    const space = c === 32 || (c >= 9 && c <= 13);
    if (from < 0 && !space && !cut) from = i;
    else if (from >= 0 && (space || cut)) {
      to = i;
      break;
    }
    if (cut) break;
  }
  if (from >= 0) set.addAt(text, from, to, `line ${line}`);
}

function firstWordOf(line: string): string {
  let content = line;
  const hash = content.indexOf('#');
  if (hash >= 0) content = content.slice(0, hash);
  const semi = content.indexOf(';');
  if (semi >= 0) content = content.slice(0, semi);
  content = content.trim();
  const space = content.search(/\s/);
  return space < 0 ? content : content.slice(0, space);
}

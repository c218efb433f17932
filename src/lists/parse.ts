// Named lists as text: one address or CIDR per line. `#` and `;` start a
// comment, anywhere on a line, so FireHOL netsets ("# ..." headers, bare
// CIDRs) and Spamhaus DROP/EDROP ("1.10.16.0/20 ; SBL256894") parse as they
// are. Entries are canonicalised (parseCidr) and deduplicated, keeping the
// first occurrence's order; a bad line fails the whole list, named by its
// line number, so a truncated download never replaces a good list.
//
// A million lines take the fast path: canonical IPv4 is read from its
// characters into a number key (keys.ts), with no regex, Cidr object or
// per-entry Set; anything else goes through parseCidr.
import { parseCidr, type Cidr } from '../rules/cidr.js';
import { InvalidArgumentError, InvalidCidrError, TooBroadError, XdpwallError } from '../errors.js';
import { KeyCollector, canonicalV4Key, keyOfCidr, type EntryKeys } from './keys.js';

/** Entries per list (the kernel's tables hold a few million prefixes at most). */
export const MAX_LIST_ENTRIES = 2_000_000;

/** Canonical, deduplicated entries (first occurrence's order) and their sorted keys. */
export interface ParsedEntries {
  texts: string[];
  keys: EntryKeys;
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

/** Collects entries; finish() deduplicates them by canonical text. */
export class EntrySet {
  private readonly texts: string[] = [];
  private readonly keys = new KeyCollector();

  /** An entry as given (`where` names it in errors). */
  addInput(input: string, where: string): void {
    const key = canonicalV4Key(input);
    if (key >= 0) this.addCanonical(input.indexOf('/') < 0 ? `${input}/32` : input, key);
    else this.add(parseEntry(input, where));
  }

  add(cidr: Cidr): void {
    this.addCanonical(cidr.text, keyOfCidr(cidr));
  }

  private addCanonical(text: string, key: number | string): void {
    this.texts.push(text);
    this.keys.add(key);
  }

  finish(): ParsedEntries {
    const { keys, duplicates } = this.keys.finish();
    const count = keys.v4.length + keys.v6.length;
    if (count > MAX_LIST_ENTRIES) throw new InvalidArgumentError(`a list holds at most ${MAX_LIST_ENTRIES} entries`);
    // Canonical texts are equal exactly when their keys are.
    return { texts: duplicates ? [...new Set(this.texts)] : this.texts, keys };
  }
}

export function parseEntryArray(entries: readonly string[], field = 'entries'): ParsedEntries {
  const set = new EntrySet();
  entries.forEach((entry, i) => set.addInput(entry, `${field}[${i}]`));
  return set.finish();
}

/** Parses a list file (plain, FireHOL netset, Spamhaus DROP). */
export function parseListText(text: string): ParsedEntries {
  const set = new EntrySet();
  let line = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    line++;
    const entry = firstToken(text, start, end);
    if (entry !== '') set.addInput(entry, `line ${line}`);
    start = end + 1;
  }
  return set.finish();
}

/**
 * The line's entry: its first whitespace-separated word once comments are
 * cut (Spamhaus' formats and some netsets carry more columns after it).
 * Scans ASCII in place; a non-ASCII character (maybe Unicode whitespace)
 * before the word ends sends the line the general way.
 */
function firstToken(text: string, start: number, end: number): string {
  let from = -1;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c > 127) return firstTokenOf(text.slice(start, end));
    if (c === 35 || c === 59) return from < 0 ? '' : text.slice(from, i);
    const space = c === 32 || (c >= 9 && c <= 13);
    if (from < 0) {
      if (!space) from = i;
    } else if (space) {
      return text.slice(from, i);
    }
  }
  return from < 0 ? '' : text.slice(from, end);
}

function firstTokenOf(line: string): string {
  let content = line;
  const hash = content.indexOf('#');
  if (hash >= 0) content = content.slice(0, hash);
  const semi = content.indexOf(';');
  if (semi >= 0) content = content.slice(0, semi);
  content = content.trim();
  const space = content.search(/\s/);
  return space < 0 ? content : content.slice(0, space);
}

// Named lists as text: one address or CIDR per line. `#` and `;` start a
// comment, anywhere on a line, so FireHOL netsets ("# ..." headers, bare
// CIDRs) and Spamhaus DROP/EDROP ("1.10.16.0/20 ; SBL256894") parse as they
// are. Entries are canonicalised (parseCidr) and deduplicated, keeping the
// first occurrence's order; a bad line fails the whole list, named by its
// line number, so a truncated download never replaces a good list.
import { parseCidr, type Cidr } from '../rules/cidr.js';
import { InvalidArgumentError, InvalidCidrError, TooBroadError, XdpwallError } from '../errors.js';

/** Entries per list (the kernel's tables hold a few million prefixes at most). */
export const MAX_LIST_ENTRIES = 2_000_000;

/** Canonical, deduplicated entries and their parsed form. */
export interface ParsedEntries {
  texts: string[];
  cidrs: Cidr[];
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

/** Collects entries, deduplicated by canonical text. */
export class EntrySet {
  private readonly seen = new Set<string>();
  readonly texts: string[] = [];
  readonly cidrs: Cidr[] = [];

  add(cidr: Cidr): void {
    if (this.seen.has(cidr.text)) return;
    if (this.texts.length === MAX_LIST_ENTRIES) throw new InvalidArgumentError(`a list holds at most ${MAX_LIST_ENTRIES} entries`);
    this.seen.add(cidr.text);
    this.texts.push(cidr.text);
    this.cidrs.push(cidr);
  }

  has(text: string): boolean {
    return this.seen.has(text);
  }

  get size(): number {
    return this.texts.length;
  }
}

export function parseEntryArray(entries: readonly string[], field = 'entries'): ParsedEntries {
  const set = new EntrySet();
  entries.forEach((entry, i) => set.add(parseEntry(entry, `${field}[${i}]`)));
  return { texts: set.texts, cidrs: set.cidrs };
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
    let content = text.slice(start, end);
    const hash = content.indexOf('#');
    if (hash >= 0) content = content.slice(0, hash);
    const semi = content.indexOf(';');
    if (semi >= 0) content = content.slice(0, semi);
    content = content.trim();
    if (content !== '') {
      // Spamhaus' JSON-less formats and some netsets carry more columns after whitespace: the first is the entry.
      const space = content.search(/\s/);
      set.add(parseEntry(space < 0 ? content : content.slice(0, space), `line ${line}`));
    }
    start = end + 1;
  }
  return { texts: set.texts, cidrs: set.cidrs };
}

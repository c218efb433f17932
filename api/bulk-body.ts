// Reads a bulk import body as a stream: items are parsed and checked chunk
// by chunk as they arrive, so a million-item body is never held whole (as
// text or as a JSON tree) and parsing never blocks the event loop for long.
//
// Two forms:
//   application/json      {"items": [ITEM, ITEM, ...], "force"?: BOOL}   (the original contract)
//   application/x-ndjson  one ITEM per line
// The scanner below only finds where each item starts and ends (strings,
// escapes and nesting tracked); the items of a chunk are then parsed by one
// native JSON.parse, and each is checked against the BlockCreate schema.
import type { Readable } from 'node:stream';
import { BlockCreate } from './schemas/blocks.js';
import { requestChecker } from './schemas/check.js';
import type { BlockWithExtras } from '../src/policy/block-meta.js';
import { InvalidJsonError, InvalidRequestError, PayloadTooLargeError } from '../src/errors.js';
import { InvalidUtf8Error } from './plugins/strict-input.js';

export const BULK_CONTENT_TYPES = ['application/json', 'application/x-ndjson'] as const;

/** No single item (or key of the envelope) is longer: bounds what one chunk carries over. */
export const MAX_ITEM_BYTES = 64 << 10;

const checkItem = requestChecker(BlockCreate);

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const NEWLINE = 0x0a;

/** The envelope's fields besides items; known once the body has been read. */
export interface BulkEnvelope {
  force?: boolean;
}

/** An item: what POST /v1/blocks takes (ttl or expiresAt, dryRun and origin included). */
export type BulkItem = BlockWithExtras & { force?: boolean };

/**
 * Yields the body's items in chunks, each item checked against the schema.
 * Errors: PAYLOAD_TOO_LARGE past `limitBytes`, INVALID_JSON for syntax,
 * INVALID_REQUEST for a body or item of the wrong shape (named by index).
 * `envelope` receives the top-level fields (they may follow the items).
 */
export async function* readBulkItems(
  body: Readable,
  contentType: string | undefined,
  limitBytes: number,
  envelope: BulkEnvelope = {},
): AsyncGenerator<BulkItem[]> {
  const scanner = new ItemScanner(/^application\/x-ndjson\b/i.test(contentType ?? '') ? 'lines' : 'envelope', envelope);
  // Fatal: an invalid sequence is refused (INVALID_UTF8), never replaced by U+FFFD.
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const decode = (chunk?: Buffer): string => {
    try {
      return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
    } catch {
      throw new InvalidUtf8Error();
    }
  };
  let bytes = 0;
  let index = 0;
  const checked = (texts: string[]): BulkItem[] => {
    const items = parseItems(texts, index);
    for (const item of items) {
      checkItem(item, `body/items/${index}`);
      index++;
    }
    return items as BulkItem[];
  };
  for await (const chunk of body as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > limitBytes) throw new PayloadTooLargeError(`the body is larger than ${limitBytes} bytes`);
    const items = scanner.feed(decode(chunk));
    if (items.length > 0) yield checked(items);
  }
  const rest = scanner.feed(decode());
  scanner.finish();
  if (rest.length > 0) yield checked(rest);
}

/** One native parse for a chunk's items; on a syntax error, the first bad item is named. */
function parseItems(texts: string[], firstIndex: number): unknown[] {
  try {
    return JSON.parse(`[${texts.join(',')}]`) as unknown[];
  } catch {
    texts.forEach((text, i) => {
      try {
        JSON.parse(text);
      } catch (error) {
        throw new InvalidJsonError(`items[${firstIndex + i}]: ${(error as Error).message}`);
      }
    });
    throw new InvalidJsonError('the body is not valid JSON');
  }
}

type Expect =
  | 'open' // '{' of the envelope
  | 'key' // a key, or '}' of an empty envelope
  | 'colon'
  | 'array' // '[' of items
  | 'force' // true or false
  | 'item' // an item, or ']' of an empty array
  | 'itemAfterComma' // an item
  | 'separator' // ',' or ']'
  | 'afterValue' // ',' or '}'
  | 'nextKey' // a key after ','
  | 'end'; // only whitespace

/**
 * Finds item boundaries in text fed piece by piece. Item text is not
 * interpreted here (JSON.parse does that), only delimited: a string, an
 * object or array (nesting counted, strings skipped), or a bare literal.
 */
class ItemScanner {
  private expect: Expect;
  /** Text of an unfinished token carried into the next piece. */
  private carry = '';
  private readonly seen = new Set<string>();
  private key = '';

  constructor(
    private readonly form: 'envelope' | 'lines',
    private readonly envelope: BulkEnvelope,
  ) {
    this.expect = form === 'envelope' ? 'open' : 'item';
  }

  feed(piece: string): string[] {
    const text = this.carry + piece;
    this.carry = '';
    const items: string[] = [];
    let i = 0;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (this.form === 'lines') {
        if (c === NEWLINE) {
          this.expect = 'item';
          i++;
          continue;
        }
        if (WHITESPACE.has(c)) {
          i++;
          continue;
        }
        if (this.expect !== 'item') throw new InvalidJsonError('more than one item on a line');
      } else if (WHITESPACE.has(c)) {
        i++;
        continue;
      }
      const end = this.token(text, i);
      if (end < 0) {
        if (text.length - i > MAX_ITEM_BYTES) throw new InvalidRequestError(`an item is longer than ${MAX_ITEM_BYTES} bytes`);
        this.carry = text.slice(i);
        break;
      }
      const token = this.step(text, i, end);
      if (token !== undefined) items.push(token);
      i = end;
    }
    return items;
  }

  /** At the end of the body: anything unfinished is a syntax error. */
  finish(): void {
    if (this.carry.trim() !== '') {
      const tail = JSON.stringify(this.carry.trim().slice(0, 20));
      throw new InvalidJsonError(this.expect === 'end' ? `unexpected ${tail}; expected the end of the body` : 'the body ends inside an item');
    }
    if (this.form === 'envelope' && this.expect !== 'end') {
      throw new InvalidJsonError(this.expect === 'open' ? 'the body is empty' : 'the body ends before the JSON does');
    }
  }

  /** Handles the token text[start, end); returns it when it is an item. */
  private step(text: string, start: number, end: number): string | undefined {
    const c = text.charCodeAt(start);
    const single = end - start === 1 ? text[start] : undefined;
    // A method, not a closure per token: two million tokens per million items.
        switch (this.expect) {
      case 'item':
      case 'itemAfterComma':
        if (single === ']' && this.form === 'envelope') {
          if (this.expect === 'itemAfterComma') unexpected(text, start, end, "an item after ','");
          return this.closeItems();
        }
        this.expect = this.form === 'envelope' ? 'separator' : 'end';
        return text.slice(start, end);
      case 'separator':
        if (single === ',') this.expect = 'itemAfterComma';
        else if (single === ']') this.closeItems();
        else unexpected(text, start, end, "',' or ']'");
        return undefined;
      case 'open':
        if (single !== '{') unexpected(text, start, end, "'{'");
        this.expect = 'key';
        return undefined;
      case 'key':
      case 'nextKey':
        if (single === '}' && this.expect === 'key') return this.closeEnvelope();
        if (c !== QUOTE) unexpected(text, start, end, 'a key');
        this.key = JSON.parse(text.slice(start, end)) as string;
        if ((this.key !== 'items' && this.key !== 'force') || this.seen.has(this.key)) {
          throw new InvalidRequestError(`unexpected field ${text.slice(start, end)}: the body is {"items": [...], "force"?: true|false}`);
        }
        this.seen.add(this.key);
        this.expect = 'colon';
        return undefined;
      case 'colon':
        if (single !== ':') unexpected(text, start, end, "':'");
        this.expect = this.key === 'items' ? 'array' : 'force';
        return undefined;
      case 'force': {
        const value = text.slice(start, end);
        if (value !== 'true' && value !== 'false') throw new InvalidRequestError('force must be true or false');
        this.envelope.force = value === 'true';
        this.expect = 'afterValue';
        return undefined;
      }
      case 'array':
        if (single !== '[') throw new InvalidRequestError('items must be an array');
        this.expect = 'item';
        return undefined;
      case 'afterValue':
        if (single === ',') this.expect = 'nextKey';
        else if (single === '}') this.closeEnvelope();
        else unexpected(text, start, end, "',' or '}'");
        return undefined;
      case 'end':
        return unexpected(text, start, end, 'the end of the body');
    }
  }

  private closeItems(): undefined {
    this.expect = 'afterValue';
    return undefined;
  }

  private closeEnvelope(): undefined {
    if (!this.seen.has('items')) throw new InvalidRequestError('the body must have items');
    this.expect = 'end';
    return undefined;
  }

  /** The end of the token starting at `start`, or -1 when the text ends first. */
  private token(text: string, start: number): number {
    const c = text.charCodeAt(start);
    if (c === QUOTE) return skipString(text, start);
    const inItems = this.expect === 'item' || this.expect === 'itemAfterComma';
    if (inItems && (c === 0x7b || (c === 0x5b))) return skipNested(text, start);
    if ('{}[]:,'.includes(text[start]!)) return start + 1;
    // A literal (number, true, false, null, or junk JSON.parse will name).
    let i = start;
    while (i < text.length) {
      const d = text.charCodeAt(i);
      if (WHITESPACE.has(d) || d === COMMA || d === 0x5d || d === 0x7d || d === 0x3a) return i;
      i++;
    }
    return -1;
  }
}

/** The syntax error for the token text[start, end). */
function unexpected(text: string, start: number, end: number, what: string): never {
  throw new InvalidJsonError(`unexpected ${JSON.stringify(text.slice(start, Math.min(end, start + 20)))}; expected ${what}`);
}

/** The end of the string starting at `start` (after its closing quote), or -1. */
function skipString(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) return i + 1;
  }
  return -1;
}

/** The end of the object or array starting at `start`, or -1. */
function skipNested(text: string, start: number): number {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = skipString(text, i);
      if (end < 0) return -1;
      i = end - 1;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      if (--depth === 0) return i + 1;
    }
  }
  return -1;
}

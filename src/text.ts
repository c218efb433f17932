// Text that people read on a terminal or in a table.

/**
 * C0 and C1 controls, DEL, the line/paragraph separators and the bidi
 * embedding/override/isolate marks: characters that make a terminal act
 * (ESC[2J clears the screen, a newline forges a table row) or reorder what a
 * reader sees (U+202E shows text backwards).
 */
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** A surrogate without its other half: JSON's "\ud800" decodes to one, UTF-8 cannot store it. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Well-formed text without control characters. */
export function isPrintableText(text: string): boolean {
  return !new RegExp(CONTROL_CHARACTERS.source).test(text) && !LONE_SURROGATE.test(text);
}

// The CLI never hands a terminal raw control characters: whatever the API
// returns (comments stored before the API refused them, error messages that
// echo input) is escaped visibly in tables, lines and --json output.
import { describe, expect, it } from 'vitest';
import { table, terminalJson, terminalLines, terminalSafe } from '../cli/format.js';

const ESC = '\u001b';

describe('terminal output', () => {
  it.each([
    [`${ESC}[2J`, '\\x1b[2J'],
    ['a\nb\r', 'a\\x0ab\\x0d'],
    ['\u0000\u007f\u009b', '\\x00\\x7f\\x9b'],
    ['abc\u202edef\u2066', 'abc\\u202edef\\u2066'],
    ['Ünïcödé 🔥', 'Ünïcödé 🔥'],
    ['\\x1b stays as typed', '\\x1b stays as typed'],
  ])('terminalSafe(%j) = %s', (input, expected) => {
    expect(terminalSafe(input)).toBe(expected);
  });

  it('keeps a forged row inside its cell', () => {
    const forged = `ok\n2  198.18.0.0/15  src  0  now  trusted${ESC}[2J`;
    const text = table(['ID', 'COMMENT'], [[1, forged]]);
    expect(text.split('\n')).toEqual(['ID  COMMENT', '1   ok\\x0a2  198.18.0.0/15  src  0  now  trusted\\x1b[2J']);
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  });

  it('escapes each line but keeps the line breaks it was given', () => {
    expect(terminalLines(`blocked 198.18.0.0/24\nnote ${ESC}[31m`)).toBe('blocked 198.18.0.0/24\nnote \\x1b[31m');
  });

  it('prints JSON that parses back to the same value, with no raw control characters', () => {
    const body = { comment: `${ESC}[2J \u009b \u202e \u2028 \u007f` };
    const text = terminalJson(body);
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u202e]/);
    expect(JSON.parse(text)).toEqual(body);
  });
});

import { describe, expect, it } from 'vitest';
import { formatValue, parseValue } from './values';

describe('parseValue', () => {
  it.each([
    ['10', 10],
    ['100_000', 100000],
    ['1e-4', 0.0001],
    ['-2.5', -2.5],
    ['"a \\"b\\""', 'a "b"'],
    ["'x'", 'x'],
    ['true', true],
    ['false', false],
    ['none', null],
    ['2021-01-01', '2021-01-01'],
    ['15m', '15m'],
    ['[5, 10, 20]', [5, 10, 20]],
    ['["a", none]', ['a', null]],
    ['[]', []],
  ])('reads %s as a literal', (text, value) => {
    expect(parseValue(text)).toEqual({ kind: 'literal', value });
  });

  it.each(['w', 'data.close', 'range(1, 5)', '[1, w]', '1 2', ''])('treats %s as an expression', (text) => {
    expect(parseValue(text).kind).toBe('expr');
  });
});

describe('formatValue', () => {
  it('writes DSL literals', () => {
    expect(formatValue(10)).toBe('10');
    expect(formatValue(0.25)).toBe('0.25');
    expect(formatValue(true)).toBe('true');
    expect(formatValue(null)).toBe('none');
    expect(formatValue('say "hi"')).toBe('"say \\"hi\\""');
    expect(formatValue([1, 'a'])).toBe('[1, "a"]');
    expect(formatValue('2021-01-01', 'date')).toBe('2021-01-01');
    expect(formatValue('2021-01-01')).toBe('"2021-01-01"');
  });

  it('refuses values the DSL cannot hold', () => {
    expect(() => formatValue(Number.NaN)).toThrow();
    expect(() => formatValue({ a: 1 })).toThrow();
  });

  it('round-trips through parseValue', () => {
    for (const v of [42, -3.5, 'a\\b "c"\n', true, null, [1, [2, 'x']]]) {
      expect(parseValue(formatValue(v))).toEqual({ kind: 'literal', value: v });
    }
  });
});

import { describe, expect, it } from 'vitest';
import { emptyParamRow, schemaToRows, type ParamRow } from './customNodes';
import { fieldValue, paramFields, paramsErrorText, pruneTyped, readParams } from './testParams';

const row = (over: Partial<ParamRow>): ParamRow => ({ ...emptyParamRow(), ...over });

const ROWS = schemaToRows({
  type: 'object',
  properties: {
    span: { type: 'integer', minimum: 1, maximum: 100, default: 20, description: 'bars' },
    k: { type: 'number', minimum: 0, default: 2.5 },
    long_only: { type: 'boolean', default: true },
    label: { type: 'string', default: 'ema' },
    mode: { type: 'string', enum: ['fast', 'slow'], default: 'fast' },
  },
  required: ['span'],
});

describe('paramFields', () => {
  it('makes one field per param, of its kind, starting at its default', () => {
    const fields = paramFields(ROWS);
    expect(fields.map((f) => [f.name, f.kind, f.initial, f.min, f.max, f.required])).toEqual([
      ['span', 'integer', '20', 1, 100, true],
      ['k', 'number', '2.5', 0, null, false],
      ['long_only', 'boolean', true, null, null, false],
      ['label', 'string', 'ema', null, null, false],
      ['mode', 'choice', 'fast', null, null, false],
    ]);
    expect(fields[0].description).toBe('bars');
    expect(fields[4].options).toEqual(['fast', 'slow']);
  });

  it('skips rows without a usable name and keeps the first of a repeated one', () => {
    const fields = paramFields([row({ name: '' }), row({ name: '2x' }), row({ name: 'a', type: 'integer' }), row({ name: 'a', type: 'boolean' })]);
    expect(fields.map((f) => [f.name, f.kind])).toEqual([['a', 'integer']]);
  });

  it('reads half-typed table bounds as none, and types the table does not edit as JSON', () => {
    const [f] = paramFields([row({ name: 'w', type: 'integer', min: 'abc', max: '1_000' })]);
    expect([f.min, f.max]).toEqual([null, 1000]);
    expect(paramFields([row({ name: 'xs', type: 'array', default: '[1,2]' })])[0]).toMatchObject({ kind: 'json', initial: '[1,2]' });
    // a boolean row without a default starts unchecked
    expect(paramFields([row({ name: 'on', type: 'boolean' })])[0].initial).toBe(false);
  });
});

describe('readParams', () => {
  const fields = paramFields(ROWS);

  it('sends the defaults with their JSON types when nothing was typed', () => {
    expect(readParams(fields, {})).toEqual({ params: { span: 20, k: 2.5, long_only: true, label: 'ema', mode: 'fast' }, errors: {} });
  });

  it('sends what was typed, numbers as numbers and booleans as booleans', () => {
    const { params, errors } = readParams(fields, { span: '7', k: '-0', long_only: false, label: '', mode: 'slow' });
    expect(errors).toEqual({});
    expect(params).toEqual({ span: 7, k: -0, long_only: false, label: '', mode: 'slow' });
    expect(typeof params.span).toBe('number');
  });

  it('says what is wrong with a value', () => {
    expect(readParams(fields, { span: '0' }).errors).toEqual({ span: 'below the minimum 1' });
    expect(readParams(fields, { span: '101' }).errors).toEqual({ span: 'above the maximum 100' });
    expect(readParams(fields, { span: '2.5' }).errors).toEqual({ span: 'not an integer' });
    expect(readParams(fields, { k: 'abc' }).errors).toEqual({ k: 'not a number' });
    expect(readParams(fields, { k: '-1' }).errors).toEqual({ k: 'below the minimum 0' });
    expect(readParams(fields, { mode: 'medium' }).errors).toEqual({ mode: 'one of fast, slow' });
    const xs = paramFields([row({ name: 'xs', type: 'array' })]);
    expect(readParams(xs, { xs: '[1,' }).errors).toEqual({ xs: 'not valid JSON' });
    expect(readParams(xs, { xs: '[1, 2]' }).params).toEqual({ xs: [1, 2] });
  });

  it('calls input the browser could not read a number not a number, not empty', () => {
    // <input type=number> reports '' for "1e" or "-": `validity.badInput` tells them apart
    expect(readParams(fields, { span: '' }, { span: true }).errors).toEqual({ span: 'not a number' });
    // once the typed value is dropped (the param went and came back), so is the flag
    expect(readParams(fields, {}, { span: true }).errors).toEqual({});
  });

  it('leaves a cleared number out (the default applies) unless it is required with no default', () => {
    expect(readParams(fields, { span: '', k: ' ' })).toEqual({ params: { long_only: true, label: 'ema', mode: 'fast' }, errors: {} });
    const need = paramFields([row({ name: 'n', type: 'integer', required: true })]);
    expect(readParams(need, {}).errors).toEqual({ n: 'required' });
    expect(readParams(paramFields([row({ name: 'opt', type: 'number' })]), {})).toEqual({ params: {}, errors: {} });
  });

  it('leaves out an empty string param that has no default', () => {
    expect(readParams(paramFields([row({ name: 's', type: 'string' })]), {}).params).toEqual({});
    expect(readParams(paramFields([row({ name: 's', type: 'string', required: true })]), {}).params).toEqual({ s: '' });
  });

  it('joins the errors into one line for the Test run message', () => {
    expect(paramsErrorText({ span: 'above the maximum 100', k: 'not a number' })).toBe('span: above the maximum 100; k: not a number');
    expect(paramsErrorText({})).toBe('');
  });
});

describe('keeping typed values in step with the manifest', () => {
  it('shows a typed value, else the default, which follows the table while untouched', () => {
    const [span] = paramFields([row({ name: 'span', type: 'integer', default: '20' })]);
    expect(fieldValue(span, {})).toBe('20');
    expect(fieldValue(span, { span: '7' })).toBe('7');
    const [moved] = paramFields([row({ name: 'span', type: 'integer', default: '10' })]);
    expect(fieldValue(moved, {})).toBe('10');
    expect(fieldValue(moved, { span: '7' })).toBe('7');
  });

  it('drops values of removed or renamed params and keeps the rest', () => {
    const typed = { span: '7', k: '3', gone: '1' };
    const fields = paramFields([row({ name: 'span', type: 'integer' }), row({ name: 'k2' })]);
    expect(pruneTyped(typed, fields)).toEqual({ span: '7' });
  });

  it('drops a value whose param turned from a text field into a checkbox', () => {
    const fields = paramFields([row({ name: 'on', type: 'boolean' })]);
    expect(pruneTyped({ on: '1' }, fields)).toEqual({});
    expect(fieldValue(fields[0], { on: '1' })).toBe(false);
  });

  it('returns the same object when nothing goes (no needless updates)', () => {
    const typed = { span: '7' };
    expect(pruneTyped(typed, paramFields([row({ name: 'span' })]))).toBe(typed);
  });
});

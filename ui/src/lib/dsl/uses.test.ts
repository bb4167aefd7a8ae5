import { describe, expect, it } from 'vitest';
import { applyInsertion, useInsertion, usedNames } from './uses';
import { complete } from './completion';
import { hoverAt } from './hover';
import { CATALOG } from './__fixtures__/catalog';
import type { NodeSpec } from '../types';

const add = (src: string, name = 'my_ema', spec = '1.2') => applyInsertion(src, useInsertion(src, name, spec));

describe('use lines', () => {
  it('finds the pinned names', () => {
    expect([...usedNames('pipeline p\nuse a@1.0\n  use b@=2.0.1\nx = a(use)\n')]).toEqual(['a', 'b']);
  });

  it('goes after the header and the other use lines', () => {
    expect(add('pipeline p "T"\nuse a@1.0\n\ndata = csv_ohlcv(path="x")\n')).toBe('pipeline p "T"\nuse a@1.0\nuse my_ema@1.2\n\ndata = csv_ohlcv(path="x")\n');
    expect(add('# c\npipeline p\ndata = x()\n')).toBe('# c\npipeline p\nuse my_ema@1.2\ndata = x()\n');
  });

  it('goes before the first statement when there is no header, below leading comments', () => {
    expect(add('# about\n\ndata = x()\n')).toBe('# about\n\nuse my_ema@1.2\ndata = x()\n');
    expect(add('')).toBe('use my_ema@1.2\n');
    expect(add('# only a comment')).toBe('# only a comment\nuse my_ema@1.2\n');
  });

  it('adds nothing when the node is pinned already', () => {
    expect(useInsertion('pipeline p\nuse my_ema@^1.0.0\n', 'my_ema', '1.2')).toBeNull();
  });
});

const CUSTOM: NodeSpec = {
  name: 'my_ema',
  version: '1.2.3',
  category: 'custom',
  summary: 'EMA <b>[x](y)</b>',
  doc: '',
  inputs: [{ name: 'x', type: 'series', doc: '', optional: false, variadic: false, columns: null }],
  outputs: [{ name: 'ema', type: 'series', doc: '', optional: false, variadic: false, columns: null }],
  params_schema: { properties: { span: { type: 'integer', default: 20 } } },
  metric_keys: [],
  runtime: 'python',
  custom: true,
  use: 'my_ema@1.2.3',
};

describe('custom nodes in completion and hover', () => {
  const src = 'pipeline p\ndata = csv_ohlcv(path="x")\nfast = ';
  it('offers a custom node with its language and version, adding the missing use line', () => {
    const items = complete(src, src.length, { catalog: [...CATALOG, CUSTOM] });
    const item = items.find((i) => i.label === 'my_ema')!;
    expect(item.detail).toContain('custom · python · v1.2.3');
    expect(item.additionalEdit).toEqual({ offset: 'pipeline p'.length, text: '\nuse my_ema@1.2' });
    expect(items.find((i) => i.label === 'sma')!.additionalEdit).toBeUndefined();
  });

  it('adds no use line when one is there', () => {
    const pinned = 'pipeline p\nuse my_ema@1.0\nfast = ';
    expect(complete(pinned, pinned.length, { catalog: [CUSTOM] })[0].additionalEdit).toBeUndefined();
  });

  it('hovers a custom node with its pin, user text escaped', () => {
    const text = 'pipeline p\nuse my_ema@1.2\nfast = my_ema(data.close)\n';
    const h = hoverAt(text, text.indexOf('my_ema(') + 2, [CUSTOM])!;
    expect(h.markdown).toContain('custom node · Python');
    expect(h.markdown).toContain("`use my_ema@1.2`");
    expect(h.markdown).toContain('\\<b\\>\\[x\\](y)\\</b\\>');
  });
});

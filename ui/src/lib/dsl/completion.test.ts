import { describe, expect, it } from 'vitest';
import { CATALOG } from './__fixtures__/catalog';
import { complete } from './completion';
import { cursorContext } from './context';
import { hoverAt } from './hover';
import { cleanDoc, mdText } from './docs';
import { BUILTIN_NODES } from './language';
import type { NodeSpec } from '../types';

/** Split `text` at the `|` marker: the source and the cursor offset. */
function at(text: string): [string, number] {
  const i = text.indexOf('|');
  return [text.slice(0, i) + text.slice(i + 1), i];
}
const ctx = (text: string) => cursorContext(...at(text));
const labels = (text: string, datasets?: string[]) => complete(...at(text), { catalog: CATALOG, datasets }).map((i) => i.label);

const HEAD = 'pipeline p\ndata = csv_ohlcv(path="x.csv")\nfast = sma(data.close, window=10)\n';

describe('cursorContext', () => {
  it('knows a node type is wanted after `name =`', () => {
    expect(ctx('x = |')).toEqual({ kind: 'nodeType', prefix: '' });
    expect(ctx('x = sm|')).toEqual({ kind: 'nodeType', prefix: 'sm' });
    expect(ctx('for w in [1] {\n    r_{w} = |')).toEqual({ kind: 'nodeType', prefix: '' });
  });

  it('knows the call and the keys already given', () => {
    expect(ctx('x = backtest(data, signal, cash=1, |')).toEqual({
      kind: 'args',
      prefix: '',
      callee: 'backtest',
      usedKeys: ['cash'],
      positional: 2,
    });
    expect(ctx('x = sma(|')).toMatchObject({ kind: 'args', callee: 'sma', positional: 0 });
    expect(ctx('x = sma(\n    data.close,\n    win|')).toMatchObject({ kind: 'args', callee: 'sma', prefix: 'win', positional: 1 });
  });

  it('knows a value is wanted after `key=`, also inside strings', () => {
    expect(ctx('x = crossover(a, b, mode=|')).toEqual({ kind: 'value', prefix: '', callee: 'crossover', key: 'mode', inString: false });
    expect(ctx('x = dataset_ohlcv(name="bt|')).toEqual({ kind: 'value', prefix: 'bt', callee: 'dataset_ohlcv', key: 'name', inString: true });
  });

  it('knows members after a dot, the line start and comments', () => {
    expect(ctx('x = sma(data.|')).toEqual({ kind: 'member', prefix: '', step: 'data', where: 'arg' });
    expect(ctx('x = sma(data.cl|')).toEqual({ kind: 'member', prefix: 'cl', step: 'data', where: 'arg' });
    expect(ctx('sweep grid {\n    fast.|')).toMatchObject({ kind: 'member', where: 'sweep' });
    expect(ctx('use |')).toEqual({ kind: 'usePin', prefix: '' });
    expect(ctx('pipeline p\nuse my|')).toEqual({ kind: 'usePin', prefix: 'my' });
    expect(ctx('x = f(use |')).not.toMatchObject({ kind: 'usePin' });
    expect(ctx('pipeline p\n|')).toEqual({ kind: 'lineStart', prefix: '', block: null });
    expect(ctx('sweep grid {\n    fa|')).toEqual({ kind: 'lineStart', prefix: 'fa', block: 'sweep' });
    expect(ctx('# x = |')).toEqual({ kind: 'none' });
    expect(ctx('x = f(path="a") |')).toMatchObject({ kind: 'reference' });
  });
});

describe('complete', () => {
  it('offers node types from the catalog', () => {
    expect(labels('x = |')).toEqual(expect.arrayContaining(['csv_ohlcv', 'sma', 'crossover', 'backtest']));
  });

  it('offers unused params of the called node, with defaults and types', () => {
    const items = complete(...at(HEAD + 'r = backtest(data, fast, cash=5, |'), { catalog: CATALOG });
    const lbl = items.map((i) => i.label);
    expect(lbl).toContain('fee_bps=');
    expect(lbl).not.toContain('cash=');
    const fee = items.find((i) => i.label === 'fee_bps=')!;
    expect(fee.insertText).toBe('fee_bps=${1:0}');
    expect(fee.detail).toBe('float ≥ 0 = 0');
    expect(fee.documentation).toContain('param of `backtest`');
  });

  it('puts step names first while positional inputs are missing', () => {
    const items = complete(...at(HEAD + 'r = crossover(|'), { catalog: CATALOG });
    const first = [...items].sort((a, b) => a.sortText.localeCompare(b.sortText))[0];
    expect(first.kind).toBe('step');
    expect(items.map((i) => i.label)).toEqual(expect.arrayContaining(['data', 'fast', 'mode=', 'fast=']));
  });

  it('offers enum values, booleans, none and the default', () => {
    expect(labels('x = crossover(a, b, mode=|')).toEqual(expect.arrayContaining(['"long_short"', '"long_only"']));
    expect(labels('x = backtest(a, b, log=|')).toEqual(expect.arrayContaining(['true', 'false']));
    expect(labels('x = backtest(a, b, lot_size=|')).toEqual(expect.arrayContaining(['none']));
  });

  it('offers dataset names for dataset_ohlcv(name=...)', () => {
    expect(labels('x = dataset_ohlcv(name=|', ['btc_1h'])).toEqual(['"btc_1h"']);
    expect(labels('x = dataset_ohlcv(name="|', ['btc_1h'])).toEqual(['btc_1h']);
  });

  it('offers ports, columns and metrics after step.', () => {
    expect(labels(HEAD + 'x = sma(data.|')).toEqual(expect.arrayContaining(['bars', 'close', 'open', 'volume']));
    const r = labels(HEAD + 'r = backtest(data, fast)\nsweep grid {\n    objective maximize r.|');
    expect(r).toEqual(expect.arrayContaining(['equity', 'trades', 'sharpe', 'max_drawdown', 'cash']));
    expect(labels(HEAD + 'sweep grid {\n    fast.|')).toContain('window');
  });

  it('after `step.` in a call offers exactly what the validator accepts there (issue 9, item 5)', () => {
    // the real catalog (src/generated/language.json), not the fixture: ports and the columns of
    // the first frame-like output; never params or metrics, which the validator rejects (AF202)
    const real = (text: string) => complete(...at(text), { catalog: [...BUILTIN_NODES] }).map((i) => i.label).sort();
    const head = 'pipeline p\ndata = csv_ohlcv(path="x.csv")\nfast = sma(data.close)\nsig = crossover(fast, fast)\nr = backtest(data, sig)\n';
    expect(real(head + 'x = sma(data.|')).toEqual(['bars', 'close', 'high', 'low', 'open', 'volume']);
    const bt = BUILTIN_NODES.find((n) => n.name === 'backtest')!;
    const offered = real(head + 'x = f(r.|');
    // its four outputs, and the columns of the first frame-like one (equity)
    expect(offered).toEqual(['cash', 'drawdown', 'equity', 'metrics', 'orders', 'position', 'trades']);
    for (const m of bt.metric_keys) expect(offered).not.toContain(m);
    for (const k of Object.keys(bt.params_schema.properties ?? {})) if (k !== 'cash') expect(offered).not.toContain(k);
    expect(real(head + 'x = f(fast.|')).toEqual(['value']);
    // metrics stay on offer where they are meant: a sweep objective
    expect(real(head + 'sweep grid {\n    objective maximize r.|')).toEqual(expect.arrayContaining(bt.metric_keys));
  });

  it('offers the caller\'s custom nodes after `use ` (issue 9, item 5)', () => {
    const custom: NodeSpec = { ...CATALOG[2], name: 'my_rsi', version: '1.4.2', custom: true, runtime: 'python', summary: 'my RSI', use: 'my_rsi@1.4.2' } as NodeSpec;
    const other: NodeSpec = { ...custom, name: 'my_vol', version: '0.2.0', use: 'my_vol@0.2.0' } as NodeSpec;
    const items = complete(...at('pipeline p\nuse my|'), { catalog: [...CATALOG, custom, other] });
    expect(items.map((i) => [i.label, i.insertText])).toEqual([
      ['my_rsi', 'my_rsi@1.4'],
      ['my_vol', 'my_vol@0.2'],
    ]);
    // a node already pinned is not offered again; built-ins never are
    const again = complete(...at('pipeline p\nuse my_rsi@1.4\nuse |'), { catalog: [...CATALOG, custom, other] });
    expect(again.map((i) => i.label)).toEqual(['my_vol']);
  });

  it('offers keywords and snippets at the start of a line, steps inside a sweep', () => {
    expect(labels('pipeline p\n|')).toEqual(expect.arrayContaining(['use', 'sweep', 'walkforward', 'step']));
    expect(labels(HEAD + 'sweep grid {\n    |')).toContain('fast');
  });

  it('offers nothing inside comments and unknown members', () => {
    expect(labels('# x = |')).toEqual([]);
    expect(labels('x = y.|')).toEqual([]);
  });
});

describe('hoverAt', () => {
  const src = HEAD + 'sig = crossover(fast, fast, mode="long_only")\n';
  const hover = (needle: string, delta = 1) => hoverAt(src, src.indexOf(needle) + delta, CATALOG);

  it('documents node types', () => {
    const h = hover('sma(')!;
    expect(h.markdown).toContain('**sma**');
    expect(h.markdown).toContain('Simple moving average');
    expect(h.markdown).toContain('`window`: int ≥ 1 = `20`');
    expect(src.slice(h.start, h.end)).toBe('sma');
  });

  it('documents the params of the call around', () => {
    expect(hover('window=')!.markdown).toContain('Bars in the window');
    expect(hover('mode=')!.markdown).toContain('param of `crossover`');
  });

  it('describes steps and keywords, and nothing elsewhere', () => {
    expect(hover('fast =', 0)!.markdown).toContain('step `fast` = `sma` (line 3)');
    expect(hover('pipeline', 0)!.markdown).toContain('names the pipeline');
    expect(hover('"x.csv"')).toBeNull();
  });
});

describe('docs', () => {
  it('dedents docstrings so Markdown does not see code blocks', () => {
    expect(cleanDoc('Title.\n\n    Body line\n      more\n')).toBe('Title.\n\nBody line\n  more');
    expect(cleanDoc('One line')).toBe('One line');
  });
  it('neutralises links and HTML in user text, keeps reST literals as code', () => {
    expect(mdText('see [x](http://e) <img src=y> ``a - 1``')).toBe('see \\[x\\](http://e) \\<img src=y\\> `a - 1`');
  });
});

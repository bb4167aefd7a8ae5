import { describe, expect, it } from 'vitest';
import { findStep, minimalEdit, parseSteps, RewriteError, setArg, stepAtLine } from './rewrite';

const SAMPLE = `# Moving-average crossover on the bundled sample data.
pipeline sma_crossover "Moving Average Crossover (Sample)"

data   = csv_ohlcv(path="sample_ohlcv.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)   # the slow one
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
`;

describe('parseSteps', () => {
  it('finds every step with its type, line and arguments', () => {
    const steps = parseSteps(SAMPLE);
    expect(steps.map((s) => [s.name, s.type, s.line])).toEqual([
      ['data', 'csv_ohlcv', 4],
      ['fast', 'sma', 5],
      ['slow', 'sma', 6],
      ['signal', 'crossover', 7],
      ['result', 'backtest', 8],
    ]);
    const result = steps[4];
    expect(result.args.map((a) => [a.key, a.valueText])).toEqual([
      [null, 'data'],
      [null, 'signal'],
      ['cash', '100_000'],
      ['fee_bps', '5'],
      ['slippage_bps', '2'],
    ]);
  });

  it('ignores parentheses, commas and equals signs inside strings and comments', () => {
    const src = 'x = f(path="a,b=(c", k=1) # y = g(\n';
    const [x, ...rest] = parseSteps(src);
    expect(rest).toEqual([]);
    expect(x.args.map((a) => [a.key, a.valueText])).toEqual([
      ['path', '"a,b=(c"'],
      ['k', '1'],
    ]);
  });

  it('reads multi-line calls, nested lists and calls', () => {
    const src = 'x = f(\n    a,\n    ws=[5, 10],  # windows\n    r=range(1, 2),\n)\ny = g()\n';
    const steps = parseSteps(src);
    expect(steps.map((s) => [s.name, s.line, s.endLine])).toEqual([
      ['x', 1, 5],
      ['y', 6, 6],
    ]);
    expect(steps[0].args.map((a) => [a.key, a.valueText])).toEqual([
      [null, 'a'],
      ['ws', '[5, 10]'],
      ['r', 'range(1, 2)'],
    ]);
  });

  it('finds templated steps inside for blocks and not sweep assignments', () => {
    const src = 'for w in [6, 12] {\n    rsi_{w} = rsi(data.close, window=w)\n}\nsweep grid {\n    fast.window = [5, 10]\n}\n';
    expect(parseSteps(src).map((s) => [s.name, s.type, s.line])).toEqual([['rsi_{w}', 'rsi', 2]]);
  });

  it('reports an unclosed call', () => {
    const [x] = parseSteps('x = sma(data.close, window=');
    expect(x.close).toBe(-1);
    expect(x.args.map((a) => [a.key, a.valueText])).toEqual([
      [null, 'data.close'],
      ['window', ''],
    ]);
  });

  it('locates steps by line (any line of a multi-line call) and by name', () => {
    const src = 'x = f(\n  a,\n)\ny = g()\n';
    expect(stepAtLine(src, 2)?.name).toBe('x');
    expect(stepAtLine(src, 4)?.name).toBe('y');
    expect(stepAtLine(src, 5)).toBeNull();
    expect(findStep(src, 'y')?.line).toBe(4);
    expect(findStep(src, 'z')).toBeNull();
  });
});

describe('setArg', () => {
  it('replaces an existing value and keeps everything else byte for byte', () => {
    const out = setArg(SAMPLE, 'fast', 'window', '12');
    expect(out).toBe(SAMPLE.replace('window=10', 'window=12'));
  });

  it('keeps a trailing comment on the edited line', () => {
    const out = setArg(SAMPLE, 6, 'window', '50');
    expect(out.split('\n')[5]).toBe('slow   = sma(data.close, window=50)   # the slow one');
  });

  it('adds a missing argument at the end of a one-line call', () => {
    const out = setArg(SAMPLE, 'signal', 'mode', '"long_only"');
    expect(out.split('\n')[6]).toBe('signal = crossover(fast, slow, mode="long_only")');
    expect(out.replace(', mode="long_only"', '')).toBe(SAMPLE);
  });

  it('adds the first argument to an empty call', () => {
    expect(setArg('x = f()\n', 'x', 'k', '1')).toBe('x = f(k=1)\n');
    expect(setArg('x = f(  )\n', 'x', 'k', '1')).toBe('x = f(k=1)\n');
  });

  it('removes a middle argument with its comma', () => {
    const out = setArg(SAMPLE, 'result', 'fee_bps', null);
    expect(out.split('\n')[7]).toBe('result = backtest(data, signal, cash=100_000, slippage_bps=2)');
  });

  it('removes the last argument with the comma before it', () => {
    const out = setArg(SAMPLE, 'result', 'slippage_bps', null);
    expect(out.split('\n')[7]).toBe('result = backtest(data, signal, cash=100_000, fee_bps=5)');
  });

  it('removes the only argument', () => {
    expect(setArg('x = f(k=1)\n', 'x', 'k', null)).toBe('x = f()\n');
    expect(setArg('x = f(k=1,)\n', 'x', 'k', null)).toBe('x = f()\n');
  });

  it('removing or setting an absent key is a no-op / an insert', () => {
    expect(setArg(SAMPLE, 'fast', 'nope', null)).toBe(SAMPLE);
  });

  it('edits a multi-line call in its own style', () => {
    const src = 'x = f(\n    a,\n    k=1,  # note\n)\n';
    expect(setArg(src, 'x', 'k', '2')).toBe('x = f(\n    a,\n    k=2,  # note\n)\n');
    expect(setArg(src, 'x', 'j', '3')).toBe('x = f(\n    a,\n    k=1,  # note\n    j=3,\n)\n');
    expect(setArg(src, 'x', 'k', null)).toBe('x = f(\n    a,\n)\n');
  });

  it('inserts into a multi-line call without a trailing comma', () => {
    const src = 'x = f(\n    a,\n    k=1\n)\n';
    expect(setArg(src, 'x', 'j', '3')).toBe('x = f(\n    a,\n    k=1,\n    j=3\n)\n');
    expect(setArg(src, 'x', 'k', null)).toBe('x = f(\n    a\n)\n');
  });

  it('edits a step inside a for block by line', () => {
    const src = 'for w in [6, 12] {\n    rsi_{w} = rsi(data.close, window=w)\n}\n';
    expect(setArg(src, 2, 'window', '14')).toBe('for w in [6, 12] {\n    rsi_{w} = rsi(data.close, window=14)\n}\n');
  });

  it('replaces list and string values whole', () => {
    const src = 'x = f(ws=[1, 2, 3], p="a, b")\n';
    expect(setArg(src, 'x', 'ws', '[4]')).toBe('x = f(ws=[4], p="a, b")\n');
    expect(setArg(src, 'x', 'p', '"c"')).toBe('x = f(ws=[1, 2, 3], p="c")\n');
  });

  it('fills in a value that is still being typed', () => {
    expect(setArg('x = f(k=)\n', 'x', 'k', '5')).toBe('x = f(k=5)\n');
  });

  it('refuses unknown steps and inserts into unclosed calls', () => {
    expect(() => setArg(SAMPLE, 'nope', 'k', '1')).toThrow(RewriteError);
    expect(() => setArg(SAMPLE, 3, 'k', '1')).toThrow(RewriteError);
    expect(() => setArg('x = f(a,\n', 'x', 'k', '1')).toThrow(/not closed/);
  });

  it('does not touch other steps that use the same key', () => {
    const out = setArg(SAMPLE, 'slow', 'window', '40');
    expect(out).toContain('fast   = sma(data.close, window=10)');
    expect(out).toContain('slow   = sma(data.close, window=40)');
  });
});

describe('broken lines (issue 9, item 4): never edit text that did not parse', () => {
  const BROKEN = SAMPLE.replace('window=10)', 'window=10');

  it('a missing `)` ends the call at its line, with the problem, not at the end of the file', () => {
    const fast = findStep(BROKEN, 'fast')!;
    expect(fast.problem).toMatch(/“\)” is missing/);
    expect([fast.line, fast.endLine]).toEqual([5, 5]);
    expect(fast.args.map((a) => [a.key, a.valueText])).toEqual([
      [null, 'data.close'],
      ['window', '10'],
    ]);
    // the steps after it are still found, each on its own line, and they parse
    expect(parseSteps(BROKEN).map((s) => [s.name, s.line, s.problem])).toEqual([
      ['data', 4, null],
      ['fast', 5, fast.problem],
      ['slow', 6, null],
      ['signal', 7, null],
      ['result', 8, null],
    ]);
    expect(stepAtLine(BROKEN, 6)?.name).toBe('slow');
  });

  it('refuses every edit of the broken step and leaves the text as it was', () => {
    for (const [key, value] of [['window', '12'], ['window', null], ['min_periods', '3']] as const) {
      expect(() => setArg(BROKEN, 'fast', key, value)).toThrow(/does not parse.*fix it in the editor/);
    }
  });

  it('edits of the other steps change only their own line', () => {
    const out = setArg(BROKEN, 'slow', 'window', '40');
    const before = BROKEN.split('\n');
    const after = out.split('\n');
    expect(after.length).toBe(before.length);
    after.forEach((line, i) => {
      if (i !== 5) expect(line).toBe(before[i]);
    });
    expect(after[5]).toBe('slow   = sma(data.close, window=40)   # the slow one');
  });

  it('a `)` on a later line does not make a broken call look closed', () => {
    const src = 'fast = sma(data.close, window=10\nslow = sma(data.close)\nx = f(a)\n';
    const fast = findStep(src, 'fast')!;
    expect(fast.problem).not.toBeNull();
    expect(fast.endLine).toBe(1);
    expect(() => setArg(src, 'fast', 'window', '5')).toThrow(RewriteError);
    expect(setArg(src, 'x', 'k', '1')).toBe('fast = sma(data.close, window=10\nslow = sma(data.close)\nx = f(a, k=1)\n');
  });

  it('brackets that do not match, or a stray closer, are problems', () => {
    expect(findStep('x = f(a, ws=[1, 2)\ny = g()\n', 'x')!.problem).toMatch(/do not match/);
    expect(findStep('x = f(a]\n', 'x')!.problem).toMatch(/closes nothing/);
    expect(findStep('x = f(window=10 slow = 3)\n', 'x')!.problem).toMatch(/not one value/);
  });

  it('a well-formed multi-line call is not a problem', () => {
    const src = 'x = f(\n    a,\n    k=1\n)\ny = g(\n  b\n  , c)\n';
    expect(parseSteps(src).map((s) => [s.name, s.problem, s.endLine])).toEqual([
      ['x', null, 4],
      ['y', null, 7],
    ]);
  });
});

describe('minimalEdit', () => {
  it('finds the smallest single replacement', () => {
    expect(minimalEdit('window=10)', 'window=12)')).toEqual({ start: 8, end: 9, text: '2' });
    expect(minimalEdit('f(a)', 'f(a, b=1)')).toEqual({ start: 3, end: 3, text: ', b=1' });
    expect(minimalEdit('aaa', 'aa')).toEqual({ start: 2, end: 3, text: '' });
    expect(minimalEdit('same', 'same')).toEqual({ start: 4, end: 4, text: '' });
  });
});

import { describe, expect, it } from 'vitest';
import { formatSource } from './format';

describe('formatSource', () => {
  it('aligns consecutive steps and trims whitespace', () => {
    const src = 'pipeline p   \n\n\n\ndata = csv_ohlcv(path="a.csv")\nfast   =  sma(data.close, window=10)  # fast\n';
    expect(formatSource(src)).toBe(
      'pipeline p\n\ndata = csv_ohlcv(path="a.csv")\nfast = sma(data.close, window=10)  # fast\n',
    );
    expect(formatSource('a = f()\nlonger = g()')).toBe('a      = f()\nlonger = g()\n');
  });

  it('re-indents block bodies and leaves continuation lines alone', () => {
    const src = 'sweep grid {\nfast.window = [5, 10]\n  objective maximize r.sharpe\n}\nx = f(\n      a,\n  b=1)\n';
    expect(formatSource(src)).toBe(
      'sweep grid {\n    fast.window = [5, 10]\n    objective maximize r.sharpe\n}\nx = f(\n      a,\n  b=1)\n',
    );
  });

  it('never changes strings or comments and is idempotent', () => {
    const src = 'x = f(p="a   =  b")   # keep   this\n';
    const once = formatSource(src);
    expect(once).toBe('x = f(p="a   =  b")  # keep   this\n');
    expect(formatSource(once)).toBe(once);
  });
});

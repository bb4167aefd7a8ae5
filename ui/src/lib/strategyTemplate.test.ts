import { describe, expect, it } from 'vitest';
import { dslLiteral, strategyBacktestSource } from './strategyTemplate';

describe('dslLiteral', () => {
  it('writes the .af literal of each JSON value the language has', () => {
    expect(dslLiteral(5)).toBe('5');
    expect(dslLiteral(0.25)).toBe('0.25');
    expect(dslLiteral(true)).toBe('true');
    expect(dslLiteral(null)).toBe('none');
    expect(dslLiteral('a "b"')).toBe('"a \\"b\\""');
    expect(dslLiteral([1, 'x'])).toBe('[1, "x"]');
  });
  it('has none for objects or non-finite numbers', () => {
    expect(dslLiteral({ a: 1 })).toBeNull();
    expect(dslLiteral([{ a: 1 }])).toBeNull();
    expect(dslLiteral(Infinity)).toBeNull();
  });
});

describe('strategyBacktestSource', () => {
  it('pins the version and passes the config as keyword arguments', () => {
    const text = strategyBacktestSource('sma_cross_backtest', 'sma_cross', 3, { fast: 5, slow: 20, qty: 0.01 });
    expect(text).toContain('pipeline sma_cross_backtest "sma_cross v3 backtest"');
    expect(text).toContain('result = strategy_backtest(data, strategy="sma_cross@3", fast=5, slow=20, qty=0.01, fee_bps=5,\n');
    expect(text).toContain('\n                           slippage_bps=2)\n');
    expect(text).toContain('result.fast = [...]');
    expect(Math.max(...text.split('\n').map((l) => l.length))).toBeLessThanOrEqual(100);
  });
  it('leaves objects to the module defaults and says so', () => {
    const text = strategyBacktestSource('p', 's', 1, { fast: 5, weights: { a: 1 } });
    expect(text).toContain('# not written here (objects): weights');
    expect(text).not.toContain('weights=');
  });
});

import { describe, expect, it } from 'vitest';
import { nextSort, sortTrades, sortValue } from './tradeSort';

const trades = [
  { entry_ts: '2021-03-01 00:00:00+00:00', side: 'long', pnl: 9.5, return: 0.01, is_open: false },
  { entry_ts: '2021-01-15 00:00:00+00:00', side: 'short', pnl: -120, return: -0.2, is_open: false },
  { entry_ts: '2021-12-31 00:00:00+00:00', side: 'long', pnl: 80, return: null, is_open: true },
  { entry_ts: '2021-02-01 00:00:00+00:00', side: 'long', pnl: 100, return: 0.1, is_open: false },
];
const col = (rows: Record<string, unknown>[], k: string) => rows.map((r) => r[k]);

describe('sortTrades', () => {
  it('sorts numbers as numbers, not as text (100 > 80 > 9.5 > -120)', () => {
    expect(col(sortTrades(trades, 'pnl', 'asc'), 'pnl')).toEqual([-120, 9.5, 80, 100]);
    expect(col(sortTrades(trades, 'pnl', 'desc'), 'pnl')).toEqual([100, 80, 9.5, -120]);
  });
  it('sorts times as times', () => {
    const mixed = [{ entry_ts: '2021-10-02T00:00:00Z' }, { entry_ts: '2021-9-30' }, { entry_ts: '2021-02-01 00:00:00+00:00' }];
    expect(col(sortTrades(mixed, 'entry_ts', 'asc'), 'entry_ts')).toEqual(['2021-02-01 00:00:00+00:00', '2021-9-30', '2021-10-02T00:00:00Z']);
    expect(col(sortTrades(trades, 'entry_ts', 'desc'), 'pnl')).toEqual([80, 9.5, 100, -120]);
  });
  it('keeps empty cells last in both directions and is stable for ties', () => {
    expect(col(sortTrades(trades, 'return', 'asc'), 'return')).toEqual([-0.2, 0.01, 0.1, null]);
    expect(col(sortTrades(trades, 'return', 'desc'), 'return')).toEqual([0.1, 0.01, -0.2, null]);
    expect(col(sortTrades(trades, 'side', 'asc'), 'pnl')).toEqual([9.5, 80, 100, -120]);
  });
  it('does not change the input and returns it unsorted without a key', () => {
    const copy = structuredClone(trades);
    sortTrades(trades, 'pnl', 'desc');
    expect(trades).toEqual(copy);
    expect(sortTrades(trades, null, 'asc')).toBe(trades);
  });
  it('reads numbers written as text and booleans', () => {
    expect(sortValue('units', '1e3')).toBe(1000);
    expect(sortValue('is_open', true)).toBe(1);
    expect(sortValue('x', '')).toBeNull();
  });
  it('a first click sorts ascending, a second on the same column descending', () => {
    expect(nextSort({ key: null, dir: 'asc' }, 'pnl')).toEqual({ key: 'pnl', dir: 'asc' });
    expect(nextSort({ key: 'pnl', dir: 'asc' }, 'pnl')).toEqual({ key: 'pnl', dir: 'desc' });
    expect(nextSort({ key: 'pnl', dir: 'desc' }, 'fees')).toEqual({ key: 'fees', dir: 'asc' });
  });
});

import { describe, expect, it } from 'vitest';
import { firstEquity, toSeries } from './components/chartData';
import { items } from './api';
import { shareUrl } from './links';

describe('shareUrl', () => {
  it('keeps absolute URLs, prefixes paths, falls back to the token', () => {
    expect(shareUrl({ url: 'https://af.example/shared/t', token: 't' }, 'http://x')).toBe('https://af.example/shared/t');
    expect(shareUrl({ url: '/shared/t', token: 't' }, 'http://x')).toBe('http://x/shared/t');
    expect(shareUrl({ url: '', token: 'a/b' }, 'http://x')).toBe('http://x/shared/a%2Fb');
  });
});

describe('chart data', () => {
  const pts = [
    { ts: '2021-01-01T00:00:00Z', equity: 100, drawdown: 0 },
    { ts: '2021-01-02T00:00:00Z', equity: 110, drawdown: 0 },
    { ts: '2021-01-02T00:00:00Z', equity: 105, drawdown: -0.05 },
    { ts: '2021-01-01T12:00:00Z', equity: 1, drawdown: 0 },
    { ts: 'garbage', equity: 1, drawdown: 0 },
    { ts: '2021-01-03T00:00:00Z', equity: Number.NaN, drawdown: 0 },
    { ts: '2021-01-04T00:00:00Z', equity: 120, drawdown: 0 },
  ];
  it('makes strictly ascending UTC seconds, keeping the last value of a repeated time', () => {
    expect(toSeries(pts, (p) => p.equity)).toEqual([
      { time: 1609459200, value: 100 },
      { time: 1609545600, value: 105 },
      { time: 1609718400, value: 120 },
    ]);
  });
  it('normalises by the first equity', () => {
    expect(firstEquity(pts)).toBe(100);
    expect(toSeries(pts, (p) => p.equity, 100).map((x) => x.value)).toEqual([1, 1.05, 1.2]);
    expect(firstEquity([])).toBe(1);
  });
});

describe('items', () => {
  it('accepts pages and bare lists', () => {
    expect(items({ items: [1, 2] })).toEqual([1, 2]);
    expect(items([3])).toEqual([3]);
    expect(items(null)).toEqual([]);
  });
});

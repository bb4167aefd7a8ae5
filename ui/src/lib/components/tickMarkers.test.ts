import { describe, expect, it } from 'vitest';
import type { TickChartData, TickFill } from '../types';
import { fillCounts, fillMarkers, midBars, points } from './tickMarkers';

const T0 = 1_704_067_200; // 2024-01-01T00:00:00Z
const fill = (ms: number, side: 'buy' | 'sell', liquidity: 'maker' | 'taker', price = 100): TickFill => ({
  ts: new Date(ms).toISOString(),
  time_ms: ms,
  side,
  price,
  qty: 1,
  liquidity,
  fee: 0,
});
const data = (over: Partial<TickChartData> = {}): TickChartData => ({
  node: 'result',
  records: 40,
  bucket_s: 1,
  time: [T0, T0 + 1, T0 + 3],
  mid_open: [100, 100.02, null],
  mid_high: [100.05, 100.02, null],
  mid_low: [99.99, 99.9, null],
  mid_close: [100.01, 99.95, null],
  position_min: [0, -1, -2],
  position_max: [1, 0, -1],
  position_last: [1, -1, -2],
  inventory_min: [0, -100, -200],
  inventory_max: [100, 0, -100],
  inventory_last: [100, -100, null],
  fills: [],
  fills_total: 0,
  ...over,
});

describe('tick chart data', () => {
  it('draws the mid per bucket as OHLC bars, leaving out buckets without a mid', () => {
    expect(midBars(data())).toEqual([
      { time: T0, open: 100, high: 100.05, low: 99.99, close: 100.01 },
      { time: T0 + 1, open: 100.02, high: 100.02, low: 99.9, close: 99.95 },
    ]);
    expect(points(data(), 'inventory_last').map((p) => p.time)).toEqual([T0, T0 + 1]);
    expect(points(data(), 'position_min').map((p) => p.value)).toEqual([0, -1, -2]);
  });

  it('puts one marker per fill on its bucket: buys below in green, sells above in red, makers circles, takers arrows', () => {
    const times = [T0, T0 + 1, T0 + 3];
    const fills = [
      fill(T0 * 1000 + 250, 'buy', 'maker', 99.99),
      fill(T0 * 1000 + 999, 'sell', 'taker', 100.03),
      fill((T0 + 2) * 1000 + 500, 'sell', 'maker'), // no bucket at T0+2: drawn on T0+1's
      fill((T0 + 3) * 1000, 'buy', 'taker'),
      fill((T0 - 1) * 1000, 'buy', 'taker'), // before the first bucket: not drawn
    ];
    const { markers, byTime } = fillMarkers(fills, times);
    expect(markers.map((m) => [m.time - T0, m.position, m.shape, m.color, m.price])).toEqual([
      [0, 'atPriceBottom', 'circle', '#16a34a', 99.99],
      [0, 'atPriceTop', 'arrowDown', '#dc2626', 100.03],
      [1, 'atPriceTop', 'circle', '#dc2626', 100],
      [3, 'atPriceBottom', 'arrowUp', '#16a34a', 100],
    ]);
    expect(byTime.get(T0)?.length).toBe(2);
    expect(fillCounts(fills)).toEqual({ buy: 3, sell: 2, maker: 2, taker: 3 });
  });
});

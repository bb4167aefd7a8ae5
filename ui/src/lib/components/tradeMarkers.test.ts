import { describe, expect, it } from 'vitest';
import { cellColour, colourScale } from './monthly';
import { snap, toSeconds, tradeMarkers } from './tradeMarkers';

const day = (d: string) => toSeconds(`${d} 00:00:00+00:00`)!;
const times = ['2021-01-04', '2021-01-05', '2021-01-06', '2021-01-07', '2021-01-08'].map(day);

describe('tradeMarkers', () => {
  it('marks entries by side and exits by outcome, on the fill bars', () => {
    const trades = [
      { entry_ts: '2021-01-05 00:00:00+00:00', exit_ts: '2021-01-06 00:00:00+00:00', side: 'long', entry_price: 100, exit_price: 98, pnl: -2, return: -0.02, is_open: false },
      { entry_ts: '2021-01-06 00:00:00+00:00', exit_ts: '2021-01-08 00:00:00+00:00', side: 'short', entry_price: 98, exit_price: 90, pnl: 8, return: 0.08, is_open: true },
    ];
    const { markers, marks } = tradeMarkers(trades, times);
    expect(markers.map((m) => [m.time, m.shape, m.position, m.color])).toEqual([
      [times[1], 'arrowUp', 'belowBar', '#16a34a'],
      [times[2], 'circle', 'aboveBar', '#dc2626'], // long exit at a loss
      [times[2], 'arrowDown', 'aboveBar', '#ea580c'], // short entry (the flip's same fill)
      [times[4], 'square', 'belowBar', '#16a34a'], // still open, in profit
    ]);
    expect(marks.get(times[2])!.map((m) => `${m.side} ${m.kind} ${m.price} ${m.pnl}`)).toEqual(['long exit 98 -2', 'short entry 98 8']);
  });
  it('puts a marker on the candle its time falls in when bars are merged, and caps the count', () => {
    expect(snap([10, 20, 30], 25)).toBe(20);
    expect(snap([10, 20, 30], 30)).toBe(30);
    expect(snap([10, 20, 30], 5)).toBeNull();
    const many = Array.from({ length: 5 }, () => ({ entry_ts: '2021-01-05', exit_ts: '2021-01-07', side: 'long', pnl: 1 }));
    expect(tradeMarkers(many, times, 2).markers).toHaveLength(4);
  });
});

describe('monthly colour scale', () => {
  it('shades gains green and losses red, stronger for larger moves, nothing for a gap', () => {
    const scale = colourScale([0.02, -0.08, null]);
    expect(scale).toBe(0.08);
    expect(cellColour(-0.08, scale)).toBe('color-mix(in oklab, var(--color-error) 60%, transparent)');
    expect(cellColour(0.02, scale)).toBe('color-mix(in oklab, var(--color-success) 19%, transparent)');
    expect(cellColour(null, scale)).toBeUndefined();
    expect(colourScale([0.001])).toBe(0.01);
  });
});

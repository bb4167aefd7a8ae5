import { describe, expect, it } from 'vitest';
import { axisTicks, cellAt, contributionRows, heatGrid, niceMax, weightColor } from './portfolio';

const days = (n: number) => Array.from({ length: n }, (_, i) => `2024-01-${String(i + 1).padStart(2, '0')}T00:00:00+00:00`);

describe('heatGrid (downsampling the weights to the pixel width)', () => {
  const frame = { index: days(5), columns: ['AAA', 'BBB'], data: [[0, 0.1, 0.2, 0.3, 0.4], [-0.5, null, -0.3, null, null]] };
  it('keeps every bar when there are pixels enough', () => {
    const g = heatGrid(frame, 100);
    expect(g.cols).toBe(5);
    expect(g.perCol).toBe(1);
    expect(Array.from(g.values.slice(0, 5))).toEqual([0, 0.1, 0.2, 0.3, 0.4]);
    expect(Number.isNaN(g.values[5 + 1])).toBe(true); // BBB has no weight on day 2
    expect(g.from[2]).toBe(g.to[2]);
  });
  it('merges runs of bars as evenly as it can, each column the mean of its values (missing skipped)', () => {
    // 5 rows into 2 columns: rows 0-1 and 2-4
    const g = heatGrid(frame, 2);
    expect(g.cols).toBe(2);
    expect(g.values[0]).toBeCloseTo(0.05, 12); // (0 + .1) / 2
    expect(g.values[1]).toBeCloseTo(0.3, 12); // (.2 + .3 + .4) / 3
    expect(g.values[2]).toBeCloseTo(-0.5, 12); // -.5 (day 2 missing)
    expect(g.values[3]).toBeCloseTo(-0.3, 12); // -.3 (days 4, 5 missing)
    expect([g.from, g.to]).toEqual([
      [days(5)[0], days(5)[2]],
      [days(5)[1], days(5)[4]],
    ]);
    expect(g.perCol).toBe(2.5);
  });
  it('scales colours to a round number at or above the largest |weight|', () => {
    expect(heatGrid(frame, 100).maxAbs).toBe(0.5);
    expect([niceMax(0.37), niceMax(0.05), niceMax(1.3), niceMax(0), niceMax(NaN), niceMax(0.21)]).toEqual([0.5, 0.05, 2, 1, 1, 0.25]);
  });
  it('gives an empty grid for an empty frame or no width', () => {
    expect(heatGrid({ index: [], columns: ['A'], data: [[]] }, 100).cols).toBe(0);
    expect(heatGrid(frame, 0).values.length).toBe(0);
  });
  it('finds the cell under the pointer', () => {
    const g = heatGrid(frame, 100); // 5 columns, 2 rows
    expect(cellAt(g, 0, 0, 500, 10)).toEqual({ row: 0, col: 0 });
    expect(cellAt(g, 499, 19, 500, 10)).toEqual({ row: 1, col: 4 });
    expect(cellAt(g, 250, 25, 500, 10)).toBeNull();
    expect(cellAt(g, 500, 0, 500, 10)).toBeNull();
  });
});

describe('weightColor (diverging: long blue, short red, opacity |w| / max)', () => {
  it('maps longs to blue and shorts to red, transparent at zero, full at the scale end and beyond', () => {
    expect(weightColor(0.25, 0.5)).toBe('rgba(37,99,235,0.5)');
    expect(weightColor(-0.5, 0.5)).toBe('rgba(220,38,38,1)');
    expect(weightColor(-2, 0.5)).toBe('rgba(220,38,38,1)');
    expect(weightColor(0, 0.5)).toBe('rgba(37,99,235,0)');
    expect(weightColor(NaN, 0.5)).toBeNull();
  });
});

describe('contributionRows', () => {
  it('sorts symbols by contribution, largest first, with bar widths relative to the largest |contribution|', () => {
    const frame = {
      columns: ['symbol', 'pnl', 'contribution', 'fees', 'borrow_cost', 'trades'],
      data: [
        ['AAA', 'BBB', 'CCC'],
        [100, -400, 50],
        [0.01, -0.04, 0.005],
        [1, 2, 3],
        [0, 5, 0],
        [2, 1, null],
      ],
    };
    const rows = contributionRows(frame);
    expect(rows.map((r) => [r.symbol, r.contribution, r.width, r.trades])).toEqual([
      ['AAA', 0.01, 0.25, 2],
      ['CCC', 0.005, 0.125, null],
      ['BBB', -0.04, 1, 1],
    ]);
    expect(rows[2].borrow).toBe(5);
  });
});

describe('axisTicks', () => {
  it('spreads labels over the columns, first and last included', () => {
    expect(axisTicks(101, 5)).toEqual([0, 25, 50, 75, 100]);
    expect(axisTicks(3, 5)).toEqual([0, 1, 2]);
    expect(axisTicks(1, 5)).toEqual([0]);
    expect(axisTicks(0, 5)).toEqual([]);
  });
});

/**
 * A portfolio run's charts, pure: the weights heat strip (symbols × time downsampled to the
 * pixels there are, a diverging colour scale: long blue, short red) and the contribution per
 * symbol (sorted bars). Inputs are `OutputFrame`s (`GET /api/runs/{id}/outputs/{node}/{port}`):
 * column-major, `data[i]` the values of `columns[i]`.
 */
import type { OutputFrame } from './types';

/** The weights downsampled for drawing: `values[row * cols + col]` (NaN: no bar / no value). */
export interface HeatGrid {
  symbols: string[]; // rows, top to bottom
  cols: number;
  values: Float64Array;
  /** The first and last time (ISO) each column covers. */
  from: string[];
  to: string[];
  /** Frame rows (as sent) merged into each column. */
  perCol: number;
  maxAbs: number; // the colour scale's end: |w| at full colour
}

/**
 * Merge the frame's rows (time) into at most `maxCols` columns, each the mean of its run of
 * rows (NaN skipped; NaN when the run has none). Runs are as even as possible: column `c`
 * covers rows `floor(c·n/cols)` … `floor((c+1)·n/cols) − 1`.
 */
export function heatGrid(frame: Pick<OutputFrame, 'index' | 'columns' | 'data'>, maxCols: number): HeatGrid {
  const n = frame.index.length;
  const cols = Math.max(0, Math.min(n, Math.floor(maxCols)));
  const rows = frame.columns.length;
  const values = new Float64Array(rows * cols).fill(NaN);
  const from: string[] = [];
  const to: string[] = [];
  for (let c = 0; c < cols; c++) {
    const lo = Math.floor((c * n) / cols);
    const hi = Math.floor(((c + 1) * n) / cols); // exclusive
    from.push(String(frame.index[lo]));
    to.push(String(frame.index[hi - 1]));
    for (let r = 0; r < rows; r++) {
      const col = frame.data[r] ?? [];
      let sum = 0;
      let k = 0;
      for (let i = lo; i < hi; i++) {
        const v = col[i];
        if (typeof v === 'number' && Number.isFinite(v)) {
          sum += v;
          k++;
        }
      }
      if (k) values[r * cols + c] = sum / k;
    }
  }
  let maxAbs = 0;
  for (const v of values) if (Number.isFinite(v)) maxAbs = Math.max(maxAbs, Math.abs(v));
  return { symbols: frame.columns.map(String), cols, values, from, to, perCol: cols ? n / cols : 0, maxAbs: niceMax(maxAbs) };
}

/** The scale's end: the largest |weight| rounded up to 1, 2 or 5 × a power of ten (1 for 0). */
export function niceMax(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (x <= m * p * (1 + 1e-12)) return m * p;
  return 10 * p;
}

export const LONG_RGB: [number, number, number] = [37, 99, 235]; // blue-600
export const SHORT_RGB: [number, number, number] = [220, 38, 38]; // red-600

/**
 * The colour of weight `w` on a scale ending at `maxAbs`: blue for longs, red for shorts, its
 * opacity |w| / maxAbs (clamped to 1; 0 is fully transparent, so the page's background shows
 * and the strip reads on light and dark themes); null for a missing value.
 */
export function weightColor(w: number, maxAbs: number): string | null {
  if (!Number.isFinite(w)) return null;
  const t = Math.min(1, Math.abs(w) / (maxAbs > 0 ? maxAbs : 1));
  const [r, g, b] = w < 0 ? SHORT_RGB : LONG_RGB;
  return `rgba(${r},${g},${b},${Math.round(t * 1000) / 1000})`;
}

/** A cell of the strip under a point, for the hover: null outside it or where it has no value. */
export function cellAt(grid: HeatGrid, x: number, y: number, width: number, rowHeight: number): { row: number; col: number } | null {
  if (x < 0 || y < 0 || x >= width || !grid.cols || rowHeight <= 0) return null;
  const col = Math.min(grid.cols - 1, Math.floor((x / width) * grid.cols));
  const row = Math.floor(y / rowHeight);
  if (row >= grid.symbols.length) return null;
  return { row, col };
}

/** One bar of the contribution chart. */
export interface ContributionRow {
  symbol: string;
  contribution: number; // pnl / starting cash
  pnl: number | null;
  fees: number | null;
  borrow: number | null;
  trades: number | null;
  width: number; // |contribution| as a share of the largest |contribution|, 0..1
}

/** The contribution frame (symbol, pnl, contribution, fees, borrow_cost, trades) as rows, largest contribution first. */
export function contributionRows(frame: Pick<OutputFrame, 'columns' | 'data'>): ContributionRow[] {
  const col = (name: string) => frame.data[frame.columns.indexOf(name)] ?? [];
  const symbols = col('symbol');
  const share = col('contribution');
  const pick = (values: unknown[], i: number) => (typeof values[i] === 'number' && Number.isFinite(values[i]) ? (values[i] as number) : null);
  const rows: ContributionRow[] = symbols.map((s, i) => ({
    symbol: String(s),
    contribution: pick(share, i) ?? 0,
    pnl: pick(col('pnl'), i),
    fees: pick(col('fees'), i),
    borrow: pick(col('borrow_cost'), i),
    trades: pick(col('trades'), i),
    width: 0,
  }));
  const top = Math.max(0, ...rows.map((r) => Math.abs(r.contribution)));
  for (const r of rows) r.width = top > 0 ? Math.abs(r.contribution) / top : 0;
  return rows.sort((a, b) => b.contribution - a.contribution || a.symbol.localeCompare(b.symbol));
}

/** At most `count` evenly spaced column positions for the time axis labels (first and last included). */
export function axisTicks(cols: number, count: number): number[] {
  if (cols <= 0 || count <= 0) return [];
  if (cols === 1 || count === 1) return [0];
  const k = Math.min(cols, count);
  return [...new Set(Array.from({ length: k }, (_, i) => Math.round((i * (cols - 1)) / (k - 1))))];
}

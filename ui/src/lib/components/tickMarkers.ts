/** A tick backtest's chart data (GET /api/runs/{id}/tick-chart) → lightweight-charts data: the
 * mid as one OHLC bar per bucket, position and inventory per bucket, a marker per fill. Pure.
 *
 * Times are whole UTC seconds (the API's buckets): lightweight-charts' time axis counts seconds
 * and labels no finer, and needs strictly increasing times, so a fill is drawn on the bucket it
 * falls in, at its own price; its exact time (ms) is in the tooltip. */
import type { TickChartData, TickFill } from '../types';
import { snap } from './tradeMarkers';

export const FILL_COLOURS = { buy: '#16a34a', sell: '#dc2626' } as const;

export interface MidBar {
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
}

export interface Point {
  time: number;
  value: number;
}

export interface FillMarker {
  time: number;
  position: 'atPriceBottom' | 'atPriceTop';
  price: number;
  shape: 'circle' | 'arrowUp' | 'arrowDown';
  color: string;
  size: number;
  id: string;
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The mid per bucket as OHLC bars (buckets without a mid are left out). */
export function midBars(d: TickChartData): MidBar[] {
  const out: MidBar[] = [];
  d.time.forEach((t, i) => {
    const [o, h, l, c] = [d.mid_open[i], d.mid_high[i], d.mid_low[i], d.mid_close[i]];
    if (finite(o) && finite(h) && finite(l) && finite(c)) out.push({ time: t, open: o, high: h, low: l, close: c });
  });
  return out;
}

/** One of the per-bucket series (`position_last`, `inventory_min`, ...) as points. */
export function points(d: TickChartData, key: 'position_last' | 'position_min' | 'position_max' | 'inventory_last' | 'inventory_min' | 'inventory_max'): Point[] {
  const values = d[key];
  const out: Point[] = [];
  d.time.forEach((t, i) => {
    const v = values[i];
    if (finite(v)) out.push({ time: t, value: v });
  });
  return out;
}

/**
 * One marker per fill, on the bucket it falls in (the last bucket starting at or before it), at
 * its price: a buy below the price in green, a sell above it in red; a maker fill (the order
 * rested and was hit) a circle, a taker fill (it crossed) an arrow. Fills before the first
 * bucket (none in practice: records start with the book) are left out.
 */
export function fillMarkers(fills: TickFill[], times: number[]): { markers: FillMarker[]; byTime: Map<number, TickFill[]> } {
  const markers: FillMarker[] = [];
  const byTime = new Map<number, TickFill[]>();
  fills.forEach((f, i) => {
    const at = snap(times, Math.floor(f.time_ms / 1000));
    if (at === null) return;
    const buy = f.side === 'buy';
    markers.push({
      time: at,
      position: buy ? 'atPriceBottom' : 'atPriceTop',
      price: f.price,
      shape: f.liquidity === 'maker' ? 'circle' : buy ? 'arrowUp' : 'arrowDown',
      color: buy ? FILL_COLOURS.buy : FILL_COLOURS.sell,
      size: f.liquidity === 'maker' ? 0.6 : 1,
      id: `f${i}`,
    });
    const list = byTime.get(at) ?? [];
    list.push(f);
    byTime.set(at, list);
  });
  markers.sort((a, b) => a.time - b.time);
  return { markers, byTime };
}

/** Counts of fills by side and liquidity, for the legend. */
export function fillCounts(fills: TickFill[]) {
  const c = { buy: 0, sell: 0, maker: 0, taker: 0 };
  for (const f of fills) {
    c[f.side === 'buy' ? 'buy' : 'sell']++;
    c[f.liquidity === 'maker' ? 'maker' : 'taker']++;
  }
  return c;
}

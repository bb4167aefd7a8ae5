/** Trades → price-chart markers (entry and exit, long and short) and what the tooltip says. Pure. */
import type { Trade } from '../types';
import { MARKET } from './chartTheme';

export interface TradeMark {
  kind: 'entry' | 'exit';
  side: 'long' | 'short';
  time: number; // UTC seconds of the candle the marker sits on
  ts: string; // the fill's bar
  price: number | null;
  pnl: number | null;
  ret: number | null;
  open: boolean; // an exit that is only a mark at the last close (position still open)
  n: number; // 1-based trade number in time order
}

export interface Marker {
  time: number;
  position: 'aboveBar' | 'belowBar';
  shape: 'arrowUp' | 'arrowDown' | 'circle' | 'square';
  color: string;
  text?: string;
  id: string;
}

/** Seconds since the epoch of an API timestamp ("2021-02-15 00:00:00+00:00" or ISO). */
export function toSeconds(ts: unknown): number | null {
  if (typeof ts !== 'string') return null;
  const t = Date.parse(ts.includes('T') ? ts : ts.replace(' ', 'T'));
  return Number.isFinite(t) ? Math.floor(t / 1000) : null;
}

/** The candle a time falls in: the last candle time ≤ t (times ascending), else null. */
export function snap(times: number[], t: number): number | null {
  let lo = 0;
  let hi = times.length - 1;
  if (hi < 0 || t < times[0]) return null;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (times[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return times[lo];
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * Markers for the first `limit` trades on candles at `times`: a long entry is a green arrow up
 * below the bar, a short entry an orange arrow down above it; the exit is a circle on the other
 * side, green for a winner and red for a loser (a square for a position still open at the end).
 */
export function tradeMarkers(trades: Trade[], times: number[], limit = 1000): { markers: Marker[]; marks: Map<number, TradeMark[]> } {
  const markers: Marker[] = [];
  const marks = new Map<number, TradeMark[]>();
  const add = (m: TradeMark) => {
    const list = marks.get(m.time) ?? [];
    list.push(m);
    marks.set(m.time, list);
  };
  trades.slice(0, limit).forEach((t, i) => {
    const side = t.side === 'short' ? 'short' : 'long';
    const pnl = num(t.pnl);
    const open = t.is_open === true;
    const entry = toSeconds(t.entry_ts);
    const exit = toSeconds(t.exit_ts);
    const at = entry === null ? null : snap(times, entry);
    if (at !== null) {
      markers.push({
        time: at,
        position: side === 'long' ? 'belowBar' : 'aboveBar',
        shape: side === 'long' ? 'arrowUp' : 'arrowDown',
        color: side === 'long' ? MARKET.long : MARKET.short,
        text: side === 'long' ? 'L' : 'S',
        id: `e${i}`,
      });
      add({ kind: 'entry', side, time: at, ts: String(t.entry_ts), price: num(t.entry_price), pnl, ret: num(t.return), open, n: i + 1 });
    }
    const out = exit === null ? null : snap(times, exit);
    if (out !== null) {
      markers.push({
        time: out,
        position: side === 'long' ? 'aboveBar' : 'belowBar',
        shape: open ? 'square' : 'circle',
        color: pnl !== null && pnl < 0 ? MARKET.loss : MARKET.win,
        id: `x${i}`,
      });
      add({ kind: 'exit', side, time: out, ts: String(t.exit_ts), price: num(t.exit_price), pnl, ret: num(t.return), open, n: i + 1 });
    }
  });
  markers.sort((a, b) => a.time - b.time);
  return { markers, marks };
}

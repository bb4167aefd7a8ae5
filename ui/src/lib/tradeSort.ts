/** Sorting of the trades table: numbers as numbers, times as times, text as text. Pure. */
import type { Trade } from './types';

export type SortDir = 'asc' | 'desc';

const ISO = /^\d{4}-\d\d-\d\d([ T]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:?\d\d)?$/;

/** A cell as a sortable value: a number (numbers, booleans, parseable times) or a string;
 * null for an empty cell (always sorted last). */
export function sortValue(key: string, v: unknown): number | string | null {
  if (v === null || v === undefined || v === '') return null;
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  const s = String(v);
  if (key.endsWith('_ts') || key === 'ts' || ISO.test(s)) {
    const t = Date.parse(s.includes(' ') && !s.includes('T') ? s.replace(' ', 'T') : s);
    if (Number.isFinite(t)) return t;
  }
  if (/^-?\d+(\.\d+)?(e[-+]?\d+)?$/i.test(s)) return Number(s);
  return s;
}

/** `trades` sorted by `key` (a stable sort: equal cells keep their time order); empty cells
 * go last in both directions. Returns a new array. */
export function sortTrades(trades: Trade[], key: string | null, dir: SortDir): Trade[] {
  if (!key) return trades;
  const sign = dir === 'asc' ? 1 : -1;
  const keyed = trades.map((t, i) => ({ t, i, v: sortValue(key, t[key]) }));
  keyed.sort((a, b) => {
    if (a.v === null || b.v === null) return a.v === b.v ? a.i - b.i : a.v === null ? 1 : -1;
    let c: number;
    if (typeof a.v === 'number' && typeof b.v === 'number') c = a.v - b.v;
    else if (typeof a.v === 'number') c = -1; // numbers before text in a mixed column
    else if (typeof b.v === 'number') c = 1;
    else c = a.v.localeCompare(b.v);
    return c !== 0 ? c * sign : a.i - b.i;
  });
  return keyed.map((k) => k.t);
}

/** The next sort state after a click on `key`'s header: a new column sorts ascending (numbers
 * such as PnL descending first is a common wish, but one rule is easier to predict), the same
 * column toggles. */
export function nextSort(current: { key: string | null; dir: SortDir }, key: string): { key: string; dir: SortDir } {
  if (current.key === key) return { key, dir: current.dir === 'asc' ? 'desc' : 'asc' };
  return { key, dir: 'asc' };
}

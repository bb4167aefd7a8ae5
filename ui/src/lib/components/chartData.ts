/** Equity points → lightweight-charts data (UTC seconds, strictly ascending). Pure. */
import type { EquityPoint } from '../types';

export interface XY {
  time: number;
  value: number;
}

export function toSeries(points: EquityPoint[], pick: (p: EquityPoint) => number | null | undefined, base = 1): XY[] {
  const out: XY[] = [];
  for (const p of points ?? []) {
    const t = Math.floor(Date.parse(p.ts) / 1000);
    const v = pick(p);
    if (!Number.isFinite(t) || typeof v !== 'number' || !Number.isFinite(v)) continue;
    if (out.length && out[out.length - 1].time >= t) {
      if (out[out.length - 1].time === t) out[out.length - 1].value = v / base; // same second: keep the last
      continue;
    }
    out.push({ time: t, value: v / base });
  }
  return out;
}

/** The first finite equity value (to normalise curves to 1.0 for comparison). */
export function firstEquity(points: EquityPoint[]): number {
  const p = (points ?? []).find((x) => typeof x.equity === 'number' && Number.isFinite(x.equity) && x.equity !== 0);
  return p ? p.equity : 1;
}

/**
 * Sweep page helpers: the heatmap's colour scale, progress and ETA wording, whether a source
 * declares a sweep, and the drawdown of the out-of-sample curve.
 */
import { fmtMetric } from './format';
import type { EquityPoint, OosPoint } from './types';

/** Whether `.af` source declares a `sweep` block (a line starting with `sweep`, not a comment). */
export function hasSweepBlock(source: string): boolean {
  return /^[ \t]*sweep\s+(grid|random|optuna)\b/m.test(source);
}

/** The heatmap colour of `value` in [min, max]: red (worst) → amber → green (best). With
 * `higherIsBetter` false the scale is reversed. Null: the neutral background. */
export function heatColor(value: number | null, min: number | null, max: number | null, higherIsBetter = true): string | null {
  if (value === null || min === null || max === null || !Number.isFinite(value)) return null;
  let t = max > min ? (value - min) / (max - min) : 1;
  if (!higherIsBetter) t = 1 - t;
  t = Math.min(1, Math.max(0, t));
  const hue = Math.round(t * 130); // 0 = red, 130 = green
  return `hsl(${hue} 70% 42%)`;
}

/** The colour scale of a heatmap: the 5th to the 95th percentile of its values, so one outlier
 * (a window that never trades) does not paint every other cell the same colour. `clippedLo` /
 * `clippedHi`: some values lie beyond that end (the legend says "≤" / "≥"). */
export interface HeatScale {
  lo: number;
  hi: number;
  clippedLo: boolean;
  clippedHi: boolean;
}

export function heatScale(values: (number | null | undefined)[], lower = 0.05, upper = 0.95): HeatScale | null {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const at = (q: number) => {
    const pos = q * (v.length - 1);
    const i = Math.floor(pos);
    return i + 1 < v.length ? v[i] + (v[i + 1] - v[i]) * (pos - i) : v[i];
  };
  // fewer than 20 values: every one counts (a percentile would clip a real extreme)
  const lo = v.length >= 20 ? at(lower) : v[0];
  const hi = v.length >= 20 ? at(upper) : v[v.length - 1];
  return { lo, hi, clippedLo: v[0] < lo, clippedHi: v[v.length - 1] > hi };
}

/** Text colour readable on `heatColor(value, min, max, higherIsBetter)`: dark on the light
 * middle of the scale (amber, yellow-green), white on the saturated ends. */
export function heatInk(value: number | null, min: number | null, max: number | null, higherIsBetter = true): string {
  if (value === null || min === null || max === null || !Number.isFinite(value)) return '';
  let t = max > min ? (value - min) / (max - min) : 1;
  if (!higherIsBetter) t = 1 - t;
  t = Math.min(1, Math.max(0, t));
  return t > 0.22 && t < 0.72 ? '#111827' : '#ffffff';
}

/** Which of `n` axis labels to print so they do not overlap: every one up to `fit`, else every
 * k-th (the first and the last always). */
export function tickEvery(n: number, fit: number): (i: number) => boolean {
  if (n <= fit || fit < 2) return () => true;
  const k = Math.ceil(n / fit);
  return (i) => i === n - 1 || (i % k === 0 && n - 1 - i >= k);
}

/** A heatmap axis value: exact for a param's values, 3 significant digits for a bin's middle. */
export function fmtTick(v: unknown, binned: boolean): string {
  if (binned && typeof v === 'number' && !Number.isInteger(v)) return `≈${Number(v.toPrecision(3))}`;
  return fmtValue(v);
}

/** Seconds as "42 s", "3 min 5 s", "1 h 2 min". */
export function fmtSeconds(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  if (s < 10) return `${Math.max(0, s).toFixed(1)} s`;
  const n = Math.round(s);
  if (n < 60) return `${n} s`;
  if (n < 3600) return `${Math.floor(n / 60)} min ${n % 60} s`;
  return `${Math.floor(n / 3600)} h ${Math.floor((n % 3600) / 60)} min`;
}

/** "7 / 12 trials (58%)" */
export function progressText(done: number, total: number): string {
  if (!total) return `${done} trials`;
  return `${done} / ${total} trials (${Math.floor((100 * done) / total)}%)`;
}

/** The out-of-sample curve as chart points, with its drawdown from the running peak. */
export function withDrawdown(points: OosPoint[]): EquityPoint[] {
  let peak = -Infinity;
  return points.map((p) => {
    peak = Math.max(peak, p.equity);
    return { ts: p.ts, equity: p.equity, drawdown: peak > 0 ? p.equity / peak - 1 : 0 };
  });
}

/** A swept value as shown on an axis or in a cell. */
export function fmtValue(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(4).replace(/\.?0+$/, '');
  if (v === null || v === undefined) return '—';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Whether a deflated Sharpe ratio is convincing (the issue's 0.95 line). */
export function dsrConvincing(dsr: number | null | undefined): boolean | null {
  if (dsr === null || dsr === undefined) return null;
  return dsr >= 0.95;
}

/** Where a run opened from a sweep's trial came from: "trial 5 (fold 2)" (folds counted from 1,
 * as the sweep page counts them). */
export function trialOrigin(origin: { trial: number; fold?: number | null }): string {
  return `trial ${origin.trial}${origin.fold === null || origin.fold === undefined ? '' : ` (fold ${origin.fold + 1})`}`;
}

/** The metric a sweep's objective names: "maximize result.sharpe" → "sharpe". */
export function objectiveMetric(objective: string | null | undefined): string {
  const last = (objective ?? '').trim().split(/\s+/).pop() ?? '';
  return last.slice(last.lastIndexOf('.') + 1);
}

/** An objective value as its metric is shown everywhere else (a return in %, a Sharpe ratio
 * with two decimals), so the objective column and the metric's own column read alike. */
export function fmtObjective(objective: string | null | undefined, v: number | null | undefined): string {
  return fmtMetric(objectiveMetric(objective), v);
}

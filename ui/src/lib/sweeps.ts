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

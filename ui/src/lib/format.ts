/** Display formatting for numbers, metrics, dates and durations. Pure. */

const PERCENT_METRICS = new Set([
  'total_return',
  'cagr',
  'volatility',
  'max_drawdown',
  'win_rate',
  'exposure',
  'avg_trade_return',
  'return',
  'drawdown',
]);
const INT_METRICS = new Set(['num_trades', 'bars', 'bars_held']);
const MONEY_METRICS = new Set(['final_equity', 'total_fees', 'pnl', 'fees']);

/** The metrics shown first, in this order; others follow alphabetically. */
export const METRIC_ORDER = [
  'total_return',
  'sharpe',
  'max_drawdown',
  'num_trades',
  'cagr',
  'sortino',
  'calmar',
  'volatility',
  'win_rate',
  'profit_factor',
  'avg_trade_return',
  'exposure',
  'turnover',
  'total_fees',
  'final_equity',
];

const LABELS: Record<string, string> = {
  total_return: 'Total return',
  cagr: 'CAGR',
  sharpe: 'Sharpe',
  sortino: 'Sortino',
  max_drawdown: 'Max drawdown',
  calmar: 'Calmar',
  num_trades: 'Trades',
  win_rate: 'Win rate',
  profit_factor: 'Profit factor',
  avg_trade_return: 'Avg trade return',
  total_fees: 'Fees',
  final_equity: 'Final equity',
  ppy: 'Periods / year',
};

export function metricLabel(key: string): string {
  return LABELS[key] ?? key.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

export function fmtNumber(v: unknown, digits = 2): string {
  if (v === null || v === undefined || v === '') return '—';
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n)) return typeof v === 'string' ? v : String(n);
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtPct(v: unknown, digits = 2): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return fmtNumber(v, digits);
  return (v * 100).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) + '%';
}

/** A metric value as shown on a card or in a table. */
export function fmtMetric(key: string, v: unknown): string {
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(v)) return fmtTimestamp(v);
  if (typeof v !== 'number') return v === null || v === undefined ? '—' : String(v);
  if (PERCENT_METRICS.has(key)) return fmtPct(v);
  if (INT_METRICS.has(key)) return fmtNumber(v, 0);
  if (MONEY_METRICS.has(key)) return fmtNumber(v, 2);
  if (key === 'ppy' && Number.isInteger(v)) return fmtNumber(v, 0); // 252, not 252.00
  return fmtNumber(v, Math.abs(v) >= 1000 ? 0 : 2);
}

/** Metric keys in display order. */
export function orderMetrics(keys: string[]): string[] {
  const known = METRIC_ORDER.filter((k) => keys.includes(k));
  const rest = keys.filter((k) => !METRIC_ORDER.includes(k)).sort();
  return [...known, ...rest];
}

/** Sign of a metric's goodness: +1 higher is better, -1 lower is better, 0 neutral. */
export function metricDirection(key: string): number {
  if (['max_drawdown', 'volatility', 'total_fees', 'turnover'].includes(key)) return key === 'max_drawdown' ? 1 : -1;
  if (['num_trades', 'bars', 'ppy', 'start', 'end', 'exposure'].includes(key)) return 0;
  return 1;
}

export function fmtDateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toISOString().replace('T', ' ').slice(0, 19) + 'Z';
}

/** A timestamp from the data (ISO with `T` or a space): the date alone when it is midnight UTC. */
export function fmtTimestamp(v: string): string {
  const d = new Date(v.replace(' ', 'T'));
  if (Number.isNaN(d.getTime())) return v;
  const iso = d.toISOString();
  return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso.replace('T', ' ').slice(0, 19) + 'Z';
}

export function fmtDate(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().slice(0, 10);
}

/** `1h 02m`, `3.4s`, `120ms`. */
export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

export function runDuration(r: { started_at: string | null; finished_at: string | null }, now = Date.now()): string {
  if (!r.started_at) return '—';
  const end = r.finished_at ? Date.parse(r.finished_at) : now;
  return fmtDuration(end - Date.parse(r.started_at));
}

/** `just now`, `5 min ago`, `3 h ago`, `2 d ago`, else the date. */
export function relativeTime(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.round((now - t) / 1000);
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  if (s < 86400 * 14) return `${Math.round(s / 86400)} d ago`;
  return fmtDate(iso);
}

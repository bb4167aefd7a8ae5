/**
 * The Datasets page's pure logic over the catalog's shapes: the `dataset("name@short")`
 * reference, sizes, ranges and spacings as text, a version's row in the versions table, and
 * the validation report (`GET /api/datasets/{id}/versions/{v}` → `report`) made readable.
 * The report is a JSON object the catalog writes; every field is read defensively (an older or
 * newer catalog may leave one out).
 */
import type { Dataset, DatasetVersion, TickSummary } from './types';

/** What a dataset's version holds: OHLCV bars, or order-book events (ticks). */
export type DatasetKind = 'bars' | 'ticks';

/**
 * How a pipeline names this version of the dataset: `dataset("name@short")`, or for order-book
 * events `tick_data("name@short")`.
 */
export function datasetRef(name: string, short?: string | null, kind: DatasetKind = 'bars'): string {
  const node = kind === 'ticks' ? 'tick_data' : 'dataset';
  return short ? `${node}("${name}@${short}")` : `${node}("${name}")`;
}

/** 1536 → "1.5 KB" (powers of 1024, one decimal under 10). */
export function fmtBytes(n: number | null | undefined): string {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** A span in seconds as the largest whole-ish unit: 86400 → "1 d", 5400 → "1.5 h". */
export function fmtSpacing(seconds: number | null | undefined): string {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '—';
  const units: [number, string][] = [
    [86_400, 'd'],
    [3_600, 'h'],
    [60, 'min'],
    [1, 's'],
  ];
  for (const [size, unit] of units) {
    if (seconds >= size) {
      const v = seconds / size;
      return `${Number.isInteger(v) ? v : v.toFixed(1)} ${unit}`;
    }
  }
  return `${seconds} s`;
}

/** An ISO time as a date when it is midnight UTC, else to the minute (UTC). */
export function fmtWhen(ts: string | null | undefined): string {
  if (!ts) return '—';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts;
  const iso = d.toISOString();
  return iso.slice(11, 19) === '00:00:00' ? iso.slice(0, 10) : `${iso.slice(0, 16).replace('T', ' ')} UTC`;
}

/** "2020-01-02 → 2024-12-31" ("—" when the range is unknown). */
export function fmtRange(start: string | null | undefined, end: string | null | undefined): string {
  if (!start && !end) return '—';
  return `${fmtWhen(start)} → ${fmtWhen(end)}`;
}

/** The versions table's row of a version. */
export interface VersionRow {
  version: string;
  short: string;
  created: string;
  message: string;
  rows: number;
  symbols: number;
  symbolsLabel: string;
  range: string;
  size: string;
  latest: boolean;
  ref: string;
}

/** Rows of the versions table, in the API's order (newest first); `ref` is what to paste. */
export function versionRows(name: string, versions: DatasetVersion[]): VersionRow[] {
  return versions.map((v) => ({
    version: v.version,
    short: v.short,
    created: v.created_at,
    message: v.message,
    rows: v.rows,
    symbols: v.symbols.length,
    symbolsLabel: symbolsLabel(v.symbols.map((s) => s.symbol)),
    range: v.kind === 'ticks' ? fmtTickRange(v.start, v.end) : fmtRange(v.start, v.end),
    size: fmtBytes(v.bytes),
    latest: v.latest,
    ref: datasetRef(name, v.short, v.kind ?? 'bars'),
  }));
}

/** "AAPL" / "AAPL, MSFT, NVDA" / "AAPL, MSFT, NVDA +17" (at most `shown` names). */
export function symbolsLabel(symbols: string[], shown = 3): string {
  if (!symbols.length) return '—';
  const head = symbols.slice(0, shown).join(', ');
  return symbols.length > shown ? `${head} +${symbols.length - shown}` : head;
}

/** A dataset uploaded before the catalog: no versions; what to do about it. */
export function preCatalogNote(ds: Pick<Dataset, 'name' | 'version'>): string | null {
  if (ds.version) return null;
  return (
    `${ds.name} was uploaded before the catalog: it has no versions, and pipelines read it only with ` +
    `dataset_ohlcv(name="${ds.name}"). To use dataset("${ds.name}") (versioned, multi-symbol), upload its ` +
    'file again as a new dataset, or import it with `alphaforge data import PATH --name NAME`.'
  );
}

export interface ReportFile {
  file: string;
  rows: number | null;
  symbols: string[];
  start: string | null;
  end: string | null;
  sha256: string;
  bytes: number | null;
  notes: string[];
}

export interface ReportGap {
  symbol: string;
  median: number | null; // seconds between bars, typically
  largest: number | null; // the largest gap, seconds
  after: string | null; // the bar the largest gap follows
  over: number; // gaps over 3x the median spacing
  ratio: number | null; // largest / median
  worst: boolean; // among the worst: highlighted
}

export interface ReportSummary {
  files: ReportFile[];
  checks: string[];
  timezone: string | null;
  rows: number | null;
  symbols: number | null;
  columns: string[];
  gaps: ReportGap[]; // worst first
  gapSymbols: number; // symbols with at least one gap over 3x the median
  notes: string[]; // every file's notes, once each
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/**
 * The report as tables: files in import order, the checks that ran, and the gaps per symbol
 * worst first (by gaps over 3× the median spacing, then by largest gap ÷ median). The `worstN`
 * symbols that have any such gap are flagged `worst` (the page highlights them).
 */
export function summariseReport(report: Record<string, unknown> | null | undefined, worstN = 3): ReportSummary {
  const r = report ?? {};
  const files: ReportFile[] = (Array.isArray(r.files) ? r.files : []).map((f: Record<string, unknown>) => ({
    file: str(f?.file) ?? '?',
    rows: num(f?.rows),
    symbols: strs(f?.symbols),
    start: str(f?.start),
    end: str(f?.end),
    sha256: str(f?.sha256) ?? '',
    bytes: num(f?.bytes),
    notes: strs(f?.notes),
  }));
  const rawGaps = r.gaps && typeof r.gaps === 'object' && !Array.isArray(r.gaps) ? (r.gaps as Record<string, Record<string, unknown>>) : {};
  const gaps: ReportGap[] = Object.entries(rawGaps).map(([symbol, g]) => {
    const median = num(g?.median_spacing_s);
    const largest = num(g?.largest_gap_s);
    return {
      symbol,
      median,
      largest,
      after: str(g?.largest_gap_after),
      over: num(g?.gaps_over_3x_median) ?? 0,
      ratio: median && largest !== null ? largest / median : null,
      worst: false,
    };
  });
  gaps.sort((a, b) => b.over - a.over || (b.ratio ?? 0) - (a.ratio ?? 0) || a.symbol.localeCompare(b.symbol));
  let flagged = 0;
  for (const g of gaps) {
    if (flagged >= worstN || g.over === 0) break;
    g.worst = true;
    flagged++;
  }
  const notes = [...new Set(files.flatMap((f) => f.notes))];
  return {
    files,
    checks: strs(r.checks),
    timezone: str(r.timezone),
    rows: num(r.rows),
    symbols: num(r.symbols),
    columns: strs(r.columns),
    gaps,
    gapSymbols: gaps.filter((g) => g.over > 0).length,
    notes,
  };
}

/** A check's code as words: "HIGH_BELOW_LOW" → "high below low". */
export function checkLabel(code: string): string {
  return code.toLowerCase().replace(/_/g, ' ');
}

/** An ISO time to the millisecond, UTC ("2024-01-01 00:00:04.250 UTC"): ticks are finer than bars. */
export function fmtInstant(ts: string | null | undefined): string {
  if (!ts) return '—';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts;
  return `${d.toISOString().slice(0, 23).replace('T', ' ')} UTC`;
}

/** A price or size without float noise: 42000.5 → "42000.5", 0.1 + 0.2 → "0.3"; null → "—". */
export function fmtPrice(v: number | null | undefined): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '—';
  return String(Number(v.toPrecision(12)));
}

/** One symbol of a tick version as the page shows it. */
export interface TickRow {
  symbol: string;
  events: number;
  depth: number;
  trades: number;
  first: string;
  last: string;
  prices: string;
  sizes: string;
}

/** The per-symbol rows of a tick version's summary (none for a bar version). */
export function tickRows(summary: TickSummary | null | undefined): TickRow[] {
  return (summary?.symbols ?? []).map((s) => ({
    symbol: s.symbol,
    events: s.events,
    depth: s.depth,
    trades: s.trades,
    first: fmtInstant(s.start),
    last: fmtInstant(s.end),
    prices: s.px_min === null || s.px_max === null ? '—' : `${fmtPrice(s.px_min)} – ${fmtPrice(s.px_max)}`,
    sizes: `${fmtPrice(s.tick_size)} / ${fmtPrice(s.lot_size)}`,
  }));
}

/**
 * Where a tick version's events came from, in words: a file and its format
 * ("btcusdt.jsonl (binance-futures, snapshot)"), or the generator and its seed
 * ("synthetic_book, seed 7, 300 s of SYN").
 */
export function sourceLabel(src: Record<string, unknown>): string {
  if (typeof src.generator === 'string') {
    const p = (src.params && typeof src.params === 'object' ? src.params : {}) as Record<string, unknown>;
    const bits = [src.generator];
    if (typeof p.seed === 'number') bits.push(`seed ${p.seed}`);
    if (typeof p.duration_s === 'number') bits.push(`${p.duration_s} s${typeof p.symbol === 'string' ? ` of ${p.symbol}` : ''}`);
    return bits.join(', ');
  }
  const what = [src.format, src.role].filter((x): x is string => typeof x === 'string');
  const file = typeof src.file === 'string' ? src.file : '?';
  return what.length ? `${file} (${what.join(', ')})` : file;
}

/** A dataset's time range to the second, the end's date left out when it is the start's: ticks. */
export function fmtTickRange(start: string | null | undefined, end: string | null | undefined): string {
  if (!start || !end) return '—';
  const a = new Date(start).toISOString();
  const b = new Date(end).toISOString();
  const tail = a.slice(0, 10) === b.slice(0, 10) ? b.slice(11, 19) : b.slice(0, 19).replace('T', ' ');
  return `${a.slice(0, 19).replace('T', ' ')} → ${tail} UTC`;
}

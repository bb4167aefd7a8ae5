/**
 * The live dashboard's pure logic (issue 14; seed 001 §8–10): the config form generated from a
 * strategy's `CONFIG_SCHEMA` (a JSON Schema object) and read back into a config with the same
 * checks the API makes, the API's 422 sentences split by field (config fields, instance fields,
 * "line N" of a module), the runtime widgets `render()` returns (read defensively: they are the
 * strategy's output), a line chart's geometry, and the labels and tones of modes, statuses,
 * feeds and amounts. No DOM, no fetch.
 */
import { fmtTimestamp } from './format';
import type { Instance, LiveMode } from './types';

// -- the config form -----------------------------------------------------------------------

export type ConfigKind = 'integer' | 'number' | 'string' | 'boolean' | 'enum' | 'json';

export interface ConfigField {
  name: string;
  kind: ConfigKind;
  title: string;
  description: string;
  required: boolean;
  hasDefault: boolean;
  default: unknown;
  /** `enum` (any JSON values, as the schema lists them). */
  options: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
}

/** What the form holds per field: text (a checkbox: a boolean; an enum: the option's index). */
export type ConfigValues = Record<string, string | boolean>;

type Json = Record<string, unknown>;

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function kindOf(s: Json): ConfigKind {
  if (Array.isArray(s.enum)) return 'enum';
  if ('const' in s) return 'enum';
  const types = (Array.isArray(s.type) ? s.type : [s.type]).filter((t) => t !== 'null');
  const t = types.length === 1 ? types[0] : undefined;
  if (t === 'integer' || t === 'number' || t === 'string' || t === 'boolean') return t;
  // the seed's short names ("float", "int") are not JSON Schema, but say what is meant
  if (t === 'float') return 'number';
  if (t === 'int') return 'integer';
  return 'json';
}

/** The schema's top-level properties as form fields, in declaration order. */
export function configFields(schema: unknown): ConfigField[] {
  const root = (schema && typeof schema === 'object' ? schema : {}) as Json;
  const props = root.properties && typeof root.properties === 'object' ? (root.properties as Record<string, unknown>) : {};
  const required = new Set(Array.isArray(root.required) ? (root.required as string[]) : []);
  return Object.entries(props).map(([name, raw]) => {
    const s = (raw && typeof raw === 'object' ? raw : {}) as Json;
    const kind = kindOf(s);
    const field: ConfigField = {
      name,
      kind,
      title: typeof s.title === 'string' && s.title ? s.title : name,
      description: typeof s.description === 'string' ? s.description : '',
      required: required.has(name),
      hasDefault: 'default' in s,
      default: s.default,
      options: Array.isArray(s.enum) ? (s.enum as unknown[]) : 'const' in s ? [s.const] : [],
    };
    for (const k of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf', 'minLength', 'maxLength'] as const) {
      const v = num(s[k]);
      if (v !== undefined) field[k] = v;
    }
    if (typeof s.pattern === 'string') field.pattern = s.pattern;
    return field;
  });
}

/** A field's constraints in a few words: `integer · ≥ 1 · ≤ 500 · default 5`. */
export function fieldHint(f: ConfigField): string {
  const parts: string[] = [f.kind === 'enum' ? `one of ${f.options.map(show).join(', ')}` : f.kind === 'json' ? 'JSON' : f.kind];
  if (f.minimum !== undefined) parts.push(`≥ ${f.minimum}`);
  if (f.exclusiveMinimum !== undefined) parts.push(`> ${f.exclusiveMinimum}`);
  if (f.maximum !== undefined) parts.push(`≤ ${f.maximum}`);
  if (f.exclusiveMaximum !== undefined) parts.push(`< ${f.exclusiveMaximum}`);
  if (f.multipleOf !== undefined) parts.push(`multiple of ${f.multipleOf}`);
  if (f.minLength !== undefined) parts.push(`≥ ${f.minLength} characters`);
  if (f.maxLength !== undefined) parts.push(`≤ ${f.maxLength} characters`);
  if (f.pattern !== undefined) parts.push(`matches ${f.pattern}`);
  if (f.hasDefault) parts.push(`default ${show(f.default)}`);
  if (f.required) parts.push('required');
  return parts.join(' · ');
}

const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

/** The form's starting values: the config's value of each field, else its default, else empty. */
export function configValues(fields: ConfigField[], config: Record<string, unknown> | null | undefined): ConfigValues {
  const out: ConfigValues = {};
  for (const f of fields) {
    const has = config != null && Object.prototype.hasOwnProperty.call(config, f.name);
    const v = has ? config![f.name] : f.hasDefault ? f.default : undefined;
    out[f.name] = toText(f, v);
  }
  return out;
}

function toText(f: ConfigField, v: unknown): string | boolean {
  if (f.kind === 'boolean') return v === true;
  if (v === undefined || v === null) return '';
  if (f.kind === 'enum') {
    const i = f.options.findIndex((o) => JSON.stringify(o) === JSON.stringify(v));
    return i >= 0 ? String(i) : '';
  }
  if (f.kind === 'json') return JSON.stringify(v);
  return String(v);
}

/** One field's value, or why the schema refuses it (`undefined` value: left out). */
export function readField(f: ConfigField, raw: string | boolean | undefined): { value?: unknown; error?: string } {
  if (f.kind === 'boolean') return { value: raw === true };
  const text = typeof raw === 'string' ? raw : '';
  if (f.kind === 'enum') {
    if (text === '') return f.required && !f.hasDefault ? { error: 'required' } : {};
    const i = Number(text);
    return Number.isInteger(i) && i >= 0 && i < f.options.length ? { value: f.options[i] } : { error: `one of ${f.options.map(show).join(', ')}` };
  }
  if (f.kind === 'string') {
    if (text === '' && !f.required) return {};
    if (f.minLength !== undefined && [...text].length < f.minLength) return { error: `at least ${f.minLength} character${f.minLength === 1 ? '' : 's'}` };
    if (f.maxLength !== undefined && [...text].length > f.maxLength) return { error: `at most ${f.maxLength} character${f.maxLength === 1 ? '' : 's'}` };
    if (f.pattern !== undefined) {
      let re: RegExp | null = null;
      try {
        re = new RegExp(f.pattern, 'u');
      } catch {
        re = null; // a pattern the browser cannot read: the API judges it
      }
      if (re && !re.test(text)) return { error: `must match ${f.pattern}` };
    }
    return { value: text };
  }
  if (text.trim() === '') return f.required && !f.hasDefault ? { error: 'required' } : {};
  if (f.kind === 'json') {
    try {
      return { value: JSON.parse(text) };
    } catch {
      return { error: 'not valid JSON' };
    }
  }
  const n = Number(text.trim());
  if (!Number.isFinite(n)) return { error: 'a number is required' };
  if (f.kind === 'integer' && !Number.isInteger(n)) return { error: 'an integer is required' };
  if (f.minimum !== undefined && n < f.minimum) return { error: `must be ≥ ${f.minimum}` };
  if (f.exclusiveMinimum !== undefined && n <= f.exclusiveMinimum) return { error: `must be > ${f.exclusiveMinimum}` };
  if (f.maximum !== undefined && n > f.maximum) return { error: `must be ≤ ${f.maximum}` };
  if (f.exclusiveMaximum !== undefined && n >= f.exclusiveMaximum) return { error: `must be < ${f.exclusiveMaximum}` };
  if (f.multipleOf !== undefined && f.multipleOf > 0 && Math.abs(n / f.multipleOf - Math.round(n / f.multipleOf)) > 1e-9)
    return { error: `must be a multiple of ${f.multipleOf}` };
  return { value: n };
}

/**
 * The config the form holds, and the errors (by field) that keep it from being sent. A field
 * left empty is left out: the API fills in the schema's default. `unreadable`: number inputs
 * whose text the browser could not read (`validity.badInput`).
 */
export function readConfig(
  fields: ConfigField[],
  values: ConfigValues,
  unreadable: Record<string, boolean> = {},
): { config: Record<string, unknown>; errors: Record<string, string> } {
  const config: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const f of fields) {
    if (unreadable[f.name] && (f.kind === 'integer' || f.kind === 'number')) {
      errors[f.name] = 'a number is required';
      continue;
    }
    const { value, error } = readField(f, values[f.name]);
    if (error !== undefined) errors[f.name] = error;
    else if (value !== undefined) config[f.name] = value;
  }
  return { config, errors };
}

/** The same config? (key order aside) */
export function sameConfig(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const canon = (o: Record<string, unknown>) => JSON.stringify(Object.keys(o).sort().map((k) => [k, o[k]]));
  return canon(a) === canon(b);
}

// -- the API's 422 sentences ----------------------------------------------------------------

/** A 422 of the live routes split up: `fields` by name (`config` problems by config field),
 * `general` what names no field the form shows. */
export interface LiveErrors {
  fields: Record<string, string>;
  config: Record<string, string>;
  general: string[];
}

/**
 * The API says `field: message` (api/services/live.py); a config is `config: <path>: <problem>`
 * for each problem, `; `-joined (live/strategies.py). `known`: the config fields the form has.
 */
export function liveErrors(detail: unknown, known: string[] = []): LiveErrors {
  const out: LiveErrors = { fields: {}, config: {}, general: [] };
  if (Array.isArray(detail)) {
    // FastAPI's own validation: [{loc: ['body', 'market'], msg}]
    for (const e of detail as { loc?: unknown[]; msg?: string }[]) {
      const loc = (e.loc ?? []).filter((p) => p !== 'body').map(String);
      if (loc[0] === 'config' && loc[1] && known.includes(loc[1])) out.config[loc[1]] = e.msg ?? 'invalid';
      else if (loc.length) out.fields[loc.join('.')] = e.msg ?? 'invalid';
      else out.general.push(e.msg ?? 'invalid');
    }
    return out;
  }
  const text = typeof detail === 'string' ? detail : detail == null ? '' : JSON.stringify(detail);
  const m = /^([a-z_][a-z_.]*): ([\s\S]*)$/.exec(text);
  if (!m) {
    if (text) out.general.push(text);
    return out;
  }
  const [, field, rest] = m;
  if (field !== 'config') {
    out.fields[field] = rest;
    return out;
  }
  for (const problem of rest.split('; ')) {
    const p = /^([^:\s]+): ([\s\S]*)$/.exec(problem);
    const top = p ? p[1].split('/')[0] : '';
    if (p && known.includes(top)) out.config[top] = out.config[top] ? `${out.config[top]}; ${p[2]}` : p[2];
    else out.general.push(`config: ${problem}`);
  }
  return out;
}

/** A module the API refused at a line (`code: line N: message`), or null. */
export function codeError(detail: unknown): { line: number; message: string } | null {
  if (typeof detail !== 'string') return null;
  const m = /^code: line (\d+): ([\s\S]*)$/.exec(detail);
  return m ? { line: Number(m[1]), message: m[2] } : null;
}

/** Strategy names: what the API accepts (live/instances.py `_NAME`). */
export const STRATEGY_NAME = /^[a-z][a-z0-9_]{0,63}$/;
export const STRATEGY_NAME_RULE = '1 to 64 lower-case letters, digits or _, starting with a letter';
/** Account and market labels (live/instances.py `_LABEL`). */
export const LABEL = /^[A-Za-z0-9_.\/:-]{1,64}$/;
export const LABEL_RULE = '1 to 64 letters, digits or _ . / : -';

// -- widgets --------------------------------------------------------------------------------

export type Cell = string | number | boolean | null;
export type Widget =
  | { type: 'metric'; label: string; value: Cell }
  | { type: 'line_chart'; label: string; points: [number | string, number][] }
  | { type: 'table'; label?: string; columns: string[]; rows: Cell[][] }
  | { type: 'log'; label?: string; lines: string[] }
  | { type: 'unknown'; label: string; problem: string };

const cell = (v: unknown): Cell =>
  v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v)) ? v : v === undefined ? null : String(v);
const label = (v: unknown, fallback: string): string => (typeof v === 'string' ? v : fallback);

/** `render()`'s widgets as the dashboard draws them; anything else becomes an `unknown` widget
 * that says what is wrong (the host checks them, but the page never trusts its input). */
export function readWidgets(raw: unknown): Widget[] {
  if (!Array.isArray(raw)) return [];
  return raw.map((w, i): Widget => {
    if (!w || typeof w !== 'object') return { type: 'unknown', label: `widget ${i + 1}`, problem: 'not an object' };
    const o = w as Record<string, unknown>;
    switch (o.type) {
      case 'metric':
        return { type: 'metric', label: label(o.label, ''), value: cell(o.value) };
      case 'line_chart': {
        const points = (Array.isArray(o.points) ? o.points : []).filter(
          (p): p is [number | string, number] =>
            Array.isArray(p) && p.length === 2 && (typeof p[0] === 'string' || (typeof p[0] === 'number' && Number.isFinite(p[0]))) && typeof p[1] === 'number' && Number.isFinite(p[1]),
        );
        return { type: 'line_chart', label: label(o.label, ''), points };
      }
      case 'table': {
        const columns = (Array.isArray(o.columns) ? o.columns : []).map((c) => String(c));
        const rows = (Array.isArray(o.rows) ? o.rows : []).map((r) => (Array.isArray(r) ? r.map(cell) : [cell(r)]));
        return { type: 'table', label: typeof o.label === 'string' ? o.label : undefined, columns, rows };
      }
      case 'log':
        return { type: 'log', label: typeof o.label === 'string' ? o.label : undefined, lines: (Array.isArray(o.lines) ? o.lines : []).map((l) => String(l)) };
      default:
        return { type: 'unknown', label: label(o.label, `widget ${i + 1}`), problem: `unknown widget type ${JSON.stringify(o.type ?? null)}` };
    }
  });
}

/** A cell or metric as shown: numbers with a few decimals, ISO times short (the date alone at
 * midnight UTC), other text as is. */
export function fmtCell(v: Cell): string {
  if (v === null) return '—';
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(v)) return fmtTimestamp(v);
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return v.toLocaleString('en-US');
    const abs = Math.abs(v);
    const digits = abs >= 1000 ? 2 : abs >= 1 ? 4 : 6;
    return v.toLocaleString('en-US', { maximumFractionDigits: digits });
  }
  return String(v);
}

export interface ChartGeometry {
  /** SVG path of the line (`M x y L …`), empty with fewer than one point. */
  line: string;
  /** The same, closed down to the bottom: the area under it. */
  area: string;
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
  /** x values are times (epoch ms). */
  time: boolean;
  /** Each point on screen, with its data (for hover). */
  dots: { sx: number; sy: number; x: number | string; y: number }[];
}

/**
 * Where a line chart's points go in a `width` × `height` box (inset by `pad`): x numbers as
 * they are, x texts as times (a text that is not a time: the point's position in the list);
 * y from the lowest to the highest point (a flat line sits in the middle).
 */
export function chartGeometry(
  points: [number | string, number][],
  width: number,
  height: number,
  pad = { top: 8, right: 8, bottom: 8, left: 8 },
): ChartGeometry {
  const time = points.length > 0 && points.every((p) => typeof p[0] === 'string' && !Number.isNaN(Date.parse(p[0])));
  const xs = points.map((p, i) => (typeof p[0] === 'number' ? p[0] : time ? Date.parse(p[0]) : i));
  const ys = points.map((p) => p[1]);
  const empty: ChartGeometry = { line: '', area: '', xMin: 0, xMax: 0, yMin: 0, yMax: 0, time, dots: [] };
  if (!points.length) return empty;
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  let yMin = Math.min(...ys);
  let yMax = Math.max(...ys);
  if (yMin === yMax) {
    const d = Math.abs(yMin) > 0 ? Math.abs(yMin) * 0.01 : 1;
    yMin -= d;
    yMax += d;
  }
  const w = Math.max(1, width - pad.left - pad.right);
  const h = Math.max(1, height - pad.top - pad.bottom);
  const sx = (x: number) => pad.left + (xMax === xMin ? w / 2 : ((x - xMin) / (xMax - xMin)) * w);
  const sy = (y: number) => pad.top + h - ((y - yMin) / (yMax - yMin)) * h;
  const dots = points.map((p, i) => ({ sx: round(sx(xs[i])), sy: round(sy(p[1])), x: p[0], y: p[1] }));
  const line = dots.map((d, i) => `${i ? 'L' : 'M'}${d.sx} ${d.sy}`).join(' ');
  const bottom = round(pad.top + h);
  const area = `${line} L${dots[dots.length - 1].sx} ${bottom} L${dots[0].sx} ${bottom} Z`;
  return { line, area, xMin, xMax, yMin: Math.min(...ys), yMax: Math.max(...ys), time, dots };
}

const round = (v: number) => Math.round(v * 10) / 10;

/** The dot nearest to screen x `sx` (hover), or null. */
export function nearestDot<T extends { sx: number }>(dots: T[], sx: number): T | null {
  let best: T | null = null;
  for (const d of dots) if (!best || Math.abs(d.sx - sx) < Math.abs(best.sx - sx)) best = d;
  return best;
}

// -- labels and tones -----------------------------------------------------------------------

export const MODES: { id: LiveMode; label: string; hint: string }[] = [
  { id: 'off', label: 'Off', hint: 'not loaded: no ticks, no orders' },
  { id: 'observe', label: 'Observe', hint: 'loaded and thinking on every bar; orders are recorded, never placed' },
  { id: 'active', label: 'Active', hint: 'loaded and trading: orders go to the paper venue' },
];

export const ACTIVE_WARNING = 'Orders will be placed on the paper venue.';

export function modeBadge(mode: string): string {
  return ({ off: 'badge-ghost', observe: 'badge-info', active: 'badge-warning' } as Record<string, string>)[mode] ?? 'badge-ghost';
}

export function statusBadge(status: string): string {
  return (
    (
      {
        loading: 'badge-info',
        running: 'badge-success',
        crashed: 'badge-error',
        stopped: 'badge-ghost',
        ended: 'badge-neutral',
        deleted: 'badge-ghost',
      } as Record<string, string>
    )[status] ?? 'badge-ghost'
  );
}

/** The event kinds an instance records (live/engine.py), for the filter. */
export const EVENT_KINDS = ['log', 'intent', 'order', 'fill', 'rejected', 'refused', 'error', 'crash', 'status', 'mode'] as const;

export function eventTone(kind: string): string {
  return (
    (
      {
        error: 'text-error',
        crash: 'text-error',
        rejected: 'text-warning',
        refused: 'text-warning',
        fill: 'text-success',
        order: 'text-info',
      } as Record<string, string>
    )[kind] ?? ''
  );
}

/** Green up, red down, plain at zero. */
export function pnlTone(v: number | null | undefined): string {
  if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) < 1e-9) return '';
  return v > 0 ? 'text-success' : 'text-error';
}

/** `+1,234.56` / `-12.00` / `0.00`. */
export function fmtPnl(v: number | null | undefined): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '—';
  const s = Math.abs(v).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return Math.abs(v) < 0.005 ? '0.00' : `${v > 0 ? '+' : '-'}${s}`;
}

/** The feed kinds that read Binance's public klines, with their market's rules
 *  (live/sources/binance_markets.py: intervals, symbol shape). */
export const BINANCE_FEEDS = {
  binance: {
    title: 'Binance spot',
    intervals: ['1s', '1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h', '1d', '3d', '1w'],
    symbol: /^[A-Z0-9]{2,30}$/,
    example: 'BTCUSDT',
  },
  binance_futures: {
    title: 'Binance USD-M futures',
    intervals: ['1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h', '1d', '3d', '1w'],
    symbol: /^[A-Z0-9]{2,30}(_[0-9]{6})?$/,
    example: 'BTCUSDT or BTCUSDT_261225',
  },
} as const;
export type BinanceFeedKind = keyof typeof BINANCE_FEEDS;

/** What is wrong with a Binance feed's market symbol and interval (as the API says it), by the
 *  API's field names; empty when nothing is. */
export function binanceFeedProblems(kind: BinanceFeedKind, market: string, interval: string): Record<string, string> {
  const m = BINANCE_FEEDS[kind];
  const out: Record<string, string> = {};
  const symbol = market.trim().toUpperCase();
  if (!m.symbol.test(symbol)) out.market = `not a ${m.title} symbol: letters and digits without a separator (${m.example})`;
  const iv = interval.trim();
  if (!(m.intervals as readonly string[]).includes(iv))
    out['feed.interval'] = iv === '1s' ? '1s klines exist on spot only' : `one of ${m.intervals.join(', ')}`;
  return out;
}

/** Where an instance's bars come from, in a few words. */
export function feedSummary(feed: Record<string, unknown>): string {
  const kind = String(feed.kind ?? '?');
  const interval = feed.interval ? String(feed.interval) : '';
  if (kind === 'replay') {
    const src = feed.dataset ? `dataset ${String(feed.dataset)}` : feed.path ? String(feed.path) : '?';
    const speed = typeof feed.speed === 'number' && feed.speed > 0 ? `×${feed.speed}` : 'as fast as taken';
    const warm = typeof feed.warmup === 'number' ? `warm-up ${feed.warmup}` : '';
    return ['replay', src, interval, speed, warm].filter(Boolean).join(' · ');
  }
  if (kind === 'binance' || kind === 'binance_futures') {
    const warm = typeof feed.warmup === 'number' ? `warm-up ${feed.warmup}` : '';
    return [BINANCE_FEEDS[kind].title, interval, warm].filter(Boolean).join(' · ');
  }
  return kind;
}

/** `N s ago` (rendered widgets), `N min ago` past a minute; '' without a time. */
export function secondsAgo(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

/** The instance's strategy as a label: `sma_cross v2` (`(latest v3)` when behind). */
export function strategyLabel(i: Pick<Instance, 'strategy' | 'strategy_version' | 'latest_version'>): string {
  return `${i.strategy} v${i.strategy_version}`;
}

// -- stream pipelines ------------------------------------------------------------------------

/** One sink of a stream pipeline as its worker last reported it (docs/stream.md). */
export interface SinkHealth {
  name: string;
  kind: string;
  target: string;
  delivered: number;
  pending: number;
  failures: number;
  duplicates: number;
  deadLetters: number;
  lastOk: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
  /** ok (delivering), failing (its last attempt failed), backlog (events waiting) */
  health: 'ok' | 'failing' | 'backlog' | 'idle';
}

const count = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const textOr = (v: unknown): string | null => (v === null || v === undefined || v === '' ? null : String(v));

/** The `sinks` of `GET /api/streams`, by name, with a verdict each: failing when the last
 * error came after the last success (or nothing ever succeeded), backlog when events wait. */
export function sinkHealth(sinks: Record<string, Record<string, unknown>> | null | undefined): SinkHealth[] {
  return Object.entries(sinks ?? {}).map(([name, s]) => {
    const lastOk = textOr(s.last_ok);
    const lastError = textOr(s.last_error);
    const lastErrorAt = textOr(s.last_error_at);
    const pending = count(s.pending);
    const failing = lastError !== null && (lastOk === null || (lastErrorAt !== null && Date.parse(lastErrorAt) > Date.parse(lastOk)));
    return {
      name,
      kind: String(s.kind ?? '?'),
      target: String(s.target ?? ''),
      delivered: count(s.delivered),
      pending,
      failures: count(s.failures),
      duplicates: count(s.duplicates),
      deadLetters: count(s.dead_letters),
      lastOk,
      lastError,
      lastErrorAt,
      health: failing ? 'failing' : pending > 0 ? 'backlog' : count(s.delivered) > 0 ? 'ok' : 'idle',
    };
  });
}

export function streamStateBadge(state: string, reporting: boolean): string {
  if (!reporting) return 'badge-warning';
  return (
    (
      {
        running: 'badge-success',
        'warming up': 'badge-info',
        warming: 'badge-info',
        starting: 'badge-info',
        ended: 'badge-neutral',
        stopped: 'badge-ghost',
        failed: 'badge-error',
      } as Record<string, string>
    )[state] ?? 'badge-ghost'
  );
}

/** A stream event (`StreamEvent.to_json`) in a row: when, symbol, where (node.port[column]), value. */
export function streamEventRow(e: Record<string, unknown>): { ts: string; symbol: string; where: string; value: string } {
  const where = [e.node, e.column ?? e.port].filter((x) => x !== null && x !== undefined && x !== '').join('.');
  const v = e.value;
  const value = typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean' || v === null ? fmtCell(v as Cell) : JSON.stringify(v);
  return { ts: String(e.ts ?? ''), symbol: String(e.symbol ?? ''), where, value };
}

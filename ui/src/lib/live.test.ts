import { describe, expect, it } from 'vitest';
import {
  chartGeometry,
  codeError,
  configFields,
  configValues,
  binanceFeedProblems,
  feedSummary,
  fieldHint,
  fmtCell,
  fmtPnl,
  liveErrors,
  nearestDot,
  pnlTone,
  readConfig,
  readWidgets,
  sameConfig,
  secondsAgo,
  sinkHealth,
  streamEventRow,
  streamStateBadge,
} from './live';

const SCHEMA = {
  type: 'object',
  properties: {
    fast: { type: 'integer', minimum: 1, maximum: 200, default: 5, title: 'Fast window', description: 'bars' },
    qty: { type: 'number', exclusiveMinimum: 0, default: 10 },
    note: { type: 'string', maxLength: 5, pattern: '^[a-z]*$' },
    side: { enum: ['long', 'short', 1] , default: 'long' },
    hedge: { type: 'boolean', default: false },
    levels: { type: 'array', items: { type: 'number' } },
    risk: { type: 'float', default: 0.01 },
  },
  required: ['fast', 'qty', 'levels'],
  additionalProperties: false,
};

describe('configFields', () => {
  it('makes one field per property, of its kind, with its constraints and default', () => {
    const f = configFields(SCHEMA);
    expect(f.map((x) => [x.name, x.kind])).toEqual([
      ['fast', 'integer'],
      ['qty', 'number'],
      ['note', 'string'],
      ['side', 'enum'],
      ['hedge', 'boolean'],
      ['levels', 'json'],
      ['risk', 'number'], // the seed's "float"
    ]);
    expect(f[0]).toMatchObject({ title: 'Fast window', description: 'bars', required: true, minimum: 1, maximum: 200, default: 5 });
    expect(f[3].options).toEqual(['long', 'short', 1]);
    expect(fieldHint(f[0])).toBe('integer · ≥ 1 · ≤ 200 · default 5 · required');
    expect(fieldHint(f[1])).toBe('number · > 0 · default 10 · required');
    expect(fieldHint(f[3])).toBe('one of long, short, 1 · default long');
  });
  it('reads no fields from what is not a schema object', () => {
    expect(configFields(null)).toEqual([]);
    expect(configFields({ type: 'object' })).toEqual([]);
    expect(configFields('nope')).toEqual([]);
  });
});

describe('configValues and readConfig', () => {
  const fields = configFields(SCHEMA);
  it('start from the config, else the defaults, and read back to the same config', () => {
    const config = { fast: 7, qty: 2.5, side: 1, hedge: true, levels: [1, 2], risk: 0.01 };
    const values = configValues(fields, config);
    expect(values).toMatchObject({ fast: '7', qty: '2.5', note: '', side: '2', hedge: true, levels: '[1,2]' });
    const { config: back, errors } = readConfig(fields, values);
    expect(errors).toEqual({});
    expect(back).toEqual(config); // the empty optional note is left out
    expect(sameConfig(back, { ...config })).toBe(true);
    expect(sameConfig(back, { ...config, fast: 8 })).toBe(false);
  });
  it('fills defaults into a new form', () => {
    expect(configValues(fields, {})).toMatchObject({ fast: '5', qty: '10', side: '0', hedge: false, levels: '' });
  });
  it('mirrors the schema: types, bounds, lengths, patterns, required', () => {
    const values = configValues(fields, { levels: [] });
    const bad = (name: string, text: string | boolean) => readConfig(fields, { ...values, [name]: text }).errors[name];
    expect(bad('fast', '0')).toBe('must be ≥ 1');
    expect(bad('fast', '201')).toBe('must be ≤ 200');
    expect(bad('fast', '2.5')).toBe('an integer is required');
    expect(bad('fast', 'x')).toBe('a number is required');
    expect(bad('qty', '0')).toBe('must be > 0');
    expect(bad('note', 'abcdef')).toBe('at most 5 characters');
    expect(bad('note', 'AB')).toBe('must match ^[a-z]*$');
    expect(bad('levels', '[1,')).toBe('not valid JSON');
    expect(bad('levels', '')).toBe('required');
    expect(bad('fast', '')).toBeUndefined(); // left out: the API fills in the default
    expect(readConfig(fields, { ...values, fast: '' }).config).not.toHaveProperty('fast');
    expect(readConfig(fields, values, { qty: true }).errors.qty).toBe('a number is required');
  });
});

describe("the API's 422 sentences", () => {
  const known = ['fast', 'slow', 'note'];
  it('split a config refusal by field; what names no field is general', () => {
    const e = liveErrors("config: fast: 0 is less than the minimum of 1; note: 'xxxxxxxxxx' is too long; config: Additional properties are not allowed ('colour' was unexpected)", known);
    expect(e.config).toEqual({ fast: '0 is less than the minimum of 1', note: "'xxxxxxxxxx' is too long" });
    expect(e.general).toEqual(["config: config: Additional properties are not allowed ('colour' was unexpected)"]);
  });
  it('name the instance field (market, feed.path …)', () => {
    expect(liveErrors("feed.path: a replay path is relative to the engine's data folder, without '..'").fields).toEqual({
      'feed.path': "a replay path is relative to the engine's data folder, without '..'",
    });
    expect(liveErrors('market: 1 to 64 letters, digits or _ . / : -').fields.market).toMatch(/^1 to 64/);
    expect(liveErrors('something else entirely').general).toEqual(['something else entirely']);
    expect(liveErrors([{ loc: ['body', 'market'], msg: 'Field required' }]).fields).toEqual({ market: 'Field required' });
  });
  it('find the line of a refused module', () => {
    expect(codeError('code: line 2: syntax error: expected ":"')).toEqual({ line: 2, message: 'syntax error: expected ":"' });
    expect(codeError('code: no strategy class')).toBeNull();
    expect(codeError({ detail: 'x' })).toBeNull();
  });
});

describe('widgets', () => {
  it('read the four kinds and say what is wrong with anything else', () => {
    const w = readWidgets([
      { type: 'metric', label: 'PnL', value: 12.5 },
      { type: 'line_chart', label: 'closes', points: [['2021-01-04', 100], [1, 'x'], ['2021-01-05', 101]] },
      { type: 'table', columns: ['a', 'b'], rows: [[1, 'x'], [true, null]] },
      { type: 'log', lines: ['one', 2] },
      { type: 'pie', label: 'share' },
      'junk',
    ]);
    expect(w[0]).toEqual({ type: 'metric', label: 'PnL', value: 12.5 });
    expect(w[1]).toEqual({ type: 'line_chart', label: 'closes', points: [['2021-01-04', 100], ['2021-01-05', 101]] });
    expect(w[2]).toMatchObject({ type: 'table', columns: ['a', 'b'], rows: [[1, 'x'], [true, null]] });
    expect(w[3]).toMatchObject({ type: 'log', lines: ['one', '2'] });
    expect(w[4]).toEqual({ type: 'unknown', label: 'share', problem: 'unknown widget type "pie"' });
    expect(w[5]).toMatchObject({ type: 'unknown', problem: 'not an object' });
    expect(readWidgets(null)).toEqual([]);
  });
  it('format cells', () => {
    expect(fmtCell(1234)).toBe('1,234');
    expect(fmtCell(101.123456)).toBe('101.1235');
    expect(fmtCell(null)).toBe('—');
    expect(fmtCell('x')).toBe('x');
    expect(fmtCell('2021-06-28T00:00:00+00:00')).toBe('2021-06-28');
    expect(fmtCell('2021-06-28T13:05:00+00:00')).toBe('2021-06-28 13:05:00Z');
  });
});

describe('chartGeometry', () => {
  it('places time points left to right and the highest y at the top', () => {
    const g = chartGeometry([['2021-01-01', 1], ['2021-01-03', 3], ['2021-01-02', 2]], 110, 60, { top: 5, right: 5, bottom: 5, left: 5 });
    expect(g.time).toBe(true);
    expect(g.dots.map((d) => d.sx)).toEqual([5, 105, 55]);
    expect(g.dots.map((d) => d.sy)).toEqual([55, 5, 30]);
    expect(g.line).toBe('M5 55 L105 5 L55 30');
    expect(g.area.endsWith('L55 55 L5 55 Z')).toBe(true);
    expect([g.yMin, g.yMax]).toEqual([1, 3]);
    expect(nearestDot(g.dots, 60)?.x).toBe('2021-01-02');
  });
  it('keeps a flat line and a single point inside the box', () => {
    const flat = chartGeometry([[0, 5], [1, 5]], 100, 50, { top: 0, right: 0, bottom: 0, left: 0 });
    expect(flat.dots.map((d) => d.sy)).toEqual([25, 25]);
    const one = chartGeometry([[3, 1]], 100, 50, { top: 0, right: 0, bottom: 0, left: 0 });
    expect(one.dots[0]).toMatchObject({ sx: 50, sy: 25 });
    expect(chartGeometry([], 100, 50).line).toBe('');
  });
  it('spaces texts that are not times by their position', () => {
    const g = chartGeometry([['a', 1], ['b', 2], ['c', 3]], 20, 10, { top: 0, right: 0, bottom: 0, left: 0 });
    expect(g.time).toBe(false);
    expect(g.dots.map((d) => d.sx)).toEqual([0, 10, 20]);
  });
});

describe('labels', () => {
  it('PnL: signed, coloured by sign', () => {
    expect(fmtPnl(1234.5)).toBe('+1,234.50');
    expect(fmtPnl(-12)).toBe('-12.00');
    expect(fmtPnl(0.001)).toBe('0.00');
    expect(pnlTone(3)).toBe('text-success');
    expect(pnlTone(-3)).toBe('text-error');
    expect(pnlTone(0)).toBe('');
  });
  it('feeds in a few words', () => {
    expect(feedSummary({ kind: 'replay', path: 'data/sample_ohlcv.csv', interval: '1d', speed: 20, warmup: 100 })).toBe(
      'replay · data/sample_ohlcv.csv · 1d · ×20 · warm-up 100',
    );
    expect(feedSummary({ kind: 'replay', dataset: 'btc', interval: '1h', speed: 0 })).toBe('replay · dataset btc · 1h · as fast as taken');
    expect(feedSummary({ kind: 'binance', interval: '1m' })).toBe('Binance spot · 1m');
    expect(feedSummary({ kind: 'binance_futures', interval: '5m', warmup: 50 })).toBe('Binance USD-M futures · 5m · warm-up 50');
  });
  it('binance feeds are checked against their market', () => {
    expect(binanceFeedProblems('binance_futures', 'BTCUSDT', '1m')).toEqual({});
    expect(binanceFeedProblems('binance_futures', 'btcusdt_261225', '4h')).toEqual({});
    expect(binanceFeedProblems('binance', 'ETHUSDT', '1s')).toEqual({});
    expect(binanceFeedProblems('binance_futures', 'BTCUSDT', '1s')).toEqual({ 'feed.interval': '1s klines exist on spot only' });
    expect(binanceFeedProblems('binance', 'BTCUSDT', '10m')['feed.interval']).toMatch(/^one of 1s, 1m, 3m/);
    expect(binanceFeedProblems('binance', 'BTCUSDT_261225', '1m').market).toMatch(/not a Binance spot symbol/);
    expect(binanceFeedProblems('binance_futures', 'BTC/USDT', '1m').market).toMatch(/not a Binance USD-M futures symbol/);
  });
  it('seconds ago', () => {
    const now = Date.parse('2026-01-01T00:01:00Z');
    expect(secondsAgo('2026-01-01T00:00:58Z', now)).toBe('2 s ago');
    expect(secondsAgo('2026-01-01T00:00:00Z', now)).toBe('1 min ago');
    expect(secondsAgo(null, now)).toBe('');
  });
});

describe('stream pipelines', () => {
  it('judge each sink: failing after a later error, backlog while events wait, ok once delivering', () => {
    const sinks = sinkHealth({
      csv: { kind: 'csv_append', target: 'out/a.csv', delivered: 12, pending: 0, failures: 0, dead_letters: 0, last_ok: '2026-01-01T00:00:05Z', last_error: null },
      hook: { kind: 'webhook', target: 'http://x', delivered: 3, pending: 2, failures: 4, dead_letters: 1, last_ok: '2026-01-01T00:00:01Z', last_error: 'HTTP 500', last_error_at: '2026-01-01T00:00:04Z' },
      pg: { kind: 'postgres', target: 't', delivered: 5, pending: 1, last_ok: '2026-01-01T00:00:09Z', last_error: 'timeout', last_error_at: '2026-01-01T00:00:04Z' },
      never: { kind: 'csv_append', target: 'b.csv' },
    });
    expect(sinks.map((s) => [s.name, s.health])).toEqual([
      ['csv', 'ok'],
      ['hook', 'failing'],
      ['pg', 'backlog'],
      ['never', 'idle'],
    ]);
    expect(sinks[1]).toMatchObject({ deadLetters: 1, failures: 4, lastError: 'HTTP 500' });
    expect(sinkHealth(null)).toEqual([]);
  });
  it('show events and states', () => {
    expect(streamEventRow({ ts: '2023-06-01T00:00:00+00:00', symbol: 'ASSET', node: 'signal', port: 'out', column: null, value: 0.5 })).toEqual({
      ts: '2023-06-01T00:00:00+00:00',
      symbol: 'ASSET',
      where: 'signal.out',
      value: '0.5',
    });
    expect(streamStateBadge('running', true)).toBe('badge-success');
    expect(streamStateBadge('running', false)).toBe('badge-warning');
    expect(streamStateBadge('failed', true)).toBe('badge-error');
  });
});

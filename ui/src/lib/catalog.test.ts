import { describe, expect, it } from 'vitest';
import { checkLabel, datasetRef, fmtBytes, fmtInstant, fmtPrice, fmtRange, fmtSpacing, fmtTickRange, preCatalogNote, sourceLabel, summariseReport, symbolsLabel, tickRows, versionRows } from './catalog';
import type { DatasetVersion } from './types';

const sym = (symbol: string, rows = 10) => ({ symbol, rows, start: '2024-01-01T00:00:00Z', end: '2024-01-10T00:00:00Z' });
const version = (over: Partial<DatasetVersion>): DatasetVersion => ({
  version: 'a'.repeat(64),
  short: 'aaaaaaaaaaaa',
  created_at: '2024-05-01T10:00:00Z',
  message: '',
  rows: 20,
  bytes: 2048,
  columns: ['open', 'high', 'low', 'close', 'volume'],
  start: '2024-01-01T00:00:00Z',
  end: '2024-01-10T00:00:00Z',
  symbols: [sym('AAA'), sym('BBB')],
  sources: [],
  latest: false,
  kind: 'bars',
  ticks: null,
  ...over,
});

describe('version list formatting', () => {
  it('names a version the way a pipeline reads it', () => {
    expect(datasetRef('us_daily', '3f2a9c1b7d4e')).toBe('dataset("us_daily@3f2a9c1b7d4e")');
    expect(datasetRef('us_daily')).toBe('dataset("us_daily")');
  });
  it('turns versions into rows in the given order, with size, range, symbols and the latest flag', () => {
    const rows = versionRows('u', [
      version({ short: 'bbbbbbbbbbbb', latest: true, message: 'fix AAA', bytes: 3 * 1024 * 1024 }),
      version({ short: 'aaaaaaaaaaaa', start: '2024-01-01T09:30:00Z', end: null, bytes: 512 }),
    ]);
    expect(rows.map((r) => [r.short, r.latest, r.size, r.ref, r.symbols])).toEqual([
      ['bbbbbbbbbbbb', true, '3.0 MB', 'dataset("u@bbbbbbbbbbbb")', 2],
      ['aaaaaaaaaaaa', false, '512 B', 'dataset("u@aaaaaaaaaaaa")', 2],
    ]);
    expect(rows[0].range).toBe('2024-01-01 → 2024-01-10');
    expect(rows[1].range).toBe('2024-01-01 09:30 UTC → —');
    expect(rows[0].message).toBe('fix AAA');
  });
  it('sizes in powers of 1024 and spacings in the largest unit', () => {
    expect([fmtBytes(0), fmtBytes(1536), fmtBytes(20 * 1024), fmtBytes(-1), fmtBytes(null)]).toEqual(['0 B', '1.5 KB', '20 KB', '—', '—']);
    expect([fmtSpacing(86_400), fmtSpacing(3 * 86_400), fmtSpacing(5_400), fmtSpacing(60), fmtSpacing(0.5), fmtSpacing(null)]).toEqual([
      '1 d',
      '3 d',
      '1.5 h',
      '1 min',
      '0.5 s',
      '—',
    ]);
    expect(fmtRange(null, null)).toBe('—');
  });
  it('shows a few symbols and counts the rest', () => {
    expect(symbolsLabel([])).toBe('—');
    expect(symbolsLabel(['A', 'B'])).toBe('A, B');
    expect(symbolsLabel(['A', 'B', 'C', 'D', 'E'])).toBe('A, B, C +2');
  });
  it('says how to read a pre-catalog dataset and how to bring it in; nothing for a catalog one', () => {
    const note = preCatalogNote({ name: 'goog', version: null });
    expect(note).toContain('dataset_ohlcv(name="goog")');
    expect(note).toContain('alphaforge data import');
    expect(preCatalogNote({ name: 'goog', version: 'abc' })).toBeNull();
  });
});

describe('summariseReport', () => {
  const report = {
    version: 'v',
    checks: ['MISSING_COLUMNS', 'HIGH_BELOW_LOW'],
    timezone: 'America/New_York',
    rows: 300,
    symbols: 4,
    columns: ['open', 'close'],
    files: [
      { file: 'AAA.csv', sha256: 'f'.repeat(64), bytes: 100, rows: 100, symbols: ['AAA'], start: '2024-01-01T00:00:00+00:00', end: '2024-04-09T00:00:00+00:00', notes: ['no volume column'] },
      { file: 'BBB.csv', rows: 200, symbols: ['BBB', 'CCC', 'DDD'], notes: ['no volume column'] },
    ],
    gaps: {
      AAA: { median_spacing_s: 86_400, largest_gap_s: 4 * 86_400, largest_gap_after: '2024-02-01T00:00:00+00:00', gaps_over_3x_median: 1 },
      BBB: { median_spacing_s: 86_400, largest_gap_s: 10 * 86_400, gaps_over_3x_median: 5 },
      CCC: { median_spacing_s: 86_400, largest_gap_s: 3 * 86_400, gaps_over_3x_median: 0 },
      DDD: { median_spacing_s: null, largest_gap_s: null, gaps_over_3x_median: 0 },
      EEE: { median_spacing_s: 3_600, largest_gap_s: 20 * 3_600, gaps_over_3x_median: 1 },
    },
  };
  it('orders gaps worst first (count over 3x median, then largest / median) and flags the worst with gaps', () => {
    const s = summariseReport(report, 2);
    expect(s.gaps.map((g) => [g.symbol, g.over, g.ratio, g.worst])).toEqual([
      ['BBB', 5, 10, true],
      ['EEE', 1, 20, true],
      ['AAA', 1, 4, false],
      ['CCC', 0, 3, false],
      ['DDD', 0, null, false],
    ]);
    expect(s.gapSymbols).toBe(3);
    expect(s.gaps.find((g) => g.symbol === 'AAA')?.after).toBe('2024-02-01T00:00:00+00:00');
  });
  it('never flags a symbol without a gap over 3x the median, however few have one', () => {
    expect(summariseReport(report, 10).gaps.filter((g) => g.worst).map((g) => g.symbol)).toEqual(['BBB', 'EEE', 'AAA']);
  });
  it('lists files, checks, the time zone and each note once; missing fields become nulls', () => {
    const s = summariseReport(report);
    expect(s.files.map((f) => [f.file, f.rows, f.symbols.length, f.start, f.sha256.length])).toEqual([
      ['AAA.csv', 100, 1, '2024-01-01T00:00:00+00:00', 64],
      ['BBB.csv', 200, 3, null, 0],
    ]);
    expect([s.checks, s.timezone, s.rows, s.symbols, s.notes]).toEqual([['MISSING_COLUMNS', 'HIGH_BELOW_LOW'], 'America/New_York', 300, 4, ['no volume column']]);
    expect(checkLabel('HIGH_BELOW_LOW')).toBe('high below low');
  });
  it('reads an empty or foreign report as empty tables', () => {
    for (const r of [null, {}, { files: 'x', gaps: [1, 2], checks: [3] }]) {
      const s = summariseReport(r as Record<string, unknown> | null);
      expect([s.files, s.gaps, s.checks, s.rows]).toEqual([[], [], [], null]);
    }
  });
});

describe('tick datasets', () => {
  const summary = {
    events: 8,
    start: '2024-01-01T00:00:00Z',
    end: '2024-01-01T00:00:04.25Z',
    symbols: [
      { symbol: 'BTCUSDT', events: 8, depth: 6, trades: 2, start: '2024-01-01T00:00:00Z', end: '2024-01-01T00:00:04.25Z', tick_size: 0.1, lot_size: 0.001, px_min: 41990.5, px_max: 42010 },
      { symbol: 'OLD', events: 3, depth: 3, trades: 0, start: '2024-01-01T00:00:00Z', end: '2024-01-01T00:00:01Z', tick_size: null, lot_size: null, px_min: null, px_max: null },
    ],
  };
  it('names a tick version with tick_data, a bar version with dataset', () => {
    expect(datasetRef('btc_book', 'f6e2d1d2f869', 'ticks')).toBe('tick_data("btc_book@f6e2d1d2f869")');
    expect(datasetRef('btc_book', null, 'ticks')).toBe('tick_data("btc_book")');
    const [row] = versionRows('btc_book', [version({ kind: 'ticks', short: 'f6e2d1d2f869' })]);
    expect(row.ref).toBe('tick_data("btc_book@f6e2d1d2f869")');
  });
  it('shows times to the millisecond and prices without float noise', () => {
    expect(fmtInstant('2024-01-01T00:00:04.25Z')).toBe('2024-01-01 00:00:04.250 UTC');
    expect(fmtInstant(null)).toBe('—');
    expect(fmtPrice(0.1 + 0.2)).toBe('0.3');
    expect(fmtPrice(42010)).toBe('42010');
    expect(fmtPrice(null)).toBe('—');
  });
  it('makes a row per symbol, with "—" where the manifest recorded no prices or sizes', () => {
    const rows = tickRows(summary);
    expect(rows[0]).toEqual({
      symbol: 'BTCUSDT',
      events: 8,
      depth: 6,
      trades: 2,
      first: '2024-01-01 00:00:00.000 UTC',
      last: '2024-01-01 00:00:04.250 UTC',
      prices: '41990.5 – 42010',
      sizes: '0.1 / 0.001',
    });
    expect([rows[1].prices, rows[1].sizes]).toEqual(['—', '— / —']);
    expect(tickRows(null)).toEqual([]);
  });
  it('shows a tick range to the second, the end date only when it differs', () => {
    expect(fmtTickRange('2024-01-01T00:00:00Z', '2024-01-01T00:04:59.987Z')).toBe('2024-01-01 00:00:00 → 00:04:59 UTC');
    expect(fmtTickRange('2024-01-01T23:59:00Z', '2024-01-02T00:01:00Z')).toBe('2024-01-01 23:59:00 → 2024-01-02 00:01:00 UTC');
    expect(fmtTickRange(null, '2024-01-01T00:00:00Z')).toBe('—');
    const [row] = versionRows('b', [version({ kind: 'ticks', start: '2024-01-01T00:00:00Z', end: '2024-01-01T00:00:04Z' })]);
    expect(row.range).toBe('2024-01-01 00:00:00 → 00:00:04 UTC');
  });
  it('says where the events came from: a file and its format, or the generator', () => {
    expect(sourceLabel({ file: 'btcusdt.jsonl', format: 'binance-futures', bytes: 10 })).toBe('btcusdt.jsonl (binance-futures)');
    expect(sourceLabel({ file: 'snap.json', format: 'binance-futures', role: 'snapshot' })).toBe('snap.json (binance-futures, snapshot)');
    expect(sourceLabel({ generator: 'synthetic_book', params: { seed: 7, duration_s: 300, symbol: 'SYN' } })).toBe('synthetic_book, seed 7, 300 s of SYN');
    expect(sourceLabel({})).toBe('?');
  });
});

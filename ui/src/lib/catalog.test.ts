import { describe, expect, it } from 'vitest';
import { checkLabel, datasetRef, fmtBytes, fmtRange, fmtSpacing, preCatalogNote, summariseReport, symbolsLabel, versionRows } from './catalog';
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

import { describe, expect, it } from 'vitest';
import { fmtDuration, fmtMetric, fmtNumber, fmtPct, metricLabel, orderMetrics, relativeTime, runDuration } from './format';
import { SseParser } from './sse';

describe('formatters', () => {
  it('formats numbers and percentages, with a dash for missing values', () => {
    expect(fmtNumber(1234.567)).toBe('1,234.57');
    expect(fmtNumber(null)).toBe('—');
    expect(fmtNumber(Number.NaN)).toBe('NaN');
    expect(fmtPct(0.1234)).toBe('12.34%');
    expect(fmtPct(null)).toBe('—');
  });

  it('formats metrics by kind', () => {
    expect(fmtMetric('total_return', 0.5)).toBe('50.00%');
    expect(fmtMetric('max_drawdown', -0.2)).toBe('-20.00%');
    expect(fmtMetric('num_trades', 12)).toBe('12');
    expect(fmtMetric('sharpe', 1.234)).toBe('1.23');
    expect(fmtMetric('sharpe', null)).toBe('—');
    expect(fmtMetric('ppy', 252)).toBe('252');
    expect(fmtMetric('ppy', 52.18)).toBe('52.18');
    expect(fmtMetric('start', '2020-01-01')).toBe('2020-01-01');
    expect(fmtMetric('start', '2021-01-04T00:00:00.000Z')).toBe('2021-01-04');
    expect(fmtMetric('end', '2021-01-04T13:30:00Z')).toBe('2021-01-04 13:30:00Z');
    expect(fmtMetric('entry_ts', '2021-02-15 00:00:00+00:00')).toBe('2021-02-15');
    expect(fmtMetric('entry_ts', '2021-02-15 09:30:00+01:00')).toBe('2021-02-15 08:30:00Z');
    expect(metricLabel('max_drawdown')).toBe('Max drawdown');
    expect(metricLabel('some_new_key')).toBe('Some new key');
  });

  it('orders metrics: the headline ones first, the rest alphabetically', () => {
    expect(orderMetrics(['zeta', 'sharpe', 'alpha', 'total_return'])).toEqual(['total_return', 'sharpe', 'alpha', 'zeta']);
  });

  it('formats durations and relative times', () => {
    expect(fmtDuration(120)).toBe('120ms');
    expect(fmtDuration(3400)).toBe('3.4s');
    expect(fmtDuration(125_000)).toBe('2m 05s');
    expect(fmtDuration(3_720_000)).toBe('1h 02m');
    expect(fmtDuration(null)).toBe('—');
    const now = Date.parse('2026-01-01T12:00:00Z');
    expect(relativeTime('2026-01-01T11:59:50Z', now)).toBe('just now');
    expect(relativeTime('2026-01-01T11:30:00Z', now)).toBe('30 min ago');
    expect(relativeTime('2025-01-01T00:00:00Z', now)).toBe('2025-01-01');
    expect(runDuration({ started_at: '2026-01-01T11:59:00Z', finished_at: '2026-01-01T11:59:30Z' })).toBe('30.0s');
    expect(runDuration({ started_at: null, finished_at: null })).toBe('—');
  });
});

describe('SseParser', () => {
  it('parses events split across chunks, with event names and multi-line data', () => {
    const p = new SseParser();
    expect(p.feed('data: {"seq":1}\n')).toEqual([]);
    expect(p.feed('\nevent: status\ndata: run')).toEqual([{ event: 'message', data: '{"seq":1}', id: null }]);
    expect(p.feed('ning\n\n: keep-alive\n\ndata: a\r\ndata: b\r\n\r\n')).toEqual([
      { event: 'status', data: 'running', id: null },
      { event: 'message', data: 'a\nb', id: null },
    ]);
  });
});

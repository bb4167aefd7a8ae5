import { describe, expect, it } from 'vitest';
import { dsrConvincing, fmtObjective, fmtSeconds, fmtTick, fmtValue, hasSweepBlock, heatColor, heatInk, heatScale, objectiveMetric, tickEvery, progressText, trialOrigin, withDrawdown } from './sweeps';

describe('sweep helpers', () => {
  it('finds a sweep block, not a comment or a word', () => {
    expect(hasSweepBlock('data = x()\nsweep grid {\n}')).toBe(true);
    expect(hasSweepBlock('  sweep optuna(trials=5) {')).toBe(true);
    expect(hasSweepBlock('# sweep grid {')).toBe(false);
    expect(hasSweepBlock('sweeper = foo()')).toBe(false);
  });

  it('colours the best value green and the worst red, reversed when lower is better', () => {
    expect(heatColor(2, 0, 2)).toBe('hsl(130 70% 42%)');
    expect(heatColor(0, 0, 2)).toBe('hsl(0 70% 42%)');
    expect(heatColor(0, 0, 2, false)).toBe('hsl(130 70% 42%)');
    expect(heatColor(null, 0, 2)).toBeNull();
    expect(heatColor(1, 1, 1)).toBe('hsl(130 70% 42%)');
  });

  it('words time and progress', () => {
    expect(fmtSeconds(42.4)).toBe('42 s');
    expect(fmtSeconds(2.46)).toBe('2.5 s');
    expect(fmtSeconds(185)).toBe('3 min 5 s');
    expect(fmtSeconds(3720)).toBe('1 h 2 min');
    expect(fmtSeconds(null)).toBe('—');
    expect(progressText(7, 12)).toBe('7 / 12 trials (58%)');
  });

  it('draws the drawdown of the out-of-sample curve from its running peak', () => {
    const dd = withDrawdown([
      { ts: 'a', equity: 100, fold: 0 },
      { ts: 'b', equity: 120, fold: 0 },
      { ts: 'c', equity: 90, fold: 1 },
    ]).map((p) => p.drawdown);
    expect(dd[0]).toBe(0);
    expect(dd[1]).toBe(0);
    expect(dd[2]).toBeCloseTo(-0.25);
  });

  it('formats values and judges the deflated Sharpe ratio', () => {
    expect(fmtValue(10)).toBe('10');
    expect(fmtValue(0.125)).toBe('0.125');
    expect(fmtValue('ema')).toBe('ema');
    expect(dsrConvincing(0.97)).toBe(true);
    expect(dsrConvincing(0.4)).toBe(false);
    expect(dsrConvincing(null)).toBeNull();
  });

  it('names the trial a run came from, folds counted from 1', () => {
    expect(trialOrigin({ trial: 5, fold: null })).toBe('trial 5');
    expect(trialOrigin({ trial: 0, fold: 0 })).toBe('trial 0 (fold 1)');
    expect(trialOrigin({ trial: 12, fold: 2 })).toBe('trial 12 (fold 3)');
  });

  it('formats the objective as its metric is formatted', () => {
    expect(objectiveMetric('maximize result.sharpe')).toBe('sharpe');
    expect(objectiveMetric('minimise result.max_drawdown')).toBe('max_drawdown');
    expect(objectiveMetric('')).toBe('');
    expect(fmtObjective('maximize result.sharpe', 1.5)).toBe('1.50');
    expect(fmtObjective('maximize result.total_return', 0.15)).toBe('15.00%');
    expect(fmtObjective('maximize result.total_return', null)).toBe('—');
    expect(fmtObjective('maximize result.custom_score', 2.345)).toBe('2.35');
  });

  it('spans the heatmap colours over the 5th to 95th percentile, not one outlier', () => {
    // 99 values 0..98 and one outlier at -1000: the scale starts near 4.9, not at -1000
    const values = [...Array.from({ length: 99 }, (_, i) => i), -1000, null];
    const s = heatScale(values)!;
    expect(s.lo).toBeCloseTo(3.95, 5);
    expect(s.hi).toBeCloseTo(93.05, 5);
    expect(s.clippedLo).toBe(true);
    expect(s.clippedHi).toBe(true);
    // few values: every one counts
    expect(heatScale([3, 1, 2])).toEqual({ lo: 1, hi: 3, clippedLo: false, clippedHi: false });
    expect(heatScale([null, Number.NaN])).toBeNull();
  });

  it('writes dark text on the light middle of the scale, white on its ends', () => {
    expect(heatInk(0, 0, 10)).toBe('#ffffff');
    expect(heatInk(5, 0, 10)).toBe('#111827');
    expect(heatInk(10, 0, 10)).toBe('#ffffff');
    expect(heatInk(null, 0, 10)).toBe('');
  });

  it('thins axis labels so they do not overlap, keeping the first and the last', () => {
    const shown = (n: number, fit: number) => Array.from({ length: n }, (_, i) => i).filter(tickEvery(n, fit));
    expect(shown(5, 10)).toEqual([0, 1, 2, 3, 4]);
    expect(shown(50, 25)).toEqual([...Array.from({ length: 24 }, (_, i) => 2 * i), 49]);
    expect(shown(50, 25)).not.toContain(48); // not next to the last
  });

  it('prints a bin middle with 3 significant digits, a value as it is', () => {
    expect(fmtTick(9.916666, true)).toBe('≈9.92');
    expect(fmtTick(240, true)).toBe('240');
    expect(fmtTick(240, false)).toBe('240');
    expect(fmtTick(0.125, false)).toBe('0.125');
  });
});

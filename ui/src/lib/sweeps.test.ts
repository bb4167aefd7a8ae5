import { describe, expect, it } from 'vitest';
import { dsrConvincing, fmtObjective, fmtSeconds, fmtValue, hasSweepBlock, heatColor, objectiveMetric, progressText, trialOrigin, withDrawdown } from './sweeps';

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
});

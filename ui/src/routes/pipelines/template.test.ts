import { describe, expect, it } from 'vitest';
import { copyName, copyTitle, nameProblem, newPipelineSource, titleProblem } from './template';

describe('newPipelineSource', () => {
  it('reads the sample data where web runs find it (issue 9: a new pipeline runs as created)', () => {
    const source = newPipelineSource('my_first', 'My first');
    // web runs resolve paths in their workspace, whose data/ holds the bundled sample files
    // (api/services/runs.py web_base_dir), as examples/sma_crossover.af reads them
    expect(/csv_ohlcv\(path="([^"]+)"\)/.exec(source)?.[1]).toBe('data/sample_ohlcv.csv');
    expect(source).toContain('pipeline my_first "My first"');
  });
});

describe('names and titles (issue 9, item 6)', () => {
  it('writes any title as a DSL string', () => {
    expect(newPipelineSource('p', 'A "quoted" <b>title</b> \\ x')).toContain('pipeline p "A \\"quoted\\" <b>title</b> \\\\ x"');
  });

  it('explains the name rule in words, with what to type instead', () => {
    expect(nameProblem('my_first')).toBeNull();
    expect(nameProblem('')).toMatch(/Type a name/);
    expect(nameProblem('my strategy!')).toBe('Use only letters, digits and “_” (no spaces or punctuation), e.g. “my_strategy_”.');
    expect(nameProblem('1st')).toMatch(/cannot start with a digit: try “p_1st”/);
    expect(nameProblem('x'.repeat(101))).toMatch(/limit is 100/);
  });

  it('limits titles to 120 characters', () => {
    expect(titleProblem('t'.repeat(120))).toBeNull();
    expect(titleProblem('t'.repeat(121))).toMatch(/121 characters long; the limit is 120/);
  });
});

describe('copies', () => {
  it('are "(copy)", then "(copy 2)"..., never the same title', () => {
    expect(copyTitle('SMA', [])).toBe('SMA (copy)');
    expect(copyTitle('SMA', ['SMA (copy)'])).toBe('SMA (copy 2)');
    expect(copyTitle('SMA (copy)', ['SMA (copy)', 'SMA (copy 2)'])).toBe('SMA (copy 3)');
    expect(copyTitle('t'.repeat(120), []).length).toBe(120);
    expect(copyName('sma', ['sma_copy'])).toBe('sma_copy_2');
    expect(copyName('Moving Average (Sample)', [])).toBe('Moving Average (Sample) (copy)');
  });
});

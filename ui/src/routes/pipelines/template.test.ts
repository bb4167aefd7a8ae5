import { describe, expect, it } from 'vitest';
import { newPipelineSource } from './template';

describe('newPipelineSource', () => {
  it('reads the sample data where web runs find it (issue 9: a new pipeline runs as created)', () => {
    const source = newPipelineSource('my_first', 'My first');
    // web runs resolve paths in their workspace, whose data/ holds the bundled sample files
    // (api/services/runs.py web_base_dir), as examples/sma_crossover.af reads them
    expect(/csv_ohlcv\(path="([^"]+)"\)/.exec(source)?.[1]).toBe('data/sample_ohlcv.csv');
    expect(source).toContain('pipeline my_first "My first"');
  });
});

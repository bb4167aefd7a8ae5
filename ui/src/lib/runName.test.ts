import { describe, expect, it } from 'vitest';
import { pipelineLabel, runName } from './runName';

describe('runName', () => {
  it('names a run by its pipeline title, else its name, never by a bare id when either exists', () => {
    expect(runName({ id: 12, pipeline_id: 2, pipeline_name: 'sma_crossover', pipeline_title: 'Moving Average Crossover' })).toBe('Moving Average Crossover · run #12');
    expect(pipelineLabel({ id: 12, pipeline_id: 2, pipeline_name: 'sma_crossover', pipeline_title: '  ' })).toBe('sma_crossover');
    expect(pipelineLabel({ id: 12, pipeline_id: 2 })).toBe('pipeline 2');
  });
});

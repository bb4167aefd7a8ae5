import { describe, expect, it } from 'vitest';
import { DATASET_NAME_RE, datasetNameFromFile } from './names';

describe('datasetNameFromFile', () => {
  it('makes a valid name from any file name', () => {
    expect(datasetNameFromFile('goog_daily.csv')).toBe('goog_daily');
    expect(datasetNameFromFile('EURUSD 1h (2020-2024).CSV')).toBe('EURUSD_1h_2020-2024');
    expect(datasetNameFromFile('2024 bars.csv')).toBe('data_2024_bars');
    expect(datasetNameFromFile('___.csv')).toBe('data');
    const long = datasetNameFromFile(`${'x'.repeat(100)}.csv`);
    expect(long.length).toBe(64);
    for (const f of ['goog_daily.csv', 'EURUSD 1h (2020-2024).CSV', '2024 bars.csv', '___.csv', `${'x'.repeat(100)}.csv`, 'é.csv']) {
      expect(DATASET_NAME_RE.test(datasetNameFromFile(f))).toBe(true);
    }
  });
});

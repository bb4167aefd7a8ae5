import { describe, expect, it } from 'vitest';
import type { Diagnostic } from '../types';
import { CODES, NOT_EXECUTED_CODE } from './language';
import { notExecutedBlocks } from './notExecuted';

const diag = (code: string, line: number, col: number, end_col: number, severity: Diagnostic['severity'] = 'warning'): Diagnostic => ({
  code, severity, message: 'm', line, col, end_line: line, end_col, hint: null, suggestions: [],
});

describe('notExecutedBlocks', () => {
  const src = 'pipeline p\nx = sma(1)\nsweep grid {\n}\nwalkforward(train=2y, test=6M, step=6M)\n';

  it('names each block flagged AF008, read from the source at the marker', () => {
    expect(notExecutedBlocks(src, [diag('AF008', 3, 1, 6), diag('AF008', 5, 1, 12)])).toEqual(['sweep', 'walkforward']);
  });

  it('ignores other codes', () => {
    expect(notExecutedBlocks(src, [diag('AF206', 2, 1, 2)])).toEqual([]);
  });

  it('uses the code Python registers for it, a warning', () => {
    expect(NOT_EXECUTED_CODE).toBe('AF008');
    expect(CODES[NOT_EXECUTED_CODE].severities).toEqual(['warning']);
  });
});

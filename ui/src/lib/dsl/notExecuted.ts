/**
 * Blocks a pipeline declares that this version does not execute (a `stream` block: the live
 * side; `sweep` and `walkforward` run as sweeps): the compiler flags each with the AF008 warning
 * at its keyword; the pipeline page shows them above the editor so nobody reads a single run as
 * a live signal.
 */
import type { Diagnostic } from '../types';
import { NOT_EXECUTED_CODE } from './language';

/** The keywords of the not-executed blocks, in source order, read from the source at each
 * AF008 range (one line, the keyword itself). */
export function notExecutedBlocks(source: string, diagnostics: readonly Diagnostic[]): string[] {
  const lines = source.split('\n');
  const out: string[] = [];
  for (const d of diagnostics) {
    if (d.code !== NOT_EXECUTED_CODE || d.line !== d.end_line) continue;
    const word = (lines[d.line - 1] ?? '').slice(d.col - 1, d.end_col - 1);
    if (/^[a-z]+$/.test(word) && !out.includes(word)) out.push(word);
  }
  return out;
}


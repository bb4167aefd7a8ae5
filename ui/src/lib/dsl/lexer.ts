/**
 * A small, forgiving tokenizer for `.af` text, shared by the rewriter, completion, hover, the
 * formatter and the plain-text highlighter. It never throws: unknown characters become `punct`
 * tokens and an unterminated string runs to the end of its line. Offsets are UTF-16 indices.
 */

import { CONSTANTS, DURATION_UNITS, KEYWORDS } from './language';

/** The language's words come from Python (./language.ts reads src/generated/language.json). */
export { CONSTANTS, KEYWORDS };

export type TokenKind =
  | 'ws'
  | 'newline'
  | 'comment'
  | 'string'
  | 'date'
  | 'duration'
  | 'number'
  | 'ident'
  | 'op'
  | 'punct';

export interface Token {
  kind: TokenKind;
  text: string;
  start: number;
  end: number;
}

const DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?/;
const DURATION = new RegExp(`^\\d+(?:${[...DURATION_UNITS].sort((a, b) => b.length - a.length).join('|')})(?![A-Za-z0-9_])`);
const NUMBER = /^(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*/;
const WS = /^[ \t\r]+/;
const OPS = ['==', '!=', '<=', '>=', '->'];

/** Split `.af` text into tokens covering every character exactly once. */
export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const push = (kind: TokenKind, len: number) => {
    out.push({ kind, text: src.slice(i, i + len), start: i, end: i + len });
    i += len;
  };
  while (i < src.length) {
    const c = src[i];
    const rest = src.slice(i, i + 64);
    if (c === '\n') {
      push('newline', 1);
    } else if (c === ' ' || c === '\t' || c === '\r') {
      push('ws', WS.exec(src.slice(i))![0].length);
    } else if (c === '#') {
      const nl = src.indexOf('\n', i);
      push('comment', (nl === -1 ? src.length : nl) - i);
    } else if (c === '"' || c === "'") {
      push('string', stringLength(src, i));
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const date = DATE.exec(rest);
      const duration = date ? null : DURATION.exec(rest);
      if (date) push('date', date[0].length);
      else if (duration) push('duration', duration[0].length);
      else push('number', NUMBER.exec(src.slice(i, i + 256))![0].length);
    } else if (/[A-Za-z_]/.test(c)) {
      push('ident', IDENT.exec(src.slice(i, i + 256))![0].length);
    } else {
      const op = OPS.find((o) => src.startsWith(o, i));
      if (op) push('op', op.length);
      else push('punct', 1);
    }
  }
  return out;
}

function stringLength(src: string, start: number): number {
  const quote = src[start];
  let j = start + 1;
  while (j < src.length) {
    const ch = src[j];
    if (ch === '\\') {
      j += 2;
      continue;
    }
    if (ch === quote) return j + 1 - start;
    if (ch === '\n') return j - start;
    j += 1;
  }
  return Math.min(j, src.length) - start;
}

/** Tokens that carry meaning (no whitespace, newlines or comments). */
export function significant(tokens: Token[]): Token[] {
  return tokens.filter((t) => t.kind !== 'ws' && t.kind !== 'newline' && t.kind !== 'comment');
}

/** Offsets at which each line starts (index 0 = line 1). */
export function lineStarts(src: string): number[] {
  const starts = [0];
  for (let i = 0; i < src.length; i++) if (src[i] === '\n') starts.push(i + 1);
  return starts;
}

/** 1-based line and column of an offset. */
export function positionAt(src: string, offset: number): { line: number; col: number } {
  const starts = lineStarts(src);
  let line = 0;
  while (line + 1 < starts.length && starts[line + 1] <= offset) line++;
  return { line: line + 1, col: offset - starts[line] + 1 };
}

/** Offset of a 1-based line and column (clamped to the text). */
export function offsetAt(src: string, line: number, col: number): number {
  const starts = lineStarts(src);
  const l = Math.min(Math.max(line, 1), starts.length) - 1;
  return Math.min(starts[l] + Math.max(col, 1) - 1, src.length);
}

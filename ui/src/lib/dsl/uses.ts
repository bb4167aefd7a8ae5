/**
 * `use name@spec` lines: whether a source pins a custom node, and where a missing pin goes
 * (after the pipeline header and the other `use` lines, at the top otherwise).
 */
import { significant, tokenize } from './lexer';

export interface Insertion {
  offset: number;
  text: string;
}

/** The names the source pins with `use` (top-level statements only). */
export function usedNames(source: string): Set<string> {
  const toks = significant(tokenize(source));
  const out = new Set<string>();
  toks.forEach((t, i) => {
    const next = toks[i + 1];
    if (t.kind === 'ident' && t.text === 'use' && atLineStart(source, t.start) && next?.kind === 'ident') out.add(next.text);
  });
  return out;
}

function atLineStart(source: string, offset: number): boolean {
  const ls = source.lastIndexOf('\n', offset - 1) + 1;
  return source.slice(ls, offset).trim() === '';
}

/**
 * The edit that adds `use name@spec` to `source`, or null when `name` is already pinned: a line
 * after the last header/`use` line before the first step, else before the first statement
 * (leading comments stay on top).
 */
export function useInsertion(source: string, name: string, spec: string): Insertion | null {
  if (usedNames(source).has(name)) return null;
  const line = `use ${name}@${spec}`;
  const lines = source.split('\n');
  let offset = 0;
  let after = -1; // end offset of the last header/use line
  let firstStatement = -1;
  for (const l of lines) {
    const t = l.trim();
    if (/^(pipeline|use)\b/.test(t)) after = offset + l.length;
    else if (t !== '' && !t.startsWith('#')) {
      if (firstStatement < 0) firstStatement = offset;
      break;
    }
    offset += l.length + 1;
  }
  if (after >= 0) {
    // keep a header's own line; a `use` goes on the next line
    return { offset: after, text: '\n' + line };
  }
  if (firstStatement >= 0) return { offset: firstStatement, text: line + '\n' };
  if (source === '') return { offset: 0, text: line + '\n' };
  return { offset: source.length, text: (source.endsWith('\n') ? '' : '\n') + line + '\n' };
}

export function applyInsertion(source: string, ins: Insertion | null): string {
  return ins ? source.slice(0, ins.offset) + ins.text + source.slice(ins.offset) : source;
}

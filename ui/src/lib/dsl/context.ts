/**
 * Where the cursor is, syntactically: what completion should offer at an offset of `.af` text.
 * Pure; shared by the completion and hover providers and unit-tested on its own.
 */
import { significant, tokenize, KEYWORDS, type Token } from './lexer';

export type CursorContext =
  | { kind: 'none' }
  | { kind: 'lineStart'; prefix: string; block: string | null }
  | { kind: 'nodeType'; prefix: string }
  | { kind: 'args'; prefix: string; callee: string; usedKeys: string[]; positional: number }
  | { kind: 'value'; prefix: string; callee: string; key: string; inString: boolean }
  /** `step.|`: `where` says what the validator accepts there (see completion.ts). */
  | { kind: 'member'; prefix: string; step: string; where: 'arg' | 'sweep' | 'other' }
  /** `use |`: a custom node's name (and version) is wanted. */
  | { kind: 'usePin'; prefix: string }
  | { kind: 'reference'; prefix: string };

interface Frame {
  open: string;
  callee: string | null;
  /** index into the significant-token list of the opener */
  at: number;
}

/** The open brackets around the end of `toks` (significant tokens), innermost last. */
export function openFrames(toks: Token[]): Frame[] {
  const stack: Frame[] = [];
  toks.forEach((t, i) => {
    if (t.kind !== 'punct') return;
    if (t.text === '(' || t.text === '[' || t.text === '{') {
      const prev = toks[i - 1];
      stack.push({ open: t.text, callee: prev?.kind === 'ident' ? prev.text : null, at: i });
    } else if (t.text === ')' || t.text === ']' || t.text === '}') {
      stack.pop();
    }
  });
  return stack;
}

/** The keyword that opened the innermost `{ ... }` block (`sweep`, `stream`, `for`), or null. */
function enclosingBlock(src: string, toks: Token[], frames: Frame[]): string | null {
  const f = [...frames].reverse().find((x) => x.open === '{');
  if (!f) return null;
  const head = toks[firstOnLine(src, toks, f.at)];
  return head.kind === 'ident' && (KEYWORDS as readonly string[]).includes(head.text) ? head.text : null;
}

/** Index of the first token on the line of token `i`. */
function firstOnLine(src: string, toks: Token[], i: number): number {
  const ls = src.lastIndexOf('\n', toks[i].start - 1) + 1;
  let j = i;
  while (j > 0 && toks[j - 1].start >= ls) j--;
  return j;
}

/** What is being typed at `offset`. */
export function cursorContext(source: string, offset: number): CursorContext {
  const before = source.slice(0, offset);
  const all = tokenize(before);
  const last = all[all.length - 1];
  if (last?.kind === 'comment') return { kind: 'none' };
  let inString = false;
  let prefix = '';
  let sig = significant(all);
  if (last?.kind === 'string') {
    const closed = last.text.length >= 2 && last.text.endsWith(last.text[0]) && !last.text.endsWith('\\' + last.text[0]);
    if (closed) return { kind: 'none' };
    inString = true;
    prefix = last.text.slice(1);
    sig = sig.slice(0, -1);
  } else if (last && (last.kind === 'ident' || last.kind === 'number') && last.end === offset) {
    prefix = last.text;
    sig = sig.slice(0, -1);
  }
  const prev = sig[sig.length - 1];
  const lineStart = before.lastIndexOf('\n', offset - prefix.length - (inString ? 1 : 0) - 1) + 1;
  const prevOnLine = prev && prev.start >= lineStart;
  const frames = openFrames(sig);
  const top = frames[frames.length - 1];

  if (prev?.kind === 'punct' && prev.text === '.' && !inString) {
    const owner = sig[sig.length - 2];
    if (owner?.kind !== 'ident') return { kind: 'none' };
    const where = top?.open === '(' && top.callee ? 'arg' : enclosingBlock(before, sig, frames) === 'sweep' ? 'sweep' : 'other';
    return { kind: 'member', prefix, step: owner.text, where };
  }

  if (top?.open === '(' && top.callee) {
    const inner = sig.slice(top.at + 1);
    const depthZero = topLevel(inner);
    if (prev?.kind === 'punct' && prev.text === '=' && sig[sig.length - 2]?.kind === 'ident' && depthZero.includes(prev)) {
      return { kind: 'value', prefix, callee: top.callee, key: sig[sig.length - 2].text, inString };
    }
    if (inString) return { kind: 'none' };
    if (prev === sig[top.at] || (prev?.kind === 'punct' && prev.text === ',' && depthZero.includes(prev))) {
      const { usedKeys, positional } = argsSoFar(depthZero);
      return { kind: 'args', prefix, callee: top.callee, usedKeys, positional };
    }
    return { kind: 'reference', prefix };
  }
  if (inString) return { kind: 'none' };

  if (!prevOnLine || (prev?.kind === 'punct' && (prev.text === '{' || prev.text === '}'))) {
    return { kind: 'lineStart', prefix, block: enclosingBlock(before, sig, frames) };
  }
  if (prev?.kind === 'punct' && prev.text === '=') {
    // `name = |` at the start of a line: a node type is wanted.
    const first = firstOnLine(before, sig, sig.length - 1);
    const head = sig.slice(first, sig.length - 1);
    if (head.length > 0 && head.every((t) => t.kind === 'ident' || (t.kind === 'punct' && '{}'.includes(t.text)))) {
      return { kind: 'nodeType', prefix };
    }
  }
  if (prev?.kind === 'ident' && prev.text === 'use' && !inString) {
    const first = firstOnLine(before, sig, sig.length - 1);
    return first === sig.length - 1 ? { kind: 'usePin', prefix } : { kind: 'none' };
  }
  return { kind: 'reference', prefix };
}

/** Tokens of a call's argument list at bracket depth zero. */
function topLevel(inner: Token[]): Token[] {
  const out: Token[] = [];
  let depth = 0;
  for (const t of inner) {
    if (t.kind === 'punct' && '([{'.includes(t.text)) depth++;
    else if (t.kind === 'punct' && ')]}'.includes(t.text)) depth--;
    else if (depth === 0) out.push(t);
  }
  return out;
}

function argsSoFar(depthZero: Token[]): { usedKeys: string[]; positional: number } {
  const usedKeys: string[] = [];
  let positional = 0;
  let argStart = true;
  let sawKey = false;
  depthZero.forEach((t, i) => {
    if (t.kind === 'punct' && t.text === ',') {
      if (!argStart && !sawKey) positional++;
      argStart = true;
      sawKey = false;
      return;
    }
    if (argStart && t.kind === 'ident' && depthZero[i + 1]?.kind === 'punct' && depthZero[i + 1].text === '=') {
      usedKeys.push(t.text);
      sawKey = true;
    }
    argStart = false;
  });
  return { usedKeys, positional };
}

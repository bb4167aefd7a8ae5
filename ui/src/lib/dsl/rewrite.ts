/**
 * Text surgery on `.af` source: find a step's call and set or remove one `key=value` argument,
 * leaving every other character (comments, spacing, line breaks, other steps) as it was.
 * Pure functions over strings — the node-config form and its tests use nothing else.
 */
import { tokenize, lineStarts, positionAt, type Token } from './lexer';

export interface CallArg {
  /** Keyword name, or null for a positional argument. */
  key: string | null;
  /** Offset of the argument's first character (the key for keyword arguments). */
  start: number;
  /** Offset just after the argument's last character. */
  end: number;
  valueStart: number;
  valueEnd: number;
  valueText: string;
  /** Offset of the comma that follows the argument, or -1. */
  comma: number;
}

export interface StepCall {
  name: string;
  type: string;
  /** 1-based line of the step name. */
  line: number;
  /** 1-based line of the closing parenthesis (or of the last token when unclosed). */
  endLine: number;
  start: number;
  typeStart: number;
  typeEnd: number;
  /** Offset of `(`. */
  open: number;
  /** Offset of the matching `)`, or -1 when the call is not closed. */
  close: number;
  args: CallArg[];
  /**
   * Why the call's text cannot be edited safely (a missing `)`, brackets that do not match, an
   * argument that runs into the next line), or null. The form never rewrites such a call.
   */
  problem: string | null;
  /** Offset just after the call's last parsed character (its `)` when closed). */
  end: number;
}

export class RewriteError extends Error {}

const OPENERS = new Set(['(', '[', '{']);
const CLOSERS = new Set([')', ']', '}']);

/** Every `name = type(...)` step in the source, in order (also those inside blocks). */
export function parseSteps(source: string): StepCall[] {
  const toks = tokenize(source);
  const steps: StepCall[] = [];
  let atLineStart = true;
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i];
    if (t.kind === 'newline') {
      atLineStart = true;
      continue;
    }
    if (t.kind === 'ws') continue;
    if (atLineStart && t.kind === 'ident') {
      const step = matchStep(source, toks, i);
      if (step) {
        steps.push(step.call);
        i = step.next - 1;
        atLineStart = false;
        continue;
      }
    }
    // `{` and `}` open and close blocks; a step may follow them on the same line.
    atLineStart = t.kind === 'punct' && (t.text === '{' || t.text === '}');
  }
  return steps;
}

function nextSignificant(toks: Token[], i: number, allowNewline = false): number {
  while (
    i < toks.length &&
    (toks[i].kind === 'ws' || toks[i].kind === 'comment' || (allowNewline && toks[i].kind === 'newline'))
  )
    i++;
  return i;
}

function matchStep(source: string, toks: Token[], i: number): { call: StepCall; next: number } | null {
  // The name: identifiers and `{var}` templates glued together (`rsi_{w}`).
  let j = i;
  let name = '';
  while (j < toks.length && (toks[j].kind === 'ident' || (toks[j].kind === 'punct' && '{}'.includes(toks[j].text)))) {
    name += toks[j].text;
    j++;
  }
  j = nextSignificant(toks, j);
  if (toks[j]?.kind !== 'punct' || toks[j].text !== '=') return null;
  j = nextSignificant(toks, j + 1);
  const typeTok = toks[j];
  if (typeTok?.kind !== 'ident') return null;
  j = nextSignificant(toks, j + 1);
  if (toks[j]?.kind !== 'punct' || toks[j].text !== '(') return null;
  const open = toks[j].start;
  const { args, close, next, problem } = parseArgs(source, toks, j + 1);
  const lastEnd = close >= 0 ? close : lastSignificantEnd(toks, next, open);
  return {
    call: {
      name,
      type: typeTok.text,
      line: positionAt(source, toks[i].start).line,
      endLine: positionAt(source, lastEnd).line,
      start: toks[i].start,
      typeStart: typeTok.start,
      typeEnd: typeTok.end,
      open,
      close,
      args,
      problem,
      end: close >= 0 ? close + 1 : lastEnd,
    },
    next,
  };
}

function lastSignificantEnd(toks: Token[], next: number, fallback: number): number {
  for (let k = next - 1; k >= 0; k--) {
    const t = toks[k];
    if (t.kind !== 'ws' && t.kind !== 'newline' && t.kind !== 'comment') return t.end;
  }
  return fallback;
}

const PAIRS: Record<string, string> = { ')': '(', ']': '[', '}': '{' };

const MISSING_CLOSE = 'the call is not closed: a “)” is missing';

/**
 * The arguments of a call from just after its `(`. Stops at the matching `)`; an unclosed call
 * stops where its text evidently ends (a line break after a complete argument that is not
 * followed by `,` or `)`, a closer that does not match, the end of the file) and says why.
 */
function parseArgs(
  source: string,
  toks: Token[],
  i: number,
): { args: CallArg[]; close: number; next: number; problem: string | null } {
  const args: CallArg[] = [];
  const stack: string[] = [];
  let current: Token[] = [];
  let problem: string | null = null;
  const finish = (comma: number) => {
    if (current.length > 0) args.push(makeArg(source, current, comma));
    current = [];
  };
  for (; i < toks.length; i++) {
    const t = toks[i];
    if (t.kind === 'newline' && stack.length === 0 && current.length > 0) {
      const k = nextSignificant(toks, i + 1, true);
      const n = toks[k];
      if (!(n?.kind === 'punct' && (n.text === ')' || n.text === ','))) {
        problem = MISSING_CLOSE; // the next line is another statement
        break;
      }
      continue;
    }
    if (t.kind === 'ws' || t.kind === 'newline' || t.kind === 'comment') continue;
    if (t.kind === 'punct' && OPENERS.has(t.text)) stack.push(t.text);
    else if (t.kind === 'punct' && CLOSERS.has(t.text)) {
      if (stack.length === 0) {
        if (t.text !== ')') {
          problem = `“${t.text}” closes nothing here: a “)” is missing`;
          break;
        }
        finish(-1);
        return { args, close: t.start, next: i + 1, problem: argProblem(args) };
      }
      if (stack.pop() !== PAIRS[t.text]) {
        problem = `the brackets do not match at “${t.text}”`;
        i++;
        break;
      }
    } else if (stack.length === 0 && t.kind === 'punct' && t.text === ',') {
      finish(t.start);
      continue;
    }
    current.push(t);
  }
  finish(-1);
  return { args, close: -1, next: i, problem: problem ?? MISSING_CLOSE };
}

/** An argument with a second top-level `=` (`window=10 slow = ...`) is not one argument. */
function argProblem(args: CallArg[]): string | null {
  for (const a of args) {
    const inner = tokenize(a.valueText);
    let depth = 0;
    for (const t of inner) {
      if (t.kind === 'punct' && OPENERS.has(t.text)) depth++;
      else if (t.kind === 'punct' && CLOSERS.has(t.text)) depth--;
      else if (depth === 0 && t.kind === 'punct' && t.text === '=') return `the argument “${a.valueText.trim()}” is not one value`;
    }
  }
  return null;
}

function makeArg(source: string, toks: Token[], comma: number): CallArg {
  const start = toks[0].start;
  const end = toks[toks.length - 1].end;
  const isKw = toks.length >= 2 && toks[0].kind === 'ident' && toks[1].kind === 'punct' && toks[1].text === '=';
  if (!isKw) {
    return { key: null, start, end, valueStart: start, valueEnd: end, valueText: source.slice(start, end), comma };
  }
  const valueStart = toks.length > 2 ? toks[2].start : toks[1].end;
  return {
    key: toks[0].text,
    start,
    end,
    valueStart,
    valueEnd: end,
    valueText: source.slice(valueStart, end),
    comma,
  };
}

/** The step whose text spans the 1-based line, or null. */
export function stepAtLine(source: string, line: number): StepCall | null {
  return parseSteps(source).find((s) => s.line <= line && line <= s.endLine) ?? null;
}

/** The step called `name`, or null. */
export function findStep(source: string, name: string): StepCall | null {
  return parseSteps(source).find((s) => s.name === name) ?? null;
}

function resolve(source: string, target: number | string): StepCall {
  const step = typeof target === 'number' ? stepAtLine(source, target) : findStep(source, target);
  if (!step) throw new RewriteError(`no step ${typeof target === 'number' ? `on line ${target}` : `named ${target}`}`);
  return step;
}

/**
 * Set (`valueText` a DSL value) or remove (`valueText` null) the `key=` argument of the step on
 * `target` (a 1-based line or a step name). Returns the new source; everything else is kept.
 */
export function setArg(source: string, target: number | string, key: string, valueText: string | null): string {
  const step = resolve(source, target);
  if (step.problem) throw new RewriteError(`step ${step.name} does not parse (${step.problem}): fix it in the editor`);
  const idx = step.args.findIndex((a) => a.key === key);
  let out: string;
  if (idx >= 0) {
    if (valueText === null) out = removeArg(source, step, idx);
    else {
      const a = step.args[idx];
      out = source.slice(0, a.valueStart) + valueText + source.slice(a.valueEnd);
    }
  } else if (valueText === null) return source;
  else out = insertArg(source, step, `${key}=${valueText}`);
  return confined(source, out, step);
}

/**
 * `out` if it differs from `source` only inside the step's call (from the start of its line to
 * the end of the line of its `)`): a rewrite never touches text it did not parse.
 */
function confined(source: string, out: string, step: StepCall): string {
  const from = lineStartOf(source, step.start);
  const to = lineEndOf(source, step.end);
  const tail = source.length - to;
  const ok = out.slice(0, from) === source.slice(0, from) && out.length - tail >= from && out.slice(out.length - tail) === source.slice(to);
  if (!ok) throw new RewriteError(`the edit would change text outside step ${step.name}`);
  return out;
}

const lineStartOf = (src: string, off: number) => src.lastIndexOf('\n', off - 1) + 1;
const lineEndOf = (src: string, off: number) => {
  const nl = src.indexOf('\n', off);
  return nl === -1 ? src.length : nl;
};

/** True when the argument (and its comma) has its line(s) to itself. */
function ownsLines(src: string, a: CallArg): boolean {
  const before = src.slice(lineStartOf(src, a.start), a.start);
  const tail = a.comma >= 0 ? a.comma + 1 : a.end;
  const after = src.slice(tail, lineEndOf(src, tail));
  return /^[ \t]*$/.test(before) && /^[ \t]*(#.*)?$/.test(after);
}

function insertArg(src: string, step: StepCall, text: string): string {
  if (step.close < 0) throw new RewriteError(`the call of step ${step.name} is not closed`);
  const { args } = step;
  if (args.length === 0) {
    const inner = src.slice(step.open + 1, step.close);
    if (/^\s*$/.test(inner)) return src.slice(0, step.open + 1) + text + src.slice(step.close);
    return src.slice(0, step.open + 1) + text + src.slice(step.open + 1);
  }
  const last = args[args.length - 1];
  const multiline = src.slice(last.end, step.close).includes('\n') && ownsLines(src, last);
  if (!multiline) return src.slice(0, last.end) + ', ' + text + src.slice(last.end);
  const indent = /^[ \t]*/.exec(src.slice(lineStartOf(src, last.start)))![0];
  const trailing = last.comma >= 0;
  const at = lineEndOf(src, trailing ? last.comma : last.end);
  const inserted = src.slice(0, at) + '\n' + indent + text + (trailing ? ',' : '') + src.slice(at);
  return trailing ? inserted : inserted.slice(0, last.end) + ',' + inserted.slice(last.end);
}

function removeArg(src: string, step: StepCall, idx: number): string {
  const { args } = step;
  const a = args[idx];
  const prev = idx > 0 ? args[idx - 1] : null;
  const isLast = idx === args.length - 1;
  if (src.slice(step.open, step.close < 0 ? src.length : step.close).includes('\n') && ownsLines(src, a)) {
    const from = lineStartOf(src, a.start);
    const to = Math.min(lineEndOf(src, a.comma >= 0 ? a.comma + 1 : a.end) + 1, src.length);
    let out = src.slice(0, from) + src.slice(to);
    // The last argument without a trailing comma: its predecessor must lose its comma too.
    if (isLast && a.comma < 0 && prev && prev.comma >= 0) out = out.slice(0, prev.comma) + out.slice(prev.comma + 1);
    return out;
  }
  if (!isLast) return src.slice(0, a.start) + src.slice(args[idx + 1].start);
  if (prev) {
    const to = a.comma >= 0 ? a.comma : a.end;
    return src.slice(0, prev.end) + src.slice(to);
  }
  const to = a.comma >= 0 ? a.comma + 1 : a.end;
  return src.slice(0, a.start) + src.slice(to);
}

/** Apply a change as the smallest single replacement (for editor edits that keep undo tidy). */
export function minimalEdit(before: string, after: string): { start: number; end: number; text: string } {
  let p = 0;
  const max = Math.min(before.length, after.length);
  while (p < max && before[p] === after[p]) p++;
  let s = 0;
  while (s < max - p && before[before.length - 1 - s] === after[after.length - 1 - s]) s++;
  return { start: p, end: before.length - s, text: after.slice(p, after.length - s) };
}

export { lineStarts };

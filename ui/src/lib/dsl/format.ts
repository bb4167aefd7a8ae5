/**
 * A conservative formatter for `.af` text: re-indents block bodies by four spaces, strips
 * trailing whitespace, collapses runs of blank lines, aligns the `=` of consecutive one-line
 * steps and ends the file with one newline. It never touches strings, comments or arguments,
 * and leaves continuation lines of multi-line calls alone.
 */
import { tokenize } from './lexer';

export function formatSource(src: string): string {
  const lines = src.replace(/\r\n/g, '\n').split('\n');
  const toks = tokenize(src.replace(/\r\n/g, '\n'));
  // per line: bracket depth at its start, split by kind
  const braceAt: number[] = [];
  const parenAt: number[] = [];
  let brace = 0;
  let paren = 0;
  let line = 0;
  braceAt[0] = 0;
  parenAt[0] = 0;
  for (const t of toks) {
    if (t.kind === 'newline') {
      line++;
      braceAt[line] = brace;
      parenAt[line] = paren;
    } else if (t.kind === 'punct') {
      if (t.text === '{') brace++;
      else if (t.text === '}') brace = Math.max(0, brace - 1);
      else if (t.text === '(' || t.text === '[') paren++;
      else if (t.text === ')' || t.text === ']') paren = Math.max(0, paren - 1);
    }
  }
  const out: string[] = [];
  lines.forEach((raw, i) => {
    const text = raw.replace(/[ \t]+$/, '');
    if (parenAt[i] > 0) {
      out.push(text); // a continuation line: leave it exactly as written
      return;
    }
    const body = text.trimStart();
    const depth = body.startsWith('}') ? Math.max(0, braceAt[i] - 1) : braceAt[i];
    out.push(body === '' ? '' : '    '.repeat(depth) + body);
  });
  const collapsed = out.filter((l, i) => !(l === '' && (i === 0 ? false : out[i - 1] === '')));
  while (collapsed.length && collapsed[collapsed.length - 1] === '') collapsed.pop();
  return alignSteps(collapsed).join('\n') + '\n';
}

const STEP = /^(\s*)([A-Za-z_][\w{}]*)\s*=\s*([A-Za-z_]\w*\(.*\))\s*(#.*)?$/;

/** Align `=` within runs of consecutive single-line steps at the same indentation. */
function alignSteps(lines: string[]): string[] {
  const out = [...lines];
  let i = 0;
  while (i < out.length) {
    const m = STEP.exec(out[i]);
    if (!m || !balanced(m[3])) {
      i++;
      continue;
    }
    let j = i;
    const run: RegExpExecArray[] = [];
    while (j < out.length) {
      const mm = STEP.exec(out[j]);
      if (!mm || mm[1] !== m[1] || !balanced(mm[3])) break;
      run.push(mm);
      j++;
    }
    const width = Math.max(...run.map((r) => r[2].length));
    run.forEach((r, k) => {
      out[i + k] = `${r[1]}${r[2].padEnd(width)} = ${r[3]}${r[4] ? '  ' + r[4] : ''}`;
    });
    i = j;
  }
  return out;
}

function balanced(call: string): boolean {
  let d = 0;
  for (const t of tokenize(call)) {
    if (t.kind === 'comment') return false;
    if (t.kind === 'punct' && '([{'.includes(t.text)) d++;
    if (t.kind === 'punct' && ')]}'.includes(t.text)) d--;
    if (d < 0) return false;
  }
  return d === 0;
}

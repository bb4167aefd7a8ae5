/**
 * DSL literal values <-> JavaScript values, for the node-config form: read what a step's
 * argument says, and write back what the form holds.
 */
import { significant, tokenize, type Token } from './lexer';

export type Parsed = { kind: 'literal'; value: unknown } | { kind: 'expr'; text: string };

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

/** Read one argument's value text: a literal (number, string, bool, none, date, list) or an expression. */
export function parseValue(text: string): Parsed {
  const toks = significant(tokenize(text));
  const state = { i: 0 };
  const value = literal(toks, state);
  if (value === NOT_LITERAL || state.i !== toks.length) return { kind: 'expr', text: text.trim() };
  return { kind: 'literal', value };
}

const NOT_LITERAL = Symbol('not a literal');

function literal(toks: Token[], st: { i: number }): unknown {
  const t = toks[st.i];
  if (!t) return NOT_LITERAL;
  st.i++;
  if (t.kind === 'number') return Number(t.text.replace(/_/g, ''));
  if (t.kind === 'punct' && t.text === '-') {
    const n = toks[st.i];
    if (n?.kind !== 'number') return NOT_LITERAL;
    st.i++;
    return -Number(n.text.replace(/_/g, ''));
  }
  if (t.kind === 'string') return unquote(t.text);
  if (t.kind === 'date' || t.kind === 'duration') return t.text;
  if (t.kind === 'ident') {
    if (t.text === 'true') return true;
    if (t.text === 'false') return false;
    if (t.text === 'none') return null;
    return NOT_LITERAL;
  }
  if (t.kind === 'punct' && t.text === '[') {
    const items: unknown[] = [];
    while (st.i < toks.length) {
      const c = toks[st.i];
      if (c.kind === 'punct' && c.text === ']') {
        st.i++;
        return items;
      }
      const v = literal(toks, st);
      if (v === NOT_LITERAL) return NOT_LITERAL;
      items.push(v);
      const sep = toks[st.i];
      if (sep?.kind === 'punct' && sep.text === ',') st.i++;
      else if (!(sep?.kind === 'punct' && sep.text === ']')) return NOT_LITERAL;
    }
    return NOT_LITERAL;
  }
  return NOT_LITERAL;
}

function unquote(text: string): string {
  const q = text[0];
  const body = text.endsWith(q) && text.length >= 2 ? text.slice(1, -1) : text.slice(1);
  return body.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, e: string) => {
    if (e.length === 5) return String.fromCharCode(parseInt(e.slice(1), 16));
    return ({ n: '\n', t: '\t', r: '\r' } as Record<string, string>)[e] ?? e;
  });
}

/** Write a value as DSL text. `format: "date"` writes a bare date literal (`2021-01-01`). */
export function formatValue(v: unknown, format?: string): string {
  if (v === null || v === undefined) return 'none';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError(`${v} cannot be written in the DSL`);
    return String(v);
  }
  if (typeof v === 'string') {
    if ((format === 'date' || format === 'date-time') && DATE_ONLY.test(v)) return v;
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map((x) => formatValue(x)).join(', ')}]`;
  throw new TypeError(`cannot write ${typeof v} as a DSL value`);
}

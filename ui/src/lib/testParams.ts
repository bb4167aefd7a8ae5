/**
 * The node editor's Test run params form: one field per row of the manifest's params table
 * (customNodes.ts `ParamRow`), pre-filled with the row's default, and what the fields hold read
 * back into the `params` object `POST /api/custom-nodes/test-run` takes — numbers as numbers,
 * booleans as booleans — or the reasons it cannot be. Pure: the page keeps only the values the
 * user typed (`Typed`), so an untouched field follows its default as the table changes.
 */
import type { ParamRow } from './customNodes';

export type FieldKind = 'number' | 'integer' | 'boolean' | 'string' | 'choice' | 'json';

export interface ParamField {
  name: string;
  kind: FieldKind;
  /** The field's starting value: the row's default as typed (a checkbox: the default's truth). */
  initial: string | boolean;
  /** The row's default as text ('' when it has none): the placeholder of a cleared field. */
  defaultText: string;
  min: number | null;
  max: number | null;
  required: boolean;
  description: string;
  /** The allowed values (`enum`), as the schema lists them; null when any value goes. */
  options: unknown[] | null;
}

/** What a field holds: text (a checkbox: a boolean). */
export type FieldValue = string | boolean;
/** The values the user typed, by param name. */
export type Typed = Record<string, FieldValue>;

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function bound(text: string): number | null {
  const s = text.trim().replace(/_/g, '');
  if (s === '') return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

function kindOf(r: ParamRow, options: unknown[] | null): FieldKind {
  if (r.type === 'number' || r.type === 'integer' || r.type === 'boolean') return r.type;
  if (r.type === 'string') return options && options.every((o) => typeof o === 'string') ? 'choice' : 'string';
  return 'json'; // a type the table does not edit (array, object …): typed as JSON
}

/**
 * The fields of the params table's rows, in order. Rows without a usable name (empty, not an
 * identifier, a repeat) have no field: the manifest check reports them and blocks a test run.
 */
export function paramFields(rows: ParamRow[]): ParamField[] {
  const seen = new Set<string>();
  const out: ParamField[] = [];
  for (const r of rows) {
    const name = r.name.trim();
    if (!IDENT.test(name) || seen.has(name)) continue;
    seen.add(name);
    const options = Array.isArray(r.extra.enum) ? (r.extra.enum as unknown[]) : null;
    const kind = kindOf(r, options);
    const numeric = kind === 'number' || kind === 'integer';
    out.push({
      name,
      kind,
      initial: kind === 'boolean' ? r.default.trim().toLowerCase() === 'true' : r.default,
      defaultText: r.default,
      min: numeric ? bound(r.min) : null,
      max: numeric ? bound(r.max) : null,
      required: r.required,
      description: r.description.trim(),
      options,
    });
  }
  return out;
}

/** What a field shows: the value typed into it, else its starting value. */
export function fieldValue(f: ParamField, typed: Typed): FieldValue {
  const v = typed[f.name];
  return v !== undefined && typeof v === typeof f.initial ? v : f.initial;
}

/**
 * `typed` without the values of params that are gone (removed, renamed) or that changed between
 * a checkbox and a text field; the same object when nothing goes, so a caller can compare.
 */
export function pruneTyped(typed: Typed, fields: ParamField[]): Typed {
  const keep = new Map(fields.map((f) => [f.name, f]));
  const stale = Object.keys(typed).filter((k) => {
    const f = keep.get(k);
    return !f || typeof typed[k] !== typeof f.initial;
  });
  if (!stale.length) return typed;
  const out = { ...typed };
  for (const k of stale) delete out[k];
  return out;
}

const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

/** One field's value as JSON (`undefined`: leave the param out) or why it cannot be sent. */
function readField(f: ParamField, v: FieldValue, unreadable: boolean): { value?: unknown; error?: string } {
  if (f.kind === 'boolean') return { value: v === true };
  const text = typeof v === 'string' ? v : String(v);
  if (f.kind === 'string' || f.kind === 'choice') {
    // an empty text is a value, except for a param with no default: then it is left out
    if (text === '' && f.defaultText === '' && !f.required) return {};
    return { value: text };
  }
  if (text.trim() === '' && !unreadable) {
    // left out: the sandbox fills in the default
    if (f.required && f.defaultText.trim() === '') return { error: 'required' };
    return {};
  }
  if (f.kind === 'json') {
    try {
      return { value: JSON.parse(text) };
    } catch {
      return { error: 'not valid JSON' };
    }
  }
  const n = unreadable ? NaN : Number(text.trim());
  if (!Number.isFinite(n)) return { error: 'not a number' };
  if (f.kind === 'integer' && !Number.isInteger(n)) return { error: 'not an integer' };
  if (f.min !== null && n < f.min) return { error: `below the minimum ${f.min}` };
  if (f.max !== null && n > f.max) return { error: `above the maximum ${f.max}` };
  return { value: n };
}

/**
 * The params object a test run sends, and the errors (by param name) that keep it from being
 * sent. A field left empty is left out (the sandbox then uses the default). `unreadable`: number
 * fields whose text the browser could not read as a number (`validity.badInput`: its value is ''
 * then, whatever was typed).
 */
export function readParams(
  fields: ParamField[],
  typed: Typed,
  unreadable: Record<string, boolean> = {},
): { params: Record<string, unknown>; errors: Record<string, string> } {
  const params: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const f of fields) {
    // only a value still typed can be unreadable (a param removed and added back starts afresh)
    const bad = unreadable[f.name] === true && typed[f.name] !== undefined;
    const { value, error } = readField(f, fieldValue(f, typed), bad);
    if (error === undefined && value !== undefined && f.options && !f.options.some((o) => JSON.stringify(o) === JSON.stringify(value)))
      errors[f.name] = `one of ${f.options.map(show).join(', ')}`;
    else if (error !== undefined) errors[f.name] = error;
    else if (value !== undefined) params[f.name] = value;
  }
  return { params, errors };
}

/** The errors as one sentence for the Test run message: "span: above the maximum 100; …". */
export function paramsErrorText(errors: Record<string, string>): string {
  return Object.entries(errors)
    .map(([name, msg]) => `${name}: ${msg}`)
    .join('; ');
}

/**
 * Custom nodes (docs/custom-nodes.md): the API's shapes and the pure logic of the node editor —
 * the manifest form ↔ manifest JSON, the params table ↔ JSON Schema, versions, 422 errors by
 * field and test-run previews. No Svelte, no fetch: unit-tested on its own. The response shapes
 * come from the generated OpenAPI types (src/generated/api.d.ts); `Manifest` is the editor's
 * (what it sends as `ManifestIn`).
 */
import type { components } from '../generated/api';
import type { Out } from './types';

type S = components['schemas'];
export type Language = S['ManifestIn']['language'];

export type TemplateKind = 'indicator' | 'signal' | 'transform';
export const LANGUAGES: { id: Language; label: string }[] = [
  { id: 'python', label: 'Python' },
  { id: 'javascript', label: 'JavaScript' },
  { id: 'wasm', label: 'WebAssembly' },
];
export const INPUT_TYPES = ['ohlcv', 'series', 'signal', 'frame', 'equity'] as const;
/** `model`: a network trained with torch in the sandbox (Python nodes only). */
export const OUTPUT_TYPES = ['series', 'signal', 'frame', 'metrics', 'model'] as const;
export const PARAM_TYPES = ['number', 'integer', 'boolean', 'string'] as const;
export type ParamType = (typeof PARAM_TYPES)[number];

export interface ManifestPort {
  name: string;
  type: string;
  doc?: string;
  columns?: string[] | null;
}

export interface Resources {
  memory_mb?: number | null;
  cpus?: number | null;
  wall_s?: number | null;
  output_mb?: number | null;
}

export interface Manifest {
  name: string;
  version?: string;
  language: Language;
  summary?: string;
  inputs: ManifestPort[];
  outputs: ManifestPort[];
  params_schema?: Record<string, unknown>;
  resources?: Resources;
  code: string;
  code_format?: 'source' | 'wat' | 'wasm_base64';
}

/** The editor's manifest must be what `POST /api/custom-nodes` accepts (checked by tsc). */
export const asManifestIn = (m: Manifest): S['ManifestIn'] => m;

/** The look-ahead verdict of a node version (API: `Lookahead`). */
export type Lookahead = Out<S['Lookahead']>;
export type InUse = Out<S['InUse']>;
/** A stored version; its manifest as the editor handles it (the API's `Manifest`). */
export interface NodeVersion extends Omit<Out<S['NodeVersion']>, 'manifest' | 'lookahead' | 'in_use_by'> {
  manifest: Manifest;
  lookahead: Lookahead | null;
  in_use_by: InUse[];
}
export type CustomNodeSummary = Out<S['CustomNodeSummary']>;
export interface CustomNode extends Omit<Out<S['CustomNodePublic']>, 'version'> {
  version: NodeVersion;
}
export interface Template extends Omit<Out<S['NodeTemplate']>, 'manifest' | 'kind'> {
  kind: TemplateKind;
  manifest: Manifest;
}
export type Preview = Out<S['Preview']>;
export type TestRunResult = Out<S['NodeTestRunResult']>;

/** Where a failed test run broke in the node's code: the sandbox ends its message with
 * "(line N of the node's code)". The message without the node prefix goes on the marker. */
export function codeErrorMark(result: TestRunResult | null): { line: number; message: string } | null {
  if (!result || result.status !== 'failed' || !result.error) return null;
  const m = /^(?:node '[^']*' failed \(exit \d+\): )?(.*) \(line (\d+) of the node's code\)$/s.exec(result.error);
  return m ? { line: Number(m[2]), message: m[1] } : null;
}

export type ManifestChange = Out<S['ManifestChange']>;
export type NodeDiff = Out<S['NodeDiff']>;

// ---- versions ---------------------------------------------------------------------------------

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$/;

export function isSemver(v: string): boolean {
  return SEMVER.test(v);
}

/** The version a save defaults to: patch + 1 (a pre-release `1.2.3-rc.1` becomes `1.2.3`). */
export function nextPatch(v: string): string {
  const m = SEMVER.exec(v.trim());
  if (!m) return v;
  if (m[4]) return `${m[1]}.${m[2]}.${m[3]}`;
  return `${m[1]}.${m[2]}.${Number(m[3]) + 1}`;
}

/** `1.2.3` → `1.2`: the caret range a `use` line pins by default. */
export function majorMinor(v: string): string {
  const m = SEMVER.exec(v.trim());
  return m ? `${m[1]}.${m[2]}` : v;
}

/** Compare two semantic versions (pre-releases sort before their release). */
export function compareSemver(a: string, b: string): number {
  const x = SEMVER.exec(a);
  const y = SEMVER.exec(b);
  if (!x || !y) return a.localeCompare(b);
  for (let i = 1; i <= 3; i++) {
    const d = Number(x[i]) - Number(y[i]);
    if (d) return d;
  }
  if (x[4] === y[4]) return 0;
  if (!x[4]) return 1;
  if (!y[4]) return -1;
  return x[4].localeCompare(y[4], undefined, { numeric: true });
}

export function useLine(name: string, version: string): string {
  return `use ${name}@${majorMinor(version)}`;
}

// ---- params table ↔ JSON Schema ----------------------------------------------------------------

/** One row of the params table; numbers kept as the text typed so a half-typed value survives. */
export interface ParamRow {
  name: string;
  type: string;
  default: string;
  min: string;
  max: string;
  description: string;
  required: boolean;
  /** Keys of the property the table does not edit (enum, format …), kept as they were. */
  extra: Record<string, unknown>;
}

export interface FieldError {
  /** `params.2.default`, `outputs.0.columns`, `name` … */
  field: string;
  msg: string;
  /** For `code`: where the syntax error is (1-based), as the API found it on save. */
  line?: number;
  col?: number;
}

const TABLE_KEYS = new Set(['type', 'default', 'minimum', 'maximum', 'description']);

export function emptyParamRow(): ParamRow {
  return { name: '', type: 'number', default: '', min: '', max: '', description: '', required: false, extra: {} };
}

const text = (v: unknown): string => (v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v));

/** The rows of a params schema (`{type: object, properties, required}`), in declaration order. */
export function schemaToRows(schema: Record<string, unknown> | null | undefined): ParamRow[] {
  const props = (schema?.properties ?? {}) as Record<string, Record<string, unknown>>;
  const required = new Set((schema?.required as string[] | undefined) ?? []);
  return Object.entries(props).map(([name, p]) => {
    const extra: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(p ?? {})) if (!TABLE_KEYS.has(k)) extra[k] = v;
    const type = typeof p?.type === 'string' ? p.type : 'number';
    return {
      name,
      type,
      default: type === 'string' && typeof p?.default === 'string' ? p.default : text(p?.default),
      min: text(p?.minimum),
      max: text(p?.maximum),
      description: typeof p?.description === 'string' ? p.description : '',
      required: required.has(name),
      extra,
    };
  });
}

function parseNumber(raw: string, integer: boolean): number | string {
  const s = raw.trim().replace(/_/g, '');
  if (s === '') return '';
  const n = Number(s);
  if (!Number.isFinite(n)) return `"${raw}" is not a number`;
  if (integer && !Number.isInteger(n)) return `"${raw}" is not an integer`;
  return n;
}

/**
 * The params JSON Schema of the table rows, and the errors that keep it from being built (a
 * row's `field` is `params.<i>.<column>`). Other keys of the `base` schema are kept.
 */
export function rowsToSchema(rows: ParamRow[], base: Record<string, unknown> = {}): { schema: Record<string, unknown>; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  const seen = new Set<string>();
  rows.forEach((r, i) => {
    const at = (col: string, msg: string) => errors.push({ field: `params.${i}.${col}`, msg });
    const name = r.name.trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return at('name', name ? `"${name}" is not an identifier` : 'a param needs a name');
    if (seen.has(name)) return at('name', `"${name}" appears twice`);
    seen.add(name);
    const prop: Record<string, unknown> = { type: r.type, ...r.extra };
    const numeric = r.type === 'number' || r.type === 'integer';
    if (r.default.trim() !== '' || (r.type === 'string' && r.default !== '')) {
      if (numeric) {
        const v = parseNumber(r.default, r.type === 'integer');
        if (typeof v === 'string') at('default', v);
        else prop.default = v;
      } else if (r.type === 'boolean') {
        const v = r.default.trim().toLowerCase();
        if (v === 'true' || v === 'false') prop.default = v === 'true';
        else at('default', 'true or false');
      } else if (r.type === 'string') prop.default = r.default;
      else {
        try {
          prop.default = JSON.parse(r.default);
        } catch {
          at('default', 'not valid JSON');
        }
      }
    }
    for (const [col, key] of [
      ['min', 'minimum'],
      ['max', 'maximum'],
    ] as const) {
      if (r[col].trim() === '') continue;
      if (!numeric) {
        at(col, `only numbers have a ${key}`);
        continue;
      }
      const v = parseNumber(r[col], false);
      if (typeof v === 'string') at(col, v);
      else prop[key] = v;
    }
    if (typeof prop.minimum === 'number' && typeof prop.maximum === 'number' && prop.minimum > prop.maximum) at('max', 'max is below min');
    if (typeof prop.default === 'number') {
      if (typeof prop.minimum === 'number' && prop.default < prop.minimum) at('default', `below the minimum ${prop.minimum}`);
      if (typeof prop.maximum === 'number' && prop.default > prop.maximum) at('default', `above the maximum ${prop.maximum}`);
    }
    if (r.description.trim()) prop.description = r.description.trim();
    properties[name] = prop;
    if (r.required) required.push(name);
  });
  const { properties: _p, required: _r, ...rest } = base;
  const schema: Record<string, unknown> = { ...rest, type: 'object', properties };
  if (required.length) schema.required = required;
  return { schema, errors };
}

// ---- the manifest form ----------------------------------------------------------------------

export interface PortRow {
  name: string;
  type: string;
  /** A frame output's columns as typed: `ret, range`. */
  columns: string;
  doc: string;
}

export interface ManifestForm {
  name: string;
  version: string;
  language: Language;
  summary: string;
  inputs: PortRow[];
  outputs: PortRow[];
  params: ParamRow[];
  /** The params schema minus its properties (kept through a round trip). */
  schemaBase: Record<string, unknown>;
  memory_mb: string;
  wall_s: string;
  /** Resource requests the form does not edit (cpus, output_mb), kept as they were. */
  otherResources: Resources;
  code: string;
  code_format: 'source' | 'wat' | 'wasm_base64';
}

export function splitColumns(s: string): string[] {
  return s
    .split(',')
    .map((c) => c.trim())
    .filter(Boolean);
}

const toPortRow = (p: ManifestPort): PortRow => ({ name: p.name, type: p.type, columns: (p.columns ?? []).join(', '), doc: p.doc ?? '' });

export function formFromManifest(m: Manifest): ManifestForm {
  const { memory_mb, wall_s, ...otherResources } = m.resources ?? {};
  const { properties: _p, required: _r, ...schemaBase } = m.params_schema ?? { type: 'object' };
  return {
    name: m.name,
    version: m.version ?? '1.0.0',
    language: m.language,
    summary: m.summary ?? '',
    inputs: m.inputs.map(toPortRow),
    outputs: m.outputs.map(toPortRow),
    params: schemaToRows(m.params_schema),
    schemaBase,
    memory_mb: memory_mb == null ? '' : String(memory_mb),
    wall_s: wall_s == null ? '' : String(wall_s),
    otherResources: Object.fromEntries(Object.entries(otherResources).filter(([, v]) => v != null)),
    code: m.code,
    code_format: m.code_format ?? (m.language === 'wasm' ? 'wat' : 'source'),
  };
}

const PORT_NAME = /^[a-z][a-z0-9_]{0,63}$/;
export const NODE_NAME = PORT_NAME;

function portsOf(rows: PortRow[], side: 'inputs' | 'outputs', allowed: readonly string[], errors: FieldError[]): ManifestPort[] {
  return rows.map((r, i) => {
    const name = r.name.trim();
    if (!PORT_NAME.test(name)) errors.push({ field: `${side}.${i}.name`, msg: name ? `"${name}" must be lower_snake_case` : 'a port needs a name' });
    if (!allowed.includes(r.type)) errors.push({ field: `${side}.${i}.type`, msg: `${side === 'inputs' ? 'an input' : 'an output'} cannot be a ${r.type}` });
    const port: ManifestPort = { name, type: r.type };
    if (r.doc.trim()) port.doc = r.doc.trim();
    if (side === 'outputs' && r.type === 'frame') {
      const cols = splitColumns(r.columns);
      if (!cols.length) errors.push({ field: `${side}.${i}.columns`, msg: 'a frame output lists its columns' });
      port.columns = cols;
    }
    return port;
  });
}

/** The manifest the form describes (what POST/PUT and test-run send) and what is wrong with it. */
export function buildManifest(f: ManifestForm, message?: string): { manifest: Manifest & { message?: string }; errors: FieldError[] } {
  const errors: FieldError[] = [];
  if (!NODE_NAME.test(f.name)) errors.push({ field: 'name', msg: 'lower_snake_case, starting with a letter, at most 64 characters' });
  if (f.version.trim() && !isSemver(f.version.trim())) errors.push({ field: 'version', msg: 'MAJOR.MINOR.PATCH, e.g. 1.0.1' });
  const inputs = portsOf(f.inputs, 'inputs', INPUT_TYPES, errors);
  const outputs = portsOf(f.outputs, 'outputs', OUTPUT_TYPES, errors);
  if (!outputs.length) errors.push({ field: 'outputs', msg: 'a node needs at least one output' });
  outputs.forEach((p, i) => {
    if (p.type === 'model' && f.language !== 'python') {
      errors.push({ field: `outputs.${i}.type`, msg: 'only a Python node can output a model (it trains with torch in the sandbox)' });
    }
  });
  const names = [...inputs, ...outputs].map((p) => p.name).filter(Boolean);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) errors.push({ field: 'outputs', msg: `port name "${dup}" is used twice` });
  const { schema, errors: pe } = rowsToSchema(f.params, f.schemaBase);
  errors.push(...pe);
  const resources: Resources = { ...f.otherResources };
  for (const key of ['memory_mb', 'wall_s'] as const) {
    if (f[key].trim() === '') continue;
    const v = parseNumber(f[key], key === 'memory_mb');
    if (typeof v === 'string' || v <= 0) errors.push({ field: `resources.${key}`, msg: typeof v === 'string' ? v : 'must be positive' });
    else resources[key] = v;
  }
  const manifest: Manifest & { message?: string } = {
    name: f.name,
    language: f.language,
    summary: f.summary,
    inputs,
    outputs,
    params_schema: schema,
    resources,
    code: f.code,
    code_format: f.code_format,
  };
  if (f.version.trim()) manifest.version = f.version.trim();
  if (message?.trim()) manifest.message = message.trim();
  return { manifest, errors };
}

/** The manifest fields two manifests differ in (code excluded): to tell "unsaved changes". */
export function sameManifest(a: Manifest, b: Manifest): boolean {
  const strip = (m: Manifest) => JSON.stringify({ ...m, version: undefined, message: undefined });
  return strip(a) === strip(b);
}

// ---- API errors by field ----------------------------------------------------------------------

/**
 * A 422's `{message, errors: [{loc, msg}]}` (or FastAPI's `[{loc, msg}]`) as field errors; the
 * `body` / `manifest` prefixes are dropped so `loc` reads like the manifest (`outputs.0.columns`).
 */
export function apiFieldErrors(detail: unknown): FieldError[] {
  const list = Array.isArray(detail)
    ? detail
    : detail && typeof detail === 'object' && Array.isArray((detail as { errors?: unknown }).errors)
      ? (detail as { errors: unknown[] }).errors
      : [];
  return list.map((e) => {
    const { loc, msg, line, col } = (e ?? {}) as { loc?: unknown[]; msg?: unknown; line?: unknown; col?: unknown };
    const path = (Array.isArray(loc) ? loc : []).map(String).filter((p, i) => !(i <= 1 && (p === 'body' || p === 'manifest')));
    const out: FieldError = { field: path.join('.') || 'manifest', msg: String(msg ?? e) };
    if (typeof line === 'number') out.line = line;
    if (typeof col === 'number') out.col = col;
    return out;
  });
}

/** A manifest field path as a person reads it: `params_schema.properties.span.type` → `param
 * 'span' type`, `outputs.0.type` → `output 1 type`; anything else unchanged. */
export function fieldLabel(field: string): string {
  const schema = /^params_schema\.properties\.([^.]+)(?:\.(.+))?$/.exec(field);
  if (schema) return `param '${schema[1]}'${schema[2] ? ' ' + schema[2] : ''}`;
  const row = /^(params|inputs|outputs)\.(\d+)(?:\.(.+))?$/.exec(field);
  if (row) {
    const what = { params: 'param', inputs: 'input', outputs: 'output' }[row[1]];
    return `${what} ${Number(row[2]) + 1}${row[3] ? ' ' + row[3] : ''}`;
  }
  const res = /^resources\.(.+)$/.exec(field);
  if (res) return `resources ${res[1]}`;
  return field;
}

/** The errors under a form section: `section` itself or `section.…`. */
export function errorsFor(errors: FieldError[], section: string): FieldError[] {
  return errors.filter((e) => e.field === section || e.field.startsWith(section + '.'));
}

/** The error message for exactly `field` (`params.0.default`), if any. */
export function errorAt(errors: FieldError[], field: string): string | undefined {
  return errors.find((e) => e.field === field)?.msg;
}

// ---- previews and diffs -----------------------------------------------------------------------

export type PreviewRow = { kind: 'row'; index: number; cells: unknown[] } | { kind: 'gap'; skipped: number };

/** A preview's head and tail as rows to show, with one gap row for what lies between. */
export function previewRows(p: Preview): PreviewRow[] {
  const head = p.head ?? [];
  const tail = p.tail ?? [];
  const out: PreviewRow[] = head.map((cells, i) => ({ kind: 'row', index: i, cells }));
  const firstTail = Math.max(head.length, p.rows - tail.length);
  const skipped = firstTail - head.length;
  if (skipped > 0) out.push({ kind: 'gap', skipped });
  tail.forEach((cells, j) => {
    const index = p.rows - tail.length + j;
    if (index >= head.length) out.push({ kind: 'row', index, cells });
  });
  return out;
}

/** A cell of a preview as text: numbers to 6 significant digits, null/NaN as `NaN`. */
export function cellText(v: unknown): string {
  if (v === null || v === undefined) return 'NaN';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : Number(v.toPrecision(6)).toString();
  if (typeof v === 'string') return v.replace(/T00:00:00(\.000)?(Z|\+00:00)?$/, '');
  return JSON.stringify(v);
}

export type DiffKind = 'file' | 'hunk' | 'add' | 'del' | 'ctx';
export interface DiffLine {
  kind: DiffKind;
  text: string;
  old: number | null;
  new: number | null;
}

/** A unified diff as lines with their kind and old/new line numbers. */
export function parseUnified(unified: string): DiffLine[] {
  const out: DiffLine[] = [];
  let o = 0;
  let n = 0;
  for (const line of unified.replace(/\n$/, '').split('\n')) {
    if (line === '' && out.length === 0) continue;
    if (line.startsWith('+++') || line.startsWith('---')) out.push({ kind: 'file', text: line, old: null, new: null });
    else if (line.startsWith('@@')) {
      const m = /@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
      if (m) {
        o = Number(m[1]);
        n = Number(m[2]);
      }
      out.push({ kind: 'hunk', text: line, old: null, new: null });
    } else if (line.startsWith('+')) out.push({ kind: 'add', text: line, old: null, new: n++ });
    else if (line.startsWith('-')) out.push({ kind: 'del', text: line, old: o++, new: null });
    else if (line.startsWith('\\')) out.push({ kind: 'ctx', text: line, old: null, new: null });
    else out.push({ kind: 'ctx', text: line, old: o++, new: n++ });
  }
  return out;
}

/** A manifest value for the changes table: compact JSON, strings as they are, absent as `—`. */
export function changeText(v: unknown): string {
  if (v === undefined || v === null) return '—';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** The look-ahead verdict's colour: pass green, fail red, error/skipped neutral. */
export function verdictTone(status: string | null | undefined): 'success' | 'error' | 'neutral' {
  return status === 'pass' ? 'success' : status === 'fail' ? 'error' : 'neutral';
}

/** A 409 on delete as a sentence: "in use by pipeline a, b" when the API lists them. */
export function inUseMessage(detail: unknown, fallback: string): string {
  const d = detail as { message?: string; in_use_by?: InUse[] } | string | null;
  if (typeof d === 'string') return d;
  const users = Array.isArray(d?.in_use_by) ? d!.in_use_by.map((u) => u.pipeline_name ?? String(u.pipeline_id)) : [];
  const msg = d?.message ?? fallback;
  return users.length && !users.every((u) => msg.includes(u)) ? `${msg} (in use by ${users.join(', ')})` : msg;
}

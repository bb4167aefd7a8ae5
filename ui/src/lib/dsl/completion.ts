/**
 * Completion items for `.af` text, as plain data: the Monaco provider only maps them to Monaco's
 * types. Node types come from the catalog (GET /api/nodes), params from their JSON Schemas, step
 * names and ports from the text itself.
 */
import type { NodeSpec } from '../types';
import { cursorContext, type CursorContext } from './context';
import { CONSTANTS, KEYWORDS } from './lexer';
import { parseSteps } from './rewrite';
import { paramFields, type ParamField } from './schema';
import { formatValue } from './values';
import { nodeMarkdown, paramMarkdown } from './docs';
import { useInsertion, usedNames, type Insertion } from './uses';
import { FRAME_LIKE_TYPES } from './language';
import { majorMinor } from '../customNodes';

export type ItemKind = 'node' | 'param' | 'port' | 'step' | 'column' | 'metric' | 'keyword' | 'value' | 'snippet';

export interface Item {
  label: string;
  kind: ItemKind;
  insertText: string;
  /** insertText uses Monaco snippet syntax (`${1:x}`). */
  snippet: boolean;
  detail: string;
  documentation: string;
  sortText: string;
  /** Another edit made when the item is picked (a custom node's missing `use` line). */
  additionalEdit?: Insertion;
}

export interface CompletionEnv {
  catalog: NodeSpec[];
  datasets?: string[];
}

const SNIPPETS: Item[] = [
  snippet('pipeline', 'pipeline ${1:name} "${2:Title}"', 'pipeline header'),
  snippet('step', '${1:name} = ${2:node}(${3})', 'a step: name = node_type(...)'),
  snippet('for', 'for ${1:w} in [${2:5, 10, 20}] {\n\t${3:step}_{${1:w}} = ${4:node}(${5})\n}', 'expand steps over values'),
  snippet(
    'sweep grid',
    'sweep grid {\n\t${1:step.param} = [${2:5, 10, 20}]\n\tobjective maximize ${3:result.sharpe}\n}',
    'grid parameter sweep',
  ),
  snippet('walkforward', 'walkforward(train=${1:2y}, test=${2:6M}, step=${3:6M})', 'walk-forward validation'),
  snippet('use', 'use ${1:node}@${2:1.0}', 'pin a custom node'),
];

function snippet(label: string, body: string, detail: string): Item {
  return { label, kind: 'snippet', insertText: body, snippet: true, detail, documentation: '', sortText: '9' + label };
}

/** Completion items at `offset` of `source`. */
export function complete(source: string, offset: number, env: CompletionEnv): Item[] {
  return itemsFor(cursorContext(source, offset), source, env);
}

export function itemsFor(ctx: CursorContext, source: string, env: CompletionEnv): Item[] {
  const byName = new Map(env.catalog.map((n) => [n.name, n]));
  const steps = parseSteps(source);
  const stepItems = (sort: string): Item[] =>
    steps.map((s) => ({
      label: s.name,
      kind: 'step' as const,
      insertText: s.name,
      snippet: false,
      detail: `step · ${s.type}`,
      documentation: byName.get(s.type)?.summary ?? '',
      sortText: sort + s.name,
    }));

  switch (ctx.kind) {
    case 'none':
      return [];
    case 'nodeType':
      return env.catalog.map((n) => {
        const item: Item = {
          label: n.name,
          kind: 'node',
          insertText: n.name + '($0)',
          snippet: true,
          detail: n.custom ? `custom · ${n.runtime} · v${n.version} · ${n.summary}` : `${n.category} · ${n.summary}`,
          documentation: nodeMarkdown(n),
          sortText: '1' + n.name,
        };
        if (n.custom) {
          const ins = useInsertion(source, n.name, majorMinor(n.version));
          if (ins) item.additionalEdit = ins;
        }
        return item;
      });
    case 'lineStart': {
      const kw: Item[] = KEYWORDS.map((k) => ({
        label: k,
        kind: 'keyword',
        insertText: k,
        snippet: false,
        detail: 'keyword',
        documentation: '',
        sortText: '5' + k,
      }));
      const inSweep = ctx.block === 'sweep';
      return [...(inSweep ? stepItems('1') : []), ...kw, ...SNIPPETS];
    }
    case 'args': {
      const spec = byName.get(ctx.callee);
      if (!spec) return stepItems('1');
      const used = new Set(ctx.usedKeys);
      const wantInputs = ctx.usedKeys.length === 0 && ctx.positional < spec.inputs.length;
      const params = paramFields(spec.params_schema)
        .filter((f) => !used.has(f.name))
        .map((f) => paramItem(f, spec, wantInputs ? '3' : '1'));
      const ports: Item[] = spec.inputs
        .filter((p) => !used.has(p.name))
        .map((p) => ({
          label: p.name + '=',
          kind: 'port',
          insertText: p.name + '=',
          snippet: false,
          detail: `input · ${p.type}${p.optional ? ' (optional)' : ''}`,
          documentation: p.doc,
          sortText: '4' + p.name,
        }));
      return [...params, ...stepItems(wantInputs ? '1' : '2'), ...ports];
    }
    case 'value': {
      const spec = byName.get(ctx.callee);
      const field = spec ? paramFields(spec.params_schema).find((f) => f.name === ctx.key) : undefined;
      const out: Item[] = [];
      if (ctx.callee === 'dataset_ohlcv' && ctx.key === 'name') {
        for (const d of env.datasets ?? []) out.push(valueItem(ctx.inString ? d : JSON.stringify(d), 'dataset', '0'));
        if (ctx.inString) return out;
      }
      if (field) {
        for (const v of valuesOf(field)) out.push(valueItem(v, field.typeLabel, '1'));
        if (field.hasDefault && field.default !== undefined) {
          const d = safeFormat(field.default, field.format);
          if (d !== null && !out.some((o) => o.insertText === d)) out.push(valueItem(d, 'default', '0'));
        }
        return out;
      }
      return [...out, ...stepItems('1')];
    }
    case 'usePin': {
      // the caller's custom nodes (the catalog lists them after the built-ins), pinned to their
      // latest major.minor (a `^` range, as `use` reads it)
      const pinned = usedNames(source);
      return env.catalog
        .filter((n) => n.custom && !pinned.has(n.name))
        .map((n) => ({
          label: n.name,
          kind: 'node' as const,
          insertText: `${n.name}@${majorMinor(n.version)}`,
          snippet: false,
          detail: `custom · ${n.runtime} · v${n.version}${n.summary ? ` · ${n.summary}` : ''}`,
          documentation: nodeMarkdown(n),
          sortText: '1' + n.name,
        }));
    }
    case 'member': {
      const step = steps.find((s) => s.name === ctx.step);
      const spec = step ? byName.get(step.type) : undefined;
      if (!spec) return [];
      if (ctx.where === 'arg') return referenceMembers(spec);
      const out: Item[] = [];
      spec.outputs.forEach((p, i) =>
        out.push({
          label: p.name,
          kind: 'port',
          insertText: p.name,
          snippet: false,
          detail: `output · ${p.type}${i === 0 ? ' (default)' : ''}`,
          documentation: p.doc,
          sortText: '2' + p.name,
        }),
      );
      if (ctx.where === 'other') out.push(...referenceMembers(spec));
      for (const m of spec.metric_keys)
        out.push({ label: m, kind: 'metric', insertText: m, snippet: false, detail: 'metric', documentation: '', sortText: '4' + m });
      for (const f of paramFields(spec.params_schema))
        out.push({ ...paramItem(f, spec, '5'), label: f.name, insertText: f.name, snippet: false, detail: `param (sweep) · ${f.typeLabel}` });
      return dedupe(out);
    }
    case 'reference':
      return [
        ...stepItems('1'),
        ...CONSTANTS.map((c) => valueItem(c, 'constant', '3')),
      ];
  }
}

/**
 * What `step.x` may name inside a call, exactly as the validator accepts it (dsl/binder.py
 * `resolve_ref`): an output port, or a column of the step's first frame-like output (only when
 * that output's columns are known: otherwise any column name is accepted and none is offered).
 */
export function referenceMembers(spec: NodeSpec): Item[] {
  const out: Item[] = spec.outputs.map((p, i) => ({
    label: p.name,
    kind: 'port' as const,
    insertText: p.name,
    snippet: false,
    detail: `output · ${p.type}${i === 0 ? ' (default)' : ''}`,
    documentation: p.doc,
    sortText: '2' + p.name,
  }));
  const frame = spec.outputs.find((p) => FRAME_LIKE_TYPES.includes(p.type));
  for (const c of frame?.columns ?? [])
    out.push({ label: c, kind: 'column', insertText: c, snippet: false, detail: `column of ${frame!.name}`, documentation: '', sortText: '1' + c });
  return dedupe(out);
}

function paramItem(f: ParamField, spec: NodeSpec, sort: string): Item {
  const def = f.hasDefault ? safeFormat(f.default, f.format) : null;
  const placeholder = (def ?? (f.kind === 'string' ? '""' : '')).replace(/[$}\\]/g, '\\$&');
  return {
    label: f.name + '=',
    kind: 'param',
    insertText: `${f.name}=\${1:${placeholder}}`,
    snippet: true,
    detail: `${f.typeLabel}${def !== null ? ` = ${def}` : f.required ? ' (required)' : ''}`,
    documentation: paramMarkdown(f, spec.name),
    sortText: sort + (f.required ? '0' : '1') + f.name,
  };
}

function valuesOf(f: ParamField): string[] {
  const vals: string[] = [];
  if (f.kind === 'enum') for (const v of f.enumValues) vals.push(safeFormat(v) ?? String(v));
  if (f.kind === 'bool') vals.push('true', 'false');
  if (f.nullable) vals.push('none');
  return vals;
}

function valueItem(text: string, detail: string, sort: string): Item {
  return { label: text, kind: 'value', insertText: text, snippet: false, detail, documentation: '', sortText: sort + text };
}

function safeFormat(v: unknown, format?: string): string | null {
  try {
    return formatValue(v, format);
  } catch {
    return null;
  }
}

function dedupe(items: Item[]): Item[] {
  const seen = new Set<string>();
  return items.filter((i) => (seen.has(i.label) ? false : (seen.add(i.label), true)));
}

/** Markdown shown in completion details and hovers for node types, params and keywords. */
import type { NodeSpec } from '../types';
import { paramFields, type ParamField } from './schema';
import { formatValue } from './values';
import { majorMinor } from '../customNodes';

const code = (s: string) => '`' + s.replace(/`/g, "'") + '`';

/**
 * Text (docstrings, custom node docs — user-supplied) made safe for Monaco's Markdown: links,
 * images and HTML are neutralised (brackets and angle brackets escaped), emphasis is left alone
 * and reST ``literals`` become `code`.
 */
export function mdText(s: string): string {
  return s.replace(/``([^`]+)``/g, '`$1`').replace(/([\\[\]<>])/g, '\\$1');
}

/**
 * A Python docstring with its body indentation removed (like `inspect.cleandoc`), so Markdown
 * does not take indented lines for code blocks.
 */
export function cleanDoc(doc: string): string {
  const lines = doc.replace(/\t/g, '    ').split('\n');
  const body = lines.slice(1).filter((l) => l.trim() !== '');
  const indent = body.length ? Math.min(...body.map((l) => /^ */.exec(l)![0].length)) : 0;
  return [lines[0].trim(), ...lines.slice(1).map((l) => l.slice(indent))].join('\n').trim();
}

export function nodeMarkdown(n: NodeSpec): string {
  const lines = n.custom
    ? [`**${mdText(n.name)}** ${code('v' + n.version)} · custom node · ${mdText(languageLabel(n.runtime))}`, '', `pin: ${code(`use ${n.name}@${majorMinor(n.version)}`)}`]
    : [`**${mdText(n.name)}** ${code('v' + n.version)} · ${mdText(n.category)}`];
  if (n.summary) lines.push('', mdText(n.summary));
  if (n.doc && n.doc !== n.summary) lines.push('', mdText(cleanDoc(n.doc)));
  if (n.inputs.length) {
    lines.push('', '**Inputs**');
    for (const p of n.inputs)
      lines.push(`- ${code(p.name)}: ${p.type}${p.variadic ? ' (variadic)' : ''}${p.optional ? ' (optional)' : ''}${p.doc ? ' — ' + mdText(p.doc) : ''}`);
  }
  if (n.outputs.length) {
    lines.push('', '**Outputs**');
    for (const p of n.outputs) lines.push(`- ${code(p.name)}: ${p.type}${p.doc ? ' — ' + mdText(p.doc) : ''}`);
  }
  const fields = paramFields(n.params_schema);
  if (fields.length) {
    lines.push('', '**Params**');
    for (const f of fields) lines.push(`- ${paramLine(f)}`);
  }
  return lines.join('\n');
}

const LANGUAGE_LABELS: Record<string, string> = { python: 'Python', javascript: 'JavaScript', wasm: 'WebAssembly' };
export function languageLabel(runtime: string): string {
  return LANGUAGE_LABELS[runtime] ?? runtime;
}

function paramLine(f: ParamField): string {
  let def = '';
  if (f.hasDefault) {
    try {
      def = ' = ' + code(formatValue(f.default, f.format));
    } catch {
      def = '';
    }
  } else if (f.required) def = ' (required)';
  return `${code(f.name)}: ${mdText(f.typeLabel)}${def}${f.description ? ' — ' + mdText(f.description) : ''}`;
}

export function paramMarkdown(f: ParamField, nodeType: string): string {
  return `${paramLine(f)}\n\nparam of ${code(nodeType)}`;
}

/** Keyword docs are Python's (dsl/keywords.py, via src/generated/language.json). */
export { KEYWORD_DOCS } from './language';

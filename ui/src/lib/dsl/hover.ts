/** Hover text at an offset of `.af` source: node types, params of the call around, steps, keywords. */
import type { NodeSpec } from '../types';
import { openFrames } from './context';
import { KEYWORD_DOCS, mdText, nodeMarkdown, paramMarkdown } from './docs';
import { significant, tokenize } from './lexer';
import { parseSteps } from './rewrite';
import { paramFields } from './schema';

export interface Hover {
  markdown: string;
  start: number;
  end: number;
}

export function hoverAt(source: string, offset: number, catalog: NodeSpec[]): Hover | null {
  const toks = significant(tokenize(source));
  const i = toks.findIndex((t) => t.start <= offset && offset < t.end);
  const t = toks[i];
  if (!t || t.kind !== 'ident') return null;
  const at = (markdown: string): Hover => ({ markdown, start: t.start, end: t.end });
  const next = toks[i + 1];
  const byName = new Map(catalog.map((n) => [n.name, n]));

  if (next?.kind === 'punct' && next.text === '(' && byName.has(t.text)) return at(nodeMarkdown(byName.get(t.text)!));

  if (next?.kind === 'punct' && next.text === '=') {
    const frames = openFrames(toks.slice(0, i));
    const top = frames[frames.length - 1];
    const spec = top?.open === '(' && top.callee ? byName.get(top.callee) : undefined;
    if (spec) {
      const field = paramFields(spec.params_schema).find((f) => f.name === t.text);
      if (field) return at(paramMarkdown(field, spec.name));
      const port = spec.inputs.find((p) => p.name === t.text);
      if (port) return at(`${'`'}${port.name}${'`'}: input ${port.type} of ${'`'}${spec.name}${'`'}${port.doc ? '\n\n' + mdText(port.doc) : ''}`);
    }
  }

  const step = parseSteps(source).find((s) => s.name === t.text);
  if (step) {
    const spec = byName.get(step.type);
    const out = spec?.outputs.map((p) => `${p.name}: ${p.type}`).join(', ');
    return at(`step ${'`'}${step.name}${'`'} = ${'`'}${step.type}${'`'} (line ${step.line})${spec ? '\n\n' + mdText(spec.summary) : ''}${out ? '\n\noutputs: ' + mdText(out) : ''}`);
  }
  if (KEYWORD_DOCS[t.text]) return at(mdText(KEYWORD_DOCS[t.text]));
  if (byName.has(t.text)) return at(nodeMarkdown(byName.get(t.text)!));
  return null;
}

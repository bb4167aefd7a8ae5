/**
 * Monaco for custom node code, loaded lazily by the node editor only: the pipeline page's Monaco
 * setup (editor core, worker, themes) plus Python and JavaScript (Monaco's Monarch grammars, no
 * language workers) and a small WebAssembly text (WAT) grammar of our own.
 */
import 'monaco-editor/languages/definitions/python/register.js';
import 'monaco-editor/languages/definitions/javascript/register.js';
import { setupMonaco, type Monaco } from '../pipeline/monaco';
import type { Language } from '../../lib/customNodes';

export const WAT = 'wat';

/** The Monaco language id of a node language. */
export function monacoLanguage(lang: Language): string {
  return lang === 'wasm' ? WAT : lang;
}

const watTokens = {
  defaultToken: '',
  keywords: [
    'module', 'func', 'param', 'result', 'local', 'global', 'memory', 'table', 'elem', 'data', 'type',
    'import', 'export', 'start', 'mut', 'block', 'loop', 'if', 'then', 'else', 'end', 'offset', 'funcref',
  ],
  control: ['br', 'br_if', 'br_table', 'return', 'call', 'call_indirect', 'unreachable', 'nop', 'drop', 'select'],
  tokenizer: {
    root: [
      [/;;.*$/, 'comment'],
      [/\(;/, 'comment', '@block'],
      [/"([^"\\]|\\.)*"/, 'string'],
      [/\$[\w.+\-*/\\^~=<>!?@#$%&|:'`]+/, 'variable'],
      [/(?:i32|i64|f32|f64|v128)\.[a-z0-9_]+(?:\/[a-z0-9_]+)?/, 'function'],
      [/(?:local|global|memory|table|ref)\.[a-z_]+/, 'function'],
      [/\b(?:i32|i64|f32|f64|v128)\b/, 'type'],
      [/[+-]?(?:0x[0-9a-fA-F_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?|nan|inf)\b/, 'number'],
      [/[a-z_][\w.]*/, { cases: { '@keywords': 'keyword', '@control': 'keyword.control', '@default': 'identifier' } }],
      [/[()]/, '@brackets'],
    ],
    block: [
      [/;\)/, 'comment', '@pop'],
      [/[^;]+|;/, 'comment'],
    ],
  },
};

let ready = false;

export function setupNodeMonaco(): Monaco {
  const monaco = setupMonaco();
  if (ready) return monaco;
  ready = true;
  monaco.languages.register({ id: WAT, extensions: ['.wat'], aliases: ['WebAssembly text', 'wat'] });
  monaco.languages.setMonarchTokensProvider(WAT, watTokens as unknown as Parameters<typeof monaco.languages.setMonarchTokensProvider>[1]);
  monaco.languages.setLanguageConfiguration(WAT, {
    comments: { lineComment: ';;', blockComment: ['(;', ';)'] },
    brackets: [['(', ')']],
    autoClosingPairs: [
      { open: '(', close: ')' },
      { open: '"', close: '"', notIn: ['string', 'comment'] },
    ],
  });
  return monaco;
}

/**
 * Monaco, loaded lazily by the pipeline page only: the editor core with its standard features
 * (no bundled languages), the base web worker wired for Vite, and the `alphaforge` language —
 * Monarch tokens, completion, hover and formatting backed by the pure modules in lib/dsl.
 */
import * as monaco from 'monaco-editor/editor/editor.api.js';
import 'monaco-editor/features/register.all.js';
import EditorWorker from 'monaco-editor/editor/editor.worker.js?worker';
import { complete, type Item } from '../../lib/dsl/completion';
import { formatSource } from '../../lib/dsl/format';
import { hoverAt } from '../../lib/dsl/hover';
import { BUILTIN_TYPES, CONSTANTS, DURATION_UNITS, KEYWORDS, OBJECTIVE_DIRECTIONS, WORD_OPERATORS } from '../../lib/dsl/language';
import type { Diagnostic, NodeSpec } from '../../lib/types';

export type Monaco = typeof monaco;
export const LANG = 'alphaforge';

(self as unknown as { MonacoEnvironment: monaco.Environment }).MonacoEnvironment = {
  getWorker: () => new EditorWorker(),
};

/** What the providers read; the page keeps it current. */
export const env: { catalog: NodeSpec[]; datasets: string[] } = { catalog: [], datasets: [] };

const DURATION = new RegExp(`\\d+(?:${[...DURATION_UNITS].sort((a, b) => b.length - a.length).join('|')})(?![A-Za-z0-9_])`);

function monarch(nodeTypes: string[]): monaco.languages.IMonarchLanguage {
  return {
    defaultToken: '',
    keywords: [...KEYWORDS, ...WORD_OPERATORS, ...OBJECTIVE_DIRECTIONS],
    constants: [...CONSTANTS],
    nodeTypes,
    tokenizer: {
      root: [
        [/#.*$/, 'comment'],
        [/"([^"\\]|\\.)*$/, 'string.invalid'],
        [/'([^'\\]|\\.)*$/, 'string.invalid'],
        [/"/, 'string', '@dq'],
        [/'/, 'string', '@sq'],
        [/\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?/, 'number.date'],
        [DURATION, 'number.duration'],
        [/(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?/, 'number'],
        [/@(=?)[\d.]+/, 'number.version'],
        [/[A-Za-z_]\w*(?=\s*\()/, { cases: { '@nodeTypes': 'type.identifier', '@keywords': 'keyword', '@default': 'function' } }],
        [/[A-Za-z_]\w*/, { cases: { '@keywords': 'keyword', '@constants': 'keyword.constant', '@nodeTypes': 'type.identifier', '@default': 'identifier' } }],
        [/[{}()[\]]/, '@brackets'],
        [/==|!=|<=|>=|[=<>.,@]/, 'delimiter'],
      ],
      dq: [
        [/[^\\"]+/, 'string'],
        [/\\./, 'string.escape'],
        [/"/, 'string', '@pop'],
      ],
      sq: [
        [/[^\\']+/, 'string'],
        [/\\./, 'string.escape'],
        [/'/, 'string', '@pop'],
      ],
    },
  };
}

let registered = false;
let tokensDisposable: monaco.IDisposable | null = null;

/** Re-register the tokenizer so node types from the catalog are highlighted. */
export function setNodeTypes(names: string[]): void {
  tokensDisposable?.dispose();
  tokensDisposable = monaco.languages.setMonarchTokensProvider(LANG, monarch([...new Set([...BUILTIN_TYPES, ...names])]));
}

const KIND: Record<Item['kind'], monaco.languages.CompletionItemKind> = {
  node: monaco.languages.CompletionItemKind.Class,
  param: monaco.languages.CompletionItemKind.Property,
  port: monaco.languages.CompletionItemKind.Interface,
  step: monaco.languages.CompletionItemKind.Variable,
  column: monaco.languages.CompletionItemKind.Field,
  metric: monaco.languages.CompletionItemKind.Value,
  keyword: monaco.languages.CompletionItemKind.Keyword,
  value: monaco.languages.CompletionItemKind.EnumMember,
  snippet: monaco.languages.CompletionItemKind.Snippet,
};

function insertionEdit(model: monaco.editor.ITextModel, ins: { offset: number; text: string }): monaco.editor.ISingleEditOperation {
  const p = model.getPositionAt(ins.offset);
  return { range: new monaco.Range(p.lineNumber, p.column, p.lineNumber, p.column), text: ins.text };
}

export function setupMonaco(): Monaco {
  if (registered) return monaco;
  registered = true;
  monaco.languages.register({ id: LANG, extensions: ['.af'], aliases: ['Alpha Forge', 'af'] });
  setNodeTypes([]);
  monaco.languages.setLanguageConfiguration(LANG, {
    comments: { lineComment: '#' },
    brackets: [
      ['{', '}'],
      ['[', ']'],
      ['(', ')'],
    ],
    autoClosingPairs: [
      { open: '{', close: '}' },
      { open: '[', close: ']' },
      { open: '(', close: ')' },
      { open: '"', close: '"', notIn: ['string', 'comment'] },
    ],
    surroundingPairs: [
      { open: '(', close: ')' },
      { open: '[', close: ']' },
      { open: '"', close: '"' },
    ],
    wordPattern: /[A-Za-z_][\w]*/,
    indentationRules: { increaseIndentPattern: /\{\s*(#.*)?$/, decreaseIndentPattern: /^\s*\}/ },
  });
  monaco.languages.registerCompletionItemProvider(LANG, {
    triggerCharacters: ['.', '(', ',', '=', '"', ' '],
    provideCompletionItems(model, position) {
      const offset = model.getOffsetAt(position);
      const word = model.getWordUntilPosition(position);
      const range = new monaco.Range(position.lineNumber, word.startColumn, position.lineNumber, word.endColumn);
      const found = complete(model.getValue(), offset, env);
      return {
        suggestions: found.map((i) => ({
          label: i.label,
          kind: KIND[i.kind],
          insertText: i.insertText,
          insertTextRules: i.snippet ? monaco.languages.CompletionItemInsertTextRule.InsertAsSnippet : undefined,
          detail: i.detail,
          documentation: i.documentation ? { value: i.documentation } : undefined,
          sortText: i.sortText,
          range,
          additionalTextEdits: i.additionalEdit ? [insertionEdit(model, i.additionalEdit)] : undefined,
          // re-open suggestions after `key=` so values are offered straight away
          command: i.kind === 'param' || i.kind === 'port' ? { id: 'editor.action.triggerSuggest', title: '' } : undefined,
        })),
      };
    },
  });
  monaco.languages.registerHoverProvider(LANG, {
    provideHover(model, position) {
      const h = hoverAt(model.getValue(), model.getOffsetAt(position), env.catalog);
      if (!h) return null;
      const a = model.getPositionAt(h.start);
      const b = model.getPositionAt(h.end);
      return { contents: [{ value: h.markdown }], range: new monaco.Range(a.lineNumber, a.column, b.lineNumber, b.column) };
    },
  });
  monaco.languages.registerDocumentFormattingEditProvider(LANG, {
    provideDocumentFormattingEdits(model) {
      const text = model.getValue();
      const formatted = formatSource(text);
      return formatted === text ? [] : [{ range: model.getFullModelRange(), text: formatted }];
    },
  });
  const common = { base: 'vs' as const, inherit: true, colors: { 'editor.background': '#ffffff' } };
  monaco.editor.defineTheme('af-light', {
    ...common,
    rules: [
      { token: 'type.identifier', foreground: '7c3aed', fontStyle: 'bold' },
      { token: 'number.date', foreground: 'b45309' },
      { token: 'number.duration', foreground: 'b45309' },
      { token: 'function', foreground: '0e7490' },
      { token: 'keyword.constant', foreground: '1d4ed8' },
    ],
  });
  monaco.editor.defineTheme('af-dark', {
    ...common,
    base: 'vs-dark',
    colors: { 'editor.background': '#1d232a' }, // DaisyUI dark base-100
    rules: [
      { token: 'type.identifier', foreground: 'c4b5fd', fontStyle: 'bold' },
      { token: 'number.date', foreground: 'fbbf24' },
      { token: 'number.duration', foreground: 'fbbf24' },
      { token: 'function', foreground: '67e8f9' },
      { token: 'keyword.constant', foreground: '93c5fd' },
    ],
  });
  return monaco;
}

/** Diagnostics → markers (squiggles). */
export function toMarkers(diags: Diagnostic[]): monaco.editor.IMarkerData[] {
  const sev = { error: monaco.MarkerSeverity.Error, warning: monaco.MarkerSeverity.Warning, info: monaco.MarkerSeverity.Info };
  return diags.map((d) => {
    const endLine = d.end_line || d.line;
    let endCol = d.end_col || d.col + 1;
    if (endLine === d.line && endCol <= d.col) endCol = d.col + 1;
    return {
      severity: sev[d.severity] ?? monaco.MarkerSeverity.Error,
      message: d.message + (d.hint ? `\n${d.hint}` : '') + (d.suggestions?.length ? `\ndid you mean: ${d.suggestions.join(', ')}?` : ''),
      code: d.code,
      startLineNumber: Math.max(1, d.line),
      startColumn: Math.max(1, d.col),
      endLineNumber: Math.max(1, endLine),
      endColumn: Math.max(1, endCol),
      source: 'alphaforge',
    };
  });
}

/**
 * A small, safe Markdown renderer for node docs (built-in docstrings and user-written custom
 * node docs): paragraphs, `-`/`*`/`1.` lists with indented continuation lines, `#` headings,
 * fenced code, `code` and reST ``code`` spans, **bold**, *emphasis* and http(s) links.
 *
 * Safety: every character of the input is HTML-escaped before any tag is added, and the only
 * tags added are the fixed ones below (links get an escaped http(s) URL, rel=noopener), so the
 * output can go into `{@html}` without letting a doc inject markup, scripts or styles (the
 * app's CSP forbids inline scripts anyway; this renderer adds no style attributes).
 */
import { cleanDoc } from './dsl/docs';

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => ESC[c]);

/** Inline Markdown of one block's text → HTML (input is raw text, not HTML). */
export function inline(text: string): string {
  const codes: string[] = [];
  // code spans first (``x`` as in reST docstrings, then `x`): nothing inside them is styled
  let s = text.replace(/``(.+?)``|`([^`]+)`/g, (_, a: string | undefined, b: string | undefined) => {
    codes.push(`<code>${escapeHtml(a ?? b ?? '')}</code>`);
    return `\u0000${codes.length - 1}\u0000`;
  });
  s = escapeHtml(s);
  s = s.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g, (_, label: string, url: string) => `<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`);
  s = s.replace(/\*\*(?=\S)(.+?)(?<=\S)\*\*/g, '<strong>$1</strong>');
  s = s.replace(/(^|[^\w*])\*(?=[^\s*])([^*\n]+?)(?<=\S)\*(?![\w*])/g, '$1<em>$2</em>');
  s = s.replace(/(^|[^\w])_(?=\S)([^_\n]+?)(?<=\S)_(?!\w)/g, '$1<em>$2</em>');
  return s.replace(/\u0000(\d+)\u0000/g, (_, i: string) => codes[Number(i)]);
}

interface Item {
  indent: number;
  text: string[];
}

const ITEM = /^(\s*)([-*+]|\d+[.)])\s+(.*)$/;

/** Markdown (a docstring's indentation removed first) → safe HTML. */
export function renderMarkdown(src: string): string {
  const lines = cleanDoc(src ?? '').split('\n');
  const out: string[] = [];
  let para: string[] = [];
  let list: { ordered: boolean; items: Item[] } | null = null;

  const flushPara = () => {
    if (para.length) out.push(`<p>${inline(para.join(' '))}</p>`);
    para = [];
  };
  const flushList = () => {
    if (list) {
      const tag = list.ordered ? 'ol' : 'ul';
      out.push(`<${tag}>${list.items.map((it) => `<li>${inline(it.text.join(' '))}</li>`).join('')}</${tag}>`);
    }
    list = null;
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = /^\s*(```|~~~)/.exec(line);
    if (fence) {
      flushPara();
      flushList();
      const body: string[] = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(fence[1]); i++) body.push(lines[i]);
      out.push(`<pre><code>${escapeHtml(body.join('\n'))}</code></pre>`);
      continue;
    }
    if (!line.trim()) {
      flushPara();
      flushList();
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      flushPara();
      flushList();
      const level = Math.min(6, heading[1].length + 2); // docs sit under the page's own headings
      out.push(`<h${level}>${inline(heading[2].replace(/\s*#+\s*$/, ''))}</h${level}>`);
      continue;
    }
    const item = ITEM.exec(line);
    if (item) {
      flushPara();
      const ordered = /\d/.test(item[2]);
      const current = list as { ordered: boolean; items: Item[] } | null;
      if (!current || current.ordered !== ordered) {
        flushList();
        list = { ordered, items: [] };
      }
      list!.items.push({ indent: item[1].length, text: [item[3]] });
      continue;
    }
    const open = list as { ordered: boolean; items: Item[] } | null;
    if (open && /^\s+/.test(line)) {
      open.items[open.items.length - 1].text.push(line.trim()); // continuation of the item
      continue;
    }
    flushList();
    para.push(line.trim());
  }
  flushPara();
  flushList();
  return out.join('\n');
}

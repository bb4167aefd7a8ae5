import { describe, expect, it } from 'vitest';
import { escapeHtml, inline, renderMarkdown } from './markdown';

describe('renderMarkdown', () => {
  it('renders a docstring: paragraphs, a list with continuation lines, bold and code', () => {
    const doc = `Single-asset bar backtest.

    Rules:

    - No look-ahead: the signal of bar t is executed at the **open of bar t+1**. The last
      bar's signal is never executed.
    - Fees: \`fee_bps\` on every fill (\`\`slippage_bps\`\` too).`;
    const html = renderMarkdown(doc);
    expect(html).toBe(
      '<p>Single-asset bar backtest.</p>\n<p>Rules:</p>\n<ul><li>No look-ahead: the signal of bar t is executed at the <strong>open of bar t+1</strong>. The last bar&#39;s signal is never executed.</li>' +
        '<li>Fees: <code>fee_bps</code> on every fill (<code>slippage_bps</code> too).</li></ul>',
    );
    expect(html).not.toContain('**');
    expect(html).not.toContain('`');
  });
  it('escapes HTML everywhere: a doc cannot inject markup, scripts or styles', () => {
    const evil = '<img src=x onerror=alert(1)> **<script>x</script>** `<b>` [a](javascript:alert(1)) <style>body{}</style>';
    const html = renderMarkdown(evil);
    expect(html).not.toMatch(/<(img|script|style|b)[\s>]/);
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('<code>&lt;b&gt;</code>');
    expect(html).not.toContain('href="javascript');
    expect(renderMarkdown('```\n<script>alert(1)</script>\n```')).toBe('<pre><code>&lt;script&gt;alert(1)&lt;/script&gt;</code></pre>');
  });
  it('renders headings, ordered lists, emphasis and http links', () => {
    const html = renderMarkdown('# Title\n\n1. one\n2. *two*\n\nsee [docs](https://example.com/a?b=1&c=2)');
    expect(html).toBe(
      '<h3>Title</h3>\n<ol><li>one</li><li><em>two</em></li></ol>\n<p>see <a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">docs</a></p>',
    );
  });
  it('leaves arithmetic and identifiers alone', () => {
    expect(inline('x * y and a*b, target_vol / realised_vol, 2 ** 3')).toBe('x * y and a*b, target_vol / realised_vol, 2 ** 3');
    expect(escapeHtml(`"'&`)).toBe('&quot;&#39;&amp;');
  });
});

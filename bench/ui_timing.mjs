// Time the pipeline page until it is interactive, in headless Chromium (driven by bench_ui.py).
//   AF_BENCH_PASSWORD=... node bench/ui_timing.mjs --base-url http://127.0.0.1:8000 --user admin \
//     --pipeline-id 1 --runs 5 --expect '{"lines": ["pipeline sma_crossover ..."], "steps": ["data"]}'
// Logs in once, loads /pipelines/<id> once to warm up, then `--runs` times in a fresh page each,
// and measures performance.now() (ms since navigation start) at the first animation frame where
// Monaco shows every expected line, the outline lists every expected step, and the validate
// round-trip has put the "✓ valid" badge. Prints one JSON line: {"runs": [{total_ms, ...}], ...}.
import { args, login, start } from '../tests/e2e/harness.mjs';

const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const user = opt.user ?? 'admin';
const password = process.env.AF_BENCH_PASSWORD ?? opt.password;
const pipelineId = opt['pipeline-id'];
const runs = Number(opt.runs ?? 5);
const expect = JSON.parse(opt.expect ?? '{"lines": [], "steps": []}');
const timeoutMs = Number(opt['timeout-ms'] ?? 30000);
if (!pipelineId || !password) throw new Error('need --pipeline-id and AF_BENCH_PASSWORD');

// Runs in the page every animation frame; records when each part first became ready.
function interactive({ lines, steps }) {
  const t = (window.__afBench ??= {});
  const now = performance.now();
  const squash = (s) => s.replace(/[\s\u00a0]+/g, ' ').trim();
  if (t.monaco === undefined && document.querySelector('[data-testid=editor] .monaco-editor')) t.monaco = now;
  if (t.editor === undefined) {
    const shown = new Set(
      [...document.querySelectorAll('[data-testid=editor] .monaco-editor .view-line')].map((e) => squash(e.textContent ?? '')),
    );
    if (shown.size && lines.every((l) => shown.has(squash(l)))) t.editor = now;
  }
  if (t.outline === undefined) {
    const listed = new Set(
      [...document.querySelectorAll('[data-testid=outline] li button span.font-mono')].map((e) => (e.textContent ?? '').trim()),
    );
    if (listed.size && steps.every((s) => listed.has(s))) t.outline = now;
  }
  if (t.valid === undefined) {
    const badge = document.querySelector('[data-testid=problem-count]');
    if (badge && badge.classList.contains('badge-success') && badge.textContent.includes('valid')) t.valid = now;
  }
  if (t.editor === undefined || t.outline === undefined || t.valid === undefined) return false;
  const nav = performance.getEntriesByType('navigation')[0];
  return {
    total_ms: Math.max(t.editor, t.outline, t.valid),
    monaco_ms: t.monaco, // the editor widget exists (its chunk loaded)
    editor_ms: t.editor,
    outline_ms: t.outline,
    valid_ms: t.valid,
    dom_content_loaded_ms: nav ? nav.domContentLoadedEventEnd : null,
  };
}

const s = await start({ baseUrl });
const out = { runs: [], warmup: null, problems: [] };
try {
  await login(s.page, user, password);
  for (let i = 0; i <= runs; i++) {
    const page = await s.context.newPage(); // same context: the session token, a warm HTTP cache
    page.on('pageerror', (e) => out.problems.push(`pageerror: ${e.message}`));
    page.on('response', (r) => {
      if (r.status() >= 400) out.problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
    });
    await page.goto(`/pipelines/${pipelineId}`, { waitUntil: 'commit' });
    const handle = await page.waitForFunction(interactive, expect, { polling: 'raf', timeout: timeoutMs });
    const timing = await handle.jsonValue();
    if (i === 0) out.warmup = timing;
    else out.runs.push(timing);
    await page.close();
  }
  out.problems.push(...s.problems);
} finally {
  await s.close();
}
console.log(JSON.stringify(out));

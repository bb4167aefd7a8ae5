// Time ▶ Run → metrics on screen in headless Chromium (driven by bench_web_run.py).
//   AF_BENCH_PASSWORD=... node bench/web_run_timing.mjs --base-url http://127.0.0.1:8000 \
//     --user admin --pipeline-id 1 --runs 6
// Logs in, opens /pipelines/<id>, waits for the "✓ valid" badge, then clicks ▶ Run `--runs` times
// (the first is the cold run: the first after `serve` started), each time waiting until the
// results tab shows the metric cards of *that* run (its "Run #<id>" link beside them). Times are
// epoch milliseconds taken in the page (performance.timeOrigin + performance.now()): the click,
// the POST's response, when the page asked for the results (it learned the run completed) and
// the first animation frame with the metrics on screen. Prints one JSON line: {"runs": [...]}.
import { args, login, start } from '../tests/e2e/harness.mjs';

const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const user = opt.user ?? 'admin';
const password = process.env.AF_BENCH_PASSWORD ?? opt.password;
const pipelineId = opt['pipeline-id'];
const runs = Number(opt.runs ?? 6);
const timeoutMs = Number(opt['timeout-ms'] ?? 120000);
if (!pipelineId || !password) throw new Error('need --pipeline-id and AF_BENCH_PASSWORD');

// Runs in the page every animation frame: the metrics of run `id` are on screen.
function metricsShown(id) {
  const results = document.querySelector('[data-testid=results]');
  if (!results) return false;
  const link = results.parentElement?.querySelector(`a[href="/runs/${id}"]`);
  const cards = results.querySelectorAll('[data-testid=metric-cards] > div.rounded-box');
  if (!link || cards.length === 0) return false;
  return performance.timeOrigin + performance.now();
}

// Resource timings (epoch ms) of the last request to `suffix` (the API calls of one run).
function resource(suffix) {
  const hits = performance.getEntriesByType('resource').filter((e) => new URL(e.name).pathname === suffix);
  const e = hits[hits.length - 1];
  if (!e) return null;
  return { start_ms: performance.timeOrigin + e.startTime, end_ms: performance.timeOrigin + e.responseEnd };
}

const s = await start({ baseUrl });
const out = { runs: [], problems: [] };
try {
  await login(s.page, user, password);
  const page = s.page;
  await page.goto(`/pipelines/${pipelineId}`);
  await page.waitForSelector('[data-testid=problem-count].badge-success', { timeout: 60000 });
  for (let i = 0; i < runs; i++) {
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: timeoutMs });
    const posted = page.waitForResponse(
      (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === `/api/pipelines/${pipelineId}/runs`,
      { timeout: timeoutMs },
    );
    const clickMs = await page.evaluate(() => {
      const at = performance.timeOrigin + performance.now();
      document.querySelector('[data-testid=run]').click();
      return at;
    });
    const response = await posted;
    if (response.status() !== 202) throw new Error(`POST run: HTTP ${response.status()} ${await response.text()}`);
    const run = await response.json();
    const shown = await page.waitForFunction(metricsShown, run.id, { polling: 'raf', timeout: timeoutMs });
    const visibleMs = await shown.jsonValue();
    const post = await page.evaluate(resource, `/api/pipelines/${pipelineId}/runs`);
    const results = await page.evaluate(resource, `/api/runs/${run.id}/results`);
    out.runs.push({
      run_id: run.id,
      flow_run_id: run.prefect_flow_run_id,
      kind: i === 0 ? 'cold' : 'warm',
      click_ms: clickMs,
      post_done_ms: post?.end_ms ?? null,
      results_asked_ms: results?.start_ms ?? null,
      visible_ms: visibleMs,
      total_ms: visibleMs - clickMs,
    });
  }
  out.problems.push(...s.problems);
} finally {
  await s.close();
}
console.log(JSON.stringify(out));

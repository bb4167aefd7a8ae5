// Results people expect (issue 9, items 8 and 10), in the browser: the sample pipeline runs to
// Completed; its run page names the pipeline by title, draws the price chart with trade markers
// (hover shows a trade), buy and hold on the equity chart and beside the metrics, the monthly
// returns table; sorting the trades by PnL reorders them; equity.csv and the HTML report
// download; compare names both runs; the Nodes page renders docs as Markdown. Screenshots to
// tests/e2e/screenshots/results-*.png; exits non-zero on a failed step or a page problem.
//   node results.mjs --base-url http://127.0.0.1:8000 --user admin --password admin-e2e-password
import { readFileSync } from 'node:fs';
import { apiCall, args, login, start, stepper } from './harness.mjs';

const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const user = opt.user ?? 'admin';
const password = opt.password ?? process.env.ALPHAFORGE_ADMIN_PASSWORD ?? 'admin-e2e-password';
const only = opt.only ? String(opt.only).split(',') : null;
const suffix = opt.suffix ?? Date.now().toString(36).slice(-4);
const TITLE = `Moving Average Crossover ${suffix}`;
const NAME = `sma_results_${suffix}`;
const SOURCE = `# Moving-average crossover on the bundled sample data.
pipeline ${NAME} "${TITLE}"

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
`;
const NO_BACKTEST = `pipeline closes_${suffix} "Closes only ${suffix}"

data = csv_ohlcv(path="data/sample_ohlcv.csv")
fast = sma(data.close, window=10)
`;

const { step, finish } = stepper(() => s, { only, shotPrefix: 'results-fail-' });
const s = await start({ baseUrl, width: 1440, height: 900, colorScheme: 'light' });
const { page } = s;
let pipelineId = null;
let runId = null;
let secondRunId = null;

const list = (r) => (Array.isArray(r.json) ? r.json : (r.json?.items ?? []));

async function waitCompleted(id, timeoutMs = 180000) {
  const t0 = Date.now();
  for (;;) {
    const r = await apiCall(page, 'GET', `/api/runs/${id}`);
    if (r.json?.status === 'completed') return r.json;
    if (['failed', 'cancelled'].includes(r.json?.status)) throw new Error(`run ${id} ${r.json.status}: ${r.json.error}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`run ${id} still ${r.json?.status} after ${timeoutMs} ms`);
    await page.waitForTimeout(1000);
  }
}

/** The trade table's PnL column as numbers, in the order shown. */
async function pnlColumn() {
  return page.evaluate(() => {
    const table = document.querySelector('[data-testid=trades-table] table');
    const heads = [...table.querySelectorAll('thead th')].map((th) => th.textContent.trim());
    const i = heads.findIndex((h) => h.startsWith('PnL'));
    return [...table.querySelectorAll('tbody tr')].map((tr) => Number(tr.children[i].textContent.replace(/,/g, '').replace('−', '-')));
  });
}

/** Click a button that downloads; returns the saved file's name and text. */
async function downloadVia(selector) {
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 30000 }), page.click(selector)]);
  const path = await dl.path();
  return { name: dl.suggestedFilename(), text: readFileSync(path, 'utf-8') };
}

await step('login', async () => {
  await login(page, user, password);
});

await step('run-to-completed', async () => {
  const created = await apiCall(page, 'POST', '/api/pipelines', { name: NAME, source: SOURCE });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  pipelineId = created.json.id;
  await page.goto(`/pipelines/${pipelineId}`);
  await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: 30000 });
  await page.click('[data-testid=run]');
  // the first run of a fresh serve registers its deployment: on a loaded machine that takes a while
  await page.waitForSelector('[data-testid=results] [data-testid=metric-cards]', { timeout: 180000 });
  // the editor's Results tab draws the same price chart as the run page
  await page.waitForSelector('[data-testid=results] [data-testid=price-chart] canvas', { timeout: 30000 });
  const runs = list(await apiCall(page, 'GET', `/api/pipelines/${pipelineId}/runs`));
  runId = runs[0]?.id;
  await waitCompleted(runId);
});

await step('run-page', async () => {
  await page.goto(`/runs/${runId}`);
  await page.waitForSelector('[data-testid=run-page] [data-testid=price-chart] canvas', { timeout: 30000 });
  await page.waitForSelector('[data-testid=monthly-returns]');
  await page.waitForTimeout(1200);
  const title = await page.textContent('[data-testid=run-title]');
  if (!title.includes(TITLE) || !title.includes(`#${runId}`)) throw new Error(`run title: ${title}`);
  const crumbs = await page.textContent('[data-testid=run-breadcrumbs]');
  if (!crumbs.includes(TITLE)) throw new Error(`breadcrumbs: ${crumbs}`);
  if (/pipeline \d+/.test(await page.textContent('[data-testid=run-page] h1'))) throw new Error('"pipeline N" shown instead of the name');
  if ((await page.title()) !== `${TITLE} · run #${runId} · Alpha Forge`) throw new Error(`document title: ${await page.title()}`);
  await s.shot('results-01-run-page', { fullPage: true });
});

await step('price-chart-markers', async () => {
  // the markers are drawn on the canvas: check the API data they come from and hover one
  const analysis = await apiCall(page, 'GET', `/api/runs/${runId}/analysis`);
  const results = await apiCall(page, 'GET', `/api/runs/${runId}/results`);
  if (analysis.json.prices.length !== 900) throw new Error(`price bars: ${analysis.json.prices.length}`);
  const first = results.json.trades[0];
  const chart = page.locator('[data-testid=price-chart]');
  await chart.scrollIntoViewIfNeeded();
  const box = await chart.locator('canvas').first().boundingBox();
  // sweep the crosshair across the chart until a trade tooltip appears
  let tip = null;
  for (let x = box.x + 4; x < box.x + box.width - 70 && !tip; x += 2) {
    await page.mouse.move(x, box.y + box.height / 2);
    if (await page.locator('[data-testid=trade-tooltip]').count()) tip = await page.textContent('[data-testid=trade-tooltip]');
  }
  if (!tip) throw new Error('no trade tooltip on hovering the price chart');
  if (!/Trade \d+: (Long|Short) (entry|exit)/.test(tip) || !/fill \d/.test(tip)) throw new Error(`tooltip: ${tip}`);
  await s.shot('results-02-price-tooltip');
  if (!first.entry_ts) throw new Error('first trade without entry_ts');
  const legend = await page.textContent('[data-testid=price-legend]');
  for (const word of ['long entry', 'short entry', 'exit, profit', 'exit, loss']) if (!legend.includes(word)) throw new Error(`legend lacks ${word}`);
});

await step('benchmark', async () => {
  const analysis = (await apiCall(page, 'GET', `/api/runs/${runId}/analysis`)).json;
  if (!analysis.benchmark || analysis.benchmark.equity.length < 100) throw new Error('no benchmark series');
  const legend = await page.textContent('[data-testid=equity-chart]');
  if (!legend.includes('buy & hold') || !legend.includes('strategy')) throw new Error(`equity legend: ${legend}`);
  const shown = await page.textContent('[data-testid=benchmark-total_return]');
  const expected = `${(analysis.benchmark.total_return * 100).toFixed(2)}%`;
  if (shown.trim() !== expected) throw new Error(`buy & hold total return ${shown}, expected ${expected}`);
  const note = await page.textContent('[data-testid=benchmark-summary]');
  if (!note.includes('fee (5 bps)')) throw new Error(`benchmark note: ${note}`);
  await page.locator('[data-testid=equity-chart]').scrollIntoViewIfNeeded();
  await s.shot('results-03-equity-benchmark');
});

await step('monthly-table', async () => {
  const rows = await page.locator('[data-testid=monthly-returns] tbody tr').count();
  if (rows !== 4) throw new Error(`monthly table has ${rows} years, expected 2021-2024`);
  const cells = await page.locator('[data-testid=monthly-returns] tbody td').allTextContents();
  if (!cells.some((c) => /^-?\d+\.\d%$/.test(c.trim()))) throw new Error(`no percentages in the monthly table: ${cells.slice(0, 13)}`);
  await page.locator('[data-testid=monthly-returns]').scrollIntoViewIfNeeded();
  await s.shot('results-04-monthly');
});

await step('sort-trades', async () => {
  const before = await pnlColumn();
  await page.click('[data-testid=trades-table] [data-sort-key=pnl]');
  const asc = await pnlColumn();
  const sortedAsc = [...before].sort((a, b) => a - b);
  if (JSON.stringify(asc) !== JSON.stringify(sortedAsc)) throw new Error(`ascending PnL: ${asc.slice(0, 6)}`);
  if (JSON.stringify(asc) === JSON.stringify(before)) throw new Error('sorting by PnL did not change the order');
  await page.click('[data-testid=trades-table] [data-sort-key=pnl]');
  const desc = await pnlColumn();
  if (JSON.stringify(desc) !== JSON.stringify([...sortedAsc].reverse())) throw new Error(`descending PnL: ${desc.slice(0, 6)}`);
  // each trade keeps its number (time order) when sorted
  const numbers = await page.$$eval('[data-testid=trades-table] tbody tr td:first-child', (tds) => tds.map((td) => Number(td.textContent)));
  if (JSON.stringify([...numbers].sort((a, b) => a - b)) !== JSON.stringify(numbers.map((_, i) => i + 1))) throw new Error(`trade numbers ${numbers.slice(0, 8)}`);
  if (numbers[0] === 1 && numbers[1] === 2) throw new Error('trade numbers follow the rows, not the trades');
  const sortState = await page.getAttribute('[data-testid=trades-table] th[aria-sort=descending]', 'aria-sort');
  if (sortState !== 'descending') throw new Error('no sort indicator on the PnL header');
  const count = await page.textContent('[data-testid=trades-count]');
  if (!count.includes('sorted by PnL (descending)')) throw new Error(`count line: ${count}`);
  await page.locator('[data-testid=trades-table]').scrollIntoViewIfNeeded();
  await s.shot('results-05-trades-sorted');
});

await step('downloads', async () => {
  const csv = await downloadVia('[data-testid=download-equity]');
  if (csv.name !== `${NAME}-run-${runId}-equity.csv`) throw new Error(`equity file name ${csv.name}`);
  const lines = csv.text.trim().split('\n');
  if (lines[0] !== 'ts,equity,cash,position,drawdown,close,benchmark_equity') throw new Error(`CSV header ${lines[0]}`);
  if (lines.length !== 901) throw new Error(`CSV rows ${lines.length - 1}, expected 900`);
  const report = await downloadVia('[data-testid=download-report]');
  if (report.name !== `${NAME}-run-${runId}-report.html`) throw new Error(`report file name ${report.name}`);
  if (!report.text.startsWith('<!DOCTYPE html>') || !report.text.includes(TITLE) || !report.text.includes('<svg')) throw new Error('report is not the run report');
  if (/<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/.test(report.text)) throw new Error('report has a script or an external URL');
  // open the downloaded report as a page (a data URL: no server) and take its picture
  const p2 = await s.context.newPage();
  await p2.setContent(report.text);
  await p2.waitForTimeout(300);
  await p2.screenshot({ path: `${(await import('./harness.mjs')).SCREENSHOTS}/results-06-report.png`, fullPage: true });
  await p2.close();
});

await step('no-prices-note', async () => {
  const created = await apiCall(page, 'POST', '/api/pipelines', { name: `closes_${suffix}`, source: NO_BACKTEST });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  const started = await apiCall(page, 'POST', `/api/pipelines/${created.json.id}/runs`, {});
  secondRunId = started.json.id;
  await waitCompleted(secondRunId);
  await page.goto(`/runs/${secondRunId}`);
  await page.waitForSelector('[data-testid=results]', { timeout: 30000 });
  await page.waitForSelector('[data-testid=no-prices]', { timeout: 15000 });
  const note = await page.textContent('[data-testid=no-prices]');
  if (!note.includes('No price data')) throw new Error(`no-prices note: ${note}`);
  await s.shot('results-07-no-prices', { fullPage: true });
});

await step('compare-names', async () => {
  const again = await apiCall(page, 'POST', `/api/pipelines/${pipelineId}/runs`, {});
  await waitCompleted(again.json.id);
  await page.goto(`/compare?a=${runId}&b=${again.json.id}`);
  await page.waitForSelector('[data-testid=compare-table]');
  const a = await page.textContent('[data-testid=compare-run-a]');
  if (!a.includes(TITLE)) throw new Error(`compare names run A "${a}"`);
  if (/pipeline \d+/.test(await page.textContent('[data-testid=compare-page]'))) throw new Error('"pipeline N" on the compare page');
  await page.waitForTimeout(600);
  await s.shot('results-08-compare');
});

await step('nodes-markdown', async () => {
  await page.goto('/nodes?tab=builtin');
  await page.waitForSelector('[data-testid=nodes-page]');
  await page.click('button:has(span.font-mono:text-is("backtest"))');
  await page.waitForSelector('[data-testid=node-doc] li');
  const text = await page.textContent('[data-testid=node-doc]');
  if (text.includes('**') || text.includes('`')) throw new Error(`raw Markdown on the Nodes page: ${text.slice(0, 200)}`);
  if ((await page.locator('[data-testid=node-doc] strong').count()) < 1) throw new Error('no bold text rendered');
  await s.shot('results-09-nodes-doc-light');
  await page.click('[data-testid=topbar] button[aria-label="Toggle theme"]');
  await page.waitForTimeout(500);
  await s.shot('results-10-nodes-doc-dark');
  await page.goto(`/runs/${runId}`);
  await page.waitForSelector('[data-testid=monthly-returns]', { timeout: 30000 });
  await page.waitForTimeout(1200);
  await s.shot('results-11-run-page-dark', { fullPage: true });
  await page.click('[data-testid=topbar] button[aria-label="Toggle theme"]');
});

await finish();

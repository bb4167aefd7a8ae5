// A tick backtest's results in the browser (issue 15 #4): a grid market maker on a synthetic book
// runs to Completed through the web app; its run page draws the mid price with one marker per
// fill (as many as the API's fills) and the inventory pane under it, with a legend and the fills
// count, beside the usual metrics and equity; the wheel zooms the shared time axis (the visible
// range narrows), a drag pans it, Fit restores it; hovering a bar shows its fills. Screenshots
// tests/e2e/screenshots/tick-*.png; exits non-zero on a failed step or a page problem.
//   node tick.mjs --base-url http://127.0.0.1:8000 --user admin --password admin-e2e-password
import { apiCall, args, login, start, stepper } from './harness.mjs';

const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const user = opt.user ?? 'admin';
const password = opt.password ?? 'admin-e2e-password';
const only = opt.only ? String(opt.only).split(',') : null;
const suffix = opt.suffix ?? Date.now().toString(36).slice(-4);
const NAME = `tick_mm_${suffix}`;
const SOURCE = `pipeline ${NAME} "Grid market maker ${suffix}"

book   = synthetic_book(seed=7, duration_s=120, tick_size=0.01, lot_size=0.1)
result = tick_backtest(book, strategy="grid_mm", grid_levels=3, half_spread_ticks=1,
                       order_qty=1, max_position=5, maker_fee_bps=-0.5, taker_fee_bps=5,
                       record_interval_ms=100, update_interval_ms=100)
`;

const { step, finish } = stepper(() => s, { only, shotPrefix: 'tick-fail-' });
const s = await start({ baseUrl, width: 1440, height: 1000, colorScheme: 'light' });
const { page } = s;
let runId = opt.run ? Number(opt.run) : null;

async function waitCompleted(id, timeoutMs = 420000) {
  const t0 = Date.now();
  for (;;) {
    const r = await apiCall(page, 'GET', `/api/runs/${id}`);
    if (r.json?.status === 'completed') return r.json;
    if (['failed', 'cancelled'].includes(r.json?.status)) throw new Error(`run ${id} ${r.json.status}: ${r.json.error}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`run ${id} still ${r.json?.status} after ${timeoutMs} ms`);
    await page.waitForTimeout(1000);
  }
}

const chartAttr = (name) => page.getAttribute('[data-testid=tick-chart]', name);
async function range() {
  const [from, to] = (await chartAttr('data-range')).split(':').map(Number);
  return { from, to, width: to - from };
}

await step('login', async () => {
  await login(page, user, password);
});

await step('run-to-completed', async () => {
  if (runId) return;
  const created = await apiCall(page, 'POST', '/api/pipelines', { name: NAME, source: SOURCE });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  const started = await apiCall(page, 'POST', `/api/pipelines/${created.json.id}/runs`, {});
  if (started.status !== 202) throw new Error(`run: ${started.status} ${started.text}`);
  runId = started.json.id;
  await waitCompleted(runId);
});

await step('chart-and-markers', async () => {
  await page.goto(`/runs/${runId}`);
  await page.waitForSelector('[data-testid=tick-chart] canvas', { timeout: 30000 });
  await page.waitForSelector('[data-testid=metric-cards], [data-testid=results]');
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=tick-chart]')?.getAttribute('data-markers')) > 0, null, { timeout: 15000 });
  const api = (await apiCall(page, 'GET', `/api/runs/${runId}/tick-chart?max_fills=20000`)).json;
  const markers = Number(await chartAttr('data-markers'));
  console.log(`markers ${markers}, API fills ${api.fills.length} of ${api.fills_total}`);
  if (markers !== api.fills_total || api.fills.length !== api.fills_total) throw new Error(`markers ${markers} vs API fills ${api.fills_total}`);
  const run = (await apiCall(page, 'GET', `/api/runs/${runId}`)).json;
  if (run.metrics?.fills !== undefined && run.metrics.fills !== api.fills_total) throw new Error(`metrics fills ${run.metrics.fills} vs ${api.fills_total}`);
  const legend = await page.textContent('[data-testid=tick-fill-count]');
  if (!legend.includes(`${api.fills_total.toLocaleString('en-US')} fills`)) throw new Error(`fills count: ${legend}`);
  const text = await page.textContent('[data-testid=tick-legend]');
  for (const word of ['buy, taker', 'buy, maker', 'sell, taker', 'sell, maker', 'inventory', 'position']) {
    if (!text.includes(word)) throw new Error(`legend lacks "${word}": ${text}`);
  }
  // two panes (mid, inventory) on one time axis, beside the usual equity chart; no empty price chart
  const panes = await page.$$eval('[data-testid=tick-chart] table tr', (rows) => rows.filter((r) => r.querySelector('canvas')).length);
  if (panes < 3) throw new Error(`expected the mid pane, the inventory pane and the time axis, got ${panes} rows`);
  await page.waitForSelector('[data-testid=results] [data-testid=equity-chart] canvas, [data-testid=results] canvas');
  if (await page.$('[data-testid=no-prices]')) throw new Error('the "no prices" note is shown beside the tick chart');
  await page.waitForTimeout(800);
  await s.shot('tick-01-run-page', { fullPage: true });
});

await step('zoom-and-pan', async () => {
  const before = await range();
  // the chart's area (its first canvas is the left price axis, where the wheel does nothing)
  const area = page.locator('[data-testid=tick-chart] > div[style*=height]');
  await area.scrollIntoViewIfNeeded();
  await page.waitForTimeout(300);
  const box = await area.boundingBox();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.3);
  for (let i = 0; i < 6; i++) {
    await page.mouse.wheel(0, -300);
    await page.waitForTimeout(120);
  }
  await page.waitForTimeout(400);
  const zoomed = await range();
  console.log(`visible logical range ${JSON.stringify(before)} -> ${JSON.stringify(zoomed)}`);
  if (!(zoomed.width < before.width * 0.8)) throw new Error(`wheel did not zoom in: ${JSON.stringify(before)} -> ${JSON.stringify(zoomed)}`);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.3, { steps: 8 });
  await page.mouse.up();
  await page.waitForTimeout(300);
  const panned = await range();
  if (!(panned.from > zoomed.from + 1)) throw new Error(`drag did not pan: ${JSON.stringify(zoomed)} -> ${JSON.stringify(panned)}`);
  // hover the bars until one with fills shows its tooltip
  let shown = false;
  for (let f = 0.1; f < 0.9 && !shown; f += 0.02) {
    await page.mouse.move(box.x + box.width * f, box.y + box.height * 0.3);
    await page.waitForTimeout(60);
    shown = (await page.$('[data-testid=fill-tooltip]')) !== null;
  }
  if (!shown) throw new Error('no bar with fills showed a tooltip');
  await s.shot('tick-02-zoomed-tooltip');
  await page.click('[data-testid=tick-fit]');
  await page.waitForTimeout(300);
  const fit = await range();
  if (!(fit.width > zoomed.width * 1.2)) throw new Error(`Fit did not zoom out: ${JSON.stringify(fit)}`);
});

await finish();

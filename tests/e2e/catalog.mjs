// The dataset catalog and a portfolio's results (issue 13 item 6), in the browser: upload a CSV
// of several symbols (the form's optional symbol field left empty), add a version with a
// message, see both versions (the new one "latest", its message, its dataset("name@short")),
// the symbols table, the validation report (files, checks, the worst gaps highlighted) and
// candles of two symbols (one truncated to the latest 2,000 bars); a pre-catalog dataset (the
// list mocked) says how to read it; then a portfolio_backtest run's page: equity, the weights
// heat strip (hovered: time, symbol, weight), the contribution per symbol sorted, and trades
// with a symbol column (filtered to one symbol). Screenshots tests/e2e/screenshots/catalog-*.png.
//   node catalog.mjs --base-url http://127.0.0.1:8000 --user admin --password admin-e2e-password
//   [--portfolio-run ID]  (an existing portfolio run: e.g. seed_portfolio_run.py's, API alone)
import { apiCall, args, login, start, stepper } from './harness.mjs';

const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const user = opt.user ?? 'admin';
const password = opt.password ?? process.env.ALPHAFORGE_ADMIN_PASSWORD ?? 'admin-e2e-password';
const only = opt.only ? String(opt.only).split(',') : null;
const suffix = opt.suffix ?? Date.now().toString(36).slice(-4);
const NAME = `universe_${suffix}`;
let runId = opt['portfolio-run'] ? Number(opt['portfolio-run']) : null;

/** Daily bars of `symbols` (long form, a symbol column), `skip` days left out of one symbol. */
function bars(symbols, days, { gapSymbol = null, gapDays = [], hourly = null } = {}) {
  const rows = ['ts,symbol,open,high,low,close,volume'];
  const t0 = Date.UTC(2023, 0, 2);
  for (let d = 0; d < days; d++) {
    const ts = new Date(t0 + d * 86_400_000).toISOString().slice(0, 10) + ' 00:00:00';
    symbols.forEach((sym, k) => {
      if (sym === gapSymbol && gapDays.includes(d)) return;
      const base = 50 + 10 * k + 8 * Math.sin(d / (9 + k)) + d * 0.05 * (k % 3 === 0 ? 1 : -0.5);
      const open = base + Math.sin(d * 1.7 + k);
      const close = base + Math.cos(d * 1.3 + k);
      rows.push(`${ts},${sym},${open.toFixed(4)},${(Math.max(open, close) + 1).toFixed(4)},${(Math.min(open, close) - 1).toFixed(4)},${close.toFixed(4)},${1000 + ((d * 37 + k * 11) % 500)}`);
    });
  }
  if (hourly) {
    // one more symbol with many hourly bars (more than the candle preview's 2,000)
    for (let h = 0; h < hourly.bars; h++) {
      const ts = new Date(t0 + h * 3_600_000).toISOString().slice(0, 19).replace('T', ' ');
      const p = 100 + 5 * Math.sin(h / 40);
      rows.push(`${ts},${hourly.symbol},${p.toFixed(4)},${(p + 0.5).toFixed(4)},${(p - 0.5).toFixed(4)},${(p + 0.1).toFixed(4)},10`);
    }
  }
  return rows.join('\n') + '\n';
}

// the symbols sort into (ts, symbol) order by the importer; the file need not be sorted by ts
const V1 = bars(['AAA', 'BBB', 'CCC', 'DDD'], 160, { gapSymbol: 'CCC', gapDays: [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 90, 91, 92, 93, 94] });
const V2 = bars(['AAA', 'BBB', 'CCC', 'DDD'], 160, { gapSymbol: 'CCC', gapDays: [40, 41, 42, 43, 44, 45, 46, 47, 48, 49] , hourly: { symbol: 'HHH', bars: 2500 } });
const PORTFOLIO = (dataset) => `pipeline rotation_${suffix} "Rotation ${suffix}"

data   = dataset("${dataset}")
mom    = returns(data.close, periods=10)
weight = top_n(mom, n=2)
result = portfolio_backtest(data, weight, cash=100_000, fee_bps=5, slippage_bps=2, rebalance="every", rebalance_every=5)
`;

const { step, finish } = stepper(() => s, { only, shotPrefix: 'catalog-fail-' });
const s = await start({ baseUrl, width: 1440, height: 900, colorScheme: 'light' });
const { page } = s;
let datasetId = null;
let firstVersion = null;

const text = async (sel) => (await page.textContent(sel)) ?? '';

await step('login', async () => {
  await login(page, user, password);
});

await step('upload', async () => {
  await page.goto('/datasets');
  await page.waitForSelector('[data-testid=upload-form]');
  await page.setInputFiles('[data-testid=upload-file]', { name: `${NAME}.csv`, mimeType: 'text/csv', buffer: Buffer.from(V1) });
  if ((await page.inputValue('[data-testid=upload-name]')) !== NAME) throw new Error('the name did not follow the file');
  await page.click('[data-testid=upload-form] button:has-text("Upload")');
  await page.waitForSelector('[data-testid=dataset-detail] [data-testid=version-row]', { timeout: 30000 });
  const row = page.locator('[data-testid=dataset-row]', { hasText: NAME });
  firstVersion = (await row.locator('[data-testid=dataset-version]').textContent()).trim();
  if (!/^[0-9a-f]{12}$/.test(firstVersion)) throw new Error(`latest version in the list: ${firstVersion}`);
  const cells = await row.locator('td').allTextContents();
  if (cells[2].trim() !== '4') throw new Error(`symbols count in the list: ${cells[2]}`);
  if (!cells[4].includes('2023-01-02 → 2023-06-10')) throw new Error(`range in the list: ${cells[4]}`);
  const listed = (await apiCall(page, 'GET', '/api/datasets?limit=200')).json.items;
  datasetId = listed.find((d) => d.name === NAME)?.id;
  if (!datasetId) throw new Error('the dataset is not listed by the API');
  await s.shot('catalog-01-uploaded', { fullPage: true });
});

await step('add-version', async () => {
  await page.setInputFiles('[data-testid=version-file]', { name: `${NAME}-v2.csv`, mimeType: 'text/csv', buffer: Buffer.from(V2) });
  await page.fill('[data-testid=version-message]', 'CCC: fewer missing days; HHH hourly added');
  await page.click('[data-testid=version-submit]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=version-row]').length === 2, null, { timeout: 30000 });
  const rows = page.locator('[data-testid=version-row]');
  const newest = await rows.nth(0).textContent();
  const older = await rows.nth(1).textContent();
  if (!newest.includes('latest') || older.includes('latest')) throw new Error('the "latest" badge is not on the new version alone');
  if (!newest.includes('CCC: fewer missing days')) throw new Error(`message not shown: ${newest}`);
  if (!older.includes(firstVersion) || !older.includes(`dataset("${NAME}@${firstVersion}")`)) throw new Error(`older row: ${older}`);
  const versions = (await apiCall(page, 'GET', `/api/datasets/${datasetId}/versions`)).json;
  if (!newest.includes(`dataset("${NAME}@${versions[0].short}")`)) throw new Error('the new version\'s reference is not shown');
  // the list shows the new latest version (it reloads after the upload: wait for it)
  const listedVersion = page.locator('[data-testid=dataset-row]', { hasText: NAME }).locator('[data-testid=dataset-version]');
  try {
    await listedVersion.filter({ hasText: versions[0].short }).waitFor({ timeout: 15000 });
  } catch {
    throw new Error(`list still shows ${await listedVersion.textContent()}`);
  }
  // the same file again gives the same version: no third row
  await page.setInputFiles('[data-testid=version-file]', { name: 'again.csv', mimeType: 'text/csv', buffer: Buffer.from(V2) });
  await page.click('[data-testid=version-submit]');
  await page.waitForTimeout(1500);
  if ((await rows.count()) !== 2) throw new Error('the same file made another version');
  await s.shot('catalog-02-versions', { fullPage: true });
});

await step('symbols-and-report', async () => {
  await page.click('[data-testid=tab-symbols]');
  const symbols = await page.locator('[data-testid=symbols-table] tbody tr').allTextContents();
  if (symbols.length !== 5 || !symbols.some((r) => r.includes('HHH') && r.includes('2,500'))) throw new Error(`symbols: ${symbols}`);
  await page.click('[data-testid=tab-report]');
  await page.waitForSelector('[data-testid=validation-report]');
  const files = await text('[data-testid=report-files]');
  if (!files.includes(`${NAME}-v2.csv`)) throw new Error(`report files: ${files}`);
  const worst = await page.locator('[data-testid=report-gaps] tr[data-worst=yes]').allTextContents();
  if (!worst.length || !worst[0].includes('CCC')) throw new Error(`worst gaps: ${worst}`);
  await s.shot('catalog-03-report', { fullPage: true });
  // the older version's report: CCC had two holes there
  await page.locator('[data-testid=version-row]').nth(1).click();
  await page.waitForFunction((v) => document.querySelector('[data-testid=dataset-detail]')?.textContent.includes(`Version ${v}`), firstVersion);
  await page.click('[data-testid=tab-report]');
  await page.waitForSelector('[data-testid=report-gaps]');
  const older = await text('[data-testid=report-gaps]');
  if (!older.includes('CCC')) throw new Error(`older report gaps: ${older}`);
  await page.locator('[data-testid=version-row]').nth(0).click();
});

await step('candles', async () => {
  await page.click('[data-testid=tab-candles]');
  await page.waitForSelector('[data-testid=candle-preview] canvas');
  await page.waitForFunction(() => /\d+ bars/.test(document.querySelector('[data-testid=candle-count]')?.textContent ?? ''));
  const aaa = await text('[data-testid=candle-count]');
  if (!aaa.includes('160 bars')) throw new Error(`AAA: ${aaa}`);
  await page.selectOption('[data-testid=candle-symbol]', 'HHH');
  await page.waitForFunction(() => (document.querySelector('[data-testid=candle-count]')?.textContent ?? '').includes('latest'));
  const hhh = await text('[data-testid=candle-count]');
  if (!hhh.includes('latest 2,000 of 2,500 bars')) throw new Error(`HHH: ${hhh}`);
  const canvas = page.locator('[data-testid=candle-preview] canvas').first();
  await canvas.scrollIntoViewIfNeeded();
  const box = await canvas.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, -400); // zoom in
  await page.waitForTimeout(400);
  await s.shot('catalog-04-candles', { fullPage: true });
});

await step('pre-catalog-note', async () => {
  // every upload is a catalog version now: a dataset from before is mocked into the list
  await page.route('**/api/datasets?limit=200', async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    const old = { ...body.items[0], id: 999999, name: 'old_upload', version: null, versions: 0, symbols: [], can_edit: false, can_manage: false };
    await route.fulfill({ response: res, json: { ...body, items: [old, ...body.items], total: body.total + 1 } });
  });
  await page.goto('/datasets');
  const row = page.locator('[data-testid=dataset-row]', { hasText: 'old_upload' });
  await row.locator('[data-testid=pre-catalog]').waitFor();
  await row.locator('[data-testid=dataset-open]').click();
  const note = await text('[data-testid=pre-catalog-note]');
  if (!note.includes('dataset_ohlcv(name="old_upload")') || !note.includes('alphaforge data import')) throw new Error(`note: ${note}`);
  await s.shot('catalog-05-pre-catalog');
  await page.unroute('**/api/datasets?limit=200');
});

await step('portfolio-run', async () => {
  if (runId) return; // given: an existing portfolio run
  const created = await apiCall(page, 'POST', '/api/pipelines', { name: `rotation_${suffix}`, source: PORTFOLIO(`${NAME}@${firstVersion}`) }); // the daily version: 4 symbols
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  const started = await apiCall(page, 'POST', `/api/pipelines/${created.json.id}/runs`, {});
  if (started.status !== 202) throw new Error(`run: ${started.status} ${started.text}`);
  runId = started.json.id;
  const t0 = Date.now();
  for (;;) {
    const r = (await apiCall(page, 'GET', `/api/runs/${runId}`)).json;
    if (r?.status === 'completed') break;
    if (['failed', 'cancelled'].includes(r?.status)) throw new Error(`run ${runId} ${r.status}: ${r.error}`);
    if (Date.now() - t0 > 240000) throw new Error(`run ${runId} still ${r?.status}`);
    await page.waitForTimeout(1000);
  }
});

await step('portfolio-results', async () => {
  await page.goto(`/runs/${runId}`);
  await page.waitForSelector('[data-testid=equity-chart] canvas', { timeout: 30000 });
  await page.waitForSelector('[data-testid=weights-strip] canvas', { timeout: 30000 });
  await page.waitForSelector('[data-testid=contribution-table] tbody tr');
  if (firstVersion) { // the run names the exact version it read
    const data = await text('[data-testid=run-data]');
    if (!data.includes(`${NAME}@${firstVersion.slice(0, 12)}`)) throw new Error(`run data: ${data}`);
  }
  await page.locator('[data-testid=run-title]').scrollIntoViewIfNeeded();
  await s.shot('catalog-05b-run-top');
  const outs = (await apiCall(page, 'GET', `/api/runs/${runId}/outputs`)).json;
  const primary = outs.find((o) => o.primary);
  if (primary?.node_type !== 'portfolio_backtest') throw new Error(`primary: ${JSON.stringify(primary)}`);
  const contribution = (await apiCall(page, 'GET', `/api/runs/${runId}/outputs/${primary.node}/contribution`)).json;
  const share = contribution.data[contribution.columns.indexOf('contribution')];
  const names = contribution.data[contribution.columns.indexOf('symbol')];
  const best = names[share.indexOf(Math.max(...share))];
  const first = (await page.locator('[data-testid=contribution-table] tbody tr').first().textContent()).trim();
  if (!first.startsWith(best)) throw new Error(`contribution table starts with ${first}, expected ${best}`);
  // hover the heat strip until a cell with a weight answers
  const strip = page.locator('[data-testid=weights-strip] canvas');
  await strip.scrollIntoViewIfNeeded();
  const box = await strip.boundingBox();
  let tip = '';
  for (let x = box.x + box.width - 3; x > box.x && !/weight -?\d/.test(tip); x -= 7) {
    for (let y = box.y + 2; y < box.y + box.height && !/weight -?\d/.test(tip); y += Math.max(3, box.height / 24)) {
      await page.mouse.move(x, y);
      tip = (await page.locator('[data-testid=weights-tooltip]').count()) ? await text('[data-testid=weights-tooltip]') : '';
    }
  }
  if (!/weight -?\d+(\.\d+)?%/.test(tip) || !/\d{4}-\d\d-\d\d/.test(tip)) throw new Error(`heat strip tooltip: ${tip}`);
  await s.shot('catalog-06-portfolio-weights');
  await page.locator('[data-testid=contribution]').scrollIntoViewIfNeeded();
  await s.shot('catalog-07-portfolio-contribution');
});

await step('portfolio-trades', async () => {
  const heads = await page.locator('[data-testid=trades-table] thead th').allTextContents();
  if (!heads[1]?.includes('symbol')) throw new Error(`trade columns: ${heads}`);
  const symbols = await page.locator('[data-testid=trades-symbol] option').allTextContents();
  const pick = symbols[1];
  await page.selectOption('[data-testid=trades-symbol]', pick);
  const cells = await page.locator('[data-testid=trades-table] tbody tr td:nth-child(2)').allTextContents();
  if (!cells.length || cells.some((c) => c.trim() !== pick)) throw new Error(`filtered to ${pick}: ${cells}`);
  await page.locator('[data-testid=trades-table]').scrollIntoViewIfNeeded();
  await s.shot('catalog-08-portfolio-trades');
  await page.screenshot({ path: `${process.cwd()}/screenshots/catalog-09-run-page-full.png`, fullPage: true });
});

await finish();

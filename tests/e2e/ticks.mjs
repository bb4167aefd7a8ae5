// Tick (order-book) datasets on the Datasets page (issue 15), in the browser: a dataset imported
// with `alphaforge ticks import|generate --owner` is listed with a "ticks" badge, its events and
// no "rows" preview button; opened, its versions table says Events and `tick_data("name@short")`,
// the "Order book" tab shows the per-symbol summary (events, book rows, trades, first / last
// event to the ms, price range, tick / lot) with the figures the command printed, and where the
// events came from; no candle or preview request is made, and the add-a-version form is
// replaced by the CLI command.
// Screenshots tests/e2e/screenshots/ticks-*.png.
//   node ticks.mjs --base-url URL --user admin --password PW --name NAME --events N
//        --symbol SYM --prices "LOW – HIGH" --seed N [--other NAME]   (as test_ticks_browser.py passes)
import { args, login, start, stepper } from './harness.mjs';

const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const user = opt.user ?? 'admin';
const password = opt.password ?? process.env.ALPHAFORGE_ADMIN_PASSWORD ?? 'admin-e2e-password';
const NAME = opt.name;
const EVENTS = Number(opt.events);
const SYMBOL = opt.symbol;
const PRICES = opt.prices;
const OTHER = opt.other ?? null; // a second tick dataset (several versions)

const { step, finish } = stepper(() => s, { shotPrefix: 'ticks-fail-' });
const s = await start({ baseUrl, width: 1440, height: 900, colorScheme: 'light' });
const { page } = s;
const asked = [];
page.on('request', (r) => asked.push(r.url()));
const fmt = (n) => n.toLocaleString('en-US');

await step('login', async () => {
  await login(page, user, password);
});

await step('list', async () => {
  await page.goto('/datasets');
  const row = page.locator('[data-testid=dataset-row]', { hasText: NAME });
  await row.waitFor({ timeout: 30000 });
  const badge = await row.locator('[data-testid=ticks-badge]').textContent();
  if (badge.trim() !== 'ticks') throw new Error(`badge: ${badge}`);
  const cells = (await row.locator('td').allTextContents()).join(' | ').replace(/\u00a0/g, ' ');
  if (!cells.includes(`${fmt(EVENTS)} events`)) throw new Error(`row: ${cells}`);
  if (!cells.includes('L2 depth and trades')) throw new Error(`columns cell: ${cells}`);
  if (cells.includes('volume')) throw new Error(`a bar note on a tick dataset: ${cells}`);
  if (!/\d{2}:\d{2}:\d{2} → \d{2}:\d{2}:\d{2} UTC/.test(cells)) throw new Error(`range not to the second: ${cells}`);
  if (await row.locator('button', { hasText: /^rows$/ }).count()) throw new Error('a tick dataset offers a rows preview');
  await s.shot('ticks-01-list', { fullPage: true });
});

await step('summary', async () => {
  const row = page.locator('[data-testid=dataset-row]', { hasText: NAME });
  await row.locator('[data-testid=dataset-open]').click();
  await page.waitForSelector('[data-testid=tick-summary]', { timeout: 30000 });
  const ref = (await page.textContent('[data-testid=latest-ref]')).trim();
  if (ref !== `tick_data("${NAME}")`) throw new Error(`latest ref: ${ref}`);
  const head = await page.textContent('[data-testid=versions-table] thead');
  if (!head.includes('Events')) throw new Error(`versions header: ${head}`);
  const version = (await page.locator('[data-testid=version-row]').first().textContent()) ?? '';
  if (!/tick_data\("[^"]+@[0-9a-f]{12}"\)/.test(version)) throw new Error(`version row: ${version}`);
  const rows = await page.locator('[data-testid=tick-symbol-row]').allTextContents();
  if (rows.length !== 1 || !rows[0].includes(SYMBOL)) throw new Error(`symbols: ${rows}`);
  const prices = (await page.textContent('[data-testid=tick-prices]')).trim();
  if (prices !== PRICES) throw new Error(`prices: ${prices}, expected ${PRICES}`);
  if (!rows[0].includes(fmt(EVENTS))) throw new Error(`events: ${rows[0]}`);
  if (!/\d{2}:\d{2}:\d{2}\.\d{3} UTC/.test(rows[0])) throw new Error(`times not to the ms: ${rows[0]}`);
  const note = await page.textContent('[data-testid=tick-versions-note]');
  if (!note.includes(`alphaforge ticks import`) || !note.includes(`--name ${NAME}`)) throw new Error(`note: ${note}`);
  if (await page.locator('[data-testid=add-version-form]').count()) throw new Error('a CSV form on a tick dataset');
  if (await page.locator('[data-testid=tab-candles]').count()) throw new Error('a candles tab on a tick version');
  await page.locator('[data-testid=tick-summary]').scrollIntoViewIfNeeded();
  await s.shot('ticks-02-summary', { fullPage: true });
});

await step('sources', async () => {
  const sources = await page.textContent('[data-testid=tick-sources]');
  if (!sources.includes(`synthetic_book, seed ${opt.seed}`) || !sources.includes('passed')) throw new Error(`sources: ${sources}`);
  if (await page.locator('[data-testid=tab-report]').count()) throw new Error('a bar validation report on a tick version');
});

if (OTHER) {
  await step('versions', async () => {
    await page.goto('/datasets');
    const row = page.locator('[data-testid=dataset-row]', { hasText: OTHER });
    await row.locator('[data-testid=dataset-open]').click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=version-row]').length === 2, null, { timeout: 30000 });
    // the older version: its own summary
    await page.locator('[data-testid=version-row]').nth(1).click();
    await page.waitForSelector('[data-testid=tick-summary]');
    await s.shot('ticks-03-versions', { fullPage: true });
  });
}

await step('no-candles', async () => {
  const bad = asked.filter((u) => u.includes('/candles') || u.includes('/preview'));
  if (bad.length) throw new Error(`asked for bars of a tick dataset: ${bad.join(', ')}`);
});

await finish();

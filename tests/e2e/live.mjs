// The live dashboard in the browser (issue 14, item 6), against an API and a strategy engine
// (`alphaforge engine`) on the same database: a strategy made from the SMA crossover template in
// Monaco (a syntax error refused at its line first), an instance of it created in observe mode on
// the replay feed (data/sample_ohlcv.csv, 20 bars a second) whose status becomes running, whose
// widgets appear and change between two polls, whose events show intents "not placed"; switched
// to active (after the confirm), its orders fill and its PnL moves; a config saved as version 2;
// the stream pipeline `--stream NAME` (run before with the app's data dir) listed as ended with
// its events delivered by a healthy sink; an observer sees it all with every control disabled
// and the reason as the tooltip.
// Screenshots to tests/e2e/screenshots/live-*.png; exits non-zero on a failed step or a page
// problem (uncaught error, CSP violation, failed request, HTTP 5xx).
//   node live.mjs --base-url http://127.0.0.1:8000 --user admin --password admin-e2e-password
import { apiCall, args, login, start, stepper } from './harness.mjs';

const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const user = opt.user ?? 'admin';
const password = opt.password ?? process.env.ALPHAFORGE_ADMIN_PASSWORD ?? 'admin-e2e-password';
const only = opt.only ? String(opt.only).split(',') : null;
const sfx = opt.suffix ?? Date.now().toString(36).slice(-4);
const STREAM = opt.stream ?? null; // a stream pipeline that ran with the app's data dir
const NAME = `sma_cross_${sfx}`;
const OBSERVER = `watcher_${sfx}`;
const TICKS = 'Ticks (with warm-up)'; // the template's metric

const { step, finish } = stepper(() => s, { only, shotPrefix: 'live-fail-' });

const s = await start({ baseUrl, width: 1440, height: 900 });
const { page } = s;
page.on('dialog', (d) => d.accept());

let strategyId = null;
let instanceId = null;

const editorText = () =>
  page.evaluate(() => (document.querySelector('[data-testid=code-editor] .view-lines')?.textContent ?? '').replace(/\u00a0/g, ' '));

/** Select `find` in the Monaco editor (find widget, then Escape keeps the match selected). */
async function selectInEditor(find) {
  await page.click('.monaco-editor .view-lines');
  await page.keyboard.press('Control+F');
  await page.waitForSelector('.monaco-editor .find-widget.visible', { timeout: 5000 });
  await page.keyboard.type(find);
  await page.waitForTimeout(200);
  const count = await page.textContent('.monaco-editor .find-widget .matchesCount');
  if (!count || /^No results/.test(count)) throw new Error(`"${find}" is not in the editor (${count})`);
  await page.keyboard.press('Escape');
}

async function replaceInEditor(find, replacement) {
  await selectInEditor(find);
  await page.keyboard.type(replacement);
  await page.waitForTimeout(200);
}

/** Wait until `fn()` (in the test) returns a truthy value; that value. */
async function until(what, fn, timeoutMs = 60000, everyMs = 500) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await page.waitForTimeout(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}

async function metricValue(label) {
  const el = page.locator(`[data-testid=widget-metric][data-label="${label}"] [data-testid=widget-metric-value]`);
  return (await el.count()) ? (await el.first().textContent()).trim() : null;
}

/** The control is present, disabled, and inside a tooltip whose text contains `why`. */
async function assertDenied(selector, why) {
  const el = page.locator(selector).first();
  await el.waitFor({ timeout: 15000 });
  if (!(await el.isDisabled())) throw new Error(`${selector} is enabled`);
  const tip = await el.evaluate((n) => n.closest('[data-testid=cap-denied]')?.getAttribute('data-tip') ?? null);
  if (!tip || !tip.includes(why)) throw new Error(`${selector}: tooltip ${JSON.stringify(tip)} lacks ${JSON.stringify(why)}`);
}

await step('login', async () => {
  await login(page, user, password);
  await page.click('[data-testid=sidebar] [data-testid=nav-strategies]');
  await page.waitForSelector('[data-testid=strategies-page]');
});

await step('strategy-from-template', async () => {
  await page.click('[data-testid=new-strategy]');
  await page.waitForSelector('[data-testid=strategy-editor] [data-testid=code-editor][data-language=python] .monaco-editor .view-lines');
  await page.waitForTimeout(500);
  const text = await editorText(); // the lines on screen (Monaco draws only those)
  for (const want of ['from alphaforge_strategy import', 'class SmaCross(Strategy)', 'CONFIG_SCHEMA']) {
    if (!text.includes(want)) throw new Error(`the template lacks ${want}`);
  }
  await page.fill('[data-testid=strategy-name]', NAME);
  await s.shot('live-01-editor-template');
  // a syntax error: refused, the line named and marked in the code
  await replaceInEditor('def on_tick(self, tick):', 'def on_tick(self, tick)');
  await page.click('[data-testid=save-strategy]');
  const err = await page.locator('[data-testid=save-error]').textContent({ timeout: 15000 });
  const m = /line (\d+): syntax error/.exec(err);
  if (!m) throw new Error(`the 422 does not name a line: ${err}`);
  await page.waitForSelector('.monaco-editor .squiggly-error', { timeout: 10000 });
  if (page.url().includes('/strategies/new') === false) throw new Error('a refused module left the new page');
  await s.shot('live-02-editor-line-error');
  await replaceInEditor('def on_tick(self, tick)', 'def on_tick(self, tick):');
  await page.fill('[data-testid=strategy-message]', 'from the template');
  await page.click('[data-testid=save-strategy]');
  await page.waitForURL(/\/strategies\/\d+$/, { timeout: 15000 });
  strategyId = Number(page.url().split('/').pop());
  await page.waitForSelector('[data-testid=strategy-title]');
  if ((await page.textContent('[data-testid=strategy-title]')).trim() !== NAME) throw new Error('not the saved strategy');
  const saved = (await apiCall(page, 'GET', `/api/strategies/${strategyId}`)).json;
  for (const want of ['self.context.get_position()', 'self.context.place_order(', 'def render(self)', 'line_chart(', 'table(']) {
    if (!saved.latest.code.includes(want)) throw new Error(`the saved template lacks ${want}`);
  }
  // the parsed CONFIG_SCHEMA as a form, checked as the schema says
  await page.waitForSelector('[data-testid=config-preview] [data-testid=config-fast]');
  for (const f of ['fast', 'slow', 'qty']) if (!(await page.locator(`[data-testid=config-preview] [data-testid=config-${f}]`).count())) throw new Error(`no ${f} field`);
  if ((await page.inputValue('[data-testid=config-preview] [data-testid=config-fast]')) !== '5') throw new Error('fast does not start at its default 5');
  await page.fill('[data-testid=config-preview] [data-testid=config-fast]', '0');
  const fieldErr = await page.locator('[data-testid=config-preview] [data-testid=config-error][data-field=fast]').textContent({ timeout: 5000 });
  if (!fieldErr.includes('≥ 1')) throw new Error(`fast=0: ${fieldErr}`);
  await s.shot('live-03-editor-saved-config-form');
  await page.fill('[data-testid=config-preview] [data-testid=config-fast]', '5');
  await page.click('[data-testid=tab-versions]');
  await page.waitForSelector('[data-testid=strategy-version][data-version="1"]');
});

await step('backtest-in-a-pipeline', async () => {
  // the saved module, backtested in a new pipeline with the preview's config
  await page.click('[data-testid=tab-config]');
  await page.fill('[data-testid=config-preview] [data-testid=config-fast]', '7');
  await page.click('[data-testid=strategy-backtest]');
  await page.waitForURL(/\/pipelines\/\d+/, { timeout: 15000 });
  const pid = Number(/\/pipelines\/(\d+)/.exec(page.url())[1]);
  const pipeline = (await apiCall(page, 'GET', `/api/pipelines/${pid}`)).json;
  const source = pipeline.version?.source ?? '';
  if (!source.includes(`strategy_backtest(data, strategy="${NAME}@1", fast=7, slow=20`)) throw new Error(`the pipeline's source: ${source}`);
  const checked = (await apiCall(page, 'POST', '/api/validate', { source })).json;
  if (!checked.ok) throw new Error(`the backtest pipeline does not compile: ${JSON.stringify(checked.diagnostics)}`);
  const node = checked.ir.nodes.find((n) => n.type === 'strategy_backtest');
  if (!node.params.code.includes('class SmaCross(Strategy)') || node.params.fast !== 7) throw new Error('the IR lacks the module or its config');
  await page.waitForSelector('[data-testid=editor] .monaco-editor .view-lines');
  await page.waitForTimeout(1500); // the editor's own validation
  await s.shot('live-11-strategy-backtest-pipeline');
});

await step('new-instance-dialog', async () => {
  await page.click('[data-testid=sidebar] [data-testid=nav-instances]');
  await page.waitForSelector('[data-testid=instances-page]');
  await page.click('[data-testid=new-instance]');
  const dlg = page.locator('[data-testid=new-instance-dialog]');
  await dlg.waitFor();
  await page.selectOption('[data-testid=ni-strategy]', { label: NAME });
  await page.waitForSelector('[data-testid=ni-config] [data-testid=config-qty]', { timeout: 15000 });
  if ((await page.inputValue('[data-testid=ni-path]')) !== 'data/sample_ohlcv.csv') throw new Error('the replay file is not the sample');
  // Binance USD-M futures: the market's symbols and intervals, checked as the API checks them
  await page.click('[data-testid=ni-feed-binance_futures]');
  const hint = await page.locator('[data-testid=ni-feed-hint]').textContent({ timeout: 5000 });
  if (!hint.includes('USD-M futures')) throw new Error(`the futures feed's hint: ${hint}`);
  if ((await page.inputValue('[data-testid=ni-interval]')) !== '1m') throw new Error('a futures feed does not start at 1m');
  if (await page.locator('[data-testid=ni-speed]').count()) throw new Error('a live feed shows a replay speed');
  await page.fill('[data-testid=ni-market]', 'BTC/USDT');
  await page.fill('[data-testid=ni-interval]', '1s');
  const symErr = await page.locator('[data-testid=field-error][data-field=market]').textContent({ timeout: 5000 });
  if (!symErr.includes('BTCUSDT_261225')) throw new Error(`futures market BTC/USDT: ${symErr}`);
  const ivErr = await page.locator('[data-testid=field-error][data-field="feed.interval"]').textContent({ timeout: 5000 });
  if (!ivErr.includes('spot only')) throw new Error(`futures interval 1s: ${ivErr}`);
  if (!(await page.isDisabled('[data-testid=ni-create]'))) throw new Error('Create is enabled with a futures feed Binance cannot serve');
  await page.fill('[data-testid=ni-market]', 'BTCUSDT_261225');
  await page.fill('[data-testid=ni-interval]', '15m');
  await page.waitForSelector('[data-testid=field-error]', { state: 'detached', timeout: 5000 });
  await s.shot('live-04a-new-instance-futures');
  await page.click('[data-testid=ni-feed-replay]');
  await page.waitForSelector('[data-testid=ni-path]');
  if ((await page.inputValue('[data-testid=ni-interval]')) !== '1d') throw new Error('back on replay, the interval is not 1d');
  await page.fill('[data-testid=ni-speed]', '20');
  await page.fill('[data-testid=ni-fee]', '5');
  await page.fill('[data-testid=ni-market]', 'ASSET');
  // the generated form refuses what the schema refuses, and so does Create
  await page.fill('[data-testid=ni-config] [data-testid=config-qty]', '0');
  await page.waitForSelector('[data-testid=ni-config] [data-testid=config-error][data-field=qty]');
  if (!(await page.isDisabled('[data-testid=ni-create]'))) throw new Error('Create is enabled with qty=0');
  await page.fill('[data-testid=ni-config] [data-testid=config-qty]', '10');
  await page.click('[data-testid=ni-mode-observe]');
  await s.shot('live-04-new-instance-dialog');
  await page.click('[data-testid=ni-create]');
  await page.waitForURL(/\/instances\/si_[0-9a-f]+$/, { timeout: 15000 });
  instanceId = page.url().split('/').pop();
  await page.waitForSelector('[data-testid=instance-page]');
});

/** The instance ran (a step after a failed start fails at once instead of timing out). */
let ran = false;
function needsRun() {
  if (!ran) throw new Error('not tried: the instance never ran (see the earlier failure)');
}

await step('running-with-widgets', async () => {
  if (!instanceId) throw new Error('not tried: no instance was created');
  // running, or crashed: a crash fails here with its reason (the sandbox missing, a bad module …)
  const badge = await page.waitForSelector('[data-testid=instance-status][data-status=running], [data-testid=instance-status][data-status=crashed]', { timeout: 120000 });
  if ((await badge.getAttribute('data-status')) === 'crashed') {
    throw new Error(`the instance crashed: ${await page.getAttribute('[data-testid=instance-status]', 'title')}`);
  }
  ran = true;
  if ((await page.getAttribute('[data-testid=instance-mode]', 'data-mode')) !== 'observe') throw new Error('not in observe mode');
  const first = await until('the ticks metric', () => metricValue(TICKS), 60000);
  const polls = Number(await page.getAttribute('[data-testid=widgets-panel]', 'data-polls'));
  // the next polls (every 2 s) bring a fresh rendering: the number moved
  const second = await until('the ticks metric to change', async () => {
    const v = await metricValue(TICKS);
    return v !== null && v !== first ? v : null;
  }, 30000);
  const later = Number(await page.getAttribute('[data-testid=widgets-panel]', 'data-polls'));
  if (!(later > polls)) throw new Error(`no new poll (${polls} → ${later})`);
  if (Number(second.replace(/,/g, '')) <= Number(first.replace(/,/g, ''))) throw new Error(`${TICKS} went ${first} → ${second}`);
  const points = Number(await page.getAttribute('[data-testid=widget-line-chart]', 'data-points'));
  if (!(points > 10)) throw new Error(`the line chart has ${points} points`);
  await page.waitForSelector('[data-testid=widget-table]');
  const ago = await page.textContent('[data-testid=rendered-ago]');
  if (!/rendered \d+ s ago/.test(ago)) throw new Error(`rendered-ago: ${ago}`);
  console.log(`${TICKS} ${first} → ${second}; ${points} chart points; ${ago.trim()}`);
});

await step('observe-records-intents-not-placed', async () => {
  needsRun();
  await page.click('[data-testid=events-kind-intent]');
  const msg = await until('an intent "not placed"', async () => {
    const rows = page.locator('[data-testid=event-row][data-kind=intent] [data-testid=event-message]');
    const n = await rows.count();
    for (let i = 0; i < n; i++) {
      const t = await rows.nth(i).textContent();
      if (t.includes('not placed')) return t;
    }
    return null;
  }, 90000);
  console.log(`intent: ${msg}`);
  if (await page.locator('[data-testid=order-row]').count()) throw new Error('orders placed in observe mode');
  await page.locator('[data-testid=widgets-panel]').scrollIntoViewIfNeeded();
  await s.shot('live-05-detail-observe-widgets', { fullPage: true });
  await page.click('[data-testid=events-kind-all]');
});

await step('active-places-orders', async () => {
  needsRun();
  const pnlBefore = Number(await page.getAttribute('[data-testid=account-pnl]', 'data-pnl'));
  await page.click('[data-testid=mode-active]');
  const confirm = page.locator('dialog[open] [data-testid=confirm-active]');
  await confirm.waitFor({ timeout: 5000 });
  await page.waitForTimeout(400); // the modal fades in
  if (!(await confirm.textContent()).includes('Orders will be placed on the paper venue')) throw new Error('the confirm does not warn');
  await s.shot('live-06-confirm-active');
  await page.click('[data-testid=confirm-active-yes]');
  await page.waitForSelector('[data-testid=instance-mode][data-mode=active]', { timeout: 10000 });
  await page.waitForSelector('[data-testid=order-row][data-status=filled]', { timeout: 120000 });
  await page.click('[data-testid=events-kind-fill]');
  await page.waitForSelector('[data-testid=event-row][data-kind=fill]', { timeout: 30000 });
  const pnl = await until('the PnL to change', async () => {
    const v = Number(await page.getAttribute('[data-testid=account-pnl]', 'data-pnl'));
    return v !== pnlBefore ? String(v) : null;
  }, 30000);
  const fills = await page.locator('[data-testid=order-row][data-status=filled]').count();
  console.log(`active: ${fills} filled order(s), PnL ${pnlBefore} → ${pnl}`);
  await page.click('[data-testid=events-kind-all]');
  await page.waitForTimeout(2500); // one more refresh: positions, widgets
  await s.shot('live-07-detail-active', { fullPage: true });
});

await step('config-saved-as-a-new-version', async () => {
  needsRun();
  await page.fill('[data-testid=instance-config] [data-testid=config-qty]', '0');
  await page.waitForSelector('[data-testid=instance-config] [data-testid=config-error][data-field=qty]');
  if (!(await page.isDisabled('[data-testid=save-config]'))) throw new Error('Save config enabled with qty=0');
  await page.fill('[data-testid=instance-config] [data-testid=config-qty]', '5');
  await page.click('[data-testid=save-config]');
  await page.waitForSelector('[data-testid=config-version]:has-text("version 2")', { timeout: 10000 });
  await page.waitForSelector('[data-testid=change][data-kind=config]', { timeout: 10000 });
  const r = await apiCall(page, 'GET', `/api/instances/${instanceId}`);
  if (r.json.config.qty !== 5 || r.json.config_version !== 2) throw new Error(`saved config: ${r.text}`);
});

await step('instances-list', async () => {
  needsRun();
  await page.click('[data-testid=sidebar] [data-testid=nav-instances]');
  const row = page.locator(`[data-testid=instance-row][data-id=${instanceId}]`);
  await row.waitFor();
  if ((await row.locator('[data-testid=instance-mode]').getAttribute('data-mode')) !== 'active') throw new Error('the list does not say active');
  const pnl = await row.locator('[data-testid=instance-pnl]').textContent();
  if (!/^[+-]/.test(pnl.trim())) throw new Error(`the list's PnL is ${pnl}`);
  if (STREAM) {
    // the stream pipeline that ran: ended, its events, a healthy sink that delivered them
    const p = page.locator(`[data-testid=stream-pipeline][data-pipeline=${STREAM}]`);
    await p.waitFor({ timeout: 15000 });
    if ((await p.getAttribute('data-state')) !== 'ended') throw new Error(`stream state: ${await p.getAttribute('data-state')}`);
    const events = Number((await p.locator('[data-testid=stream-events]').textContent()).replace(/,/g, ''));
    if (!(events > 0)) throw new Error(`stream events: ${events}`);
    const sink = p.locator('[data-testid=stream-sink]').first();
    if ((await sink.getAttribute('data-health')) !== 'ok') throw new Error(`sink health: ${await sink.getAttribute('data-health')}`);
    const delivered = Number((await sink.locator('[data-testid=sink-delivered]').textContent()).replace(/,/g, ''));
    if (delivered !== events) throw new Error(`the sink delivered ${delivered} of ${events} events`);
    if (!(await p.locator('[data-testid=stream-event]').count())) throw new Error('no last events shown');
  } else {
    const note = await page.textContent('[data-testid=stream-pipelines-note]');
    if (!note.includes('alphaforge stream FILE.af')) throw new Error(`stream note: ${note}`);
  }
  await s.shot('live-08-instances-list', { fullPage: true });
  await page.click('[data-testid=sidebar] [data-testid=nav-strategies]');
  const srow = page.locator(`[data-testid=strategy-row][data-name=${NAME}]`);
  await srow.waitFor();
  await s.shot('live-09-strategies-list');
});

await step('observer-sees-but-cannot-act', async () => {
  needsRun();
  const temp = `watch-${sfx}-temporary`;
  const made = await apiCall(page, 'POST', '/api/users', { username: OBSERVER, role: 'observer', password: temp });
  if (made.status !== 201) throw new Error(`observer: ${made.status} ${made.text}`);
  await page.evaluate(() => localStorage.removeItem('alphaforge.token'));
  await page.goto('/login');
  await page.fill('input[name=username]', OBSERVER);
  await page.fill('input[name=password]', temp);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=first-login]', { timeout: 15000 });
  const form = page.locator('[data-testid=first-login] [data-testid=password-form]');
  await form.locator('input[name=current_password]').fill(temp);
  await form.locator('input[name=new_password]').fill(`watch-own-${sfx}-pw`);
  await form.locator('input[name=new_password_again]').fill(`watch-own-${sfx}-pw`);
  await page.click('[data-testid=password-submit]');
  await page.waitForSelector('[data-testid=topbar]', { timeout: 15000 });
  const why = 'Observers can read but not change strategy instances.';
  await page.goto(`/instances/${instanceId}`);
  await page.waitForSelector('[data-testid=instance-page]');
  for (const sel of ['[data-testid=mode-observe]', '[data-testid=mode-off]', '[data-testid=save-config]', '[data-testid=delete-instance]']) await assertDenied(sel, why);
  if (!(await page.isDisabled('[data-testid=instance-config] [data-testid=config-qty]'))) throw new Error('the config form is editable for an observer');
  await until('the widgets, for an observer too', () => metricValue(TICKS), 30000);
  await page.hover('[data-testid=cap-denied]:has([data-testid=mode-observe])');
  await page.waitForTimeout(300);
  await s.shot('live-10-observer-detail');
  await page.goto('/strategies');
  await assertDenied('[data-testid=new-strategy]', 'Observers can read but not change strategies.');
  await page.goto('/instances');
  await assertDenied('[data-testid=new-instance]', why);
});

await finish();

// A tour of the UI against a running API, saving screenshots to tests/e2e/screenshots/ and
// failing on page errors, CSP violations or broken steps.
//   node screenshots.mjs --base-url http://127.0.0.1:8000 --user admin --password admin-e2e-password
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiCall, args, login, start, stepper } from './harness.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const user = opt.user ?? 'admin';
const password = opt.password ?? process.env.ALPHAFORGE_ADMIN_PASSWORD ?? 'admin-e2e-password';
const only = opt.only ? String(opt.only).split(',') : null;

const { step, finish } = stepper(() => s, { only, shotPrefix: 'fail-' });

const s = await start({ baseUrl });
const { page } = s;
page.on('dialog', (d) => d.accept()); // confirm() for restore/delete
const sample = readFileSync(join(ROOT, 'examples', 'sma_crossover.af'), 'utf8');
let pipelineId = null;
let runShare = null; // {token, runId}: the run share link made in run-page, revoked in share-links

await step('login', async () => {
  await page.goto('/login');
  await page.waitForSelector('[data-testid=login-form]');
  await s.shot('01-login');
  await login(page, user, password);
});

await step('seed', async () => {
  const list = await apiCall(page, 'GET', '/api/pipelines');
  const items = Array.isArray(list.json) ? list.json : (list.json?.items ?? []);
  // the sample `alphaforge serve` seeds, as a new user sees it (created only if missing)
  const found =
    items.find((p) => p.title === 'Moving Average Crossover (Sample)') ??
    items.find((p) => p.name === 'sma_crossover');
  if (found) pipelineId = found.id;
  else {
    const r = await apiCall(page, 'POST', '/api/pipelines', { name: 'sma_crossover', source: sample, message: 'Sample' });
    if (r.status !== 201) throw new Error(`create pipeline: ${r.status} ${r.text}`);
    pipelineId = r.json.id;
  }
});

await step('pipelines', async () => {
  await page.goto('/');
  await page.waitForSelector('[data-testid=pipelines-table] a');
  await s.shot('02-pipelines');
});

await step('editor', async () => {
  await page.goto(`/pipelines/${pipelineId}`);
  await page.waitForSelector('.monaco-editor .view-lines');
  await page.waitForSelector('[data-testid=problem-count]', { timeout: 15000 });
  await s.shot('03-pipeline-editor');
});

await step('diagnostics', async () => {
  await page.click('.monaco-editor .view-lines');
  await page.keyboard.press('Control+End');
  await page.keyboard.type('\nbad = smaa(data.close, window=0)');
  await page.waitForTimeout(1500);
  const badge = await page.textContent('[data-testid=problem-count]');
  if (!/error/.test(badge ?? '')) throw new Error(`expected errors, badge says ${badge}`);
  await page.waitForSelector('.monaco-editor .squiggly-error');
  await s.shot('04-diagnostics');
});

await step('completion', async () => {
  await page.keyboard.press('Control+End');
  await page.keyboard.press('Shift+Home');
  await page.keyboard.type('extra = ');
  await page.keyboard.press('Control+Space');
  await page.waitForSelector('.monaco-editor .suggest-widget.visible', { timeout: 5000 });
  await s.shot('05-completion-node-types');
  await page.keyboard.press('Escape');
  await page.keyboard.type('sma(data.close, ');
  await page.keyboard.press('Control+Space');
  await page.waitForSelector('.monaco-editor .suggest-widget.visible', { timeout: 5000 });
  await s.shot('06-completion-params');
  await page.keyboard.press('Escape');
});

await step('hover', async () => {
  const tok = page.locator('.monaco-editor .view-line span', { hasText: /^sma$/ }).first();
  await tok.hover();
  await page.waitForSelector('.monaco-editor .monaco-hover:not(.hidden)', { timeout: 5000 });
  await s.shot('07-hover');
});

await step('node-config', async () => {
  // undo the typing, then pick `fast` in the outline and change its window in the form
  await page.mouse.move(5, 5);
  await page.keyboard.press('Escape');
  await page.click('.monaco-editor .view-lines');
  for (let i = 0; i < 30; i++) await page.keyboard.press('Control+Z');
  await page.locator('[data-testid=outline] button', { hasText: 'fast' }).first().click();
  await page.waitForSelector('[data-testid=param-window] input');
  const input = page.locator('[data-testid=param-window] input');
  const next = String(Number((await input.inputValue()) || '10') + 1);
  await input.fill(next);
  await input.press('Enter');
  await input.blur();
  await page.waitForTimeout(300);
  const text = await page.evaluate(() => document.querySelector('.monaco-editor .view-lines')?.textContent ?? '');
  if (!text.includes(`window=${next}`)) throw new Error('the form edit did not reach the editor text');
  await s.shot('08-node-config');
});

await step('compiled', async () => {
  await page.waitForTimeout(800);
  await page.click('button[role=tab]:has-text("Compiled")');
  await page.waitForSelector('[data-testid=compiled]', { timeout: 5000 });
  await s.shot('09-compiled', { fullPage: true });
});

await step('save-and-versions', async () => {
  await page.fill('input[aria-label="Save message"]', 'fast window 12');
  await page.click('[data-testid=save]');
  await page.waitForSelector('[data-testid=toast]', { timeout: 5000 });
  await page.click('button[role=tab]:has-text("Versions")');
  await page.waitForSelector('[data-testid=version-history] tbody tr');
  await page.waitForTimeout(500);
  await s.shot('10-versions', { fullPage: true });
});

await step('restore', async () => {
  const before = await apiCall(page, 'GET', `/api/pipelines/${pipelineId}`);
  await page.locator('[data-testid=version-history] tbody tr').last().locator('button:has-text("restore")').click();
  await page.waitForSelector('[data-testid=toast]:has-text("Restored")', { timeout: 5000 });
  const after = await apiCall(page, 'GET', `/api/pipelines/${pipelineId}`);
  if (after.json.version.number !== before.json.version.number + 1) throw new Error('restore did not make a new version');
  const text = await page.evaluate(() => document.querySelector('.monaco-editor .view-lines')?.textContent ?? '');
  if (!text.replace(/\u00a0/g, ' ').includes('window=10')) throw new Error('the editor does not show the restored source');
});

await step('narrow-1280', async () => {
  const vp = page.viewportSize();
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto(`/pipelines/${pipelineId}`);
  await page.waitForSelector('.monaco-editor .view-lines');
  await page.locator('[data-testid=outline] button', { hasText: 'result' }).first().click();
  await page.waitForTimeout(500);
  await s.shot('25-pipeline-1280');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth);
  await page.setViewportSize(vp);
  if (overflow) throw new Error('horizontal overflow at 1280 px');
});

await step('datasets', async () => {
  await page.goto('/datasets');
  await page.waitForSelector('[data-testid=upload-form]');
  const csv = join(ROOT, 'examples', 'data', 'sample_ohlcv.csv');
  await page.fill('[data-testid=upload-form] input.font-mono', 'sample_e2e_' + Date.now().toString(36));
  await page.setInputFiles('[data-testid=upload-form] input[type=file]', csv);
  await page.click('[data-testid=upload-form] button');
  await page.waitForSelector('[data-testid=preview-table] tbody tr', { timeout: 15000 });
  await s.shot('11-datasets', { fullPage: true });
  // a broken file: the named error with its row
  await page.fill('[data-testid=upload-form] input.font-mono', 'broken');
  await page.setInputFiles('[data-testid=upload-form] input[type=file]', {
    name: 'broken.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from('ts,open,high,low,close,volume\n2021-01-01,1,2,0.5,1.5,10\n2021-01-02,1,0.5,2,1.5,10\n'),
  });
  await page.click('[data-testid=upload-form] button');
  await page.waitForSelector('[data-testid=upload-error]', { timeout: 10000 });
  await s.shot('12-dataset-error');
});

await step('nodes', async () => {
  await page.goto('/nodes?tab=builtin');
  await page.waitForSelector('[data-testid=nodes-page] h2');
  await page.locator('[data-testid=nodes-page] button', { hasText: 'backtest' }).first().click();
  await s.shot('13-nodes', { fullPage: true });
});

await step('shared', async () => {
  const r = await apiCall(page, 'POST', '/api/shares', { kind: 'pipeline', target_id: pipelineId });
  if (r.status !== 201) throw new Error(`share: ${r.status} ${r.text}`);
  const anon = await s.browser.newContext({ baseURL: baseUrl, viewport: { width: 1440, height: 900 } });
  const p2 = await anon.newPage();
  p2.on('pageerror', (e) => s.problems.push(`shared pageerror: ${e.message}`));
  await p2.goto(`/shared/${r.json.token}`);
  await p2.waitForSelector('[data-testid=code-view]');
  if (await p2.locator('[data-testid=run], [data-testid=save], .monaco-editor').count()) throw new Error('edit/run controls on the shared page');
  await p2.screenshot({ path: join(ROOT, 'tests', 'e2e', 'screenshots', '14-shared.png'), fullPage: true });
  console.log('screenshot: 14-shared.png');
  await anon.close();
});

await step('light-theme', async () => {
  await page.goto(`/pipelines/${pipelineId}`);
  await page.waitForSelector('.monaco-editor .view-lines');
  await page.click('[data-testid=topbar] button[aria-label="Toggle theme"]');
  await page.waitForTimeout(800);
  await s.shot('15-pipeline-light');
  await page.click('[data-testid=topbar] button[aria-label="Toggle theme"]');
});

await step('run', async () => {
  const probe = await apiCall(page, 'GET', `/api/pipelines/${pipelineId}/runs`);
  if (probe.status === 404 || probe.status === 405) throw new Error('runs routes are not implemented yet (skipped)');
  await page.goto(`/pipelines/${pipelineId}`);
  await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: 15000 });
  await page.click('[data-testid=run]');
  // the first run of a fresh serve registers its deployment: on a loaded machine that takes a while
  await page.waitForSelector('[data-testid=log-panel]', { timeout: 90000 });
  await s.shot('16-run-logs');
  await page.waitForSelector('[data-testid=results] [data-testid=equity-chart]', { timeout: 120000 });
  await page.waitForTimeout(800);
  // how periods per year were chosen is said in words, not cut off in a card
  const ppy = await page.textContent('[data-testid=results] [data-testid=metric-ppy]');
  if (!ppy || !/Periods per year 252: .*252 daily bars a year/.test(ppy)) throw new Error(`periods-per-year line: ${ppy}`);
  await s.shot('17-results', { fullPage: true });
});

if (s.httpErrors.length) console.log(`\nHTTP 4xx seen:\n  ${s.httpErrors.join('\n  ')}`);
await step('run-page', async () => {
  const r = await apiCall(page, 'GET', `/api/pipelines/${pipelineId}/runs`);
  // completed runs only: those have results to show and compare
  const runs = (Array.isArray(r.json) ? r.json : (r.json?.items ?? [])).filter((x) => x.status === 'completed');
  if (!runs.length) throw new Error('no completed runs to show');
  await page.goto(`/runs/${runs[0].id}`);
  await page.waitForSelector('[data-testid=run-page] [data-testid=log-panel]');
  await page.waitForTimeout(1000);
  await s.shot('18-run-page', { fullPage: true });
  // share it with the run page's Share button: the link box and "Manage links" appear
  await page.click('[data-testid=run-page] button:has-text("Share")');
  const linkBox = page.locator('[data-testid=run-page] [data-testid=share-link]');
  await linkBox.waitFor();
  const sharedUrl = await linkBox.inputValue();
  const token = sharedUrl.split('/shared/')[1];
  if (!token) throw new Error(`share link box: ${sharedUrl}`);
  await page.locator('[data-testid=run-page] [data-testid=manage-shares]').waitFor();
  await s.shot('18b-run-shared');
  runShare = { token, runId: runs[0].id };
  const anon = await s.browser.newContext({ baseURL: baseUrl, viewport: { width: 1440, height: 900 }, colorScheme: 'dark' });
  const p2 = await anon.newPage();
  p2.on('pageerror', (e) => s.problems.push(`shared run pageerror: ${e.message}`));
  await p2.goto(`/shared/${token}`);
  await p2.waitForSelector('[data-testid=code-view]');
  if (runs[0].status === 'completed') await p2.waitForSelector('[data-testid=equity-chart]', { timeout: 10000 });
  if (await p2.locator('[data-testid=run], [data-testid=save], [data-testid=cancel], .monaco-editor').count()) throw new Error('controls on the shared run page');
  await p2.waitForTimeout(500);
  await p2.screenshot({ path: join(ROOT, 'tests', 'e2e', 'screenshots', '26-shared-run.png'), fullPage: true });
  await anon.close();
  if (runs.length < 2) {
    // a second run to compare with
    const r2 = await apiCall(page, 'POST', `/api/pipelines/${pipelineId}/runs`, {});
    if (r2.status !== 202) throw new Error(`second run: ${r2.status} ${r2.text}`);
    for (let i = 0; i < 240; i++) {
      const st = await apiCall(page, 'GET', `/api/runs/${r2.json.id}`);
      if (['completed', 'failed', 'cancelled'].includes(st.json.status)) break;
      await page.waitForTimeout(500);
    }
    runs.unshift(r2.json);
  }
  await page.goto(`/compare?a=${runs[1].id}&b=${runs[0].id}`);
  await page.waitForSelector('[data-testid=compare-table] tbody tr');
  await page.waitForTimeout(800);
  await s.shot('19-compare', { fullPage: true });
});

await step('share-links', async () => {
  if (!runShare) throw new Error('no run share link from run-page');
  // a link whose pipeline is deleted since: listed as "(deleted)"
  const doomed = await apiCall(page, 'POST', '/api/pipelines', { name: `e2e_share_gone_${Date.now()}`, source: sample, message: 'to delete' });
  if (doomed.status !== 201) throw new Error(`create pipeline: ${doomed.status} ${doomed.text}`);
  const gone = await apiCall(page, 'POST', '/api/shares', { kind: 'pipeline', target_id: doomed.json.id });
  if (gone.status !== 201) throw new Error(`share: ${gone.status} ${gone.text}`);
  await apiCall(page, 'DELETE', `/api/pipelines/${doomed.json.id}`);
  await page.click('[data-testid=sidebar] [data-testid=nav-shares]');
  const row = page.locator(`[data-testid=share-row][data-token="${runShare.token}"]`);
  await row.waitFor();
  const goneRow = page.locator(`[data-testid=share-row][data-token="${gone.json.token}"]`);
  if (!/\(deleted\)/.test((await goneRow.locator('[data-testid=share-target]').textContent()) ?? '')) throw new Error('a deleted target is not marked "(deleted)"');
  if (await goneRow.locator('[data-testid=share-target] a').count()) throw new Error('a deleted target is still linked');
  // …with its own status (not "active"), no Copy (the link is dead) but still Revoke
  const goneStatus = goneRow.locator('[data-testid=share-status]');
  if ((await goneStatus.textContent())?.trim() !== 'target deleted') throw new Error(`a deleted target's link is "${await goneStatus.textContent()}"`);
  if (!/not found/.test((await goneStatus.getAttribute('title')) ?? '')) throw new Error('the "target deleted" badge does not say the link shows "not found"');
  if (!(await goneRow.locator('[data-testid=copy-share]').isDisabled())) throw new Error('a link to a deleted target can be copied');
  if (!(await goneRow.locator('[data-testid=revoke-share]').count())) throw new Error('a link to a deleted target cannot be revoked');
  // the header counts only live links to live objects as active (every link fits on one page here)
  const all = (await apiCall(page, 'GET', '/api/shares?limit=25')).json;
  if (all.total > 25) throw new Error(`${all.total} links: more than one page, the count check needs one`);
  const active = all.items.filter((x) => x.target).length;
  const dead = all.items.length - active;
  const count = (await page.textContent('[data-testid=shares-count]'))?.trim() ?? '';
  if (!count.startsWith(`${active} active · ${dead} target deleted`)) throw new Error(`header count "${count}", expected ${active} active · ${dead} target deleted`);
  if ((await row.locator('[data-testid=share-owner]').textContent())?.trim() !== user) throw new Error('the Owner column does not name the link creator');
  // the target resolves to "Run #n of <pipeline>", both linked
  await row.locator(`a[href="/runs/${runShare.runId}"]`).waitFor();
  await row.locator('a[href^="/pipelines/"]').waitFor();
  if ((await row.locator('[data-testid=share-status]').textContent())?.trim() !== 'active') throw new Error('new link is not active');
  if (!(await row.locator('input').inputValue()).endsWith(`/shared/${runShare.token}`)) throw new Error('link column shows another URL');
  await s.shot('29-share-links', { fullPage: true });
  const vp = page.viewportSize();
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.waitForTimeout(300);
  await s.shot('29b-share-links-1280');
  const overflow = () =>
    page.evaluate(() => {
      const box = document.querySelector('[data-testid=shares-table]')?.parentElement;
      return document.documentElement.scrollWidth > document.documentElement.clientWidth || (box ? box.scrollWidth > box.clientWidth : false);
    });
  if (await overflow()) throw new Error('the Share links table scrolls sideways at 1280 px');
  await page.setViewportSize(vp);
  await row.locator('[data-testid=revoke-share]').click();
  await page.waitForSelector('dialog[open] [data-testid=confirm-revoke]');
  await page.waitForTimeout(400); // the modal fades in
  await s.shot('29c-revoke-confirm');
  await page.click('dialog[open] [data-testid=confirm-revoke]');
  await page.waitForFunction(
    (t) => document.querySelector(`[data-testid=share-row][data-token="${t}"] [data-testid=share-status]`)?.textContent?.trim() === 'revoked',
    runShare.token,
  );
  if (await row.locator('[data-testid=revoke-share]').count()) throw new Error('a revoked link still offers Revoke');
  await page.waitForSelector('dialog[open]', { state: 'detached' }).catch(() => {});
  await page.waitForTimeout(300);
  const listed = await apiCall(page, 'GET', '/api/shares?limit=500');
  if ((listed.json?.items ?? []).some((x) => x.token === runShare.token)) throw new Error('the API still lists the revoked link');
  // "Show revoked" lists it from the API, marked revoked, with when
  await page.click('[data-testid=show-revoked]');
  await page.waitForSelector(`[data-testid=share-row][data-token="${runShare.token}"][data-status=revoked] [data-testid=share-revoked-at]`);
  await page.waitForSelector('[data-testid=shares-count]:has-text("revoked included")');
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.waitForTimeout(300);
  await s.shot('29d-share-revoked', { fullPage: true });
  if (await overflow()) throw new Error('the Share links page scrolls sideways at 1280 px with revoked links');
  await page.setViewportSize(vp);
  // the shared URL now says so, in a browser without a session
  const anon = await s.browser.newContext({ baseURL: baseUrl, viewport: { width: 1440, height: 900 }, colorScheme: 'dark' });
  const p2 = await anon.newPage();
  p2.on('pageerror', (e) => s.problems.push(`revoked share pageerror: ${e.message}`));
  await p2.goto(`/shared/${runShare.token}`);
  await p2.waitForSelector('[data-testid=shared-page] [role=alert]');
  const msg = await p2.textContent('[data-testid=shared-page] [role=alert]');
  if (!/revoked|does not exist/i.test(msg ?? '')) throw new Error(`revoked link shows: ${msg}`);
  if (await p2.locator('[data-testid=code-view]').count()) throw new Error('a revoked link still shows the pipeline');
  await p2.screenshot({ path: join(ROOT, 'tests', 'e2e', 'screenshots', '29e-shared-revoked.png') });
  await anon.close();
});

await step('cancel', async () => {
  // a run that lasts: the sample now answers in ~2 s, before a click could cancel it
  // (t_sleep: the test node types this tour's server imports, ALPHAFORGE_EXTRA_NODE_MODULES)
  const slow = await apiCall(page, 'POST', '/api/pipelines', {
    name: 'slow_cancel',
    source: 'pipeline slow_cancel "Slow (cancel)"\n\ndata = t_bars(n=50)\nnap  = t_sleep(data.close, seconds=120)\n',
  });
  if (slow.status !== 201) throw new Error(`slow pipeline not created: HTTP ${slow.status}`);
  await page.goto(`/pipelines/${slow.json.id}`);
  await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: 15000 });
  await page.click('[data-testid=run]');
  // cancel once the run is really running (a node has started)
  await page.waitForSelector('[data-testid=log-panel] button.badge-info, [data-testid=log-panel] button.badge-success', { timeout: 60000 });
  await page.click('[data-testid=cancel]');
  const t0 = Date.now();
  const end = await page.waitForSelector(
    '[data-testid=pipeline-page] a [data-status=cancelled], [data-testid=pipeline-page] a [data-status=failed], [data-testid=pipeline-page] a [data-status=completed]',
    { timeout: 90000 },
  );
  const status = await end.getAttribute('data-status');
  await page.waitForTimeout(500);
  await s.shot('20-cancelled');
  if (status !== 'cancelled') throw new Error(`cancel ended as "${status}" after ${Date.now() - t0} ms (contract: cancelled)`);
});

await step('keyboard-save-format', async () => {
  await page.goto(`/pipelines/${pipelineId}`);
  await page.waitForSelector('.monaco-editor .view-lines');
  await page.click('.monaco-editor .view-lines');
  await page.keyboard.press('Control+End');
  const z = 'z' + Date.now().toString(36);
  await page.keyboard.type(`\n# note   \n${z}   =   sma(data.close,   window=5)`);
  await page.click('button:has-text("Format")');
  await page.waitForTimeout(300);
  const text = await page.evaluate(() => document.querySelector('.monaco-editor .view-lines')?.textContent ?? '');
  if (!text.replace(/\u00a0/g, ' ').includes(`${z} = sma(data.close,   window=5)`)) throw new Error(`format did not align: ${text.slice(-80)}`);
  await page.click('.monaco-editor .view-lines');
  await page.keyboard.press('Control+S');
  await page.waitForSelector('[data-testid=toast]:has-text("version")', { timeout: 5000 });
  await s.shot('21-saved-with-ctrl-s');
});

await step('schedules', async () => {
  await page.goto(`/pipelines/${pipelineId}`);
  await page.waitForSelector('.monaco-editor .view-lines');
  await page.click('button[role=tab]:has-text("Schedules")');
  await page.waitForSelector('[data-testid=schedules]');
  await page.selectOption('[data-testid=schedules] select', 'interval');
  await page.fill('[data-testid=schedules] input[aria-label=minutes]', '1440');
  await page.click('[data-testid=schedules] button:has-text("Add schedule")');
  await page.waitForSelector('[data-testid=schedules] td:has-text("every")', { timeout: 10000 });
  await page.selectOption('[data-testid=schedules] select', 'cron');
  await page.fill('[data-testid=schedules] input[aria-label="cron expression"]', '0 6 * * 1-5');
  await page.click('[data-testid=schedules] button:has-text("Add schedule")');
  await page.waitForSelector('[data-testid=schedules] td:has-text("0 6 * * 1-5")', { timeout: 10000 });
  await page.locator('[data-testid=schedules] input[aria-label=active]').first().click();
  await page.waitForTimeout(500);
  await s.shot('27-schedules');
  const before = await page.locator('[data-testid=schedules] tbody tr').count();
  await page.locator('[data-testid=schedules] button:has-text("delete")').first().click();
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=schedules] tbody tr').length === n - 1, before);
});

await step('not-executed', async () => {
  // A stream block: this version runs the pipeline once and says so before anyone presses Run —
  // the AF008 warning at its keyword and the alert above the editor. (A sweep and a walkforward
  // block run as sweeps: no warning for them.)
  const name = 'e2e_stream_' + Date.now().toString(36);
  const source =
    sample.replace('sma_crossover', name).trimEnd() +
    '\n\nsweep grid {\n    fast.window = [5, 10, 20]\n    objective maximize result.sharpe\n}\n' +
    'walkforward(train=2y, test=6M, step=6M)\n' +
    'stream {\n    source = replay(dataset="btc_1h", speed=0)\n    warmup = 30d\n    every 1h after 2m\n' +
    '    emit fast to csv_append(path="out.csv")\n}\n';
  const r = await apiCall(page, 'POST', '/api/pipelines', { name, source, message: 'stream' });
  if (r.status !== 201) throw new Error(`create pipeline: ${r.status} ${r.text}`);
  await page.goto(`/pipelines/${r.json.id}`);
  await page.waitForSelector('.monaco-editor .view-lines');
  const alert = page.locator('[data-testid=not-executed]');
  await alert.waitFor({ timeout: 15000 });
  const text = (await alert.textContent()) ?? '';
  const blocks = await alert.locator('code').allTextContents();
  if (blocks.join(',') !== 'stream') throw new Error(`the alert names ${blocks}`);
  for (const want of ['stream', 'once', 'AF008']) {
    if (!text.includes(want)) throw new Error(`the alert does not say ${want}: ${text}`);
  }
  const badge = await page.textContent('[data-testid=problem-count]');
  if (!/1 warning\b/.test(badge ?? '')) throw new Error(`expected 1 warning, badge says ${badge}`);
  await page.waitForSelector('.monaco-editor .squiggly-warning');
  if (await page.locator('[data-testid=run]').isDisabled()) throw new Error('a warning must not disable Run');
  await page.click('[data-testid=problem-count]');
  await page.waitForSelector('text=AF008');
  await s.shot('04b-not-executed');
});

await step('new-and-fork', async () => {
  await page.goto('/');
  await page.click('button:has-text("New pipeline")');
  const name = 'e2e_' + Date.now().toString(36);
  await page.fill('dialog[open] [data-testid=new-name]', name);
  await page.click('dialog[open] button:has-text("Create")');
  await page.waitForSelector('[data-testid=pipeline-page]');
  await page.waitForSelector('.monaco-editor .view-lines');
  await page.click('button:has-text("Duplicate")');
  await page.fill('[data-testid=fork-name]', name + '_fork');
  await s.shot('22-fork-dialog');
  await page.click('dialog[open] button:has-text("Duplicate")');
  await page.waitForFunction((n) => document.querySelector('[data-testid=pipeline-page] .font-mono')?.textContent?.includes(n), name + '_fork');
});

await step('rename-delete', async () => {
  const name = 'e2e_rn_' + Date.now().toString(36);
  const r = await apiCall(page, 'POST', '/api/pipelines', { name, source: sample.replace('sma_crossover', name), message: 'to rename' });
  if (r.status !== 201) throw new Error(`create pipeline: ${r.status} ${r.text}`);
  await page.goto('/');
  const row = page.locator('[data-testid=pipelines-table] tr', { hasText: name });
  await row.waitFor();
  await row.locator('[data-testid=rename-pipeline]').click(); // the in-app rename dialog
  await page.fill('dialog[open] [data-testid=new-name]', name + '_renamed');
  await page.click('dialog[open] button:has-text("Rename")');
  page.removeAllListeners('dialog');
  const renamed = page.locator('[data-testid=pipelines-table] tr', { hasText: name + '_renamed' });
  await renamed.waitFor();
  const got = await apiCall(page, 'GET', `/api/pipelines/${r.json.id}`);
  if (got.json?.name !== name + '_renamed') throw new Error(`API name after rename: ${got.json?.name}`);
  page.once('dialog', (d) => d.accept()); // confirm the delete
  await renamed.locator('[data-testid=delete-pipeline]').click();
  await renamed.waitFor({ state: 'detached' });
  const gone = await apiCall(page, 'GET', `/api/pipelines/${r.json.id}`);
  if (gone.status !== 404) throw new Error(`deleted pipeline still answers ${gone.status}`);
  page.on('dialog', (d) => d.accept());
  await s.shot('28-after-delete');
});

await step('observer', async () => {
  const uname = 'obs_' + Date.now().toString(36);
  const r = await apiCall(page, 'POST', '/api/users', { username: uname, password: 'observer-password-1', role: 'observer' });
  if (r.status !== 201) throw new Error(`create observer: ${r.status} ${r.text}`);
  // an admin-set password is temporary: the observer chooses their own first (issue 9; the
  // first-login screen itself is toured in team.mjs)
  const changed = await page.evaluate(async (u) => {
    const login = await (await fetch('/api/auth/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: u, password: 'observer-password-1' }) })).json();
    const body = JSON.stringify({ current_password: 'observer-password-1', new_password: 'observer-password-2' });
    return (await fetch('/api/auth/password', { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${login.access_token}` }, body })).status;
  }, uname);
  if (changed !== 200) throw new Error(`observer password change: ${changed}`);
  const share = await apiCall(page, 'POST', '/api/shares', { kind: 'pipeline', target_id: pipelineId });
  const ctx = await s.browser.newContext({ baseURL: baseUrl, viewport: { width: 1440, height: 900 }, colorScheme: 'dark' });
  const p2 = await ctx.newPage();
  p2.on('pageerror', (e) => s.problems.push(`observer pageerror: ${e.message}`));
  await login(p2, uname, 'observer-password-2');
  await p2.goto('/');
  await p2.waitForSelector('[data-testid=pipelines-table]');
  if (await p2.locator('button:has-text("New pipeline"):enabled').count()) throw new Error('observer sees an enabled New pipeline');
  await p2.screenshot({ path: join(ROOT, 'tests', 'e2e', 'screenshots', '23-observer-list.png') });
  await p2.goto(`/pipelines/${pipelineId}`);
  await p2.waitForSelector('.monaco-editor .view-lines');
  await p2.waitForTimeout(500);
  if (await p2.locator('[data-testid=run]:enabled, [data-testid=save]:enabled').count()) throw new Error('observer sees an enabled Run/Save');
  await p2.screenshot({ path: join(ROOT, 'tests', 'e2e', 'screenshots', '23b-observer-pipeline.png') });
  // an observer sees only what is theirs or shared with them; the share link always works
  await p2.goto(`/shared/${share.json.token}`);
  await p2.waitForSelector('[data-testid=code-view]');
  // the Share links page: an observer has none and no Revoke buttons
  await p2.goto('/shares');
  await p2.waitForSelector('[data-testid=shares-empty]');
  if (await p2.locator('[data-testid=revoke-share]').count()) throw new Error('observer sees Revoke');
  await p2.screenshot({ path: join(ROOT, 'tests', 'e2e', 'screenshots', '23c-observer-shares.png') });
  await ctx.close();
});

await step('login-failure', async () => {
  const ctx = await s.browser.newContext({ baseURL: baseUrl, viewport: { width: 1440, height: 900 } });
  const p2 = await ctx.newPage();
  await p2.goto('/pipelines/1');
  await p2.waitForSelector('[data-testid=login-form]');
  if (!p2.url().includes('next=')) throw new Error(`no next= on redirect: ${p2.url()}`);
  await p2.fill('input[name=username]', 'admin');
  await p2.fill('input[name=password]', 'wrong');
  await p2.click('button[type=submit]');
  await p2.waitForSelector('[data-testid=login-form] [role=alert]');
  await p2.screenshot({ path: join(ROOT, 'tests', 'e2e', 'screenshots', '24-login-failed.png') });
  await ctx.close();
});

await finish();

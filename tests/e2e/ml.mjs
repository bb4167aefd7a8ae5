// The ML example in the web app (issue 12, "done when" and item 7): the 8-node LSTM pipeline
// (examples/ml_lstm_pipeline.af, renamed) runs to Completed from ▶ Run; its run page shows the
// training curve (one point per epoch, the best epoch marked), the registry name, version and
// alias, and downloads the model file; the Models page lists the registered model with the run
// that trained it; a second pipeline trades it by name. Screenshots tests/e2e/screenshots/ml-*.png.
//   node ml.mjs --base-url http://127.0.0.1:8000 --user admin --password admin-e2e-password
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiCall, args, login, start, stepper } from './harness.mjs';

const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const user = opt.user ?? 'admin';
const password = opt.password ?? process.env.ALPHAFORGE_ADMIN_PASSWORD ?? 'admin-e2e-password';
const only = opt.only ? String(opt.only).split(',') : null;
const suffix = opt.suffix ?? Date.now().toString(36).slice(-4);
const NAME = `ml_lstm_${suffix}`;
const MODEL = `${NAME}.model`;
const here = dirname(fileURLToPath(import.meta.url));
const example = readFileSync(join(here, '..', '..', 'examples', 'ml_lstm_pipeline.af'), 'utf-8');
const SOURCE = example.replace(/^pipeline ml_lstm_pipeline "([^"]*)"/m, `pipeline ${NAME} "LSTM signal ${suffix}"`);
if (SOURCE === example) throw new Error('the example no longer starts with its pipeline line');
const REUSE = readFileSync(join(here, '..', '..', 'examples', 'ml_registered_predict.af'), 'utf-8')
  .replace(/^pipeline ml_registered_predict "([^"]*)"/m, `pipeline ${NAME}_again "Registered LSTM ${suffix}"`)
  .replace('registered="ml_lstm_pipeline.model"', `registered="${MODEL}"`);

const { step, finish } = stepper(() => s, { only, shotPrefix: 'ml-fail-' });
const s = await start({ baseUrl, width: 1440, height: 900, colorScheme: 'light' });
const { page } = s;
let pipelineId = null;
let run = null;

const list = (r) => (Array.isArray(r.json) ? r.json : (r.json?.items ?? []));

async function waitEnded(id, timeoutMs = 300000) {
  const t0 = Date.now();
  for (;;) {
    const r = await apiCall(page, 'GET', `/api/runs/${id}`);
    if (r.json?.status === 'completed') return r.json;
    if (['failed', 'cancelled'].includes(r.json?.status)) throw new Error(`run ${id} ${r.json.status}: ${r.json.error}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`run ${id} still ${r.json?.status} after ${timeoutMs} ms`);
    await page.waitForTimeout(1000);
  }
}

await step('login', async () => {
  await login(page, user, password);
});

await step('run-ml-example', async () => {
  const created = await apiCall(page, 'POST', '/api/pipelines', { name: NAME, source: SOURCE });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  pipelineId = created.json.id;
  await page.goto(`/pipelines/${pipelineId}`);
  await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: 30000 });
  const posted = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith(`/api/pipelines/${pipelineId}/runs`), { timeout: 30000 });
  await page.click('[data-testid=run]');
  await posted;
  let runs = [];
  for (let i = 0; i < 30 && !runs.length; i++) {
    runs = list(await apiCall(page, 'GET', `/api/pipelines/${pipelineId}/runs`));
    if (!runs.length) await page.waitForTimeout(500);
  }
  if (!runs.length) throw new Error('▶ Run made no run');
  run = await waitEnded(runs[0].id);
  if (run.models.length !== 1) throw new Error(`models of the run: ${JSON.stringify(run.models)}`);
});

await step('run-page-model', async () => {
  const m = run.models[0];
  await page.goto(`/runs/${run.id}`);
  await page.waitForSelector('[data-testid=run-model] [data-testid=loss-chart] svg', { timeout: 30000 });
  const reg = await page.textContent('[data-testid=model-registry]');
  if (!reg.includes(MODEL) || !reg.includes(`v${m.registered_version}`) || !reg.includes('@champion')) throw new Error(`registry line: ${reg}`);
  const points = await page.locator('[data-testid=loss-chart] circle').count();
  const withVal = m.history.filter((h) => h.val_loss !== null).length;
  if (points !== m.history.length + withVal) throw new Error(`${points} points for ${m.history.length} epochs`);
  const d = await page.getAttribute('[data-testid=train-loss-line]', 'd');
  if ((d.match(/[ML]/g) ?? []).length !== m.history.length) throw new Error(`training loss path: ${d}`);
  const summary = await page.textContent('[data-testid=model-summary]');
  if (!summary.includes(`${m.summary.best_epoch} of ${m.summary.stopped_epoch}`)) throw new Error(`summary: ${summary}`);
  // hovering the chart names an epoch's losses
  const box = await page.locator('[data-testid=loss-chart] svg').boundingBox();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
  const hover = await page.textContent('[data-testid=loss-hover]');
  if (!/epoch \d+: train \d/.test(hover)) throw new Error(`hover: ${hover}`);
  // the backtest results as usual, below
  await page.waitForSelector('[data-testid=results] [data-testid=metric-cards]', { timeout: 30000 });
  await page.locator('[data-testid=run-models]').scrollIntoViewIfNeeded();
  await s.shot('ml-01-run-model');
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 30000 }), page.click('[data-testid=download-model]')]);
  const bytes = readFileSync(await dl.path());
  if (bytes.length !== m.bytes) throw new Error(`downloaded ${bytes.length} bytes, the run says ${m.bytes}`);
  if (bytes.subarray(0, 2).toString() !== 'PK') throw new Error('the model file is not a zip');
  if (!dl.suggestedFilename().endsWith('-model.afmodel')) throw new Error(`file name ${dl.suggestedFilename()}`);
});

await step('models-page', async () => {
  await page.click('[data-testid=nav-models]');
  await page.waitForSelector('[data-testid=models-page] [data-testid=registered-model]', { timeout: 30000 });
  await page.fill('[aria-label="Filter models"]', NAME);
  const card = page.locator('[data-testid=registered-model]', { has: page.locator(`[data-testid=model-name]:text-is("${MODEL}")`) });
  await card.waitFor({ timeout: 10000 });
  const row = card.locator('[data-testid=model-version]').first();
  const text = await row.textContent();
  if (!text.includes('@champion') || !text.includes(`run #${run.id}`)) throw new Error(`version row: ${text}`);
  await page.waitForTimeout(400);
  await s.shot('ml-02-models-page');
  await row.locator('[data-testid=model-source-run]').click();
  await page.waitForURL(`**/runs/${run.id}`);
  await page.waitForSelector('[data-testid=run-model]', { timeout: 30000 });
});

await step('reuse-by-name', async () => {
  const created = await apiCall(page, 'POST', '/api/pipelines', { name: `${NAME}_again`, source: REUSE });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  const started = await apiCall(page, 'POST', `/api/pipelines/${created.json.id}/runs`, {});
  if (started.status !== 202) throw new Error(`run: ${started.status} ${started.text}`);
  const again = await waitEnded(started.json.id);
  const a = (await apiCall(page, 'GET', `/api/runs/${run.id}/results`)).json.metrics;
  const b = (await apiCall(page, 'GET', `/api/runs/${again.id}/results`)).json.metrics;
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`metrics differ: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  await page.goto(`/runs/${again.id}`);
  await page.waitForSelector('[data-testid=results] [data-testid=metric-cards]', { timeout: 30000 });
  if (await page.locator('[data-testid=run-models]').count()) throw new Error('a run that trained nothing shows a model');
  const logs = await page.textContent('[data-testid=run-page]');
  if (!logs.includes(`registered model ${MODEL} version`)) throw new Error('the log does not say which registered version was used');
});

await finish();

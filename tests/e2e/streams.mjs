// Deployed stream pipelines in the browser (issue 14, the live side's stream part), against an
// API and `alphaforge engine` on the same database: a saved pipeline without a stream block is
// refused in the Deploy dialog (the API's sentence shown); one with a block is deployed (not
// started), its page says stopped; Start → the engine picks it up, the status becomes running,
// the last events and a healthy CSV sink appear and grow between polls; Stop (confirmed) → the
// engine stops it and no engine holds it; the Live page lists it with its controls.
// Screenshots to tests/e2e/screenshots/streams-*.png; exits non-zero on a failed step or a page
// problem (uncaught error, CSP violation, failed request, HTTP 5xx).
//   node streams.mjs --base-url http://127.0.0.1:8000 --user admin --password admin-e2e-password
import { apiCall, args, login, start, stepper } from './harness.mjs';

const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const user = opt.user ?? 'admin';
const password = opt.password ?? process.env.ALPHAFORGE_ADMIN_PASSWORD ?? 'admin-e2e-password';
const only = opt.only ? String(opt.only).split(',') : null;
const sfx = opt.suffix ?? Date.now().toString(36).slice(-4);
const NAME = `tour_signals_${sfx}`;
const BATCH = `tour_batch_${sfx}`;
const STREAM_AF = `pipeline ${NAME} "SMA crossover signals, deployed"

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fast   = sma(data.close, window=5)
slow   = sma(data.close, window=20)
signal = crossover(fast, slow)

stream {
    source = replay(speed=4, start=700)
    emit signal to csv_append(path="out/${NAME}.csv")
}
`;
const BATCH_AF = `pipeline ${BATCH}

data = csv_ohlcv(path="data/sample_ohlcv.csv")
fast = sma(data.close, window=5)
`;

const { step, finish } = stepper(() => s, { only, shotPrefix: 'streams-fail-' });
const s = await start({ baseUrl, width: 1440, height: 900 });
const { page } = s;
let confirms = 0;
page.on('dialog', (d) => {
  confirms += 1;
  d.accept();
});
let pipelineId = null;
let batchId = null;
let streamId = null;

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
const num = async (sel) => Number(((await page.textContent(sel)) ?? '').replace(/[^0-9.-]/g, ''));
const status = () => page.getAttribute('[data-testid=stream-page]', 'data-status');

await step('login-and-seed', async () => {
  await login(page, user, password);
  for (const [name, source] of [[NAME, STREAM_AF], [BATCH, BATCH_AF]]) {
    const r = await apiCall(page, 'POST', '/api/pipelines', { name, source });
    if (r.status !== 201) throw new Error(`saving ${name}: ${r.status} ${r.text}`);
    if (name === NAME) pipelineId = r.json.id;
    else batchId = r.json.id;
  }
});

await step('deploy-refuses-a-batch-pipeline', async () => {
  await page.goto('/instances');
  await page.click('[data-testid=deploy-stream]');
  await page.waitForSelector('[data-testid=deploy-stream-dialog]');
  await until('the pipelines in the dialog', async () => (await page.locator('[data-testid=deploy-pipeline] option').count()) >= 2, 15000);
  await page.selectOption('[data-testid=deploy-pipeline]', String(batchId));
  await page.click('[data-testid=deploy-submit]');
  const err = await page.waitForSelector('[data-testid=deploy-error]', { timeout: 10000 });
  const text = await err.textContent();
  if (!text.includes('no stream')) throw new Error(`the refusal says: ${text}`);
  await s.shot('streams-01-deploy-refused');
});

await step('deploy', async () => {
  await page.selectOption('[data-testid=deploy-pipeline]', String(pipelineId));
  await page.uncheck('[data-testid=deploy-start]');
  await s.shot('streams-02-deploy-dialog');
  await page.click('[data-testid=deploy-submit]');
  await page.waitForSelector('[data-testid=stream-page]', { timeout: 15000 });
  streamId = await page.getAttribute('[data-testid=stream-page]', 'data-id');
  if (!streamId?.startsWith('sp_')) throw new Error(`deployment id ${streamId}`);
  if ((await status()) !== 'stopped') throw new Error(`a deployment not started is ${await status()}`);
  if (!(await page.textContent('[data-testid=stream-text]')).includes(`pipeline ${NAME}`)) throw new Error('the text is not shown');
});

await step('start-and-watch', async () => {
  if (!streamId) throw new Error('nothing deployed');
  await page.click('[data-testid=stream-start]');
  await until('the engine to run it', async () => (await status()) === 'running', 60000);
  const engine = await page.textContent('[data-testid=stream-engine]');
  if (!engine.includes('engine@')) throw new Error(`run by ${engine}`);
  await until('last events', async () => (await page.locator('[data-testid=stream-event]').count()) >= 3, 60000);
  const first = await num('[data-testid=stream-page] [data-testid=stream-events]');
  await until('more events on a later poll', async () => (await num('[data-testid=stream-page] [data-testid=stream-events]')) > first, 30000);
  const sink = page.locator('[data-testid=stream-sink]').first();
  await until('a healthy sink', async () => (await sink.getAttribute('data-health')) === 'ok', 30000);
  if (!((await num('[data-testid=sink-delivered]')) > 0)) throw new Error('the sink delivered nothing');
  await s.shot('streams-03-running', { fullPage: true });
});

await step('stop', async () => {
  if (!streamId) throw new Error('nothing deployed');
  const asked = confirms;
  await page.click('[data-testid=stream-stop]');
  if (confirms !== asked + 1) throw new Error('Stop did not ask first');
  await until('the engine to stop it', async () => (await status()) === 'stopped', 60000);
  const engine = await page.textContent('[data-testid=stream-engine]');
  if (engine.includes('engine@')) throw new Error(`still held by ${engine}`);
  const reason = await page.textContent('[data-testid=stream-reason]');
  if (!reason.includes('stopped by its owner')) throw new Error(`reason: ${reason}`);
  const r = await apiCall(page, 'GET', `/api/streams/${streamId}`);
  if (r.json.desired !== 'stopped' || !(r.json.events > 0) || r.json.events >= 200) throw new Error(`after stop: ${r.text.slice(0, 300)}`);
  await page.waitForSelector('[data-testid=stream-start]');
  await s.shot('streams-04-stopped', { fullPage: true });
});

await step('live-page-list', async () => {
  if (!streamId) throw new Error('nothing deployed');
  await page.click('[data-testid=sidebar] [data-testid=nav-instances]');
  const card = page.locator(`[data-testid=stream-pipeline][data-id=${streamId}]`);
  await card.waitFor({ timeout: 15000 });
  if ((await card.getAttribute('data-status')) !== 'stopped') throw new Error(`listed as ${await card.getAttribute('data-status')}`);
  await card.locator('[data-testid=stream-start]').waitFor();
  await card.scrollIntoViewIfNeeded();
  await s.shot('streams-05-live-page', { fullPage: true });
});

await finish();

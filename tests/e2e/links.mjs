// Issue 9: a new user creates a pipeline from the template and runs it to Completed, then the
// run page's Prefect and MLflow links open pages that show THIS run (its name, no "Can't
// connect"). Needs `alphaforge serve --with-prefect-ui --with-mlflow-ui`.
//   node links.mjs --base-url http://127.0.0.1:8000 --user admin --password admin-e2e-password
import { join } from 'node:path';
import { SCREENSHOTS, apiCall, args, login, start, stepper } from './harness.mjs';

const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const user = opt.user ?? 'admin';
const password = opt.password ?? 'admin-e2e-password';
const suffix = Date.now().toString(36);
const name = `ops_links_${suffix}`;
const title = `Ops Links ${suffix}`;
const slug = `ops-links-${suffix}`;

const { step, finish } = stepper(() => s, { shotPrefix: 'links-fail-' });
const s = await start({ baseUrl });
const { page, context } = s;
let runId = null;
let record = null; // the run as GET /api/runs/{id} answers

await step('login', async () => {
  await login(page, user, password);
});

await step('new-pipeline-from-template', async () => {
  await page.goto('/');
  await page.click('button:has-text("New pipeline")');
  await page.fill('[data-testid=new-name]', name);
  const titleBox = page.locator('dialog[open] input[placeholder="My strategy"]');
  if (await titleBox.count()) await titleBox.fill(title);
  await s.shot('links-01-new-pipeline');
  await page.click('dialog[open] button:has-text("Create")');
  await page.waitForSelector('[data-testid=pipeline-page]');
  await page.waitForSelector('.monaco-editor .view-lines');
  await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: 30000 });
});

await step('run-to-completed', async () => {
  await page.click('[data-testid=run]');
  const done = '[data-testid=pipeline-page] a [data-status=completed], [data-testid=pipeline-page] a [data-status=failed], [data-testid=pipeline-page] a [data-status=cancelled]';
  await page.waitForSelector(done, { timeout: 180000 });
  const badge = page.locator(done).first();
  const status = await badge.getAttribute('data-status');
  const href = await badge.locator('xpath=..').getAttribute('href');
  runId = href.split('/').pop();
  await s.shot('links-02-run-completed');
  if (status !== 'completed') {
    const r = await apiCall(page, 'GET', `/api/runs/${runId}`);
    throw new Error(`the template's run ended ${status}: ${r.json?.error}`);
  }
});

await step('run-page-links', async () => {
  await page.goto(`/runs/${runId}`);
  await page.waitForSelector('[data-testid=run-page] [data-testid=results]', { timeout: 60000 });
  await page.waitForSelector('[data-testid=prefect-link]');
  await page.waitForSelector('[data-testid=mlflow-link]');
  if (await page.locator('[data-testid=ui-links-hint]').count()) throw new Error('hint shown although both UIs run');
  record = (await apiCall(page, 'GET', `/api/runs/${runId}`)).json;
  const prefectHref = await page.getAttribute('[data-testid=prefect-link]', 'href');
  const mlflowHref = await page.getAttribute('[data-testid=mlflow-link]', 'href');
  if (!prefectHref.endsWith(`/runs/flow-run/${record.prefect_flow_run_id}`)) throw new Error(`Prefect link ${prefectHref}`);
  if (!mlflowHref.includes(`/runs/${record.mlflow_run_id}`) || !mlflowHref.includes('#/experiments/')) throw new Error(`MLflow link ${mlflowHref}`);
  await s.shot('links-03-run-page');
});

/** Open `href` in a new tab and wait until its text shows every one of `wants`. */
async function openAndFind(href, wants, shotName) {
  const tab = await context.newPage();
  try {
    await tab.goto(href);
    const deadline = Date.now() + 90000;
    let text = '';
    while (Date.now() < deadline) {
      text = await tab.evaluate(() => document.body?.innerText ?? '');
      if (/can.t connect/i.test(text)) break;
      if (wants.every((w) => text.includes(w))) break;
      await tab.waitForTimeout(500);
    }
    await tab.waitForTimeout(500);
    const path = join(SCREENSHOTS, `${shotName}.png`);
    await tab.screenshot({ path });
    console.log(`screenshot: ${path}`);
    const flat = text.replace(/\s+/g, ' ').slice(0, 600);
    if (/can.t connect/i.test(text)) throw new Error(`${href} says it cannot connect: ${flat}`);
    const missing = wants.filter((w) => !text.includes(w));
    if (missing.length) throw new Error(`${href} does not show ${missing.join(', ')}: ${flat}`);
  } finally {
    await tab.close();
  }
}

await step('prefect-page-shows-the-run', async () => {
  const href = await page.getAttribute('[data-testid=prefect-link]', 'href');
  // the flow run's name: <title slug>/<run id>, the run id being the MLflow run's name too
  await openAndFind(href, [`${slug}/`, record.prefect_flow_run_id], 'links-04-prefect-flow-run');
});

await step('mlflow-page-shows-the-run', async () => {
  const href = await page.getAttribute('[data-testid=mlflow-link]', 'href');
  // the run's name (the same as in Prefect) and its MLflow run id
  await openAndFind(href, [`${slug}/`, record.mlflow_run_id], 'links-05-mlflow-run');
});

await finish();

// Screenshots of the sweep pages from sweeps written by seed_sweeps.py (no sweep engine needed):
//   node sweep_shots.mjs --base-url URL --ids '{"running":1,"grid":2,"walkforward":3,"pipeline":1}'
import { args, login, start, stepper } from './harness.mjs';

const opt = args();
const ids = JSON.parse(opt.ids);
const { step, finish } = stepper(() => s, { shotPrefix: 'sweepseed-fail-' });
const s = await start({ baseUrl: opt['base-url'] ?? 'http://127.0.0.1:8000' });
const { page } = s;

await step('login', () => login(page, opt.user ?? 'admin', opt.password ?? 'admin-e2e-password'));
for (const [name, id] of Object.entries(ids)) {
  if (name === 'pipeline') continue;
  await step(`sweep-${name}`, async () => {
    await page.goto(`/sweeps/${id}`);
    // a sweep with no trial yet shows its empty states instead of rows
    await page.waitForSelector(name === 'starting' ? '[data-testid=sweep-progress]' : '[data-testid=trial-row]', { timeout: 15000 });
    await page.waitForTimeout(800);
    await s.shot(`sweepseed-${name}`, { fullPage: true });
  });
}
await step('list', async () => {
  await page.goto('/sweeps');
  await page.waitForSelector('[data-testid=sweep-list]');
  await s.shot('sweepseed-list');
});
await step('pipeline', async () => {
  await page.goto(`/pipelines/${ids.pipeline}`);
  await page.waitForSelector('[data-testid=sweep]');
  await page.waitForTimeout(1500);
  await s.shot('sweepseed-pipeline');
});
// --observer NAME:PASSWORD (an observer whose password is already changed): their view
if (opt.observer) {
  const [name, pw] = String(opt.observer).split(':');
  const o = await start({ baseUrl: opt['base-url'] ?? 'http://127.0.0.1:8000' });
  await login(o.page, name, pw);
  await o.page.goto(`/sweeps/${ids.grid}`);
  await o.page.waitForSelector('[data-testid=trial-row]');
  await o.page.hover('[data-testid=cap-denied]:has([data-testid=open-best])');
  await o.page.waitForTimeout(500);
  await o.shot('sweepseed-observer');
  await o.page.goto(`/pipelines/${ids.pipeline}`);
  await o.page.waitForSelector('[data-testid=sweep][disabled]');
  await o.page.hover('[data-testid=cap-denied]:has([data-testid=sweep])');
  await o.page.waitForTimeout(500);
  await o.shot('sweepseed-observer-pipeline');
  await o.close();
}
await finish();

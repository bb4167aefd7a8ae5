// Team use of the web app (issue 9, items 7 and 9): the admin creates a team, a developer and
// an observer in the UI (Users and Teams pages) and shares a pipeline with the team; the
// developer logs in with the temporary password, is shown only "choose a new password" until
// it is changed, then sees the team's pipeline read-only (Save / Run disabled with a tooltip) and
// not the admin's unshared one; the observer sees no usable edit control on the pipelines,
// pipeline, datasets, nodes and node editor pages (disabled, with a tooltip saying why); the
// last active admin cannot demote themselves; a disabled user is signed out. Screenshots to
// tests/e2e/screenshots/team-*.png; exits non-zero on a failed step or a page problem.
//   node team.mjs --base-url http://127.0.0.1:8000 --user admin --password admin-e2e-password
import { apiCall, args, login, start, stepper } from './harness.mjs';

const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const adminUser = opt.user ?? 'admin';
const adminPassword = opt.password ?? process.env.ALPHAFORGE_ADMIN_PASSWORD ?? 'admin-e2e-password';
const only = opt.only ? String(opt.only).split(',') : null;
const sfx = opt.suffix ?? Date.now().toString(36).slice(-5);

const TEAM = `Quants ${sfx}`;
const DEV = `dev_${sfx}`;
const OBS = `obs_${sfx}`;
const SHARED = `team_shared_${sfx}`;
const PRIVATE = `team_private_${sfx}`;
const DATASET = `team_ds_${sfx}`;
const creds = {}; // username -> current password
const ids = {}; // names -> ids

const { step, finish } = stepper(() => s, { only, shotPrefix: 'team-fail-' });
const s = await start({ baseUrl, width: 1366, height: 860 });
const { page } = s;
page.on('dialog', (d) => d.accept());

async function signOutAndIn(username, password) {
  await page.evaluate(() => localStorage.removeItem('alphaforge.token'));
  await page.goto('/login');
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
}

/** The control is present, disabled, and inside a tooltip whose text contains `why`. */
async function assertDenied(selector, why) {
  const el = page.locator(selector).first();
  await el.waitFor({ timeout: 15000 });
  if (!(await el.isDisabled())) throw new Error(`${selector} is enabled`);
  const tip = await el.evaluate((n) => n.closest('[data-testid=cap-denied]')?.getAttribute('data-tip') ?? null);
  if (!tip || !tip.includes(why)) throw new Error(`${selector}: tooltip ${JSON.stringify(tip)} lacks ${JSON.stringify(why)}`);
}

async function toastText(words) {
  const t = page.locator('.toast, [role=status], .alert').filter({ hasText: words }).first();
  await t.waitFor({ timeout: 10000 });
  return t.textContent();
}

await step('admin-setup', async () => {
  await login(page, adminUser, adminPassword);
  creds[adminUser] = adminPassword;
  // two pipelines of the admin's (from the sample's source) and a dataset, made through the API
  const list = await apiCall(page, 'GET', '/api/pipelines?limit=200');
  const any = list.json.items[0];
  if (!any) throw new Error('the admin has no pipeline to copy the source of');
  const source = (await apiCall(page, 'GET', `/api/pipelines/${any.id}`)).json.version.source;
  for (const name of [SHARED, PRIVATE]) {
    const r = await apiCall(page, 'POST', '/api/pipelines', { name, source, message: 'team tour' });
    if (r.status !== 201) throw new Error(`create ${name}: ${r.status} ${r.text}`);
    ids[name] = r.json.id;
  }
  const up = await page.evaluate(async (name) => {
    const csv = 'ts,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1.5,2.5,1,2,12\n';
    const fd = new FormData();
    fd.append('name', name);
    fd.append('file', new Blob([csv], { type: 'text/csv' }), 'team.csv');
    const res = await fetch('/api/datasets', { method: 'POST', body: fd, headers: { Authorization: `Bearer ${localStorage.getItem('alphaforge.token')}` } });
    return res.status;
  }, DATASET);
  if (up !== 201) throw new Error(`dataset upload: ${up}`);
});

await step('admin-creates-users', async () => {
  await page.click('[data-testid=sidebar] [data-testid=nav-users]');
  await page.waitForSelector('[data-testid=users-table] [data-testid=user-row]');
  for (const [name, role] of [[DEV, 'developer'], [OBS, 'observer']]) {
    await page.click('[data-testid=new-user]');
    const form = page.locator('[data-testid=new-user-form]');
    await form.locator('input[name=username]').fill(name);
    await form.locator('select[name=role]').selectOption(role);
    const temp = await form.locator('input[name=password]').inputValue();
    if (temp.length < 8) throw new Error(`generated temporary password too short: ${temp}`);
    creds[name] = temp;
    await page.click('[data-testid=create-user]');
    const row = page.locator(`[data-testid=user-row][data-username="${name}"]`);
    await row.waitFor({ timeout: 10000 });
    if ((await row.locator('[data-testid=user-role]').inputValue()) !== role) throw new Error(`${name} is not ${role}`);
    if (!(await row.textContent()).includes('temporary password')) throw new Error(`${name} not marked as temporary password`);
  }
  // a taken username: the dialog says so in a sentence
  await page.click('[data-testid=new-user]');
  await page.locator('[data-testid=new-user-form] input[name=username]').fill(DEV);
  await page.click('[data-testid=create-user]');
  const err = await page.locator('[data-testid=new-user-error]').textContent({ timeout: 10000 });
  if (!err.includes(`The username '${DEV}' is taken: choose another one.`)) throw new Error(`duplicate user message: ${err}`);
  await s.shot('team-01-new-user-error');
  await page.keyboard.press('Escape');
  await page.locator('dialog[open]').waitFor({ state: 'detached', timeout: 5000 }).catch(() => {});
  await page.waitForTimeout(400);
  await s.shot('team-02-users');
});

await step('last-admin-guard', async () => {
  // the admin is the only admin: demoting themselves is refused with a sentence
  const me = page.locator(`[data-testid=user-row][data-username="${adminUser}"]`);
  const admins = await apiCall(page, 'GET', '/api/users?limit=500');
  const activeAdmins = admins.json.items.filter((u) => u.role === 'admin' && u.is_active).length;
  if (activeAdmins !== 1) return; // another tour made an admin: the guard is covered by the API tests
  await me.locator('[data-testid=user-role]').selectOption('developer');
  const text = await toastText('last active admin');
  if (!text.includes('make another user an admin first')) throw new Error(`guard message: ${text}`);
  await page.waitForTimeout(500);
  if ((await me.locator('[data-testid=user-role]').inputValue()) !== 'admin') throw new Error('the role select did not go back to admin');
  await s.shot('team-03-last-admin');
});

await step('admin-creates-team', async () => {
  await page.click('[data-testid=sidebar] [data-testid=nav-teams]');
  await page.waitForSelector('[data-testid=teams-page]');
  await page.fill('[data-testid=new-team-form] input[name=team]', TEAM);
  await page.click('[data-testid=create-team]');
  const card = page.locator(`[data-testid=team-card][data-team="${TEAM}"]`);
  await card.waitFor({ timeout: 10000 });
  for (const name of [DEV, OBS]) {
    const option = await card.locator('[data-testid=add-member-select] option', { hasText: name }).getAttribute('value');
    await card.locator('[data-testid=add-member-select]').selectOption(option);
    await card.locator('[data-testid=add-member]').click();
    await card.locator('[data-testid=team-member]', { hasText: name }).waitFor({ timeout: 10000 });
  }
  await s.shot('team-04-teams');
});

await step('admin-shares-with-team', async () => {
  await page.goto(`/pipelines/${ids[SHARED]}`);
  await page.waitForSelector('[data-testid=pipeline-page]');
  await page.click('[data-testid=team-share]');
  const option = await page.locator('[data-testid=grant-team] option', { hasText: TEAM }).getAttribute('value');
  await page.locator('[data-testid=grant-team]').selectOption(option);
  await page.locator('[data-testid=grant-access]').selectOption('read');
  await page.click('[data-testid=grant-add]');
  await page.locator(`[data-testid=grant-row][data-team="${TEAM}"]`).waitFor({ timeout: 10000 });
  await s.shot('team-05-share-with-team');
  await page.keyboard.press('Escape');
  await page.waitForTimeout(400);
  // the dataset too, read-only
  const ds = (await apiCall(page, 'GET', '/api/datasets?limit=200')).json.items.find((d) => d.name === DATASET);
  ids[DATASET] = ds.id;
  const team = (await apiCall(page, 'GET', '/api/teams')).json.find((t) => t.name === TEAM);
  const g = await apiCall(page, 'PUT', `/api/grants/dataset/${ds.id}/${team.id}`, { access: 'read' });
  if (g.status !== 200) throw new Error(`dataset grant: ${g.status} ${g.text}`);
});

await step('share-link-with-expiry', async () => {
  // the Share button's expiry: a 7-day link, listed with its expiry on the Share links page
  await page.goto(`/pipelines/${ids[SHARED]}`);
  await page.waitForSelector('[data-testid=pipeline-page]');
  await page.locator('[data-testid=share-expiry]').selectOption('7 days');
  await page.click("[data-testid=pipeline-page] [data-testid=share-create]");
  const url = await page.locator('[data-testid=share-link]').inputValue({ timeout: 10000 });
  const token = url.split('/shared/')[1];
  await page.click('[data-testid=sidebar] [data-testid=nav-shares]');
  const row = page.locator(`[data-testid=share-row][data-token="${token}"]`);
  await row.waitFor({ timeout: 10000 });
  const expires = await row.locator('[data-testid=share-expires]').textContent();
  if (!/in 7 d/.test(expires)) throw new Error(`expiry cell: ${expires}`);
  await s.shot('team-05b-share-expiry');
  // a link whose date has passed cannot be made; the form says what to do
  await page.goto(`/pipelines/${ids[SHARED]}`);
  await page.waitForSelector('[data-testid=pipeline-page]');
  await page.locator('[data-testid=share-expiry]').selectOption('date');
  await page.fill('[data-testid=share-until]', '2020-01-01T10:00');
  await page.click("[data-testid=pipeline-page] [data-testid=share-create]");
  const err = await page.locator('[data-testid=share-error]').textContent({ timeout: 10000 });
  if (!err.includes('is in the past')) throw new Error(`past expiry message: ${err}`);
});

await step('developer-first-login', async () => {
  await signOutAndIn(DEV, creds[DEV]);
  await page.waitForSelector('[data-testid=first-login]', { timeout: 15000 });
  if (await page.locator('[data-testid=topbar]').count()) throw new Error('the app shell is shown before the password is changed');
  await page.goto('/datasets'); // any page: still only the password screen
  await page.waitForSelector('[data-testid=first-login]');
  await s.shot('team-06-first-login');
  const form = page.locator('[data-testid=first-login] [data-testid=password-form]');
  await form.locator('input[name=current_password]').fill('not-the-password');
  await form.locator('input[name=new_password]').fill(`dev-own-${sfx}-pw`);
  await form.locator('input[name=new_password_again]').fill(`dev-own-${sfx}-pw`);
  await page.click('[data-testid=password-submit]');
  const err = await page.locator('[data-testid=password-error]').textContent({ timeout: 10000 });
  if (!err.includes('The current password is not correct')) throw new Error(`wrong current password message: ${err}`);
  await form.locator('input[name=current_password]').fill(creds[DEV]);
  await page.click('[data-testid=password-submit]');
  await page.waitForSelector('[data-testid=topbar]', { timeout: 15000 });
  creds[DEV] = `dev-own-${sfx}-pw`;
  const me = await apiCall(page, 'GET', '/api/auth/me');
  if (me.json.must_change_password !== false || !me.json.teams.includes(TEAM)) throw new Error(`me after change: ${me.text}`);
});

await step('developer-sees-team-pipeline-read-only', async () => {
  await page.goto('/');
  await page.waitForSelector('[data-testid=pipelines-table]');
  await page.locator('[data-testid=pipelines-table] a', { hasText: SHARED }).first().waitFor({ timeout: 10000 }).catch(async () => {
    // listed by title: find the row by its name line
    await page.locator('[data-testid=pipelines-table] tr', { hasText: SHARED }).first().waitFor({ timeout: 5000 });
  });
  if (await page.locator('[data-testid=pipelines-table] tr', { hasText: PRIVATE }).count()) throw new Error('the unshared pipeline is visible to the developer');
  const row = page.locator('[data-testid=pipelines-table] tr', { hasText: SHARED }).first();
  if (!(await row.textContent()).includes(adminUser)) throw new Error('owner column does not name the admin');
  const rename = row.locator('[data-testid=rename-pipeline]');
  if (!(await rename.isDisabled())) throw new Error('Rename is enabled on a read-shared pipeline');
  // their own work is theirs: New pipeline is enabled
  if (await page.locator('[data-testid=new-pipeline]').isDisabled()) throw new Error('New pipeline disabled for a developer');
  await s.shot('team-07-developer-list');
  await page.goto(`/pipelines/${ids[SHARED]}`);
  await page.waitForSelector('[data-testid=pipeline-page]');
  await assertDenied('[data-testid=save]', 'through a team but not change it');
  await assertDenied('[data-testid=run]', `ask its owner (${adminUser}) for edit access`);
  await assertDenied('[data-testid=team-share]', 'Only the owner of this pipeline');
  if (await page.locator('[data-testid=fork]').isDisabled()) throw new Error('Duplicate disabled for a developer');
  await page.waitForSelector('.monaco-editor .view-lines', { timeout: 30000 });
  await page.hover('[data-testid=cap-denied]:has([data-testid=run])');
  await page.waitForTimeout(300);
  await s.shot('team-08-developer-pipeline-read-only');
  // the dataset shared with the team is listed, with its owner, and cannot be deleted
  await page.goto('/datasets');
  const dsRow = page.locator('[data-testid=datasets-table] tr', { hasText: DATASET });
  await dsRow.waitFor({ timeout: 10000 });
  const del = dsRow.locator('button', { hasText: 'delete' });
  if (!(await del.isDisabled())) throw new Error('delete enabled on a read-shared dataset');
  await s.shot('team-09-developer-datasets');
});

await step('observer-first-login-and-no-edit-controls', async () => {
  await signOutAndIn(OBS, creds[OBS]);
  await page.waitForSelector('[data-testid=first-login]', { timeout: 15000 });
  const form = page.locator('[data-testid=first-login] [data-testid=password-form]');
  await form.locator('input[name=current_password]').fill(creds[OBS]);
  await form.locator('input[name=new_password]').fill(`obs-own-${sfx}-pw`);
  await form.locator('input[name=new_password_again]').fill(`obs-own-${sfx}-pw`);
  await page.click('[data-testid=password-submit]');
  await page.waitForSelector('[data-testid=topbar]', { timeout: 15000 });
  creds[OBS] = `obs-own-${sfx}-pw`;
  const observers = 'Observers can read but not change pipelines.';
  // pipelines list: New pipeline disabled with the reason; no Rename / Delete at all
  await page.goto('/');
  await page.waitForSelector('[data-testid=pipelines-table]');
  await assertDenied('[data-testid=new-pipeline]', observers);
  if (await page.locator('[data-testid=rename-pipeline], [data-testid=delete-pipeline]').count()) throw new Error('rename/delete shown to an observer');
  await s.shot('team-10-observer-pipelines');
  // a pipeline: Save, Run, Share, Teams and Duplicate disabled; the editor is read-only
  await page.goto(`/pipelines/${ids[SHARED]}`);
  await page.waitForSelector('[data-testid=pipeline-page]');
  for (const sel of ['[data-testid=save]', '[data-testid=run]', '[data-testid=share-denied]', '[data-testid=team-share]', '[data-testid=fork]']) {
    await assertDenied(sel, observers);
  }
  await page.waitForSelector('.monaco-editor .view-lines', { timeout: 30000 });
  await page.hover('[data-testid=cap-denied]:has([data-testid=save])');
  await page.waitForTimeout(300);
  await s.shot('team-11-observer-pipeline');
  // datasets: no upload form, the Upload button disabled with the reason, no delete
  await page.goto('/datasets');
  await page.waitForSelector('[data-testid=datasets-table]');
  if (await page.locator('[data-testid=upload-form]').count()) throw new Error('upload form shown to an observer');
  await assertDenied('[data-testid=upload-denied]', 'Observers can read but not change datasets.');
  if (await page.locator('[data-testid=datasets-table] button', { hasText: 'delete' }).count()) throw new Error('dataset delete shown to an observer');
  await page.hover('[data-testid=cap-denied]:has([data-testid=upload-denied])');
  await page.waitForTimeout(300);
  await s.shot('team-12-observer-datasets');
  // nodes: New node disabled; the node editor's Test run and Save disabled
  await page.goto('/nodes');
  await page.waitForSelector('[data-testid=nodes-page]');
  await assertDenied('[data-testid=new-node]', 'Observers can read but not change custom nodes.');
  await s.shot('team-13-observer-nodes');
  await page.goto('/nodes/new');
  await page.waitForSelector('[data-testid=node-editor]');
  await assertDenied('[data-testid=test-run]', 'Observers can read nodes but not run their code.');
  await assertDenied('[data-testid=save-node]', 'Observers can read but not change custom nodes.');
  await page.hover('[data-testid=cap-denied]:has([data-testid=test-run])');
  await page.waitForTimeout(300);
  await s.shot('team-14-observer-node-editor');
  // the API agrees: a direct save is refused with the same kind of sentence
  const r = await apiCall(page, 'PUT', `/api/pipelines/${ids[SHARED]}`, { source: 'x' });
  if (r.status !== 403 || !r.json.detail.startsWith('Observers can read')) throw new Error(`observer save: ${r.status} ${r.text}`);
});

await step('admin-disables-observer', async () => {
  const obsToken = await page.evaluate(() => localStorage.getItem('alphaforge.token'));
  await signOutAndIn(adminUser, creds[adminUser]);
  await page.waitForSelector('[data-testid=topbar]');
  await page.goto('/users');
  const row = page.locator(`[data-testid=user-row][data-username="${OBS}"]`);
  await row.locator('[data-testid=disable-user]').click();
  await row.locator('[data-testid=enable-user]').waitFor({ timeout: 10000 });
  if (!(await row.textContent()).includes('disabled')) throw new Error('not marked disabled');
  await s.shot('team-15-observer-disabled');
  const status = await page.evaluate(async (t) => (await fetch('/api/pipelines', { headers: { Authorization: `Bearer ${t}` } })).status, obsToken);
  if (status !== 401) throw new Error(`a disabled user's token answered ${status}`);
});

await step('change-own-password', async () => {
  // the account menu's Change password, checked and then put back
  await page.click('[data-testid=account-menu]');
  await page.click('[data-testid=change-password]');
  const form = page.locator('dialog[open] [data-testid=password-form]');
  await form.locator('input[name=current_password]').fill(creds[adminUser]);
  await form.locator('input[name=new_password]').fill('short');
  await form.locator('input[name=new_password_again]').fill('short');
  const hint = await form.locator('[data-testid=password-hint]').textContent();
  if (!hint.includes('at least 8 characters')) throw new Error(`hint: ${hint}`);
  await page.waitForTimeout(500);
  await s.shot('team-16-change-password');
  await page.keyboard.press('Escape');
});

await finish();

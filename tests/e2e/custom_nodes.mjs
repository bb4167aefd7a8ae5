// Custom nodes in the browser (issue 4, "Done when"): a node in each language from its template,
// edited in Monaco, test-run, saved with its look-ahead verdict; a node that looks ahead gets the
// red verdict; a pipeline `use`s the three nodes feeding built-ins and runs to Completed with
// metrics. Screenshots to tests/e2e/screenshots/cn-*.png; exits non-zero on a failed step or a
// page problem (uncaught error, CSP violation, failed request, HTTP 5xx).
//   node custom_nodes.mjs --base-url http://127.0.0.1:8000 --user admin --password admin-e2e-password
import { apiCall, args, login, start, stepper } from './harness.mjs';

const opt = args();
const baseUrl = opt['base-url'] ?? 'http://127.0.0.1:8000';
const user = opt.user ?? 'admin';
const password = opt.password ?? process.env.ALPHAFORGE_ADMIN_PASSWORD ?? 'admin-e2e-password';
const only = opt.only ? String(opt.only).split(',') : null;
const suffix = opt.suffix ?? Date.now().toString(36).slice(-4);

const { step, finish } = stepper(() => s, { only, shotPrefix: 'cn-fail-' });

const s = await start({ baseUrl, width: 1280, height: 900 });
const { page } = s;
page.on('dialog', (d) => d.accept()); // confirm() for deletes

const editorText = () =>
  page.evaluate(() => (document.querySelector('[data-testid=code-editor] .view-lines, [data-testid=editor] .view-lines')?.textContent ?? '').replace(/\u00a0/g, ' '));

/** Select `find` in the focused Monaco editor (find widget, then Escape keeps the match selected). */
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

/** Replace the first occurrence of `find` in the Monaco editor by typing `replacement`. */
async function replaceInEditor(find, replacement) {
  await selectInEditor(find);
  await page.keyboard.type(replacement);
  await page.waitForTimeout(200);
}

/** New node → language → template → name → the editor on the template. */
async function newNode(language, kind, name) {
  await page.goto('/nodes');
  await page.waitForSelector('[data-testid=nodes-page]');
  await page.click('[data-testid=new-node]');
  await page.waitForSelector('[data-testid=new-node-dialog] [data-testid=kind-indicator]');
  await page.click(`[data-testid=lang-${language}]`);
  await page.click(`[data-testid=kind-${kind}]`);
  await page.fill('[data-testid=new-node-name]', name);
  await page.click('[data-testid=new-node-open]');
  await page.waitForSelector(`[data-testid=code-editor][data-language=${language}] .monaco-editor .view-lines`);
  await page.waitForTimeout(300);
}

async function testRun(shotName) {
  await page.click('[data-testid=test-run]');
  const res = await page.waitForSelector('[data-testid=test-run-result], [data-testid=test-run-failed]', { timeout: 120000 });
  const status = await res.getAttribute('data-status');
  await page.waitForTimeout(300);
  await s.shot(shotName);
  if (status !== 'completed') {
    const why = await page.textContent('[data-testid=test-panel]');
    throw new Error(`test run: ${status ?? 'request failed'}: ${why?.slice(0, 300)}`);
  }
  if (!(await page.locator('[data-testid=test-run-result] [data-testid^=preview-] tbody tr').count())) throw new Error('no output rows shown');
}

/** Create (the first save): lands on /nodes/{id} with the verdict; returns the node id. */
async function createAndVerdict(shotName, expected) {
  await page.fill('input[aria-label="Save message"]', 'from the template, edited in the browser');
  await page.click('[data-testid=save-node]');
  await page.waitForURL(/\/nodes\/\d+$/, { timeout: 120000 });
  const panel = await page.waitForSelector('[data-testid=lookahead]', { timeout: 30000 });
  const status = await panel.getAttribute('data-status');
  await page.waitForTimeout(300);
  await s.shot(shotName);
  if (status !== expected) throw new Error(`look-ahead verdict ${status}, expected ${expected}: ${await panel.textContent()}`);
  return page.url().split('/').pop();
}

const ids = {};
const names = { python: `e2e_ema_${suffix}`, javascript: `e2e_mom_${suffix}`, wasm: `e2e_feats_${suffix}`, peek: `e2e_peek_${suffix}` };

await step('login', async () => {
  await login(page, user, password);
});

await step('library-empty', async () => {
  await page.goto('/nodes?tab=mine');
  await page.waitForSelector('[data-testid=my-nodes]');
  await page.click('[data-testid=new-node]');
  await page.waitForSelector('[data-testid=new-node-dialog] [data-testid=kind-transform]');
  await page.click('[data-testid=lang-wasm]');
  await page.fill('[data-testid=new-node-name]', 'sma'); // a built-in: refused
  await page.waitForTimeout(200);
  await s.shot('cn-01-new-node-dialog');
  if (!(await page.isDisabled('[data-testid=new-node-open]'))) throw new Error('a built-in name was accepted');
  await page.keyboard.press('Escape');
});

await step('python-node', async () => {
  await newNode('python', 'indicator', names.python);
  await replaceInEditor('adjust=False', 'adjust=True');
  await page.fill('[data-testid=param-span-default]', '10'); // a default in the params table
  if (!(await editorText()).includes('adjust=True')) throw new Error('the Monaco edit did not land');
  // the Test run form follows the table: span, an integer from 1, starting at the new default
  const span = '[data-testid=test-params] [data-testid=test-param-span]';
  if ((await page.inputValue(span)) !== '10') throw new Error(`the test span starts at ${await page.inputValue(span)}, not the default 10`);
  if ((await page.getAttribute(span, 'type')) !== 'number' || (await page.getAttribute(span, 'min')) !== '1' || (await page.getAttribute(span, 'step')) !== '1')
    throw new Error('the test span is not an integer input with the minimum 1');
  await s.shot('cn-02-python-editor');
  // a value out of range is flagged where it is typed and keeps Test run from running
  await page.fill(span, '0');
  await page.waitForSelector('[data-testid=test-param-error][data-param=span]:has-text("below the minimum 1")');
  await page.click('[data-testid=test-run]');
  await page.waitForSelector('[data-testid=test-params-blocked]:has-text("span: below the minimum 1")');
  if (await page.locator('[data-testid=test-run-result]').count()) throw new Error('a test run ran with span=0');
  await page.waitForTimeout(200);
  await s.shot('cn-03a-test-params-invalid');
  // text the number input cannot read is "not a number", not an empty field
  await page.click(span);
  await page.keyboard.press('Control+A');
  await page.keyboard.type('1e');
  await page.waitForSelector('[data-testid=test-param-error][data-param=span]:has-text("not a number")');
  // a value from the form is what the node gets: the template prints its span
  await page.fill(span, '7');
  await page.waitForSelector('[data-testid=test-params-blocked]', { state: 'detached' });
  await testRun('cn-03-python-test-run');
  const logs = await page.textContent('[data-testid=test-run-logs]');
  if (!/span=7\b/.test(logs ?? '')) throw new Error(`the test run did not use span=7 from the form: ${logs}`);
  ids.python = await createAndVerdict('cn-04-python-saved-pass', 'pass');
  const got = await apiCall(page, 'GET', `/api/custom-nodes/${ids.python}`);
  const m = got.json?.version?.manifest;
  if (!m?.code.includes('adjust=True')) throw new Error('the saved code lacks the edit');
  if (m.params_schema.properties.span.default !== 10) throw new Error(`saved span default ${m.params_schema.properties.span.default}`);
});

await step('javascript-node', async () => {
  await newNode('javascript', 'signal', names.javascript);
  await replaceInEditor('params.lookback', 'Math.max(1, params.lookback)');
  await page.fill('[data-testid=param-lookback-default]', '5');
  await testRun('cn-05-javascript-test-run');
  // a node that throws: the message names the line, and the editor marks it until the code changes
  await replaceInEditor('return { signal: out };', "throw new RangeError('bad lookback ' + k);");
  await page.click('[data-testid=test-run]');
  await page.waitForSelector('[data-testid=test-run-result][data-status=failed]', { timeout: 120000 });
  const err = await page.textContent('[data-testid=test-run-error]');
  if (!err?.includes("RangeError: bad lookback 5 (line 10 of the node's code)")) throw new Error(`the error does not name its line: ${err}`);
  await page.waitForSelector('[data-testid=code-editor] .squiggly-error', { timeout: 10000 });
  const marked = await page.evaluate(() => {
    const lines = [...document.querySelectorAll('[data-testid=code-editor] .view-line')];
    const squiggle = document.querySelector('[data-testid=code-editor] .squiggly-error')?.getBoundingClientRect();
    const hit = lines.find((l) => Math.abs(l.getBoundingClientRect().top - (squiggle?.top ?? -999)) < 4);
    return hit?.textContent?.replace(/\u00a0/g, ' ') ?? null;
  });
  if (!marked?.includes('throw new RangeError')) throw new Error(`the marked line is not the throwing one: ${marked}`);
  await s.shot('cn-05b-javascript-error-line');
  await replaceInEditor("throw new RangeError('bad lookback ' + k);", 'return { signal: out };');
  await page.waitForSelector('[data-testid=code-editor] .squiggly-error', { state: 'detached', timeout: 10000 });
  ids.javascript = await createAndVerdict('cn-06-javascript-saved', 'pass');
  const got = await apiCall(page, 'GET', `/api/custom-nodes/${ids.javascript}`);
  if (!got.json?.version?.manifest.code.includes('Math.max(1, params.lookback)')) throw new Error('the saved code lacks the edit');
});

await step('wasm-node', async () => {
  await newNode('wasm', 'transform', names.wasm);
  await replaceInEditor('f64.const nan', 'f64.const 0');
  if (!(await page.isVisible('[data-testid=test-params] [data-testid=test-params-none]'))) throw new Error('a node without params does not say "No params"');
  await testRun('cn-07-wasm-test-run');
  ids.wasm = await createAndVerdict('cn-08-wasm-saved', 'pass');
  const got = await apiCall(page, 'GET', `/api/custom-nodes/${ids.wasm}`);
  if (got.json?.version?.manifest.code_format !== 'wat') throw new Error('wasm saved without code_format wat');
  if (!got.json.version.manifest.code.includes('(f64.const 0)')) throw new Error('the saved WAT lacks the edit');
});

await step('lookahead-fail', async () => {
  await newNode('python', 'indicator', names.peek);
  await selectInEditor('x = inputs["x"]');
  await page.keyboard.press('End');
  await page.keyboard.type('.shift(-1)  # peeks at tomorrow');
  await createAndVerdict('cn-09-lookahead-fail', 'fail');
  const diff = await page.textContent('[data-testid=lookahead-difference]').catch(() => null);
  if (!diff || !/row/.test(diff)) throw new Error(`no first differing row shown: ${diff}`);
});

await step('new-version-diff', async () => {
  await page.goto(`/nodes/${ids.python}`);
  await page.waitForSelector('[data-testid=code-editor] .monaco-editor .view-lines');
  const v = await page.inputValue('[data-testid=node-version]');
  if (v !== '1.0.1') throw new Error(`the version field defaults to ${v}, not the next patch 1.0.1`);
  await replaceInEditor('ema over', 'EMA over');
  await page.fill('input[aria-label="Save message"]', 'louder log line');
  await page.click('[data-testid=code-editor] .monaco-editor .view-lines');
  await page.keyboard.press('Control+S'); // the keyboard save
  await page.waitForSelector('[data-testid=lookahead][data-status=pass]:has-text("v1.0.1")', { timeout: 120000 });
  await page.click('button[role=tab]:has-text("Versions")');
  await page.waitForSelector('[data-testid=node-versions] tbody tr:nth-child(2)');
  await page.click('[data-testid=show-diff]');
  await page.waitForSelector('[data-testid=node-diff] [data-testid=diff-view]');
  await page.waitForTimeout(300);
  await s.shot('cn-10-version-diff');
  const diff = await page.textContent('[data-testid=node-diff]');
  if (!diff.includes('EMA over')) throw new Error('the diff does not show the code change');
  await page.keyboard.press('Escape');
  await page.locator('[data-testid=node-versions] tr', { hasText: '1.0.0' }).locator('button:has-text("view")').click();
  await page.waitForSelector('[data-testid=viewing-old]');
  if (!(await editorText()).includes('ema over')) throw new Error('the old version is not shown');
  await s.shot('cn-11-old-version');
  await page.click('[data-testid=viewing-old] button');
});

let pipelineId = null;
const source = () => `pipeline custom_nodes_${suffix} "Custom nodes: Python, JavaScript, WebAssembly"
use ${names.javascript}@1.0
use ${names.wasm}@1.0

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
slow   = sma(data.close, window=30)
fast   = ema(data.close, window=10)
cross  = crossover(fast, slow)
mom    = ${names.javascript}(data.close, lookback=5)
feats  = ${names.wasm}(data)
z      = zscore(feats.ret, window=20)
rev    = threshold(z, lower=-1.5, upper=1.5, inside="flat")
sig    = combine(cross, mom, rev)
result = backtest(data, sig, cash=100_000, fee_bps=5)
stats  = metrics(result.equity, result.trades)
`;

await step('pipeline-completion', async () => {
  const r = await apiCall(page, 'POST', '/api/pipelines', { name: `custom_nodes_${suffix}`, source: source(), message: 'custom nodes e2e' });
  if (r.status !== 201) throw new Error(`create pipeline: ${r.status} ${r.text}`);
  pipelineId = r.json.id;
  await page.goto(`/pipelines/${pipelineId}`);
  await page.waitForSelector('[data-testid=editor] .monaco-editor .view-lines');
  await page.waitForSelector('[data-testid=problem-count]', { timeout: 15000 });
  // replace the built-in ema by the Python node, picked from completion
  await selectInEditor('fast   = ema(data.close, window=10)');
  await page.keyboard.type(`fast   = ${names.python.slice(0, 6)}`);
  await page.keyboard.press('Control+Space');
  const item = page.locator('.monaco-editor .suggest-widget.visible .monaco-list-row', { hasText: names.python });
  await item.first().waitFor({ timeout: 5000 });
  await page.waitForTimeout(300);
  await s.shot('cn-12-completion-custom');
  await item.first().click();
  await page.keyboard.type('data.close, span=10');
  await page.waitForTimeout(1500);
  const text = await editorText();
  if (!text.includes(`use ${names.python}@1.0`)) throw new Error('picking the custom node did not add its use line');
  const badge = await page.textContent('[data-testid=problem-count]');
  if (/error/.test(badge ?? '')) throw new Error(`the pipeline has errors: ${badge}`);
  await page.keyboard.press('Escape'); // the value suggestions after `span=10`
  const tok = page.locator('.monaco-editor .view-line span', { hasText: new RegExp(`^${names.javascript}$`) }).last();
  const box = await tok.boundingBox(); // hover by coordinates: hover() would scroll Monaco's lines sideways
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForSelector('.monaco-editor .monaco-hover:not(.hidden)', { timeout: 5000 });
  await page.waitForTimeout(300);
  await s.shot('cn-13-hover-custom');
  await page.mouse.move(5, 5);
  await page.click('[data-testid=editor] .monaco-editor .view-lines');
  await page.keyboard.press('Control+S');
  await page.waitForSelector('[data-testid=toast]:has-text("version")', { timeout: 10000 });
});

await step('pipeline-run', async () => {
  await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: 15000 });
  await page.click('[data-testid=run]');
  // the first run of a fresh serve registers its deployment: on a loaded machine that takes a while
  await page.waitForSelector('[data-testid=log-panel]', { timeout: 90000 });
  const end = await page.waitForSelector(
    '[data-testid=pipeline-page] a [data-status=completed], [data-testid=pipeline-page] a [data-status=failed], [data-testid=pipeline-page] a [data-status=cancelled]',
    { timeout: 240000 },
  );
  const status = await end.getAttribute('data-status');
  await page.waitForTimeout(800);
  await s.shot('cn-14-run-logs');
  if (status !== 'completed') throw new Error(`the run ended ${status}`);
  const runs = await apiCall(page, 'GET', `/api/pipelines/${pipelineId}/runs`);
  const run = (Array.isArray(runs.json) ? runs.json : (runs.json?.items ?? []))[0];
  if (run?.metrics?.sharpe === undefined) throw new Error(`no metrics on the run: ${JSON.stringify(run)}`);
  await page.goto(`/runs/${run.id}`);
  await page.waitForSelector('[data-testid=run-page] [data-testid=equity-chart]', { timeout: 30000 });
  await page.waitForTimeout(1000);
  await s.shot('cn-15-run-results', { fullPage: true });
  const logs = await page.textContent('[data-testid=run-page] [data-testid=log-panel]');
  if (!/\[fast\][^\n]*ema over/i.test(logs ?? '')) throw new Error('the Python node print is not in the run log, tagged [fast]');
});

/** A node's id by name (when steps run with --only and --suffix of an earlier run). */
async function idOf(key) {
  if (ids[key]) return ids[key];
  const r = await apiCall(page, 'GET', '/api/custom-nodes?limit=500');
  return (r.json?.items ?? r.json ?? []).find((n) => n.name === names[key])?.id;
}

await step('delete-in-use', async () => {
  await page.goto(`/nodes/${await idOf('python')}`);
  await page.waitForSelector('[data-testid=code-editor] .monaco-editor .view-lines');
  await page.click('button[role=tab]:has-text("Versions")');
  await page.waitForSelector('[data-testid=node-versions] tbody tr');
  // the latest version is what the pipeline's `use …@1.0` resolves to: deleting it is refused
  await page.locator('[data-testid=node-versions] tbody tr').first().locator('[data-testid=delete-version]').click();
  await page.waitForSelector('[data-testid=delete-blocked]', { timeout: 10000 });
  const msg = await page.textContent('[data-testid=delete-blocked]');
  await s.shot('cn-16-delete-in-use');
  if (!msg.includes(`custom_nodes_${suffix}`)) throw new Error(`the 409 does not name the pipeline: ${msg}`);
});

await step('invalid-manifest', async () => {
  // a string param is refused for WebAssembly by the API (422), shown under the field
  await page.goto(`/nodes/${await idOf('wasm')}`);
  await page.waitForSelector('[data-testid=code-editor] .monaco-editor .view-lines');
  await page.click('[data-testid=manifest-form] button:has-text("+ param")');
  await page.fill('input[aria-label="param 0 name"]', 'label');
  await page.selectOption('select[aria-label="param 0 type"]', 'string');
  // the Test run form has a text field for the new param
  await page.waitForSelector('[data-testid=test-params] input[data-testid=test-param-label]:not([type=number])');
  await page.click('[data-testid=save-node]');
  await page.waitForSelector('[data-testid=save-error]', { timeout: 30000 });
  await page.waitForTimeout(300);
  await s.shot('cn-17-invalid-manifest');
  const banner = (await page.textContent('[data-testid=save-error]')) ?? '';
  if (!banner.includes('the manifest has 1 problem') || !banner.includes("param 'label' type: wasm param 'label' must be"))
    throw new Error(`the 422 banner does not name the problem readably: ${banner}`);
});

await step('library', async () => {
  await page.goto('/nodes');
  await page.waitForSelector(`[data-testid=my-nodes] a:has-text("${names.wasm}")`);
  await page.waitForTimeout(300);
  await s.shot('cn-18-library', { fullPage: true });
  const overflow = await page.evaluate(() =>
    [document.documentElement, document.querySelector('[data-testid=main]')].some((e) => e && e.scrollWidth > e.clientWidth),
  );
  if (overflow) throw new Error('horizontal overflow at 1280 px');
  const fails = await page.locator('[data-testid=my-nodes] [data-testid=lookahead-badge].badge-error').count();
  if (fails < 1) throw new Error('the look-ahead failure is not flagged in the library');
});

if (s.httpErrors.length) console.log(`\nHTTP 4xx seen:\n  ${s.httpErrors.join('\n  ')}`);
await finish();

// A small harness around playwright-core and the system Chromium: launch, log in, screenshot,
// and collect what went wrong in the page (console errors, uncaught exceptions, CSP violations,
// failed requests) so a test can assert there was none.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
export const SCREENSHOTS = join(HERE, 'screenshots');

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Parse `--key value` / `--flag` arguments. */
export function args(argv = process.argv.slice(2)) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) continue;
    const key = argv[i].slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[key] = true;
    else {
      out[key] = next;
      i++;
    }
  }
  return out;
}

/** Launch Chromium and open a page on `baseUrl` at a desktop size. */
export async function start({ baseUrl, width = 1440, height = 900, colorScheme = 'dark' }) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
  const context = await browser.newContext({ baseURL: baseUrl, viewport: { width, height }, colorScheme });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseUrl }).catch(() => {});
  const page = await context.newPage();
  const problems = [];
  const httpErrors = []; // 4xx: often expected (a 422 for a broken upload); printed for debugging
  page.on('console', (m) => {
    // the browser logs every 4xx/5xx response as a console error: those are judged by status above
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => {
    const why = r.failure()?.errorText ?? '';
    if (!why.includes('ERR_ABORTED')) problems.push(`requestfailed: ${r.method()} ${r.url()} ${why}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 500) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
    else if (r.status() >= 400) httpErrors.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    browser,
    context,
    page,
    problems,
    httpErrors,
    /** Full-page PNG into tests/e2e/screenshots/<name>.png; returns its path. */
    async shot(name, opts = {}) {
      const path = join(SCREENSHOTS, `${name}.png`);
      if (opts.fullPage) {
        // the app scrolls inside <main>, not the document: grow the viewport to fit it
        const vp = page.viewportSize();
        let height = vp.height;
        for (let i = 0; i < 4; i++) {
          const extra = await page.evaluate(() => {
            const m = document.querySelector('[data-testid=main]');
            return m ? m.scrollHeight - m.clientHeight : 0;
          });
          if (extra <= 0 || height >= 8000) break;
          height = Math.min(height + extra, 8000);
          await page.setViewportSize({ width: vp.width, height });
          await page.waitForTimeout(300);
        }
        await page.screenshot({ path, fullPage: true });
        await page.setViewportSize(vp);
      } else await page.screenshot({ path });
      console.log(`screenshot: ${path}`);
      return path;
    },
    async close() {
      await browser.close();
    },
  };
}

/** Log in through the login form and wait for the app shell. */
export async function login(page, username, password) {
  await page.goto('/login');
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=topbar]', { timeout: 15000 });
}

/** Call the API with the token the page holds (to seed data). */
export async function apiCall(page, method, path, body) {
  return page.evaluate(
    async ({ method, path, body }) => {
      const token = localStorage.getItem('alphaforge.token');
      const res = await fetch(path, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: res.status, json, text };
    },
    { method, path, body },
  );
}

// Named steps of a tour: a failing step is logged (with a screenshot `<shotPrefix><name>`) and
// the tour goes on; `finish` prints the page problems, closes the browser and exits 1 if any
// step failed or the page had problems. `session()` returns the started session (it may be
// created after the stepper). `only`: run just these step names.
export function stepper(session, { only = null, shotPrefix = 'fail-' } = {}) {
  const failures = [];
  async function step(name, fn) {
    if (only && !only.includes(name)) return;
    const t0 = Date.now();
    try {
      await fn();
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failures.push(`${name}: ${e.message.split('\n')[0]}`);
      console.log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
      await session().shot(`${shotPrefix}${name}`).catch(() => {});
    }
  }
  async function finish() {
    const s = session();
    console.log(s.problems.length ? `\npage problems:\n  ${s.problems.join('\n  ')}` : '\nno page problems');
    await s.close();
    if (failures.length || s.problems.length) {
      console.log(`\n${failures.length} failed step(s):\n  ${failures.join('\n  ')}`);
      process.exit(1);
    }
  }
  return { step, finish };
}

// Drives Debian's Chromium through Holt's web UI: one scenario per run, named by the first
// argument, against the holtd at HOLT_URL signed in with HOLT_KEY. tests/it/ui.rs starts holtd,
// prepares each scenario's jobs over the API and runs this; a failed check exits 1 with what
// was expected and what the page showed. Screenshots go to HOLT_SHOTS.
import fs from 'node:fs';
import http from 'node:http';
import { chromium } from 'playwright-core';

const base = process.env.HOLT_URL;
const adminKey = process.env.HOLT_KEY;
const shots = process.env.HOLT_SHOTS;
const scenario = process.argv[2];
const TIMEOUT = 20000;

function check(condition, message) {
  if (!condition) throw new Error('check failed: ' + message);
}

async function api(path, init = {}) {
  const response = await fetch(base + path, {
    ...init,
    headers: { 'X-ApiKey': adminKey, ...(init.headers || {}) },
  });
  const body = await response.text();
  check(response.ok, `${path} answered ${response.status}: ${body}`);
  return body;
}

async function shot(page, name) {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

async function signIn(page, path = '/') {
  await page.goto(base + path);
  await page.locator('#admin-key').fill(adminKey);
  await page.locator('#admin-key').press('Enter');
  await page.locator('#nav').waitFor({ state: 'visible' });
}

async function badgeText(page) {
  return (await page.locator('#job-status').textContent()).trim();
}

const scenarios = {
  // The sign-in form: a wrong key is refused on the form, the right one opens the jobs page,
  // and the key is held for the session only (sessionStorage), never in a cookie or the URL.
  async 'sign-in'(page) {
    await page.goto(base + '/');
    await page.locator('#sign-in').waitFor();
    check(await page.locator('#sign-in input').count() === 1, 'the sign-in form has one field');
    check(await page.locator('#admin-key').getAttribute('type') === 'password', 'the field is a password field');
    await shot(page, 'sign-in');
    await page.locator('#admin-key').fill('not-the-key');
    await page.locator('#admin-key').press('Enter');
    await page.locator('#sign-in .problem', { hasText: 'invalid admin key' }).waitFor();
    check(await page.locator('#nav').isHidden(), 'a wrong key does not sign in');
    await page.locator('#admin-key').fill(adminKey);
    await page.locator('#admin-key').press('Enter');
    await page.locator('h1', { hasText: 'Jobs' }).waitFor();
    check(!page.url().includes(adminKey), 'the key is not in the URL');
    check((await page.context().cookies()).length === 0, 'no cookie is set');
    check(await page.evaluate(() => sessionStorage.getItem('holt.adminKey')) === adminKey,
      'the key is held in sessionStorage');
    check(await page.evaluate(() => localStorage.length) === 0, 'nothing is kept in localStorage');
    // A reload keeps the session; signing out forgets the key.
    await page.reload();
    await page.locator('h1', { hasText: 'Jobs' }).waitFor();
    await page.locator('#sign-out').click();
    await page.locator('#sign-in').waitFor();
    check(await page.evaluate(() => sessionStorage.getItem('holt.adminKey')) === null, 'sign-out forgets the key');
  },

  // A job triggered over the API appears in the list, and its status changes there, without
  // a reload; the status filter hides it.
  async 'live-list'(page) {
    await signIn(page);
    await page.locator('#jobs-note, #jobs tr').first().waitFor();
    await page.evaluate(() => { window.holtMarker = 'same page'; });
    const template = process.env.HOLT_TEMPLATE;
    const token = (await api(`/api/jobs/trigger?template=${template}`)).trim();
    const row = page.locator(`#jobs tr[data-token="${token}"]`);
    await row.waitFor({ timeout: TIMEOUT });
    await row.locator('.status', { hasText: 'Succeeded' }).waitFor({ timeout: TIMEOUT });
    check(await page.evaluate(() => window.holtMarker) === 'same page', 'the list updated without a reload');
    check((await row.locator('td').nth(1).textContent()) === template, 'the row names the template');
    check((await row.locator('td').nth(3).textContent()) === 'api', 'the row names the source');
    await shot(page, 'jobs');
    await page.locator('#filter-status').selectOption('Error');
    await row.waitFor({ state: 'detached', timeout: TIMEOUT });
    check(page.url().endsWith('/?status=Error'), 'the filter is in the URL: ' + page.url());
    await page.locator('#filter-status').selectOption('Succeeded');
    await row.waitFor({ timeout: TIMEOUT });
  },

  // A running job's page follows its log live and shows it as a tree of its scopes.
  async 'job-page'(page) {
    const token = process.env.HOLT_TOKEN;
    await signIn(page, '/jobs/' + token);
    await page.locator('.entry .text', { hasText: 'step 1' }).first().waitFor({ timeout: TIMEOUT });
    await page.locator('#job-status .status', { hasText: 'Executing' }).waitFor({ timeout: TIMEOUT });
    await page.evaluate(() => { window.holtMarker = 'same page'; });
    check(await page.locator('.entry .text', { hasText: 'all done' }).count() === 0,
      'the page opened before the job ended');
    // The job goes on only now, so the rest of its log arrives while the page is open.
    fs.writeFileSync(process.env.HOLT_GATE, '');
    await page.locator('.entry .text', { hasText: 'all done' }).waitFor({ timeout: TIMEOUT });
    await page.locator('#job-status .status', { hasText: 'Warning' }).waitFor({ timeout: TIMEOUT });
    check(await page.evaluate(() => window.holtMarker) === 'same page', 'the log followed without a reload');

    // Every entry sits in the scope tree at its own scope path, in logged order.
    const expected = (await api(`/api/jobs/logs?token=${token}&format=ndjson`))
      .trim().split('\n').map((line) => JSON.parse(line));
    const shown = await page.locator('#log .entry').evaluateAll((entries) => entries.map((entry) => {
      const path = [];
      for (let node = entry.parentElement; node && node.id !== 'log'; node = node.parentElement) {
        if (node.tagName === 'DETAILS') path.unshift(node.querySelector(':scope > summary').textContent);
      }
      return { sequence: Number(entry.dataset.sequence), path, text: entry.querySelector('.text').textContent };
    }));
    check(shown.length === expected.length, `${shown.length} entries shown, ${expected.length} logged`);
    const bySequence = new Map(shown.map((s) => [s.sequence, s]));
    for (const entry of expected) {
      const s = bySequence.get(entry.sequence);
      check(s && s.text === entry.text, `entry ${entry.sequence} shown as logged`);
      check(JSON.stringify(s.path) === JSON.stringify(entry.scope),
        `entry ${entry.sequence} in scope ${JSON.stringify(entry.scope)}, shown in ${JSON.stringify(s.path)}`);
    }
    check(expected.some((e) => e.scope.length >= 2), 'the job logged in nested scopes');
    // Levels are coloured: a warning's colour is not an information line's.
    const colour = (level) => page.locator(`.entry.level-${level} .level`).first()
      .evaluate((node) => getComputedStyle(node).color);
    check(await colour('warn') !== await colour('info'), 'warnings and information differ in colour');
    check(await page.locator('summary.has-warn').count() > 0, 'the scope holding the warning is marked');
    await shot(page, 'job');
    // A scope collapses: its entries are hidden, and come back when it opens.
    const scope = page.locator('#log > details.scope').first();
    const inside = scope.locator('.entry').first();
    await scope.locator(':scope > summary').click();
    await inside.waitFor({ state: 'hidden' });
    await scope.locator(':scope > summary').click();
    await inside.waitFor({ state: 'visible' });
  },

  // Cancel on the page (after its confirmation dialog) ends the running job.
  async cancel(page) {
    const token = process.env.HOLT_TOKEN;
    await signIn(page, '/jobs/' + token);
    await page.locator('#job-status .status', { hasText: 'Executing' }).waitFor({ timeout: TIMEOUT });
    let asked = '';
    page.once('dialog', (dialog) => { asked = dialog.message(); dialog.accept(); });
    await page.locator('button#cancel', { hasText: 'Cancel' }).click();
    await page.locator('#job-status .status', { hasText: 'Error' }).waitFor({ timeout: TIMEOUT });
    check(asked.includes(token), 'the confirmation names the job: ' + asked);
    await page.locator('.entry .text', { hasText: 'Job canceled.' }).waitFor({ timeout: TIMEOUT });
    check(await page.locator('button#cancel').isDisabled(), 'Cancel is disabled once the job has ended');
  },

  // Re-run makes a new job of the same template and variables and opens it.
  async rerun(page) {
    const token = process.env.HOLT_TOKEN;
    await signIn(page, '/jobs/' + token);
    await page.locator('#job-status .status', { hasText: 'Succeeded' }).waitFor({ timeout: TIMEOUT });
    const rows = () => page.locator('#variables tr').evaluateAll((trs) => trs.map((tr) => tr.textContent));
    const before = await rows();
    await page.locator('button#rerun', { hasText: 'Re-run' }).click();
    await page.waitForURL((url) => /\/jobs\/\w+$/.test(url.pathname) && !url.pathname.endsWith('/' + token));
    const next = page.url().split('/').pop();
    await page.locator('#job-status .status', { hasText: 'Succeeded' }).waitFor({ timeout: TIMEOUT });
    check(JSON.stringify(await rows()) === JSON.stringify(before), 'the re-run has the same variables');
    console.log('TOKEN=' + next);
  },

  // The trigger form checks the declared rules before sending, then triggers with valid values.
  async 'trigger-form'(page) {
    const template = process.env.HOLT_TEMPLATE;
    const triggers = [];
    page.on('request', (request) => {
      if (request.url().includes('/api/jobs/trigger')) triggers.push(request);
    });
    await signIn(page, '/templates');
    const form = page.locator(`form.trigger[data-template="${template}"]`);
    await form.waitFor();
    const card = await page.locator(`#template-${template}`).textContent();
    check(card.includes('outputs: Artifact'), 'the template names its outputs: ' + card);
    await shot(page, 'templates');
    // A value that breaks the pattern, and a required variable left empty.
    await form.locator('[name="Version"]').fill('1.x');
    await form.locator('button[type=submit]').click();
    await form.locator('.field-error', { hasText: 'Version must match the pattern' }).waitFor();
    await form.locator('.field-error', { hasText: 'Target is required' }).waitFor();
    check(await form.locator('[name="Version"]').getAttribute('aria-invalid') === 'true', 'Version is marked invalid');
    const options = await form.locator('select[name="Target"] option').evaluateAll((os) => os.map((o) => o.value));
    check(JSON.stringify(options) === JSON.stringify(['', 'staging', 'production']), 'allowed values are a list: ' + options);
    await page.waitForTimeout(300);
    check(triggers.length === 0, 'nothing was sent for an invalid form');
    await form.locator('[name="Version"]').fill('1.2.3');
    await form.locator('select[name="Target"]').selectOption('production');
    await form.locator('button[type=submit]').click();
    await page.waitForURL(/\/jobs\/\w+$/);
    check(triggers.length === 1, 'one trigger was sent');
    check(triggers[0].method() === 'POST', 'the trigger is a POST');
    check(!triggers[0].url().includes(adminKey), 'the key is not in the URL');
    check(triggers[0].headers()['x-apikey'] === adminKey, 'the trigger carries the key');
    await page.locator('#job-status .status', { hasText: 'Succeeded' }).waitFor({ timeout: TIMEOUT });
    // The template's declared output, once the job has ended.
    await page.locator('#outputs tr', { hasText: 'app-1.2.3.tgz' }).waitFor({ timeout: TIMEOUT });
    check((await page.locator('#outputs td').allTextContents()).join('|') === 'Artifact|app-1.2.3.tgz',
      'the outputs table shows Artifact');
    console.log('TOKEN=' + page.url().split('/').pop());
  },

  // Whatever a variable or a log line holds is shown as text: no markup, no script.
  async escaping(page) {
    const token = process.env.HOLT_TOKEN;
    const payload = process.env.HOLT_PAYLOAD;
    await signIn(page, '/jobs/' + token);
    await page.locator('#job-status .status', { hasText: 'Succeeded' }).waitFor({ timeout: TIMEOUT });
    await page.locator('.entry .text', { hasText: 'payload:' }).waitFor({ timeout: TIMEOUT });
    const cells = await page.locator('#variables td').allTextContents();
    check(cells.includes(payload), 'the variable shows as the text sent: ' + JSON.stringify(cells));
    const lines = await page.locator('.entry .text').allTextContents();
    check(lines.includes('payload: ' + payload), 'the log line shows as the text logged');
    await page.goto(base + '/');
    await page.locator(`#jobs tr[data-token="${token}"]`).waitFor();
    await page.goto(base + '/templates');
    await page.locator('form.trigger').first().waitFor();
    check(await page.evaluate(() => window.holtPwned) === undefined, 'no injected script ran');
    await page.goto(base + '/jobs/' + token);
    await page.locator('#variables td').first().waitFor();
    check(await page.evaluate(() => window.holtPwned) === undefined, 'no injected script ran');
    check(await page.locator('#main img, #main script, #main iframe').count() === 0, 'no injected element exists');
  },

  // No page and no response the UI reads holds a secret value or the admin key.
  async secrets(page) {
    const token = process.env.HOLT_TOKEN;
    const secret = process.env.HOLT_SECRET;
    const seen = [];
    page.on('response', async (response) => {
      const type = response.headers()['content-type'] || '';
      if (/text|json|javascript|css/.test(type) && !type.includes('ndjson') && response.request().method() !== 'HEAD') {
        try { seen.push([response.url(), await response.text()]); } catch (_) { /* a streamed body still open */ }
      }
    });
    page.on('request', (request) => seen.push([request.url(), request.url()]));
    await signIn(page, '/jobs/' + token);
    await page.locator('#job-status .status', { hasText: 'Succeeded' }).waitFor({ timeout: TIMEOUT });
    await page.locator('.entry').first().waitFor();
    const cells = await page.locator('#variables tr').allTextContents();
    check(cells.some((c) => c.includes('Password') && c.includes('(secret)')), 'the secret shows as (secret): ' + cells);
    const pages = [await page.content()];
    for (const path of ['/', '/templates', '/servers']) {
      await page.goto(base + path);
      await page.locator('h1').first().waitFor();
      await page.waitForLoadState('networkidle');
      pages.push(await page.content());
    }
    const logText = await api(`/api/jobs/logs?token=${token}&format=ndjson`);
    check(logText.includes('masked:'), 'the job logged its masked line');
    for (const text of pages) {
      check(!text.includes(secret), 'a page holds the secret');
      check(!text.includes(adminKey), 'a page holds the admin key');
    }
    check(seen.length > 5, 'responses were read: ' + seen.length);
    for (const [url, body] of seen) {
      check(!body.includes(secret), 'the response of ' + url + ' holds the secret');
      check(!body.includes(adminKey), 'the response or URL ' + url + ' holds the admin key');
    }
  },

  // Servers, roles and environments, read-only.
  async servers(page) {
    await signIn(page, '/servers');
    await page.locator('#servers tbody tr').first().waitFor();
    const servers = await page.locator('#servers tbody tr').allTextContents();
    check(servers.some((s) => s.includes('web-1') && s.includes('web.example.com') && s.includes('frontend')),
      'the server row: ' + servers);
    const roles = await page.locator('#roles tbody tr').allTextContents();
    check(roles.some((r) => r.includes('frontend') && r.includes('Port = 8080')), 'the role row: ' + roles);
    const environments = await page.locator('#environments tbody tr').allTextContents();
    check(environments.some((e) => e.includes('prod-eu') && e.includes('prod')), 'the environment row: ' + environments);
    check(await page.locator('#main button, #main form').count() === 0, 'the page changes nothing');
    await shot(page, 'servers');
  },

  // A page on another site makes the operator's browser send a form, an image and a fetch to
  // holtd's trigger endpoint; the browser says where they came from and holtd refuses them.
  async 'cross-site'(page) {
    const template = process.env.HOLT_TEMPLATE;
    const target = `${base}/api/jobs/trigger?template=${template}`;
    const evil = http.createServer((req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><body>
        <form id="f" method="POST" action="${target}"><input name="Note" value="forged"></form>
        <img src="${target}&Note=img">
        <script>
          fetch(${JSON.stringify(target + '&Note=fetch')}, { method: 'POST', mode: 'no-cors' })
            .finally(() => document.getElementById('f').submit());
        </script></body>`);
    });
    await new Promise((resolve) => evil.listen(0, '127.0.0.1', resolve));
    const refused = [];
    page.on('response', (response) => {
      if (response.url().startsWith(target)) refused.push(response.status());
    });
    await page.goto(`http://127.0.0.1:${evil.address().port}/`);
    await page.waitForURL((url) => url.href.startsWith(target), { timeout: TIMEOUT });
    await page.waitForLoadState('load');
    const body = await page.textContent('body');
    evil.close();
    check(body.includes('cross-site request refused'), 'the forged form was refused: ' + body);
    check(refused.length >= 2 && refused.every((s) => s === 403), 'every forged request was refused: ' + refused);
  },
};

// Not a test: the screenshots of docs/ui.md, taken by scripts/ui-screenshots on a holtd
// running the example templates.
scenarios.tour = async (page) => {
  const trigger = async (query) => (await api('/api/jobs/trigger?' + query, { method: 'POST' })).trim();
  await page.goto(base + '/');
  await page.locator('#sign-in').waitFor();
  await shot(page, 'sign-in');
  await page.locator('#admin-key').fill(adminKey);
  await page.locator('#admin-key').press('Enter');
  await page.locator('#nav').waitFor({ state: 'visible' });
  await trigger('template=hdars');
  await trigger('template=ablast&TargetServer=ABLSV1');
  await trigger('template=deploy-webapp&Version=2.4.0');
  const deploy = await trigger('template=deploy-webapp&Version=2.4.1');
  await api(`/api/jobs/status?token=${deploy}&wait=30`);
  await page.goto(base + '/');
  await page.locator(`#jobs tr[data-token="${deploy}"] .status-succeeded`).waitFor({ timeout: TIMEOUT });
  await shot(page, 'jobs');
  await page.goto(base + '/jobs/' + deploy);
  await page.locator('#job-status .status-succeeded').waitFor({ timeout: TIMEOUT });
  await page.locator('.entry').last().waitFor();
  await shot(page, 'job');
  await page.goto(base + '/templates#deploy-webapp');
  await page.locator('form.trigger').first().waitFor();
  await shot(page, 'templates');
  await page.goto(base + '/servers');
  await page.locator('#servers').waitFor();
  await shot(page, 'servers');
};

const run = scenarios[scenario];
if (!run) {
  console.error('unknown scenario ' + scenario + '; known: ' + Object.keys(scenarios).join(', '));
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.HOLT_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
let failed = false;
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);
const errors = [];
page.on('pageerror', (error) => errors.push(error.message));
try {
  await run(page);
  check(errors.length === 0, 'the page raised errors: ' + errors.join('; '));
} catch (error) {
  failed = true;
  console.error(error.stack || String(error));
  if (shots) await page.screenshot({ path: `${shots}/failed-${scenario}.png`, fullPage: true }).catch(() => {});
  console.error('page text at failure:\n' + (await page.textContent('body').catch(() => '')));
}
await browser.close();
process.exit(failed ? 1 : 0);

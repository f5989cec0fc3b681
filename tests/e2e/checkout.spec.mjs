// checkout.spec.mjs - the card element in a real browser (Debian's chromium, headless, driven
// by playwright-core). Starts nothing itself: tests/integration/t_20_e2e.sh starts tokend and
// the demo app and passes their URLs:
//   DEMO_URL     the invoicing app (the key's allowed origin)
//   EVIL_URL     the same app on another port: another origin, not allowed
//   TOKEND_URL   tokend, as the browser reaches it
//   E2E_ARTIFACTS  where checkout.png goes;  E2E_PROFILE_DIR  where the fresh profile goes
// Prints one "ok NAME" or "FAIL NAME: why" line per check and "DONE" at the end.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const DEMO = process.env.DEMO_URL;
const EVIL = process.env.EVIL_URL;
const TOKEND = process.env.TOKEND_URL;
const ARTIFACTS = process.env.E2E_ARTIFACTS || 'build/e2e-artifacts';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!DEMO || !EVIL || !TOKEND) {
  console.error('set DEMO_URL, EVIL_URL and TOKEND_URL');
  process.exit(2);
}

let failures = 0;
const ok = (name) => console.log(`ok ${name}`);
const fail = (name, why) => { failures++; console.log(`FAIL ${name}: ${String(why).replace(/\s+/g, ' ').slice(0, 300)}`); };
const check = (name, cond, why) => (cond ? ok(name) : fail(name, why));
async function step(name, fn) {
  try { await fn(); } catch (e) { fail(name, e && e.stack ? e.stack.split('\n').slice(0, 3).join(' ') : e); }
}

const now = new Date();
const YY = String((now.getFullYear() + 2) % 100).padStart(2, '0');

const profile = fs.mkdtempSync(path.join(process.env.E2E_PROFILE_DIR || os.tmpdir(), 'chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 640, height: 820 },
});

// Every request the browser sends to POST /v1/tokens, and every element page response.
const tokenPosts = [];
const elementResponses = [];
const consoleLines = [];
context.on('request', (req) => {
  if (req.method() === 'POST' && req.url().startsWith(`${TOKEND}/v1/tokens`)) tokenPosts.push(req);
});
context.on('response', (res) => {
  if (res.url().startsWith(`${TOKEND}/v1/elements/card?`)) elementResponses.push(res);
});

const page = context.pages()[0] || await context.newPage();
page.on('console', (m) => consoleLines.push(m.text()));

function elementFrame(p) {
  return p.frames().find((f) => f.url().startsWith(`${TOKEND}/v1/elements/card`));
}

async function openCheckout() {
  await page.goto(`${DEMO}/`, { waitUntil: 'load' });
  await page.waitForFunction(() => window.__tokend && window.__tokend.ready, null, { timeout: 10000 });
  const f = elementFrame(page);
  if (!f) throw new Error('no element frame');
  await f.locator('#number').waitFor({ timeout: 10000 });
  return f;
}

async function fill(f, { number, exp, cvc, name }) {
  for (const [id, v] of [['number', number], ['exp', exp], ['cvc', cvc], ['name', name]]) {
    if (v === undefined) continue;
    await f.locator(`#${id}`).fill('');
    await f.locator(`#${id}`).pressSequentially(v, { delay: 5 });
  }
}

const errorOf = async (f, field) => ({
  text: (await f.locator(`#${field}-error`).textContent()).trim(),
  code: await f.locator(`#${field}-error`).getAttribute('data-code'),
  invalid: await f.locator(`#${field}`).getAttribute('aria-invalid'),
});

// ---- 1. the happy path: type a test card, submit from the parent, get a token and a charge ----
await step('happy path', async () => {
  const f = await openCheckout();
  check('element is served by tokend in an iframe', f.parentFrame() === page.mainFrame(), f.url());

  await f.locator('#number').pressSequentially('4242', { delay: 10 });
  check('brand shown as the user types (4242 -> Visa)',
    (await f.locator('#number-brand').textContent()) === 'Visa', await f.locator('#number-brand').textContent());
  await f.locator('#number').pressSequentially('424242424242', { delay: 10 });
  check('number is grouped by 4', (await f.locator('#number').inputValue()) === '4242 4242 4242 4242',
    await f.locator('#number').inputValue());
  await fill(f, { exp: `12${YY}`, cvc: '123', name: 'Ada Lovelace' });
  check('expiry is formatted MM / YY', (await f.locator('#exp').inputValue()) === `12 / ${YY}`,
    await f.locator('#exp').inputValue());
  await page.waitForFunction(() => window.__tokend.changes.some((c) => c.complete && c.brand === 'visa'), null, { timeout: 5000 });
  ok('parent got tokend:change {complete: true, brand: "visa"}');

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'checkout.png'), fullPage: true });
  ok(`screenshot of the filled form: ${path.join(ARTIFACTS, 'checkout.png')}`);

  const before = tokenPosts.length;
  await page.locator('#pay').click();
  await page.waitForFunction(() => document.getElementById('token').dataset.token, null, { timeout: 10000 });
  const tokenId = await page.locator('#token').getAttribute('data-token');
  check('the parent page received a token', /^tok_[0-9A-Za-z]{22}$/.test(tokenId), tokenId);
  check('exactly one POST /v1/tokens was sent', tokenPosts.length === before + 1, tokenPosts.length - before);
  const post = tokenPosts[tokenPosts.length - 1];
  const resp = await post.response();
  check('POST /v1/tokens came from the element frame', post.frame() === f, post.frame() && post.frame().url());
  check('POST /v1/tokens answered 201', resp && resp.status() === 201, resp && resp.status());
  const sent = post.headers();
  check('the element sent its publishable key and the shop origin',
    /^Bearer pk_test_/.test(sent.authorization || '') && sent['tokend-parent-origin'] === DEMO,
    JSON.stringify({ a: (sent.authorization || '').slice(0, 14), p: sent['tokend-parent-origin'] }));
  const shown = await page.locator('#token').textContent();
  check('token message carries brand, last4 and expiry (no PAN)',
    shown.includes('visa') && shown.includes('4242') && shown.includes(`12/20${YY}`) && !/4242424242424242/.test(shown), shown);

  await page.waitForFunction(() => document.getElementById('result').dataset.status, null, { timeout: 15000 });
  const status = await page.locator('#result').getAttribute('data-status');
  const text = await page.locator('#result').textContent();
  check('the demo server charged the token (POST /v1/charges succeeded)',
    status === 'succeeded' || status === 'captured' || status === 'paid', `${status}: ${text}`);
  check('the element cleared the number and CVC after success',
    (await f.locator('#number').inputValue()) === '' && (await f.locator('#cvc').inputValue()) === '', 'still filled');

  const listener = page.frames().find((fr) => fr.url().startsWith(`${EVIL}/listener.html`));
  const got = listener ? await listener.evaluate(() => window.__got) : null;
  check('a listener on another origin in the same page received nothing',
    Array.isArray(got) && got.length === 0, JSON.stringify(got));
});

// ---- 2. client-side failures: the right message under the field, and no request --------------
const bad = [
  { name: 'wrong card number (Luhn)', card: { number: '4242424242424241', exp: `12${YY}`, cvc: '123' },
    field: 'number', code: 'luhn_check_failed', text: 'Your card number is invalid.' },
  { name: 'expired card', card: { number: '4242424242424242', exp: '0120', cvc: '123' },
    field: 'exp', code: 'expired_card', text: 'Your card has expired.' },
  { name: 'wrong CVC length (2 digits)', card: { number: '4242424242424242', exp: `12${YY}`, cvc: '12' },
    field: 'cvc', code: 'invalid_cvc', text: 'The security code must be 3 digits.' },
  { name: 'amex with a 3-digit CVC', card: { number: '378282246310005', exp: `12${YY}`, cvc: '123' },
    field: 'cvc', code: 'invalid_cvc', text: 'The security code must be 4 digits.' },
  { name: 'incomplete card number', card: { number: '424242', exp: `12${YY}`, cvc: '123' },
    field: 'number', code: 'invalid_number', text: 'Your card number is incomplete or not a card number.' },
  { name: 'a number no network issues (all zeros, Luhn-valid)',
    card: { number: '0000000000000000', exp: `12${YY}`, cvc: '123' },
    field: 'number', code: 'invalid_number', text: 'Your card number is incomplete or not a card number.' },
  { name: 'month 13', card: { number: '5555555555554444', exp: `13${YY}`, cvc: '123' },
    field: 'exp', code: 'invalid_expiry_month', text: 'The expiry month is invalid.' },
];
for (const c of bad) {
  await step(c.name, async () => {
    const f = await openCheckout();
    const before = tokenPosts.length;
    await fill(f, c.card);
    await page.locator('#pay').click();
    await f.locator(`#${c.field}-error[data-code="${c.code}"]`).waitFor({ timeout: 5000 });
    const e = await errorOf(f, c.field);
    check(`${c.name}: "${c.text}" under the field`, e.text === c.text && e.code === c.code && e.invalid === 'true',
      JSON.stringify(e));
    const live = await f.locator(`#${c.field}-error`).getAttribute('aria-live');
    const described = await f.locator(`#${c.field}`).getAttribute('aria-describedby');
    check(`${c.name}: the message is announced (aria-live, aria-describedby)`,
      live === 'polite' && described.includes(`${c.field}-error`), `${live} ${described}`);
    await page.waitForTimeout(300);
    check(`${c.name}: no request sent to tokend`, tokenPosts.length === before, tokenPosts.length - before);
    const errs = await page.evaluate(() => window.__tokend.errors);
    check(`${c.name}: the parent got tokend:error`, errs.some((x) => x.code === c.code && x.field === c.field),
      JSON.stringify(errs));
  });
}

await step('brands from the shared IIN table', async () => {
  const f = await openCheckout();
  for (const [num, label] of [['5555', 'Mastercard'], ['2223', 'Mastercard'], ['3782', 'American Express'],
    ['6011', 'Discover'], ['3566', 'JCB'], ['6200', 'UnionPay'], ['6759', 'Maestro'],
    ['650052', 'Troy'], ['2131', 'JCB'], ['63737423', 'Hiper'], ['589562', 'Naranja']]) {
    await f.locator('#number').fill('');
    await f.locator('#number').pressSequentially(num, { delay: 5 });
    const b = await f.locator('#number-brand').textContent();
    check(`brand of ${num}… is ${label}`, b === label, b);
  }
});

// ---- 3. another origin may not frame the element ---------------------------------------------
async function framedBy(url) {
  const p = await context.newPage();
  const lines = [];
  p.on('console', (m) => lines.push(m.text()));
  const before = elementResponses.length;
  await p.goto(url, { waitUntil: 'load' });
  await p.waitForTimeout(1000);
  const f = p.frames().find((fr) => fr !== p.mainFrame());
  let hasForm = false;
  try { hasForm = f ? (await f.locator('#number').count()) > 0 : false; } catch { hasForm = false; }
  return { p, f, hasForm, lines, responses: elementResponses.slice(before) };
}

await step('frame-ancestors', async () => {
  const before = tokenPosts.length;
  const r = await framedBy(`${EVIL}/frame.html?origin=${encodeURIComponent(DEMO)}`);
  check('another origin framing the element (claiming the shop origin) is blocked by frame-ancestors',
    !r.hasForm && r.responses.some((x) => x.status() === 200),
    JSON.stringify({ hasForm: r.hasForm, url: r.f && r.f.url(), statuses: r.responses.map((x) => x.status()) }));
  check('... and the browser says frame-ancestors refused it',
    r.lines.some((l) => /frame-ancestors/.test(l)) || consoleLines.some((l) => /frame-ancestors/.test(l)),
    r.lines.join(' | '));
  await r.p.close();
  const r2 = await framedBy(`${EVIL}/frame.html?origin=${encodeURIComponent(EVIL)}`);
  check('another origin asking for an element of its own origin gets 403 and no form',
    !r2.hasForm && r2.responses.some((x) => x.status() === 403),
    JSON.stringify({ hasForm: r2.hasForm, statuses: r2.responses.map((x) => x.status()) }));
  await r2.p.close();
  check('no POST /v1/tokens from the blocked frames', tokenPosts.length === before, tokenPosts.length - before);
});

// ---- 4. even if CSP were lost, a parent on another origin never receives the token -------------
await step('postMessage targetOrigin', async () => {
  for (const rp of ['strict-origin-when-cross-origin', 'no-referrer']) {
    const p = await context.newPage();
    // strip the CSP from the element page, as a broken proxy might
    await p.route(`${TOKEND}/v1/elements/card?**`, async (route) => {
      const res = await route.fetch();
      const headers = { ...res.headers() };
      delete headers['content-security-policy'];
      await route.fulfill({ response: res, headers });
    });
    await p.goto(`${EVIL}/frame.html?origin=${encodeURIComponent(DEMO)}&rp=${rp}`, { waitUntil: 'load' });
    const f = elementFrame(p);
    if (!f) throw new Error('element frame did not load with the CSP stripped');
    await f.locator('#number').waitFor({ timeout: 10000 });
    const disabled = (await f.locator('#tokend-card').getAttribute('data-disabled')) === 'true';
    if (!disabled) {
      await fill(f, { number: '4242424242424242', exp: `12${YY}`, cvc: '123' });
      await p.evaluate(() => window.__submit()); // the foreign parent asks: ignored
      await p.waitForTimeout(300);
      await f.locator('#cvc').press('Enter'); // the user submits inside the frame
      await f.locator('#status:has-text("Card saved")').waitFor({ timeout: 10000 });
    }
    await p.waitForTimeout(500);
    const got = await p.evaluate(() => window.__got);
    check(`CSP stripped, iframe referrerpolicy=${rp}: the foreign parent got no token` +
      (disabled ? ' (the element disabled itself: parent origin mismatch)' : ' (postMessage targetOrigin)'),
      !got.some((m) => m.data && m.data.type === 'tokend:token') && !JSON.stringify(got).includes('tok_'),
      JSON.stringify(got).slice(0, 300));
    await p.close();
  }
});

await context.close();
fs.rmSync(profile, { recursive: true, force: true });
console.log(`DONE ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);

// End-to-end test of the portals in headless Chromium: starts `dancu demo` on a fresh data
// directory, then an officer logs in at level 2, finds a parent by an accent-free name and
// registers a birth; the parent logs in on a phone-sized screen, sees the child in the
// household and the officer's reads in the data tracker, withdraws a consent given to a bank,
// and switches to English. Then desk.mjs: command forms, a concurrent change reported as stale,
// validation as you type, and a citizen's correction request handled at the desk; and
// account.mjs: a passkey registered with a virtual authenticator and a login with it.
// Screenshots go to tests-artifacts/browser/. Exits non-zero on the first failure.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { deskScenario } from './desk.mjs';
import { accountTests } from './account.mjs';
import { lookChecks } from './look.mjs';

const root = resolve(import.meta.dirname, '../..');
const shots = join(root, 'tests-artifacts', 'browser');
mkdirSync(shots, { recursive: true });
const dataDir = mkdtempSync(join(tmpdir(), 'dancu-browser-'));
const port = 20000 + Math.floor(Math.random() * 20000);
const MAX_PAGE_BYTES = 100 * 1024;

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

const bin = process.env.DANCU_BIN ?? join(resolve(root, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug/dancu');
const server = spawn(bin, ['demo', '--people', '2000'], {
  // The issuer is on `localhost`: WebAuthn refuses IP addresses as relying-party IDs.
  env: { ...process.env, DANCU_DATA_DIR: dataDir, DANCU_LISTEN: `127.0.0.1:${port}`, DANCU_ISSUER: `http://localhost:${port}` },
  stdio: ['ignore', 'pipe', 'inherit'],
});
let out = '';
const started = new Promise((ok, fail) => {
  server.stdout.on('data', (d) => {
    out += d;
    if (/Demo officers/.test(out) && /\n\n/.test(out.split('Demo officers')[1])) ok();
  });
  server.on('exit', (c) => fail(new Error(`dancu demo exited with ${c}`)));
  server.on('error', (e) => fail(e));
  setTimeout(() => fail(new Error('dancu demo did not start in 120 s')), 120_000);
});

const base = `http://localhost:${port}`;
const login = (who) => {
  const m = out.match(new RegExp(`${who}\\s+ID (\\d{12})\\s+passcode (\\d{6})\\s+phone (\\S+)`));
  if (!m) throw new Error(`no ${who} e-ID login in the demo output`);
  return { id: m[1], passcode: m[2], phone: m[3] };
};
const accentFree = (s) =>
  s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/đ/g, 'd').replace(/Đ/g, 'D').toLowerCase();

const launchArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const profiles = [];
const contexts = [];
async function browser(viewport) {
  const dir = mkdtempSync(join(tmpdir(), 'dancu-chromium-'));
  profiles.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: launchArgs, viewport,
  });
  contexts.push(ctx);
  return ctx;
}

/// Bytes a page needs: its HTML plus the stylesheet and script it loads.
async function weigh(page, name) {
  const html = Buffer.byteLength(await page.content());
  let assets = 0;
  for (const a of ['/portal/assets/portal.css', '/portal/assets/htmx.min.js']) {
    assets += (await (await page.request.get(base + a)).body()).length;
  }
  check(html + assets <= MAX_PAGE_BYTES, `${name} weighs ${html + assets} bytes (≤ ${MAX_PAGE_BYTES})`);
  await lookChecks(page, name, check);
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function eidLogin(page, who, side) {
  await page.goto(`${base}/portal`);
  await Promise.all([page.waitForURL(/\/authorize/), page.click(`a[href="/portal/login?as=${side}"]`)]);
  await page.fill('input[name="id_number"]', who.id);
  await page.fill('input[name="passcode"]', who.passcode);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/authorize/login"] button')]);
  if (await page.locator('form[action="/authorize/otp"]').count()) {
    const lines = readFileSync(join(dataDir, 'sms-outbox.ndjson'), 'utf8').trim().split('\n');
    const text = lines.map((l) => JSON.parse(l)).filter((m) => m.to === who.phone).pop().text;
    await page.fill('input[name="code"]', text.match(/\d{6}/)[0]);
    await Promise.all([page.waitForNavigation(), page.click('form[action="/authorize/otp"] button')]);
  }
  if (await page.locator('form[action="/authorize/consent"]').count()) {
    await page.click('form[action="/authorize/consent"] button[value="allow"]');
  }
  await page.waitForURL(new RegExp(side === 'officer' ? '/portal/desk$' : '/portal/me$'));
}

let failed = false;
try {
  await started;
  const officer = login('officer');
  const parent = login('citizen');
  const token = out.match(/demo-national\s+\S+\s+\S+\s+(\S+)/)[1];
  const rec = await (await fetch(`${base}/api/v1/persons/get`, {
    method: 'POST', body: JSON.stringify({ id: parent.id }),
    headers: { authorization: `Bearer ${token}`, 'x-purpose': 'browser test', 'content-type': 'application/json' },
  })).json();
  const parentName = [rec.name.family, rec.name.middle, rec.name.given].filter(Boolean).join(' ');

  // The officer, on a desk-sized screen.
  const desk = await browser({ width: 1280, height: 900 });
  const page = desk.pages()[0] ?? (await desk.newPage());
  await eidLogin(page, officer, 'officer');
  check(page.url().endsWith('/portal/desk'), 'the officer lands on the desk');
  await weigh(page, 'desk-search');
  await page.fill('#name', accentFree(parentName));
  await page.selectOption('#purpose', 'dang-ky-khai-sinh');
  await page.click('form[action="/portal/desk/search"] button');
  const open = page.locator(`form[action="/portal/desk/person"]:has(input[name="id"][value="${parent.id}"]) button`);
  await open.waitFor();
  check(true, `"${accentFree(parentName)}" finds ${parent.id}`);
  await weigh(page, 'desk-results');
  await open.click();
  await page.locator('#person-id').waitFor();
  await weigh(page, 'desk-person');
  await page.click('form[action="/portal/desk/birth"] button');
  await page.fill('#middle', 'Minh');
  await page.fill('#given', 'Khang');
  await page.selectOption('#sex', 'male');
  const today = new Date(Date.now() + 7 * 3600e3).toISOString().slice(0, 10);
  await page.fill('#date_of_birth', today);
  await page.fill('#document_ref', 'GCS-BROWSER-1');
  await weigh(page, 'desk-birth-form');
  await page.click('form[action="/portal/desk/birth"] button');
  const child = (await page.locator('#new-id').textContent()).trim();
  check(/^\d{12}$/.test(child), `the new ID number ${child} is shown`);
  await weigh(page, 'desk-birth-done');
  await page.click(`form:has(input[name="id"][value="${child}"]) button`);
  await page.locator('#history').waitFor();
  check((await page.locator('#history').textContent()).includes('birth_registered'), 'the birth is in the history');
  await desk.close();

  // The parent, on a phone-sized screen.
  const phone = await browser({ width: 390, height: 844 });
  const p2 = phone.pages()[0] ?? (await phone.newPage());
  await eidLogin(p2, parent, 'citizen');
  check(p2.url().endsWith('/portal/me'), 'the citizen lands on their record');
  check((await p2.content()).includes(child), 'the child is in the household');
  const width = await p2.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 400, `no sideways page scroll on a phone (${width}px)`);
  await weigh(p2, 'me-record');
  await p2.click('a[href="/portal/me/tracker"]');
  await p2.locator('#register-reads').waitFor();
  const reads = await p2.locator('#register-reads').textContent();
  check(reads.includes('demo-desk') && reads.includes('dang-ky-khai-sinh'), 'the officer\'s reads are in the data tracker');
  await weigh(p2, 'me-tracker');
  await p2.click('a[href="/portal/me/account"]');
  await weigh(p2, 'me-account');
  // A bank the parent lets read their profile through the e-ID login; then they withdraw it.
  const reg = await fetch(`${base}/api/v1/oidc/clients`, {
    method: 'POST',
    body: JSON.stringify({ id: 'demo-bank', name: 'Ngân hàng Demo', redirect_uris: [`${base}/cb`],
      token_endpoint_auth_method: 'client_secret_basic', scopes: ['openid', 'profile'] }),
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
  });
  check(reg.status === 201, 'a relying party is registered');
  const verifier = 'browser-test-pkce-verifier-0123456789-abcdefghijklmnop';
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const q = new URLSearchParams({ response_type: 'code', client_id: 'demo-bank', redirect_uri: `${base}/cb`,
    scope: 'openid profile', state: 's1', nonce: 'n1', code_challenge: challenge, code_challenge_method: 'S256' });
  await p2.goto(`${base}/authorize?${q}`);
  if (await p2.locator('form[action="/authorize/login"]').count()) {
    await p2.fill('input[name="id_number"]', parent.id);
    await p2.fill('input[name="passcode"]', parent.passcode);
    await Promise.all([p2.waitForNavigation(), p2.click('form[action="/authorize/login"] button')]);
  }
  await Promise.all([p2.waitForURL(/\/cb\?/), p2.click('form[action="/authorize/consent"] button[value="allow"]')]);
  await p2.goto(`${base}/portal/me/consents`);
  check((await p2.content()).includes('Ngân hàng Demo'), 'the consent is listed');
  await weigh(p2, 'me-consents');
  await p2.click('form[action="/portal/me/consents/revoke"] button');
  await p2.locator('.note').waitFor();
  check((await p2.locator('.note').getAttribute('data-code')) === 'consent_revoked', 'the consent is withdrawn');
  check(await p2.locator('.revoked').count() === 1, 'the list shows it withdrawn');
  await weigh(p2, 'me-consents-revoked');
  await p2.click('a[hreflang="en"]');
  // htmx swaps the page in place: wait for it.
  await p2.locator('h1', { hasText: 'My consents' }).waitFor({ timeout: 5000 }).catch(() => {});
  const h1 = await p2.locator('h1').textContent();
  check(h1.includes('My consents'), `the English switch works (h1: ${h1})`);
  await p2.goto(`${base}/portal/me`);
  check((await p2.locator('h1').textContent()).includes('My record'), 'English is remembered');
  await weigh(p2, 'me-record-en');
  await phone.close();

  // The desk's command forms, a concurrent change, and a correction request (desk.mjs).
  await deskScenario({ base, browser, eidLogin, weigh, check, officer, parent });
  await accountTests({ browser, base, check, weigh, eidLogin, who: parent });
} catch (e) {
  failed = true;
  console.error(`not ok - ${e.stack || e}`);
} finally {
  for (const c of contexts) await c.close().catch(() => {});
  server.kill('SIGTERM');
  for (const d of [dataDir, ...profiles]) {
    try { rmSync(d, { recursive: true, force: true }); } catch { /* a browser still writing: left in the temp dir */ }
  }
}
process.exit(failed ? 1 : 0);

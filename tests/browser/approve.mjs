#!/usr/bin/env node
// Decide one approval request in the Gatehouse console with a real browser,
// the way an approver would: open the request's link, sign in through
// whichever sign-in page appears (the IdP's login and consent pages, or the
// console's dev sign-in page), write the justification, click Approve or
// Deny, and wait for the page to show the new status.
//
// Usage:
//   node approve.mjs --console URL --login omar [--password any] --request ID
//                    --decision approve|deny --reason "…" [--screenshot FILE]
//                    [--timeout-ms 90000] [--step-timeout-ms 15000]
//
// Prints one JSON line: {"ok":true,"request":…,"decision":…,"status":…,…}
// or {"ok":false,"error":…} (exit status 1; 2 for bad arguments). Uses
// Debian's chromium (/usr/bin/chromium) through playwright-core, with a
// fresh profile, and accepts the gateway's self-signed certificate.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function usage(problem) {
  process.stderr.write(`approve.mjs: ${problem}\n` +
    'usage: node approve.mjs --console URL --login NAME [--password PW] --request ID ' +
    '--decision approve|deny --reason TEXT [--screenshot FILE] [--timeout-ms N] [--step-timeout-ms N]\n');
  process.stdout.write(`${JSON.stringify({ ok: false, error: problem })}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const known = new Set(['console', 'login', 'password', 'request', 'decision', 'reason',
    'screenshot', 'timeout-ms', 'step-timeout-ms']);
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    if (!flag.startsWith('--') || !known.has(flag.slice(2))) usage(`unknown argument ${flag}`);
    if (i + 1 >= argv.length) usage(`${flag} needs a value`);
    out[flag.slice(2)] = argv[i + 1];
  }
  for (const need of ['console', 'login', 'request', 'decision', 'reason']) {
    if (!out[need]) usage(`--${need} is required`);
  }
  if (!/^\d+$/.test(out.request)) usage('--request must be a request number');
  if (!['approve', 'deny'].includes(out.decision)) usage('--decision must be approve or deny');
  if (!out.reason.trim()) usage('--reason must not be empty');
  try { new URL(out.console); } catch { usage(`--console ${out.console} is not a URL`); }
  out.console = out.console.replace(/\/+$/, '');
  out.password ??= 'any';
  out.timeoutMs = Number(out['timeout-ms'] ?? 90000);
  out.stepMs = Number(out['step-timeout-ms'] ?? 15000);
  if (!(out.timeoutMs > 0) || !(out.stepMs > 0)) usage('timeouts must be positive numbers of milliseconds');
  return out;
}

const opts = parseArgs(process.argv.slice(2));
let context;
let page;
let profile;

async function cleanup() {
  try { if (context) await context.close(); } catch { /* already gone */ }
  try { if (profile) rmSync(profile, { recursive: true, force: true }); } catch { /* best effort */ }
}

async function finish(result, code) {
  if (opts.screenshot && page) {
    try {
      await page.screenshot({ path: opts.screenshot, fullPage: true, timeout: 5000 });
      result.screenshot = opts.screenshot;
    } catch (e) {
      result.screenshot_error = String(e.message || e);
    }
  }
  await cleanup();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (!result.ok) process.stderr.write(`approve.mjs: ${result.error}\n`);
  process.exit(code);
}

// Whole-run deadline: whatever hangs, the script ends.
const deadline = setTimeout(() => {
  finish({ ok: false, error: `timed out after ${opts.timeoutMs} ms at ${page ? page.url() : 'browser start'}` }, 1);
}, opts.timeoutMs);

// Click `target` and wait until the browser has moved on from the current URL.
async function clickAndWait(target) {
  const before = page.url();
  await Promise.all([
    page.waitForURL((u) => u.href !== before, { timeout: opts.stepMs, waitUntil: 'domcontentloaded' }),
    target.click({ timeout: opts.stepMs }),
  ]);
}

function onRequestPage() {
  const u = new URL(page.url());
  return u.origin === new URL(opts.console).origin && u.pathname === `/approvals/${opts.request}`;
}

async function text(selector) {
  const l = page.locator(selector).first();
  return (await l.count()) ? (await l.innerText({ timeout: opts.stepMs })).trim() : null;
}

// Answer sign-in pages until the browser is back on the request's page.
async function signIn() {
  for (let step = 0; step < 10; step += 1) {
    if (onRequestPage()) return;
    if (await page.locator('#dev-signin').count()) {
      // The console's dev sign-in page: pick the identity, or type it.
      const pick = page.locator(`button[name="pick"][value="${opts.login.replace(/"/g, '\\"')}"]`);
      if (await pick.count()) {
        await clickAndWait(pick.first());
      } else {
        await page.fill('input[name="subject"]', opts.login);
        await clickAndWait(page.locator('form.stack button[type="submit"]'));
      }
      continue;
    }
    const loginField = page.locator('input[name="login"]');
    if (await loginField.count()) {
      // The identity provider's login form.
      await loginField.fill(opts.login);
      await page.locator('input[name="password"]').fill(opts.password);
      await clickAndWait(page.locator('form:has(input[name="login"]) [type="submit"]').first());
      continue;
    }
    const consent = page.locator('form:has(input[name="prompt"][value="consent"]) [type="submit"]');
    if (await consent.count()) {
      await clickAndWait(consent.first());
      continue;
    }
    const heading = await text('h1');
    const message = await text('main p, p');
    throw new Error(`sign-in stopped at ${page.url()}${heading ? `: ${heading}` : ''}${message ? ` — ${message}` : ''}`);
  }
  throw new Error(`sign-in did not return to the request's page (last page ${page.url()})`);
}

async function main() {
  profile = mkdtempSync(join(tmpdir(), 'gatehouse-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    ignoreHTTPSErrors: true,
    timeout: 30000,
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(opts.stepMs);
  page.setDefaultNavigationTimeout(opts.stepMs);

  const link = `${opts.console}/approvals/${opts.request}`;
  const first = await page.goto(link, { waitUntil: 'domcontentloaded' });
  if (!first) throw new Error(`no response from ${link}`);
  await signIn();

  const who = await text('.who .name');
  const status = page.locator('#status');
  if (!(await status.count())) {
    const heading = await text('h1');
    const message = await text('main p');
    throw new Error(`request #${opts.request} is not shown to ${opts.login}: ${heading ?? ''} ${message ?? ''}`.trim());
  }
  const before = await status.getAttribute('data-status');
  const form = page.locator('form.decide');
  if (!(await form.count())) {
    const why = await text('.why-not');
    throw new Error(`no decision form on request #${opts.request} (status ${before})${why ? `: ${why}` : ''}`);
  }
  await form.locator('textarea[name="reason"]').fill(opts.reason);
  await clickAndWait(form.locator(`button[name="decision"][value="${opts.decision}"]`));

  const problem = await text('.flash.bad, .card.problem');
  if (problem) throw new Error(`the console refused the decision: ${problem}`);
  await page.locator('#status').waitFor({ state: 'attached', timeout: opts.stepMs });
  const after = await page.locator('#status').getAttribute('data-status');
  const flash = await text('.flash.ok');
  const expected = opts.decision === 'deny' ? ['denied'] : ['approved', 'executed', 'pending'];
  if (!expected.includes(after)) {
    throw new Error(`after ${opts.decision}, request #${opts.request} shows status "${after}"`);
  }
  if (after === 'pending' && !flash) {
    throw new Error(`after ${opts.decision}, request #${opts.request} is still pending and the console confirmed nothing`);
  }
  return {
    ok: true,
    request: Number(opts.request),
    decision: opts.decision,
    status: after,
    previous_status: before,
    signed_in_as: who,
    message: flash,
    url: page.url(),
  };
}

main()
  .then((result) => { clearTimeout(deadline); return finish(result, 0); })
  .catch((e) => { clearTimeout(deadline); return finish({ ok: false, error: String(e && e.message ? e.message : e).split('\n')[0], url: page ? page.url() : null }, 1); });

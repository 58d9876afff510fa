#!/usr/bin/env node
// Open an SSH session's page in the Gatehouse console with a real browser,
// sign in through the console's dev sign-in page, follow its Replay link, and
// check that
// the vendored asciinema-player plays the recording: click a command in the
// list beside the player and wait until the terminal shows `--expect`.
// Fails on any Content-Security-Policy violation or page error.
//
// Usage:
//   node replay.mjs --console URL --login audrey --session ID --channel N
//                   --expect TEXT [--screenshot FILE] [--timeout-ms 90000]
//
// Prints one JSON line: {"ok":true,…} or {"ok":false,"error":…} (exit 1).
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const opts = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) opts[argv[i].replace(/^--/, '')] = argv[i + 1];
for (const need of ['console', 'login', 'session', 'channel', 'expect']) {
  if (!opts[need]) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: `--${need} is required` })}\n`);
    process.exit(2);
  }
}
opts.console = opts.console.replace(/\/+$/, '');
const timeoutMs = Number(opts['timeout-ms'] ?? 90000);
const stepMs = 15000;
const problems = [];
let context;
let page;
let profile;

async function finish(result, code) {
  if (opts.screenshot && page) {
    try { await page.screenshot({ path: opts.screenshot, fullPage: true, timeout: 5000 }); } catch { /* best effort */ }
  }
  try { if (context) await context.close(); } catch { /* gone */ }
  try { if (profile) rmSync(profile, { recursive: true, force: true }); } catch { /* best effort */ }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(code);
}

setTimeout(() => finish({ ok: false, error: `timed out after ${timeoutMs} ms at ${page ? page.url() : 'start'}` }, 1), timeoutMs);

async function clickAndWait(target) {
  const before = page.url();
  await Promise.all([
    page.waitForURL((u) => u.href !== before, { timeout: stepMs, waitUntil: 'domcontentloaded' }),
    target.click({ timeout: stepMs }),
  ]);
}

async function main() {
  profile = mkdtempSync(join(tmpdir(), 'gatehouse-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ARGS, ignoreHTTPSErrors: true,
    timeout: 30000, viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(stepMs);
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text());
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
  });
  page.on('pageerror', (e) => problems.push(String(e.message || e)));
  // Start from the session's timeline, as an auditor would, and follow its Replay link.
  const sessionPath = `/sessions/${opts.session}`;
  const path = `${sessionPath}/replay/${opts.channel}`;
  await page.goto(`${opts.console}${sessionPath}`, { waitUntil: 'domcontentloaded' });
  for (let step = 0; step < 5 && new URL(page.url()).pathname !== sessionPath; step += 1) {
    if (!(await page.locator('#dev-signin').count())) {
      throw new Error(`sign-in stopped at ${page.url()}`);
    }
    const pick = page.locator(`button[name="pick"][value="${opts.login}"]`);
    if (await pick.count()) {
      await clickAndWait(pick.first());
    } else {
      await page.fill('input[name="subject"]', opts.login);
      await clickAndWait(page.locator('form.stack button[type="submit"]'));
    }
  }
  if (new URL(page.url()).pathname !== sessionPath) throw new Error(`not on the session page: ${page.url()}`);
  const link = page.locator(`a.replay-link[href="${path}"]`);
  if (!(await link.count())) throw new Error(`the session page has no Replay link to ${path}`);
  await clickAndWait(link.first());
  if (new URL(page.url()).pathname !== path) throw new Error(`not on the replay page: ${page.url()}`);
  await page.locator('#player[data-ready="1"]').waitFor({ state: 'attached' });
  await page.locator('#player .ap-player').waitFor({ state: 'attached' });
  const commands = await page.locator('ol.replay-list li').allInnerTexts();
  const seek = page.locator('a.seek').first();
  if (await seek.count()) {
    await seek.click();
  } else {
    await page.locator('#player .ap-player').click();
  }
  const deadline = Date.now() + 30000;
  let screen = '';
  while (Date.now() < deadline) {
    screen = await page.locator('#player .ap-term, #player .ap-terminal, #player pre').first().innerText().catch(() => '');
    if (screen.includes(opts.expect)) break;
    await page.waitForTimeout(250);
  }
  if (!screen.includes(opts.expect)) throw new Error(`the player never showed ${JSON.stringify(opts.expect)}; it shows ${JSON.stringify(screen.slice(0, 400))}`);
  const csp = problems.filter((p) => /Content Security Policy|Refused to/i.test(p));
  if (csp.length) throw new Error(`CSP violations: ${csp.join(' | ')}`);
  if (problems.length) throw new Error(`page errors: ${problems.join(' | ')}`);
  return { ok: true, url: page.url(), commands: commands.length, shown: opts.expect };
}

main().then((r) => finish(r, 0), (e) => finish({ ok: false, error: String(e.message || e), problems }, 1));

#!/usr/bin/env node
// Open an evidence pack's report.html from disk in headless Chromium, the
// way an examiner would, and report what a reader sees: the headings, the
// figures, the verification verdict, the summary figures, that a session
// link opens its recording and the control map opens, that nothing was
// fetched from the network and no script ran. Saves a full-page screenshot
// (and optionally a PDF, to check that it prints).
//
// Usage:
//   node report.mjs --report PACK/report.html --screenshot shot.png
//                   [--session-screenshot s.png] [--pdf report.pdf] [--timeout-ms 60000]
//
// Prints one JSON line: {"ok":true,...} or {"ok":false,"error":...} (exit 1).
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function parseArgs(argv) {
  const known = new Set(['report', 'screenshot', 'session-screenshot', 'pdf', 'timeout-ms']);
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    if (!flag.startsWith('--') || !known.has(flag.slice(2)) || i + 1 >= argv.length) {
      process.stdout.write(`${JSON.stringify({ ok: false, error: `bad argument ${flag}` })}\n`);
      process.exit(2);
    }
    out[flag.slice(2)] = argv[i + 1];
  }
  if (!out.report || !out.screenshot) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: '--report and --screenshot are required' })}\n`);
    process.exit(2);
  }
  out.timeoutMs = Number(out['timeout-ms'] ?? 60000);
  return out;
}

const opts = parseArgs(process.argv.slice(2));
let context;
let profile;

async function finish(result, code) {
  try { if (context) await context.close(); } catch { /* gone */ }
  try { if (profile) rmSync(profile, { recursive: true, force: true }); } catch { /* best effort */ }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (!result.ok) process.stderr.write(`report.mjs: ${result.error}\n`);
  process.exit(code);
}

setTimeout(() => finish({ ok: false, error: `timed out after ${opts.timeoutMs} ms` }, 1), opts.timeoutMs);

async function main() {
  profile = mkdtempSync(join(tmpdir(), 'gatehouse-report-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30000,
    viewport: { width: 1280, height: 900 },
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  const external = [];
  const consoleErrors = [];
  page.on('request', (r) => { if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) external.push(r.url()); });
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  const url = pathToFileURL(resolve(opts.report)).href;
  await page.goto(url, { waitUntil: 'load' });
  const seen = await page.evaluate(() => {
    const text = (el) => (el ? el.textContent.replace(/\s+/g, ' ').trim() : null);
    const cards = {};
    for (const c of document.querySelectorAll('.card')) {
      cards[text(c.querySelector('.l'))] = Number(text(c.querySelector('.n')).replace(/,/g, ''));
    }
    const figures = [...document.querySelectorAll('figure')].map((f) => ({
      id: f.id,
      svg: !!f.querySelector('svg'),
      bars: f.querySelectorAll('svg rect').length,
      width: Math.round(f.querySelector('svg')?.getBoundingClientRect().width ?? 0),
      caption: text(f.querySelector('figcaption')),
    }));
    const verdict = document.querySelector('#verdict');
    return {
      title: document.title,
      h1: text(document.querySelector('h1')),
      headings: [...document.querySelectorAll('h2')].map(text),
      figures,
      verdict: verdict ? [...verdict.classList].find((c) => c !== 'verdict') : null,
      verdict_text: text(verdict?.querySelector('strong')),
      cards,
      scripts: document.querySelectorAll('script').length,
      session_links: [...document.querySelectorAll('#sessions a[href^="sessions/"]')].map((a) => a.getAttribute('href')),
      blocked_rows: document.querySelectorAll('#blocked tbody tr').length,
      approval_rows: document.querySelectorAll('#approvals tbody tr').length,
      approvals_text: text(document.querySelector('#approvals')),
      blocked_text: text(document.querySelector('#blocked')),
      refusals_text: text(document.querySelector('#refusals')),
      masking_text: text(document.querySelector('#masking')),
      identities_text: text(document.querySelector('#identities')),
      overflowing: document.documentElement.scrollWidth > window.innerWidth + 2,
    };
  });
  await page.screenshot({ path: opts.screenshot, fullPage: true, timeout: 15000 });
  let pdf = null;
  if (opts.pdf) {
    await page.emulateMedia({ media: 'print' });
    await page.pdf({ path: opts.pdf, format: 'A4', printBackground: true });
    pdf = { bytes: statSync(opts.pdf).size };
    await page.emulateMedia({ media: 'screen' });
  }

  // Follow the first session link to its recording.
  let session = null;
  const link = page.locator('#sessions a[href^="sessions/"]').first();
  if (await link.count()) {
    await Promise.all([page.waitForURL((u) => u.href.includes('/sessions/')), link.click()]);
    session = await page.evaluate(() => ({
      title: document.title,
      h1: document.querySelector('h1')?.textContent.trim(),
      rows: document.querySelectorAll('tbody tr').length,
      raw_link: document.querySelector('a[href$=".jsonl"]')?.getAttribute('href'),
    }));
    if (opts['session-screenshot']) await page.screenshot({ path: opts['session-screenshot'], fullPage: true });
    await page.goBack({ waitUntil: 'load' });
  }
  // And the control map.
  await Promise.all([page.waitForURL((u) => u.href.endsWith('control-map.html')),
    page.locator('nav.toc a[href="control-map.html"]').click()]);
  const controlMap = await page.evaluate(() => ({
    h1: document.querySelector('h1')?.textContent.trim(),
    artifacts: document.querySelectorAll('section.identity').length,
    frameworks: [...new Set([...document.querySelectorAll('section.identity tbody tr td:first-child')].map((td) => td.textContent.trim()))],
    disclaimer: document.querySelector('.verdict')?.textContent.includes('does not claim compliance'),
  }));
  return { ok: true, ...seen, pdf, session, control_map: controlMap, external_requests: external, console_errors: consoleErrors };
}

main().then((r) => finish(r, 0), (e) => finish({ ok: false, error: String(e.message || e) }, 1));

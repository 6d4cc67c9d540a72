/**
 * browser: real headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core, which never downloads a browser) for the web pages' tests.
 *
 * useBrowser() launches one Chromium per test file (beforeAll/afterAll). Each
 * session() is a fresh browser context (its own cookies); each page it opens
 * records what the page did, for tests to assert on:
 *   console     every console message (CSP violations are reported here)
 *   pageErrors  uncaught exceptions
 *   requests    every request the page started, any origin, with its outcome; the
 *               CSP's refusals ('blocked') never reach the network, so
 *               remoteRequests(origin) lists those to another origin that did
 *   scripts     every script Chromium compiled for the page itself (Debugger events
 *               over CDP; not playwright's own evaluations): "no script ran" is
 *               scripts.length === 0
 * shot(name) saves a PNG under test-artefacts/screenshots/<test file>/ (gitignored).
 *
 * Certificates: only the certificates passed to useBrowser are accepted despite
 * an untrusted chain (Chromium's --ignore-certificate-errors-spki-list pins their
 * public keys); any other certificate error still fails the page.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page, type Response } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import { spkiHash } from './web-server.ts';

export const CHROMIUM = process.env.SEALRELAY_CHROMIUM ?? '/usr/bin/chromium';
/** Where screenshots go: the repository's test-artefacts/ (gitignored). */
export const ARTEFACTS_DIR = resolve(import.meta.dirname, '../../test-artefacts');

/** Flags that keep Chromium off the network except for the pages we open (this machine has none anyway). */
const QUIET_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
  '--metrics-recording-only',
  '--no-default-browser-check',
];

export interface ConsoleEntry {
  readonly type: string;
  readonly text: string;
}
export interface RequestEntry {
  readonly method: string;
  readonly url: string;
  readonly resourceType: string;
  /** 'pending', 'answered' (a response came), 'blocked' (the CSP stopped it before any connection), or the network error. */
  outcome: string;
}
export interface ScriptEntry {
  readonly url: string;
  readonly length: number;
}

export interface OpenedPage {
  readonly page: Page;
  /** The main document's response of the first navigation. */
  readonly response: Response | null;
  readonly console: ConsoleEntry[];
  readonly pageErrors: string[];
  readonly requests: RequestEntry[];
  readonly scripts: ScriptEntry[];
  /** Requests to any origin but `origin` that were not blocked before leaving the browser. */
  remoteRequests(origin: string): RequestEntry[];
  /** Saves a full-page PNG; returns its path. */
  shot(name: string): Promise<string>;
}

export interface BrowserSession {
  readonly context: BrowserContext;
  open(url: string, opts?: { viewport?: { width: number; height: number } }): Promise<OpenedPage>;
}

export interface BrowserHandle {
  /** A fresh context: no cookies, no cache. Closed after the file. */
  session(): Promise<BrowserSession>;
}

/** Launches Chromium once for this test file; `trust` lists the PEM certificates it accepts for our servers. */
export function useBrowser(opts: { trust: () => readonly string[] }): BrowserHandle {
  let browser: Browser | undefined;
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run \`npm run test:setup\` (Debian package chromium), or set SEALRELAY_CHROMIUM`);
    // playwright gives Chromium a fresh temporary profile (--user-data-dir), which the SPKI flag needs.
    const spkis = opts.trust().map(spkiHash).join(',');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...QUIET_FLAGS, `--ignore-certificate-errors-spki-list=${spkis}`],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });
  return {
    async session() {
      if (!browser) throw new Error('useBrowser: the browser is not running (call session() inside a test)');
      const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
      return { context, open: (url, o) => openPage(context, url, o) };
    },
  };
}

async function openPage(context: BrowserContext, url: string, opts: { viewport?: { width: number; height: number } } = {}): Promise<OpenedPage> {
  const page = await context.newPage();
  if (opts.viewport) await page.setViewportSize(opts.viewport);
  const consoleEntries: ConsoleEntry[] = [];
  const pageErrors: string[] = [];
  const requests: RequestEntry[] = [];
  const scripts: ScriptEntry[] = [];
  page.on('console', (m) => consoleEntries.push({ type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const entries = new Map<import('playwright-core').Request, RequestEntry>();
  page.on('request', (r) => {
    const entry = { method: r.method(), url: r.url(), resourceType: r.resourceType(), outcome: 'pending' };
    entries.set(r, entry);
    requests.push(entry);
  });
  page.on('response', (res) => {
    const entry = entries.get(res.request());
    if (entry) entry.outcome = 'answered';
  });
  page.on('requestfailed', (r) => {
    const entry = entries.get(r);
    const failure = r.failure()?.errorText ?? 'failed';
    if (entry) entry.outcome = failure === 'csp' || failure === 'net::ERR_BLOCKED_BY_CSP' ? 'blocked' : failure;
  });

  // Scripts compiled in a main world (the page's or a frame's) from the page itself:
  // inline and external scripts and event handlers carry the document's or the
  // script's URL. Code without a URL is evaluated code: playwright's own helpers and
  // page.evaluate() calls (a page can eval only from a script that already counted).
  // Chromium's own error page for a refused frame is not the page's.
  const cdp = await context.newCDPSession(page);
  const mainWorlds = new Set<number>();
  cdp.on('Runtime.executionContextCreated', (e) => {
    const aux = e.context.auxData as { isDefault?: boolean } | undefined;
    if (aux?.isDefault) mainWorlds.add(e.context.id);
  });
  cdp.on('Debugger.scriptParsed', (e) => {
    if (!mainWorlds.has(e.executionContextId)) return;
    if (!e.url || /^(chrome|chrome-error|devtools):/.test(e.url)) return;
    scripts.push({ url: e.url, length: e.length ?? 0 });
  });
  await cdp.send('Runtime.enable');
  await cdp.send('Debugger.enable');

  const response = await page.goto(url, { waitUntil: 'load' });
  return {
    page,
    response,
    console: consoleEntries,
    pageErrors,
    requests,
    scripts,
    remoteRequests: (origin) => requests.filter((r) => new URL(r.url).origin !== origin && r.outcome !== 'blocked'),
    shot: (name) => screenshot(page, name),
  };
}

async function screenshot(page: Page, name: string): Promise<string> {
  const testFile = expect.getState().testPath ?? 'unknown';
  const dir = join(ARTEFACTS_DIR, 'screenshots', basename(testFile).replace(/\.test\.ts$/, ''));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name.replace(/[^A-Za-z0-9._-]+/g, '-')}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

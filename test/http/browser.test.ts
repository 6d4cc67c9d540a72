// The web foundation in real headless Chromium (test/helpers/browser.ts): pages
// render, are usable by keyboard and on a phone, and load only from us; the CSP
// stops script even where markup escapes a template; a real cross-site form is
// refused; cookies are out of script's reach; lockout and error pages say what
// happened. Each page is saved as a screenshot under test-artefacts/screenshots/browser/.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { assetUrl } from '../../src/http/assets.ts';
import { html } from '../../src/html.ts';
import { registerHome } from '../../src/http/home.ts';
import { useBrowser, type OpenedPage } from '../helpers/browser.ts';
import { DEMO_PASSWORD, startTestWebServer, testWebCertificate, type TestWebServer } from '../helpers/web-server.ts';
import { selfSigned } from '../helpers/test-ca.ts';
import { REMOTE_PAYLOADS, XSS_PAYLOADS } from '../helpers/xss-payloads.ts';

const browser = useBrowser({ trust: () => [testWebCertificate().certPem] });
let web: TestWebServer;
afterEach(async () => web?.close());

const PHONE = { width: 360, height: 740 };
const CSP_VIOLATION = /Content Security Policy|TrustedScript|TrustedHTML/;

async function demo(): Promise<TestWebServer> {
  return startTestWebServer({ register: (s) => registerHome(s.app, { title: 'Secure messages', lead: 'Messages sent to you securely are read here.' }) });
}

/** WCAG 2 contrast ratio of two CSS rgb() colours. */
function contrast(a: string, b: string): number {
  const lum = (c: string) => {
    const [r, g, bl] = (c.match(/[\d.]+/g) ?? []).slice(0, 3).map((v) => {
      const s = Number(v) / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    }) as [number, number, number];
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

function expectQuietPage(p: OpenedPage, origin: string) {
  expect(p.console).toEqual([]);
  expect(p.pageErrors).toEqual([]);
  expect(p.scripts).toEqual([]);
  expect(p.remoteRequests(origin)).toEqual([]);
}

describe('layout', () => {
  it('renders on a desktop and a phone: lang, title, one h1, our stylesheet only, no script, nothing remote, no console message', async () => {
    web = await demo();
    const session = await browser.session();
    for (const path of ['/', '/form', '/sign-in']) {
      for (const [device, viewport] of [['desktop', undefined], ['phone', PHONE]] as const) {
        const p = await session.open(web.origin + path, { viewport });
        expect(p.response?.status()).toBe(200);
        expect(await p.page.getAttribute('html', 'lang')).toBe('en');
        expect(await p.page.title()).toMatch(/ – SealRelay test site$/);
        expect(await p.page.locator('h1').count()).toBe(1);
        expect(await p.page.locator('main#main').count()).toBe(1);
        const sheets = p.requests.filter((r) => r.resourceType === 'stylesheet');
        expect(sheets.map((r) => new URL(r.url).pathname)).toEqual([expect.stringMatching(/^\/assets\/base\.[0-9a-f]{12}\.css$/)]);
        // The stylesheet applied (a page without it has a white body and no header band).
        expect(await p.page.evaluate('getComputedStyle(document.querySelector(".site-header")).backgroundColor')).toBe('rgb(11, 61, 107)');
        // Nothing wider than the screen.
        expect(await p.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
        expectQuietPage(p, web.origin);
        await p.shot(`${path === '/' ? 'home' : path.slice(1)}-${device}`);
        await p.page.close();
      }
    }
  });

  it('works by keyboard with a visible focus, every field has a label, and text has the contrast it needs', async () => {
    web = await demo();
    const p = await (await browser.session()).open(`${web.origin}/form`);
    await p.page.keyboard.press('Tab');
    expect(await p.page.evaluate('document.activeElement.textContent')).toBe('Skip to main content');
    const ring = (await p.page.evaluate('(() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.boxShadow, s.backgroundColor]; })()')) as string[];
    expect(ring[0] !== 'none' || ring[1] !== 'none').toBe(true);
    expect(await p.page.evaluate('document.activeElement.getBoundingClientRect().left >= 0')).toBe(true);
    await p.shot('form-skip-link-focused');
    await p.page.keyboard.press('Enter');
    expect(new URL(p.page.url()).hash).toBe('#main');
    await p.page.keyboard.press('Tab');
    expect(await p.page.evaluate('document.activeElement.id')).toBe('note');
    const fieldRing = (await p.page.evaluate('(() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]; })()')) as string[];
    expect(fieldRing).toEqual(['solid', '3px']);
    await p.shot('form-field-focused');
    const unlabelled = await p.page.evaluate(
      '[...document.querySelectorAll("input:not([type=hidden]), textarea, select")].filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")).map((e) => e.name)',
    );
    expect(unlabelled).toEqual([]);
    const colours = (await p.page.evaluate(
      '(() => { const c = (sel, prop) => getComputedStyle(document.querySelector(sel))[prop]; return { text: c("body", "color"), page: c("body", "backgroundColor"), button: c("button", "color"), buttonBg: c("button", "backgroundColor"), hint: c(".hint", "color"), panel: c(".panel", "backgroundColor") }; })()',
    )) as Record<string, string>;
    expect(contrast(colours.text!, colours.page!)).toBeGreaterThanOrEqual(7);
    expect(contrast(colours.button!, colours.buttonBg!)).toBeGreaterThanOrEqual(4.5);
    expect(contrast(colours.hint!, colours.panel!)).toBeGreaterThanOrEqual(4.5);
    // Targets big enough for a finger.
    expect(await p.page.evaluate('document.querySelector("button").getBoundingClientRect().height >= 44')).toBe(true);
  });
});

describe('Content-Security-Policy, enforced by the browser', () => {
  it('markup printed unescaped (a template bug) runs no script, loads nothing remote, and is reported as a violation', async () => {
    web = await demo();
    const markup = [...XSS_PAYLOADS, ...REMOTE_PAYLOADS].join('\n');
    const p = await (await browser.session()).open(`${web.origin}/unescaped?markup=${encodeURIComponent(markup)}`);
    expect(p.response?.status()).toBe(200);
    // The markup really is in the page as elements: only the CSP stands in the way.
    expect(await p.page.locator('#content script').count()).toBeGreaterThan(0);
    expect(await p.page.locator('#content img[onerror]').count()).toBe(1);
    // A person clicks the javascript: link (a real click event; playwright's click() would wait on the navigation CSP refuses).
    await p.page.locator('#jslink').dispatchEvent('click');
    await p.page.locator('details').first().evaluate('(d) => d.open = !d.open');
    // Let every load the page started settle before counting.
    await p.page.waitForLoadState('networkidle');
    expect(p.scripts).toEqual([]);
    expect(await p.page.evaluate('typeof window.pwned')).toBe('undefined');
    expect(p.remoteRequests(web.origin)).toEqual([]);
    // The remote loads were attempted by the markup and refused by the browser, never sent.
    const remote = p.requests.filter((r) => new URL(r.url).hostname.endsWith('.remote.invalid'));
    expect(remote.length).toBeGreaterThan(0);
    expect(remote.filter((r) => r.outcome !== 'blocked')).toEqual([]);
    const violations = p.console.filter((m) => CSP_VIOLATION.test(m.text)).map((m) => m.text);
    for (const what of ['Executing inline script', 'Executing inline event handler', 'Loading the script', 'Loading the image', 'Loading the stylesheet', 'Applying inline style', "Setting the document's base URI", 'Framing']) {
      expect(violations.some((v) => v.startsWith(what)), what).toBe(true);
    }
    expect(p.pageErrors).toEqual([]);
    // The injected <style> did not apply, and <base> did not move our stylesheet elsewhere.
    expect(await p.page.evaluate('getComputedStyle(document.body).backgroundColor')).toBe('rgb(243, 242, 241)');
    expect(p.requests.filter((r) => r.resourceType === 'stylesheet' && r.outcome === 'answered').map((r) => r.url)).toEqual([web.origin + assetUrl('base.css')]);
    await p.shot('csp-unescaped-markup');
  });

  it('the same markup through html`` (every real page) is shown as text: no element made, nothing even tried', async () => {
    web = await demo();
    const text = [...XSS_PAYLOADS, ...REMOTE_PAYLOADS].join('\n');
    const p = await (await browser.session()).open(`${web.origin}/escaped?text=${encodeURIComponent(text)}`);
    expect(await p.page.locator('#content').textContent()).toBe(text);
    expect(await p.page.evaluate('document.querySelector("#content").childElementCount')).toBe(0);
    expectQuietPage(p, web.origin);
    await p.shot('escaped-markup');
  });
});

describe('CSRF in the browser', () => {
  let attacker: Server | undefined;
  afterEach(async () => {
    await new Promise((r) => (attacker ? attacker.close(r) : r(null)));
    attacker = undefined;
  });

  it("our form posts; the same form from another site is refused even carrying the victim's own token", async () => {
    web = await demo();
    const session = await browser.session();
    const p = await session.open(`${web.origin}/form`);
    await p.page.fill('#note', 'from the browser');
    await p.page.click('button[type=submit]');
    await p.page.waitForURL(`${web.origin}/form`);
    expect(await p.page.locator('h1').textContent()).toBe('Note saved');
    expect(web.notes).toEqual(['from the browser']);

    // A token leaked from the victim's page (the worst case), on a page of another site.
    const form = await session.open(`${web.origin}/form`);
    const leaked = await form.page.inputValue('input[name=_csrf]');
    const evil = html`<!doctype html><html lang="en"><title>Win a prize</title><form method="post" action="${web.origin}/form"><input type="hidden" name="_csrf" value="${leaked}"><input type="hidden" name="note" value="forged"><button>Claim</button></form></html>`.toString();
    const pair = testWebCertificate();
    attacker = createServer({ cert: pair.certPem, key: pair.keyPem }, (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(evil));
    await new Promise<void>((r) => attacker!.listen(0, '127.0.0.1', r));
    // localhost and 127.0.0.1 are different sites to the browser.
    const evilOrigin = `https://localhost:${(attacker.address() as AddressInfo).port}`;
    const e = await session.open(evilOrigin);
    const [response] = await Promise.all([e.page.waitForResponse(`${web.origin}/form`), e.page.click('button')]);
    expect(response.status()).toBe(403);
    expect(await response.headerValue('content-type')).toMatch(/^text\/html/);
    await e.page.waitForURL(`${web.origin}/form`);
    expect(await e.page.locator('h1').textContent()).toBe('This form can no longer be sent');
    expect(web.notes).toEqual(['from the browser']);
    await e.shot('csrf-refused');
  });
});

describe('session cookies in the browser', () => {
  it('signing in through the form gives __Host- cookies that are HttpOnly, Secure, SameSite=Strict and host-only, out of reach of script', async () => {
    web = await demo();
    const session = await browser.session();
    const p = await session.open(`${web.origin}/sign-in`);
    await p.page.fill('#user', 'ana');
    await p.page.fill('#password', DEMO_PASSWORD);
    await p.page.click('button[type=submit]');
    await p.page.waitForURL(`${web.origin}/me`);
    expect(await p.page.locator('#who').textContent()).toBe('ana');
    await p.shot('signed-in');
    const cookies = await session.context.cookies();
    expect(cookies.map((c) => c.name).sort()).toEqual(['__Host-portal-csrf', '__Host-portal-sid']);
    for (const c of cookies) expect(c).toMatchObject({ domain: '127.0.0.1', path: '/', httpOnly: true, secure: true, sameSite: 'Strict', expires: -1 });
    expect(await p.page.evaluate('document.cookie')).toBe('');
    expectQuietPage(p, web.origin);
  });
});

describe('pages that say what happened', () => {
  it('wrong passwords count down, then the lockout page says until when; 404 and 500 pages are plain', async () => {
    web = await demo();
    const session = await browser.session();
    const p = await session.open(`${web.origin}/sign-in`);
    const messages = [];
    for (let i = 0; i < 3; i++) {
      await p.page.fill('#user', 'ana');
      await p.page.fill('#password', 'wrong');
      await p.page.click('button[type=submit]');
      await p.page.waitForLoadState();
      messages.push(await p.page.locator('[role=alert]').textContent());
    }
    expect(messages).toEqual(['That password is not right. You have 2 tries left.', 'That password is not right. You have 1 try left.', 'That password is not right, and that was the last try for now.']);
    await p.shot('sign-in-wrong-password');
    await p.page.fill('#user', 'ana');
    await p.page.fill('#password', DEMO_PASSWORD);
    const [locked] = await Promise.all([p.page.waitForResponse(`${web.origin}/sign-in`), p.page.click('button[type=submit]')]);
    expect(locked.status()).toBe(429);
    await p.page.waitForLoadState();
    expect(await p.page.locator('h1').textContent()).toBe('Too many attempts');
    expect(await p.page.locator('main p').textContent()).toBe('To keep this safe, further attempts are paused. You can try again after 12:15 UTC (in about 15 minutes).');
    await p.shot('locked-out');

    const missing = await session.open(`${web.origin}/p/no-such-link`);
    expect(missing.response?.status()).toBe(404);
    expect(await missing.page.locator('h1').textContent()).toBe('Page not found');
    await missing.shot('not-found');

    const fault = await session.open(`${web.origin}/fault`);
    expect(fault.response?.status()).toBe(500);
    expect(await fault.page.locator('h1').textContent()).toBe('Something went wrong on our side');
    expect(await fault.page.content()).not.toContain('abc123');
    await fault.shot('server-fault');
  });
});

describe('the harness', () => {
  it('accepts only the test certificate: a server with any other self-signed one fails to load', async () => {
    const other = selfSigned({ commonName: '127.0.0.1', altNames: ['127.0.0.1'], freshKey: true });
    const stranger = createServer({ cert: other.certPem, key: other.keyPem }, (_req, res) => res.end('should not be shown'));
    await new Promise<void>((r) => stranger.listen(0, '127.0.0.1', r));
    try {
      const session = await browser.session();
      const err = await session.open(`https://127.0.0.1:${(stranger.address() as AddressInfo).port}/`).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(/ERR_CERT_AUTHORITY_INVALID/);
    } finally {
      await new Promise((r) => stranger.close(r));
    }
  });
});

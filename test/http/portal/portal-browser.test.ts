// The portal's pages in real headless Chromium (test/helpers/browser.ts), against a
// real listener, SQLite store and keys (portal-fixture.ts). A recipient's whole way
// through — landing page, code by email, message, attachment download, reply — on a
// desktop and a phone, each page screenshotted under
// test-artefacts/screenshots/portal-browser/; the failure pages (wrong code, locked, unknown,
// expired, recalled, incomplete link); a corpus of XSS and remote-load payloads in
// HTML bodies, subjects, sender names and attachment names that runs nothing and
// loads nothing; and key_in_link items, which open only with the link's #fragment.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { useBrowser, type BrowserSession, type OpenedPage } from '../../helpers/browser.ts';
import { testWebCertificate } from '../../helpers/web-server.ts';
import { REMOTE_PAYLOADS, XSS_PAYLOADS } from '../../helpers/xss-payloads.ts';
import { labMessage, RECIPIENT, startPortal, type PortalFixture, type Sealed } from './portal-fixture.ts';

const browser = useBrowser({ trust: () => [testWebCertificate().certPem] });
let fx: PortalFixture;
afterEach(async () => fx?.close());

const PHONE = { width: 360, height: 740 };

/** Landing page → "Send me a code" → the code from the email → the message page. */
async function openAsRecipient(session: BrowserSession, item: Sealed, opts: { viewport?: { width: number; height: number }; shots?: string } = {}): Promise<OpenedPage> {
  const p = await session.open(item.url, { viewport: opts.viewport });
  expect(p.response?.status()).toBe(200);
  if (opts.shots) await p.shot(`${opts.shots}-1-landing`);
  await Promise.all([p.page.waitForURL(/\/verify(#.*)?$/), p.page.getByRole('button', { name: 'Send me a code' }).click()]);
  if (opts.shots) await p.shot(`${opts.shots}-2-code`);
  await p.page.getByLabel('Code').fill(await fx.lastCode());
  await Promise.all([p.page.waitForURL(/\/message(#.*)?$/), p.page.locator('#verify button[type=submit]').click()]);
  await p.page.locator('.message-body').waitFor();
  if (opts.shots) await p.shot(`${opts.shots}-3-message`);
  return p;
}

function expectNothingRanOrLoaded(p: OpenedPage, allowedScripts: readonly string[] = []) {
  expect(p.scripts.map((s) => new URL(s.url).pathname.replace(/\.[0-9a-f]{12}\./, '.'))).toEqual(allowedScripts);
  expect(p.pageErrors).toEqual([]);
  expect(p.remoteRequests(fx.origin)).toEqual([]);
  // The sanitiser removed the remote loads outright: the browser never even tried one.
  expect(p.requests.filter((r) => new URL(r.url).origin !== fx.origin)).toEqual([]);
  expect(p.console.filter((m) => /Content Security Policy|TrustedHTML|TrustedScript/.test(m.text))).toEqual([]);
}

describe("a recipient's way through", () => {
  for (const [device, viewport] of [['desktop', undefined], ['phone', PHONE]] as const) {
    it(`on a ${device}: landing, code, message with its attachment downloaded byte-identical, reply, sign out — no script, nothing remote`, async () => {
      fx = await startPortal();
      const pdf = Buffer.from(`%PDF-1.4\n${'results '.repeat(200)}\n%%EOF\n`);
      const item = await fx.seal(labMessage({ attachment: pdf, attachmentName: 'Résultats 2026.pdf', cc: 'Dr Who <dr@clinic.example>' }));
      const session = await browser.session();
      const p = await openAsRecipient(session, item, { viewport, shots: `journey-${device}` });
      expect(await p.page.locator('h1').textContent()).toBe('Your results');
      expect(await p.page.locator('.facts').textContent()).toContain('City Lab <lab@clinic.example>');
      expect(await p.page.locator('.message-text').textContent()).toContain('your HbA1c is 6.1%.');
      expect(await p.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);

      const [download] = await Promise.all([p.page.waitForEvent('download'), p.page.getByRole('link', { name: /Download/ }).click()]);
      expect(download.suggestedFilename()).toBe('Résultats 2026.pdf');
      expect(readFileSync((await download.path())!).equals(pdf)).toBe(true);

      await Promise.all([p.page.waitForURL(/\/reply$/), p.page.getByRole('link', { name: 'Reply securely' }).click()]);
      await p.page.getByLabel('Your reply').fill('Thank you, understood.');
      await p.page.getByLabel('Attach files (optional)').setInputFiles({ name: 'question.txt', mimeType: 'text/plain', buffer: Buffer.from('a question') });
      expect(await p.page.getByLabel(/Also send my reply to dr@clinic\.example/).count()).toBe(1);
      await p.shot(`journey-${device}-4-reply`);
      await Promise.all([p.page.waitForLoadState('load'), p.page.getByRole('button', { name: 'Send reply' }).click()]);
      await p.page.getByRole('heading', { name: 'Your reply was sent' }).waitFor();
      await p.shot(`journey-${device}-5-reply-sent`);
      const reply = fx.queued.find((q) => q.origin === 'portal-reply')!;
      expect(reply.recipients).toEqual(['lab@clinic.example']);
      expect(await fx.body(reply.queueId)).toContain('question.txt');

      await Promise.all([p.page.waitForURL(/\/message$/), p.page.getByRole('link', { name: 'Back to the message' }).click()]);
      await Promise.all([p.page.waitForLoadState('load'), p.page.getByRole('button', { name: 'Sign out' }).click()]);
      await p.page.getByRole('heading', { name: 'You have signed out' }).waitFor();
      await p.shot(`journey-${device}-6-signed-out`);
      expect(await fx.events(item.id)).toEqual([
        'portal-viewed (possibly automated)',
        'portal-code-sent',
        'portal-verified',
        'portal-opened',
        'portal-downloaded (attachment 1)',
        'portal-replied (1 attachment(s))',
        'portal-opened',
      ]);
      expectNothingRanOrLoaded(p);
    });
  }

  it('is usable by keyboard: the code field has its label and takes focus in order, the button is big enough, text has contrast', async () => {
    fx = await startPortal();
    const item = await fx.seal(labMessage());
    const p = await (await browser.session()).open(item.url);
    await p.page.keyboard.press('Tab');
    expect(await p.page.evaluate('document.activeElement.textContent')).toBe('Skip to main content');
    await p.page.keyboard.press('Tab');
    expect(await p.page.evaluate('document.activeElement.textContent')).toBe('Send me a code');
    expect(await p.page.evaluate('document.activeElement.getBoundingClientRect().height >= 44')).toBe(true);
    await Promise.all([p.page.waitForURL(/\/verify$/), p.page.keyboard.press('Enter')]);
    // The code field has focus (autofocus), a label and a hint tied to it.
    expect(await p.page.evaluate('document.activeElement.id')).toBe('code');
    expect(await p.page.evaluate('document.activeElement.labels[0].textContent')).toBe('Code');
    expect(await p.page.evaluate('document.activeElement.getAttribute("autocomplete")')).toBe('one-time-code');
    await p.page.keyboard.type(await fx.lastCode());
    await Promise.all([p.page.waitForURL(/\/message$/), p.page.keyboard.press('Enter')]);
    const unlabelled = await p.page.evaluate('[...document.querySelectorAll("input:not([type=hidden]), textarea, select")].filter((e) => !(e.labels && e.labels.length)).map((e) => e.name)');
    expect(unlabelled).toEqual([]);
    expectNothingRanOrLoaded(p);
  });
});

describe('failure pages say what happened and what to do', () => {
  it('wrong code (tries left), locked (until when), unknown link, expired, recalled', async () => {
    fx = await startPortal({ portal: { code: { tries: 2 } } });
    const item = await fx.seal(labMessage());
    const session = await browser.session();
    const p = await session.open(item.url);
    await Promise.all([p.page.waitForURL(/\/verify$/), p.page.getByRole('button', { name: 'Send me a code' }).click()]);
    const wrong = (await fx.lastCode()) === '000000' ? '111111' : '000000';
    await p.page.getByLabel('Code').fill(wrong);
    await Promise.all([p.page.waitForLoadState('load'), p.page.locator('#verify button[type=submit]').click()]);
    expect(await p.page.getByRole('alert').textContent()).toContain('That code is not right. You have 1 try left.');
    // The error is tied to the field for screen readers.
    expect(await p.page.getByLabel('Code').getAttribute('aria-describedby')).toBe('code-hint code-error');
    await p.shot('failure-wrong-code');
    await p.page.getByLabel('Code').fill(wrong);
    await Promise.all([p.page.waitForLoadState('load'), p.page.locator('#verify button[type=submit]').click()]);
    expect(await p.page.locator('h1').textContent()).toBe('This message is locked for now');
    expect(await p.page.locator('main').textContent()).toContain('You can try again after 12:15 UTC on 3 December 2026');
    await p.shot('failure-locked');

    const unknown = await session.open(`${fx.origin}/m/${'A'.repeat(43)}`);
    expect(unknown.response?.status()).toBe(404);
    expect(await unknown.page.locator('h1').textContent()).toBe('We could not find this message');
    await unknown.shot('failure-unknown-link');

    const recalled = await fx.seal(labMessage());
    await fx.store.recallPortalItems((await fx.item(recalled.id)).queueId, 'tester');
    const r = await session.open(recalled.url);
    expect(r.response?.status()).toBe(410);
    expect(await r.page.locator('h1').textContent()).toBe('This message was withdrawn');
    expect(await r.page.locator('form').count()).toBe(0);
    await r.shot('failure-recalled');

    fx.clock.advance(31 * 86_400_000);
    const e = await session.open(item.url, { viewport: PHONE });
    expect(e.response?.status()).toBe(410);
    expect(await e.page.locator('h1').textContent()).toBe('This message has expired');
    expect(await e.page.locator('main').textContent()).toContain('ask the sender to send it again');
    await e.shot('failure-expired-phone');
    for (const page of [p, unknown, r, e]) expectNothingRanOrLoaded(page);
  });
});

describe('hostile messages', () => {
  const corpus = [...XSS_PAYLOADS, ...REMOTE_PAYLOADS];

  it('XSS and remote-load payloads in the HTML body, subject, sender name and attachment names run nothing and load nothing', async () => {
    fx = await startPortal();
    const html = `<html><head><title>t</title>${REMOTE_PAYLOADS.join('')}</head><body><p id="kept">Your <b>results</b> <a href="https://clinic.example/info">more</a></p>${corpus.join('\n<p>')}<img src="cid:logo" alt="Clinic logo"></body></html>`;
    const payload = XSS_PAYLOADS.join(' ');
    const item = await fx.seal(labMessage({ html, subject: `Results ${payload}`, fromName: `Lab ${XSS_PAYLOADS[1]}${XSS_PAYLOADS[2]}`, attachmentName: `${XSS_PAYLOADS[0]}${XSS_PAYLOADS[1]}.pdf` }));
    const session = await browser.session();
    const p = await openAsRecipient(session, item, { shots: 'hostile' });
    // A person clicks everything that looks clickable in the body.
    for (const link of await p.page.locator('.message-body a').all()) expect(await link.getAttribute('href') ?? 'https://(none)').toMatch(/^https:\/\//);
    await p.page.evaluate('document.querySelectorAll("details").forEach((d) => (d.open = !d.open))');
    await p.page.waitForLoadState('networkidle');
    expect(await p.page.evaluate('typeof window.pwned')).toBe('undefined');
    // The page says remote content was blocked; the formatting that is harmless was kept; the subject is text.
    expect(await p.page.locator('#remote-blocked').textContent()).toContain('Pictures and other content from the internet in this message are blocked');
    // Ids are the page's own: none survives from the message.
    expect(await p.page.locator('.message-body [id]').count()).toBe(0);
    expect(await p.page.locator('.message-body b').first().textContent()).toBe('results');
    expect(await p.page.locator('.message-body').textContent()).toContain('[picture not shown: Clinic logo]');
    expect(await p.page.locator('h1').textContent()).toBe(`Results ${payload}`);
    expect(await p.page.locator('.facts dd').first().textContent()).toContain(`Lab ${XSS_PAYLOADS[1]}${XSS_PAYLOADS[2]}`);
    expect(await p.page.locator('.message-body').evaluate((b) => [...b.querySelectorAll('*')].filter((e) => e.tagName.match(/^(SCRIPT|IMG|IFRAME|OBJECT|EMBED|SVG|STYLE|LINK|BASE|VIDEO|DETAILS)$/) || [...e.attributes].some((a) => /^on|^style$|^src/i.test(a.name))).length)).toBe(0);
    const [download] = await Promise.all([p.page.waitForEvent('download'), p.page.getByRole('link', { name: /Download/ }).click()]);
    expect(download.suggestedFilename()).not.toMatch(/[<>"/\\]/);
    expectNothingRanOrLoaded(p);
  });

  it('a text-only message shows markup as text', async () => {
    fx = await startPortal();
    const text = corpus.join('\n');
    const item = await fx.seal(labMessage({ text }));
    const p = await openAsRecipient(await browser.session(), item);
    expect((await p.page.locator('.message-text').textContent())?.trim()).toBe(text.trim());
    expect(await p.page.locator('#remote-blocked').count()).toBe(0);
    expectNothingRanOrLoaded(p);
  });
});

describe('key_in_link', () => {
  it('with the #fragment the message opens (the key part travels only in a POST body); the server never saw it in a URL', async () => {
    fx = await startPortal();
    const item = await fx.seal(labMessage({ subject: 'Linked results' }), { keyInLink: true });
    const session = await browser.session();
    const p = await openAsRecipient(session, item, { shots: 'key-in-link' });
    expect(await p.page.locator('h1').textContent()).toBe('Linked results');
    expect(new URL(p.page.url()).hash).toBe(`#k=${item.linkKey}`);
    const [download] = await Promise.all([p.page.waitForEvent('download'), p.page.getByRole('button', { name: /Download/ }).click()]);
    expect(download.suggestedFilename()).toBe('results.pdf');
    // No request line carried the key part; only POST bodies did.
    expect(p.requests.filter((r) => r.url.includes(item.linkKey!) && new URL(r.url).hash === '')).toEqual([]);
    expect(await fx.events(item.id)).toContain('portal-opened');
    expectNothingRanOrLoaded(p, ['/assets/portal-link.js', '/assets/portal-link.js', '/assets/portal-link.js', '/assets/portal-link.js']);
  });

  it('without the #fragment the page says the link is incomplete and offers no way on; a verified session without it opens nothing', async () => {
    fx = await startPortal();
    const item = await fx.seal(labMessage({ subject: 'SUBJECT-MARKER' }), { keyInLink: true });
    const session = await browser.session();
    const p = await session.open(`${fx.origin}${item.path}`);
    await p.page.getByRole('heading', { name: 'This link is incomplete' }).waitFor();
    expect(await p.page.getByRole('button', { name: 'Send me a code' }).isVisible()).toBe(false);
    await p.shot('key-in-link-incomplete');

    // Someone verifies with the link cut short (the code itself is right): the message still cannot be opened.
    const c = fx.client();
    const landing = await c.get(item.path);
    const token = /name="_csrf" value="([^"]+)"/.exec(landing.body)![1]!;
    await c.post(`${item.path}/code`, { _csrf: token });
    const verifyPage = await c.get(`${item.path}/verify`);
    await c.post(`${item.path}/verify`, { _csrf: /name="_csrf" value="([^"]+)"/.exec(verifyPage.body)![1]!, code: await fx.lastCode(RECIPIENT) });
    const shell = await c.get(`${item.path}/message`);
    expect(shell.statusCode).toBe(200);
    expect(shell.body).not.toContain('SUBJECT-MARKER');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(shell.body)![1]!;
    for (const k of ['', 'A'.repeat(43), item.linkKey!.slice(0, 42)]) {
      const res = await c.post(`${item.path}/message`, { _csrf: csrf, k });
      expect(res.statusCode).toBe(400);
      expect(res.body).toContain('This link is incomplete');
      expect(res.body).not.toContain('SUBJECT-MARKER');
      expect((await c.post(`${item.path}/attachments/1`, { _csrf: csrf, k })).statusCode).toBe(400);
    }
    expect((await c.get(`${item.path}/attachments/1`)).statusCode).toBe(400);
    expect(await fx.events(item.id)).not.toContain('portal-opened');
    // With the right part (what the page's script sends), it opens.
    const ok = await c.post(`${item.path}/message`, { _csrf: csrf, k: item.linkKey! });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toContain('SUBJECT-MARKER');
  });
});

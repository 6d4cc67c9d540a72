// The notification email (src/portal/notification.ts), parsed back with mailparser
// and its HTML rendered in real headless Chromium (test/helpers/browser.ts) with
// every request but the document's refused in the browser:
//   - what it says: organisation, sender, a secure message waiting, expiry in UTC,
//     the link as a button and as text (exactly as given), the code step, footer;
//     RFC 3834 Auto-Submitted, a fresh Message-ID at our hostname, Date;
//   - what it never says: the subject unless given, the body or attachment names
//     (the API takes none, and extra properties are ignored), the recipient's
//     address in the link (refused);
//   - hostile names, notices, subjects and footers (test/helpers/xss-payloads.ts)
//     render as text: no script runs, no request but the logo's is tried;
//   - CR/LF in any input cannot add a header;
//   - text on the accent colour contrasts at least 4.5:1 whatever the colour.
// Screenshots go to test-artefacts/screenshots/notification/.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { simpleParser, type AddressObject } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headerBlock, headerFields } from '../../src/mime/header-block.ts';
import { plainLine } from '../../src/portal/notice.ts';
import { buildNotification, NotificationError, type NotificationInput } from '../../src/portal/notification.ts';
import { useBrowser, type OpenedPage } from '../helpers/browser.ts';
import { REMOTE_PAYLOADS, XSS_PAYLOADS } from '../helpers/xss-payloads.ts';

const LINK = 'https://secure.clinic.example/m/Q2hhbmdlIG1lIGlmIHlvdSBjYW4gcmVhZCB0aGlz#k=bGluay1rZXktcGFydC1vZi10aGUtaXRlbS1rZXkxMjM';
const LOGO = 'https://logo.clinic.example/brand/logo.svg';
const EXPIRES = new Date(Date.UTC(2026, 2, 14, 9, 30, 0)); // Saturday
const SENT = new Date(Date.UTC(2026, 1, 12, 8, 15, 0));

const BASE: NotificationInput = {
  organisation: { name: 'Riverside Clinic', colour: '#1f4e79', logo_url: LOGO, footer: 'Riverside Clinic, 1 River Road, Exampletown\nPhone 01234 567890' },
  from: 'secure@clinic.example',
  sender: { address: 'lab@clinic.example', header: 'Dr Ann Smith <ann.smith@clinic.example>' },
  recipient: 'pat.jones@patient.example',
  link: LINK,
  expiresAt: EXPIRES,
  notice: 'Your lab results are ready',
  hostname: 'relay.clinic.example',
  date: SENT,
};

async function build(overrides: Partial<NotificationInput> = {}) {
  const note = await buildNotification({ ...BASE, ...overrides });
  const parsed = await simpleParser(note.body);
  return { note, parsed, text: parsed.text ?? '', html: typeof parsed.html === 'string' ? parsed.html : '' };
}

const first = (a: AddressObject | AddressObject[] | undefined) => (Array.isArray(a) ? a[0] : a)?.value;

/** The names of the top-level header fields, in order. */
function topFieldNames(body: Buffer): string[] {
  return headerFields(headerBlock(body)).map((f) => f.name);
}
const EXPECTED_FIELDS = ['auto-submitted', 'x-auto-response-suppress', 'from', 'to', 'subject', 'message-id', 'date', 'mime-version', 'content-type'];

describe('what the notification says', () => {
  it('headers: From the organisation, To the recipient, generic Subject, Auto-Submitted, Message-ID at our hostname, Date', async () => {
    const { note, parsed } = await build();
    expect(first(parsed.from)).toEqual([{ name: 'Riverside Clinic', address: 'secure@clinic.example' }]);
    expect(first(parsed.to)).toEqual([{ name: '', address: 'pat.jones@patient.example' }]);
    expect(parsed.subject).toBe('Secure message from Riverside Clinic');
    expect(note.subject).toBe('Secure message from Riverside Clinic');
    expect(parsed.headers.get('auto-submitted')).toBe('auto-generated');
    expect(note.messageId).toMatch(/^<[0-9a-f]{32}@relay\.clinic\.example>$/);
    expect(parsed.messageId).toBe(note.messageId);
    expect(parsed.date?.getTime()).toBe(SENT.getTime());
    expect(topFieldNames(note.body)).toEqual(EXPECTED_FIELDS);
    expect(note.body.includes('\n')).toBe(true);
    expect(/(?<!\r)\n/.test(note.body.toString('latin1'))).toBe(false); // CRLF throughout
    // multipart/alternative: text then HTML, nothing attached.
    expect(parsed.headers.get('content-type')).toMatchObject({ value: 'multipart/alternative' });
    expect(parsed.attachments).toEqual([]);
    expect(typeof parsed.text).toBe('string');
    expect(typeof parsed.html).toBe('string');
    // A fresh Message-ID every time.
    expect((await build()).note.messageId).not.toBe(note.messageId);
  });

  it('text: organisation, sender, notice, link on its own line exactly as given, the code step, expiry in UTC, footer', async () => {
    const { text } = await build();
    const lines = text.split(/\r?\n/);
    expect(lines[0]).toBe('Riverside Clinic');
    expect(text).toContain('You have a secure message');
    expect(text).toContain('Dr Ann Smith (lab@clinic.example) has sent you a secure message.');
    expect(text).toContain('it is not in this email');
    expect(text).toContain('Note from the sender: Your lab results are ready');
    expect(lines).toContain(LINK);
    expect(text).toContain('one-time code. We send it to pat.jones@patient.example');
    expect(text).toContain('You can read it until Saturday 14 March 2026 at 09:30 UTC.');
    expect(text.trimEnd().split(/\r?\n/).slice(-3)).toEqual(['--', 'Riverside Clinic, 1 River Road, Exampletown', 'Phone 01234 567890']);
    expect(text).not.toContain('Subject:');
  });

  it('the sender: display name from the From field (decoded, hostile-safe) with the envelope address', async () => {
    const cases: [NotificationInput['sender'], string][] = [
      [{ address: 'lab@clinic.example', header: '"Smith, Ann (Dr)" <ann@clinic.example>' }, 'Smith, Ann (Dr) (lab@clinic.example)'],
      [{ address: 'lab@clinic.example', header: '=?utf-8?Q?Dr_J=C3=BCrgen_M=C3=BCller?= <j@clinic.example>' }, 'Dr Jürgen Müller (lab@clinic.example)'],
      [{ address: 'lab@clinic.example', header: 'ann@clinic.example' }, 'lab@clinic.example'],
      [{ address: 'lab@clinic.example', header: null }, 'lab@clinic.example'],
      [{ address: 'lab@clinic.example' }, 'lab@clinic.example'],
      [{ address: 'lab@clinic.example', header: 'lab@clinic.example <lab@clinic.example>' }, 'lab@clinic.example'],
      [{ address: '', header: 'Results <results@clinic.example>' }, 'Results (results@clinic.example)'], // a bounce-less envelope
      [{ address: 'lab@clinic.example', header: '=?utf-8?B?4oCuZXhlLnBkZg==?= <x@clinic.example>' }, 'exe.pdf (lab@clinic.example)'], // RLO removed
      [{ address: 'lab@clinic.example', header: `${'A'.repeat(3000)} <x@clinic.example>` }, 'lab@clinic.example'], // too long to parse
      [{ address: 'lab@clinic.example', header: `${'B '.repeat(80)}<x@clinic.example>` }, `${'B '.repeat(49)}B… (lab@clinic.example)`],
    ];
    for (const [sender, expected] of cases) {
      const { text } = await build({ sender });
      expect(text, JSON.stringify(sender)).toContain(`${expected} has sent you a secure message.`);
    }
  });

  it('expiry: the UTC date and time, whatever the time zone of the relay', async () => {
    const { text } = await build({ expiresAt: new Date('2026-12-31T23:59:00-05:00') });
    expect(text).toContain('until Friday 1 January 2027 at 04:59 UTC.');
    await expect(build({ expiresAt: new Date(NaN) })).rejects.toThrow(NotificationError);
  });

  it('non-ASCII organisation names and subjects are RFC 2047 encoded in the headers and read back whole', async () => {
    const { note, parsed } = await build({ organisation: { ...BASE.organisation, name: 'Klinik Müller – Praxis' }, subject: 'Befund für Sie ✔' });
    const head = headerBlock(note.body);
    expect(head).toMatch(/^From: =\?UTF-8\?[QB]\?/m);
    expect(head).toMatch(/^Subject: =\?UTF-8\?[QB]\?/m);
    expect(/[^\t\r\n\x20-\x7e]/.test(head)).toBe(false);
    expect(first(parsed.from)?.[0]?.name).toBe('Klinik Müller – Praxis');
    expect(parsed.subject).toBe('Secure message from Klinik Müller – Praxis: Befund für Sie ✔');
  });
});

describe('what the notification never says', () => {
  it('the subject only when given: absent from headers, text and HTML otherwise', async () => {
    const marker = 'SUBJECT-MARKER-7c1e';
    const shown = await build({ subject: `Results ${marker}` });
    expect(shown.parsed.subject).toBe(`Secure message from Riverside Clinic: Results ${marker}`);
    expect(shown.note.subject).toBe(shown.parsed.subject);
    expect(shown.text).toContain(`Subject: Results ${marker}`);
    expect(shown.html).toContain(`<strong>Subject:</strong> Results ${marker}`);
    for (const subject of [undefined, null, '']) {
      const { parsed, text, html, note } = await build({ subject });
      expect(parsed.subject).toBe('Secure message from Riverside Clinic');
      expect(note.subject).toBe('Secure message from Riverside Clinic');
      expect(text).not.toContain('Subject');
      expect(html).not.toContain('Subject');
    }
  });

  it('takes no body, text, HTML or attachments: the types refuse them and extra properties are ignored', async () => {
    const marker = 'BODY-MARKER-93af';
    const smuggled = {
      ...BASE,
      body: `the body ${marker}`,
      text: `the text ${marker}`,
      html: `<p>${marker}</p>`,
      attachments: [{ filename: `results-${marker}.pdf`, content: marker }],
      message: Buffer.from(marker),
    };
    // @ts-expect-error the notification is never given the message body
    const typed: NotificationInput = { ...BASE, body: 'x' };
    // @ts-expect-error nor attachments
    const typed2: NotificationInput = { ...BASE, attachments: [] };
    expect(typed && typed2).toBeTruthy();
    const note = await buildNotification(smuggled as NotificationInput);
    const parsed = await simpleParser(note.body);
    expect(note.body.toString('latin1')).not.toContain(marker);
    expect(parsed.text).not.toContain(marker);
    expect(parsed.html).not.toContain(marker);
    expect(parsed.attachments).toEqual([]);
  });

  it("refuses a link that carries the recipient's address, in any spelling", async () => {
    for (const link of [
      'https://secure.clinic.example/m/tok?to=pat.jones@patient.example',
      'https://secure.clinic.example/m/tok?to=pat.jones%40patient.example',
      'https://secure.clinic.example/m/tok#r=PAT.JONES@Patient.Example',
      'https://secure.clinic.example/m/pat.jones%40patient.example/tok',
    ]) {
      await expect(build({ link }), link).rejects.toThrow(/must not carry the recipient's address/);
    }
  });

  it('refuses a link that is not https or that cannot be written as it is', async () => {
    for (const link of ['http://secure.clinic.example/m/tok', 'javascript:alert(1)', 'https://secure.clinic.example/m/t"ok', 'https://secure.clinic.example/m/t ok', 'https://secure.clinic.example/m/t>ok', 'not a url']) {
      await expect(build({ link }), link).rejects.toThrow(NotificationError);
    }
  });

  it('refuses a colour that is not #rrggbb, a logo that is not https, and unusable addresses or hostnames', async () => {
    const org = BASE.organisation;
    await expect(build({ organisation: { ...org, colour: 'red;background:url(https://x.invalid/)' } })).rejects.toThrow(NotificationError);
    await expect(build({ organisation: { ...org, colour: '#12345' } })).rejects.toThrow(NotificationError);
    await expect(build({ organisation: { ...org, logo_url: 'http://logo.clinic.example/l.png' } })).rejects.toThrow(NotificationError);
    await expect(build({ organisation: { ...org, logo_url: 'javascript:alert(1)' } })).rejects.toThrow(NotificationError);
    await expect(build({ recipient: 'pat@patient.example\r\nBcc: evil@attacker.example' })).rejects.toThrow(NotificationError);
    await expect(build({ recipient: 'no-at-sign' })).rejects.toThrow(NotificationError);
    await expect(build({ from: 'secure@clinic.example\r\nBcc: evil@attacker.example' })).rejects.toThrow(NotificationError);
    await expect(build({ hostname: 'relay.example>\r\nBcc: evil@attacker.example' })).rejects.toThrow(NotificationError);
  });
});

describe('header injection', () => {
  const INJECT = 'Innocent\r\nBcc: evil@attacker.example\r\nX-Injected: yes\r\n\r\n<b>body</b>';
  const LONE = 'Innocent\rX-Injected: cr\nX-Injected: lf';

  it.each([
    ['organisation name', (v: string) => ({ organisation: { ...BASE.organisation, name: v } })],
    ['footer', (v: string) => ({ organisation: { ...BASE.organisation, footer: v } })],
    ['sender display name', (v: string) => ({ sender: { address: 'lab@clinic.example', header: `${v} <x@clinic.example>` } })],
    ['sender display name (encoded-word)', (v: string) => ({ sender: { address: 'lab@clinic.example', header: `=?utf-8?B?${Buffer.from(v).toString('base64')}?= <x@clinic.example>` } })],
    ['sender address', (v: string) => ({ sender: { address: v, header: null } })],
    ['notice', (v: string) => ({ notice: v })],
    ['subject', (v: string) => ({ subject: v })],
    ['subject (encoded-word)', (v: string) => ({ subject: `=?utf-8?B?${Buffer.from(v).toString('base64')}?=` })],
  ] as [string, (v: string) => Partial<NotificationInput>][])('CR/LF in the %s adds no header', async (_, input) => {
    for (const value of [INJECT, LONE]) {
      const { note, parsed } = await build(input(value));
      expect(topFieldNames(note.body)).toEqual(EXPECTED_FIELDS);
      expect(parsed.headers.has('bcc')).toBe(false);
      expect(parsed.headers.has('x-injected')).toBe(false);
      expect(parsed.bcc).toBeUndefined();
      expect(first(parsed.to)).toEqual([{ name: '', address: 'pat.jones@patient.example' }]);
      // Every value but the footer (lines by design) is one line wherever it is shown.
      if (!('organisation' in input(value) && input(value).organisation!.footer === value)) expect(parsed.text).not.toMatch(/^(Bcc|X-Injected):/m);
    }
  });
});

// ---------------------------------------------------------------------------
// In the browser
// ---------------------------------------------------------------------------

const browser = useBrowser({ trust: () => [] });
/** HTML parts served from loopback by path. */
const pages = new Map<string, string>();
let server: Server;
let origin: string;
beforeAll(async () => {
  server = createServer((req, res) => {
    const page = pages.get(req.url ?? '');
    if (page === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

const LOGO_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="48"><rect width="160" height="48" rx="6" fill="#fff"/><text x="12" y="31" font-family="sans-serif" font-size="18" fill="#1f4e79">Riverside</text></svg>';

/**
 * Opens HTML parts with the network shut in the page: documents come from our
 * loopback server, the logo (when `logo`) gets a local SVG, everything else is
 * refused by the browser before it leaves. Every request tried is in p.requests.
 * One browser context for all the pages of a test.
 */
async function renderer(opts: { logo?: boolean } = {}) {
  const session = await browser.session();
  await session.context.route('**/*', async (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/n`)) return route.continue();
    if (opts.logo && url === LOGO) return route.fulfill({ status: 200, contentType: 'image/svg+xml', body: LOGO_SVG });
    return route.abort('blockedbyclient');
  });
  return async (html: string, viewport?: { width: number; height: number }): Promise<OpenedPage> => {
    const path = `/n${pages.size}`;
    pages.set(path, html);
    // "load" waits for every image, the refused ones included.
    return session.open(origin + path, viewport ? { viewport } : {});
  };
}

/** Requests other than the document itself. */
const others = (p: OpenedPage) => p.requests.filter((r) => !r.url.startsWith(`${origin}/n`)).map((r) => r.url);

/** WCAG 2 contrast ratio of two CSS rgb() colours, as the browser computed them. */
function contrast(a: string, b: string): number {
  const lum = (c: string) => {
    const [r, g, bl] = (c.match(/[\d.]+/g) ?? []).slice(0, 3).map((v) => {
      const s = Number(v) / 255;
      return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    }) as [number, number, number];
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

describe('the HTML part in Chromium', () => {
  it('renders on a desktop and a phone: lang, presentation tables, inline styles only, button and text link to the link, logo with alt text', async () => {
    const { html } = await build({ subject: 'Blood test, 12 February' });
    const render = await renderer({ logo: true });
    for (const [device, viewport] of [['desktop', undefined], ['phone', { width: 360, height: 740 }]] as const) {
      const p = await render(html, viewport);
      const page = p.page;
      expect(await page.getAttribute('html', 'lang')).toBe('en');
      expect(await page.title()).toBe('Secure message from Riverside Clinic: Blood test, 12 February');
      expect(await page.evaluate('[...document.querySelectorAll("table")].every((t) => t.getAttribute("role") === "presentation")')).toBe(true);
      expect(await page.locator('style, link, script, [class]').count()).toBe(0);
      expect(await page.locator('h1').textContent()).toBe('You have a secure message');
      const links = (await page.evaluate('[...document.querySelectorAll("a")].map((a) => [a.getAttribute("href"), a.textContent])')) as [string, string][];
      expect(links).toEqual([
        [LINK, 'Read the message'],
        [LINK, LINK],
      ]);
      expect(await page.evaluate('[...document.querySelectorAll("img")].map((i) => [i.getAttribute("src"), i.alt, i.naturalWidth > 0])')).toEqual([[LOGO, 'Riverside Clinic', true]]);
      const body = (await page.evaluate('document.body.innerText')) as string;
      expect(body).toContain('Dr Ann Smith (lab@clinic.example) has sent you a secure message.');
      expect(body).toContain('Note from the sender: Your lab results are ready');
      expect(body).toContain('Subject: Blood test, 12 February');
      expect(body).toContain('We send it to pat.jones@patient.example');
      expect(body).toContain('Saturday 14 March 2026 at 09:30 UTC');
      expect(body).toContain('Phone 01234 567890');
      expect(p.scripts).toEqual([]);
      expect(p.pageErrors).toEqual([]);
      expect(others(p)).toEqual([LOGO]);
      // Nothing wider than a phone's screen, and a button big enough for a finger.
      expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
      expect(await page.evaluate('document.querySelector("a").getBoundingClientRect().height >= 44')).toBe(true);
      await p.shot(`notification-${device}`);
    }
  });

  it('without a logo: the organisation name in the header band, and no image at all', async () => {
    const { html } = await build({ organisation: { ...BASE.organisation, logo_url: null, footer: '' }, notice: null });
    const p = await (await renderer())(html);
    expect(await p.page.locator('img').count()).toBe(0);
    expect(await p.page.evaluate('document.querySelector("td td span").textContent')).toBe('Riverside Clinic');
    expect(await p.page.evaluate('document.body.innerText')).not.toContain('Note from the sender');
    expect(others(p)).toEqual([]);
    await p.shot('notification-no-logo');
  });

  it('text on the accent colour contrasts at least 4.5:1 for any accent, and links on white too', async () => {
    const render = await renderer();
    for (const colour of ['#1f4e79', '#ffffff', '#000000', '#ffcc00', '#777777', '#767676', '#0099ff', '#e4002b', '#00a651', '#7f7f7f']) {
      const { html } = await build({ organisation: { ...BASE.organisation, colour, logo_url: null } });
      const p = await render(html);
      const c = (await p.page.evaluate(`(() => {
        const s = (e) => getComputedStyle(e);
        const button = document.querySelector("a");
        const band = document.querySelector("td td span");
        return {
          button: s(button).color, buttonBg: s(button.parentElement).backgroundColor,
          band: s(band).color, bandBg: s(band.parentElement).backgroundColor,
          link: s(document.querySelectorAll("a")[1]).color, page: s(document.querySelectorAll("a")[1].closest("table")).backgroundColor,
        };
      })()`)) as Record<string, string>;
      expect(contrast(c.button!, c.buttonBg!), `${colour} button`).toBeGreaterThanOrEqual(4.5);
      expect(contrast(c.band!, c.bandBg!), `${colour} band`).toBeGreaterThanOrEqual(4.5);
      expect(contrast(c.link!, c.page!), `${colour} link`).toBeGreaterThanOrEqual(4.5);
      if (colour === '#ffcc00') await p.shot('notification-light-accent');
      await p.page.close();
    }
  }, 120_000);

  it('hostile organisation names, footers, sender names, notices and subjects render as text: no script, no request but the logo', async () => {
    const render = await renderer();
    for (const [i, payload] of [...XSS_PAYLOADS, ...REMOTE_PAYLOADS].entries()) {
      const { html, text } = await build({
        organisation: { ...BASE.organisation, name: payload, footer: `${payload}\n${payload}` },
        sender: { address: 'lab@clinic.example', header: `=?utf-8?B?${Buffer.from(payload).toString('base64')}?= <x@clinic.example>` },
        notice: payload,
        subject: payload,
      });
      const p = await render(html);
      const page = p.page;
      // Only our own elements: the payloads made none.
      expect(await page.locator('script, iframe, object, svg, details, video, link, base, style, textarea').count(), payload).toBe(0);
      expect(await page.locator('[onerror], [onload], [ontoggle]').count(), payload).toBe(0);
      expect(await page.locator('img').count(), payload).toBe(1);
      expect(await page.evaluate('[...document.querySelectorAll("a")].map((a) => a.getAttribute("href"))')).toEqual([LINK, LINK]);
      // Each shown as the text it is (names cut at 100 characters).
      const body = (await page.evaluate('document.body.innerText')) as string;
      expect(body, payload).toContain(`Note from the sender: ${plainLine(payload, 200)}`);
      expect(body, payload).toContain(`Subject: ${plainLine(payload, 200)}`);
      expect(body, payload).toContain(`${plainLine(payload, 100)} (lab@clinic.example) has sent you`);
      expect(await page.getAttribute('img', 'alt')).toBe(plainLine(payload, 100));
      expect(await page.title()).toBe(`Secure message from ${plainLine(payload, 100)}: ${plainLine(payload, 200)}`);
      expect(text).toContain(`Note from the sender: ${plainLine(payload, 200)}`);
      expect(p.scripts, payload).toEqual([]);
      expect(p.pageErrors, payload).toEqual([]);
      expect(await page.evaluate('typeof window.pwned')).toBe('undefined');
      expect(others(p), payload).toEqual([LOGO]);
      if (i === 0 || i === XSS_PAYLOADS.length) await p.shot(`notification-hostile-${i}`);
      await page.close();
    }
  }, 120_000);

  it('a logo URL with quotes and angle brackets stays one src attribute', async () => {
    const logo = 'https://logo.clinic.example/a"onerror="window.pwned=1"x=<b>.png';
    const { html } = await build({ organisation: { ...BASE.organisation, logo_url: logo } });
    const p = await (await renderer())(html);
    expect(await p.page.locator('[onerror]').count()).toBe(0);
    expect(await p.page.getAttribute('img', 'src')).toBe(new URL(logo).href);
    expect(await p.page.evaluate('typeof window.pwned')).toBe('undefined');
    expect(others(p)).toEqual([new URL(logo).href]);
  });
});

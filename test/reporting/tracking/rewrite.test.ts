// The tracked copy (src/reporting/tracking/rewrite.ts): http(s) hrefs of <a> and
// <area> in HTML parts go through signed click links, a pixel goes before </body>,
// the List-Unsubscribe pair goes on top of the header; every other byte — text
// parts, attachments, attached messages, other attributes and schemes — is left as
// it was, in quoted-printable, base64 and 8bit parts alike.
import { randomBytes } from 'node:crypto';
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { LinkSigner } from '../../../src/reporting/tracking/links.ts';
import { rewriteHtml, trackedCopy, withUnsubscribeHeaders } from '../../../src/reporting/tracking/rewrite.ts';
import { XSS_PAYLOADS } from '../../helpers/xss-payloads.ts';

const signer = new LinkSigner(randomBytes(32));
const BASE = 'https://relay.example';
const ALL = { opens: true, clicks: true, unsubscribe: true };
const copy = (m: string, terms = ALL) => trackedCopy(Buffer.from(m, 'latin1'), { queueId: 'Qabc', seq: 2, terms, base: BASE, signer });

const clickTargets = (html: string) => [...html.matchAll(/href="(https:\/\/relay\.example\/t\/c\/[^"]+)"/g)].map((m) => signer.verify(m[1]!.slice(`${BASE}/t/c/`.length).replace(/&amp;/g, '&')));

const HTML = '<html><body><p>Hi <a class="x" HREF="https://clinic.example/a?x=1&amp;y=2">news</a>, <a href=\'mailto:desk@clinic.example\'>mail</a>, <a href="javascript:alert(1)">js</a>, <a href="#top">top</a>, <area href=http://clinic.example/map></p></body></html>';

const multipart = (html: string, htmlEncoding: string, extra = '') =>
  [
    'From: <app@clinic.example>',
    'To: <ann@patient.example>',
    'Subject: News',
    'List-Unsubscribe: <mailto:old@clinic.example>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="outer"',
    '',
    '--outer',
    'Content-Type: multipart/alternative; boundary="alt"',
    '',
    '--alt',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'Read https://clinic.example/a =E2=80=94 thanks',
    '--alt',
    'Content-Type: text/html; charset=utf-8',
    `Content-Transfer-Encoding: ${htmlEncoding}`,
    '',
    html,
    '--alt--',
    extra,
    '--outer',
    'Content-Type: text/html; name="report.html"',
    'Content-Disposition: attachment; filename="report.html"',
    '',
    '<a href="https://attachment.example/">kept</a>',
    '--outer--',
    '',
  ].join('\r\n');

describe('the tracked copy', () => {
  it('rewrites http(s) links and adds the pixel in a quoted-printable HTML part, leaving the rest byte for byte', async () => {
    const qp = HTML.replace(/=/g, '=3D');
    const original = multipart(qp, 'quoted-printable');
    const out = (await copy(original)).toString('latin1');
    const parsed = await simpleParser(Buffer.from(out, 'latin1'));
    const html = parsed.html as string;
    expect(clickTargets(html)).toEqual([
      { kind: 'click', queueId: 'Qabc', seq: 2, url: 'https://clinic.example/a?x=1&y=2' },
      { kind: 'click', queueId: 'Qabc', seq: 2, url: 'http://clinic.example/map' },
    ]);
    for (const kept of ['mailto:desk@clinic.example', 'javascript:alert(1)', 'href="#top"', 'class="x"']) expect(html).toContain(kept);
    expect(html).toMatch(/<img src="https:\/\/relay\.example\/t\/o\/o\.Qabc\.2\.[A-Za-z0-9_-]{22}" width="1" height="1" alt="" style="[^"]*"><\/body>/);
    // The text part, the attachment and the boundaries are untouched.
    expect(out).toContain('Read https://clinic.example/a =E2=80=94 thanks\r\n--alt\r\n');
    expect(out).toContain('Content-Disposition: attachment; filename="report.html"\r\n\r\n<a href="https://attachment.example/">kept</a>\r\n--outer--');
    expect(parsed.text).toContain('Read https://clinic.example/a — thanks');
    // One List-Unsubscribe pair, the relay's, on top.
    expect(out.match(/^List-Unsubscribe:/gim)).toHaveLength(1);
    expect(out).toMatch(/^List-Unsubscribe: <https:\/\/relay\.example\/u\/u\.Qabc\.2\.[A-Za-z0-9_-]{22}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nFrom: <app@clinic\.example>/);
    expect(out).not.toContain('old@clinic.example');
  });

  it('keeps a base64 part base64, and turns an 8bit one into quoted-printable', async () => {
    for (const [encoding, body] of [
      ['base64', Buffer.from(HTML).toString('base64').replace(/.{76}/g, '$&\r\n')],
      ['8bit', HTML.replace('news', 'nouvelles \xc3\xa9t\xc3\xa9')],
    ] as const) {
      const out = await copy(multipart(body, encoding));
      const parsed = await simpleParser(out);
      expect(clickTargets(parsed.html as string).map((t) => t?.url)).toEqual(['https://clinic.example/a?x=1&y=2', 'http://clinic.example/map']);
      if (encoding === '8bit') expect(parsed.html).toContain('nouvelles été');
      const htmlPart = /Content-Type: text\/html; charset=utf-8\r\nContent-Transfer-Encoding: ([\w-]+)/.exec(out.toString('latin1'));
      expect(htmlPart?.[1]).toBe(encoding === 'base64' ? 'base64' : 'quoted-printable');
    }
  });

  it('leaves a message whose terms ask for nothing, and plain text messages, as they are', async () => {
    const original = multipart(HTML, '7bit');
    expect((await copy(original, { opens: false, clicks: false, unsubscribe: false })).toString('latin1')).toBe(original);
    const text = 'From: <a@clinic.example>\r\nSubject: x\r\n\r\nhttps://clinic.example/\r\n';
    expect((await copy(text, { opens: true, clicks: true, unsubscribe: false })).toString('latin1')).toBe(text);
  });

  it('does not touch the HTML of an attached message', async () => {
    const embedded = ['--outer', 'Content-Type: message/rfc822', '', 'Content-Type: text/html', '', '<a href="https://embedded.example/">x</a>', ''].join('\r\n');
    const out = (await copy(multipart(HTML, '7bit', embedded))).toString('latin1');
    expect(out).toContain('<a href="https://embedded.example/">x</a>');
  });

  it('escapes what it writes and leaves hostile markup as it found it', () => {
    const hostile = `<body>${XSS_PAYLOADS.join('\n')}<a href="https://clinic.example/?q=&quot;&gt;&lt;script&gt;">q</a><a href="https://clinic.example/ onmouseover=x">sp</a></body>`;
    const out = rewriteHtml(hostile, { clicks: (url) => `${BASE}/t/c/${signer.token({ kind: 'click', queueId: 'Q', seq: 0, url })}`, pixel: `${BASE}/t/o/x"y` });
    // Every payload is still there unchanged: the rewriter replaces href attributes and adds one image, nothing else.
    for (const p of XSS_PAYLOADS) expect(out).toContain(p);
    expect(out).toContain('<img src="https://relay.example/t/o/x&quot;y"');
    // The URL with quotes and brackets is carried in the signed token, not spliced into the markup.
    expect(clickTargets(out).map((t) => t?.url)).toEqual(['https://clinic.example/?q=">%3Cscript%3E'.replace('%3C', '<').replace('%3E', '>')]);
    expect(out).toContain('<a href="https://clinic.example/ onmouseover=x">sp</a>');
  });

  it('replaces any List-Unsubscribe fields, folded ones included', () => {
    const m = Buffer.from('List-Unsubscribe: <mailto:a@b.example>,\r\n <https://b.example/u>\r\nlist-unsubscribe-post: x\r\nSubject: s\r\n\r\nbody\r\n');
    const out = withUnsubscribeHeaders(m, 'https://relay.example/u/t').toString();
    expect(out).toBe('List-Unsubscribe: <https://relay.example/u/t>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nSubject: s\r\n\r\nbody\r\n');
  });
});

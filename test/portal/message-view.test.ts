// What the portal shows of a message (src/portal/message-view.ts): mailparser's
// reading of sender, date, subject, body and attachments; the HTML allow-list
// (no script, handler, style, form, frame or image survives; links only to
// http, https and mailto); file names cleaned for download.
import { describe, expect, it } from 'vitest';
import { cleanFilename, readMessage, sanitiseHtml } from '../../src/portal/message-view.ts';
import { REMOTE_PAYLOADS, XSS_PAYLOADS } from '../helpers/xss-payloads.ts';

describe('sanitiseHtml', () => {
  it('keeps formatting, tables and http(s)/mailto links; removes every script, handler, style, frame, object, form and image', () => {
    const { html, remoteBlocked } = sanitiseHtml(
      `<h1>Title</h1><p style="color:red" class="x" id="y">Hello <b>Pat</b> <a href="https://clinic.example/" onclick="x()">info</a> <a href="mailto:lab@clinic.example">mail</a></p><table><tr><td colspan="2">1</td></tr></table>${[...XSS_PAYLOADS, ...REMOTE_PAYLOADS].join('')}<form action="https://x.invalid"><input name=a></form>`,
    );
    expect(remoteBlocked).toBe(true);
    expect(html).toContain('<h3>Title</h3>');
    expect(html).toContain('<p>Hello <b>Pat</b> <a href="https://clinic.example/" rel="noopener noreferrer nofollow">info</a> <a href="mailto:lab@clinic.example" rel="noopener noreferrer nofollow">mail</a></p>');
    expect(html).toContain('<td colspan="2">1</td>');
    expect(html).not.toMatch(/<(script|img|iframe|object|embed|svg|style|link|base|video|form|input|details)\b/i);
    expect(html).not.toMatch(/\son\w+=|javascript:|style=|remote\.invalid/i);
  });

  it('replaces a picture by a marked placeholder naming its alt text (escaped)', () => {
    const { html, remoteBlocked } = sanitiseHtml('<p><img src="https://t.remote.invalid/p.gif" alt="<b>logo</b>"></p>');
    expect(remoteBlocked).toBe(true);
    expect(html).toBe('<p><span class="blocked">[picture not shown: &lt;b&gt;logo&lt;/b&gt;]</span></p>');
  });

  it('says nothing was blocked when nothing tried to load', () => {
    expect(sanitiseHtml('<p>plain <i>text</i></p>').remoteBlocked).toBe(false);
  });
});

describe('readMessage', () => {
  it('reads sender, recipients, date, subject, text and attachments', async () => {
    const mime = Buffer.from(
      [
        'From: =?UTF-8?B?w4lsaWU=?= <lab@clinic.example>',
        'To: Pat <pat@patient.example>, Kim <kim@patient.example>',
        'Cc: team: a@clinic.example, b@clinic.example;',
        'Subject: =?UTF-8?Q?R=C3=A9sultats?=',
        'Message-ID: <m1@clinic.example>',
        'References: <m0@clinic.example>',
        'Date: Thu, 03 Dec 2026 10:00:00 +0000',
        'Content-Type: multipart/mixed; boundary=b',
        '',
        '--b',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'Hello',
        '--b',
        'Content-Type: application/pdf',
        'Content-Disposition: attachment; filename="../../etc/passwd.pdf"',
        '',
        'PDF',
        '--b--',
        '',
      ].join('\r\n'),
    );
    const v = await readMessage(mime);
    expect(v.from).toEqual({ name: 'Élie', address: 'lab@clinic.example' });
    expect(v.to.map((m) => m.address)).toEqual(['pat@patient.example', 'kim@patient.example']);
    expect(v.cc.map((m) => m.address)).toEqual(['a@clinic.example', 'b@clinic.example']);
    expect(v.subject).toBe('Résultats');
    expect(v.messageId).toBe('<m1@clinic.example>');
    expect(v.references).toEqual(['<m0@clinic.example>']);
    expect(v.date?.toISOString()).toBe('2026-12-03T10:00:00.000Z');
    expect(v.text?.trim()).toBe('Hello');
    expect(v.html).toBeNull();
    expect(v.attachments.map((a) => [a.number, a.filename, a.contentType, a.content.toString()])).toEqual([[1, 'passwd.pdf', 'application/pdf', 'PDF']]);
  });

  it('reads garbage without throwing', async () => {
    const v = await readMessage(Buffer.from('\x00\x01 not a message at all'));
    expect(v.attachments).toEqual([]);
  });
});

describe('cleanFilename', () => {
  it('keeps the last path segment, drops control and bidi-override characters and leading dots, and bounds the length', () => {
    expect(cleanFilename('C:\\Users\\x\\report.pdf', 1)).toBe('report.pdf');
    expect(cleanFilename('invoice\u202Efdp.exe', 1)).toBe('invoicefdp.exe');
    expect(cleanFilename('..hidden', 1)).toBe('hidden');
    expect(cleanFilename('a\r\nb.txt', 1)).toBe('ab.txt');
    expect(cleanFilename(undefined, 3)).toBe('attachment-3');
    expect(cleanFilename(`${'x'.repeat(400)}.pdf`, 1)).toMatch(/^x{146}\.pdf$/);
  });
});

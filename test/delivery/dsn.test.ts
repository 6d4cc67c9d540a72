// The bounce is parsed back by hand (top-level headers, the three parts of the
// multipart/report, the DSN fields), then by two independent parsers: Python's email
// package, which reads message/delivery-status as its per-message and per-recipient
// field groups, and mailparser. The body of the original must never appear in it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBounce, rfc5322Date, type BounceInput } from '../../src/delivery/dsn.ts';

const SECRET = 'Patient 4711: diagnosis CONFIDENTIAL-BODY-TEXT';
const ORIGINAL_HEADERS = [
  'Received: from app.example.org ([127.0.0.1])\r\n\tby relay.example.test with ESMTPSA id 1A2B3C',
  'From: Clinic <clinic@example.org>',
  'To: Dr Who <who@example.net>, bad@example.net',
  'Subject: Results',
  'Message-ID: <orig-1@example.org>',
].join('\r\n');

const input: BounceInput = {
  reportingMta: 'relay.example.test',
  originalSender: 'clinic@example.org',
  queueId: 'Q1A2B3C4D',
  originalHeaders: ORIGINAL_HEADERS,
  arrivalDate: new Date(Date.UTC(2025, 0, 14, 9, 58, 7)),
  date: new Date(Date.UTC(2025, 0, 14, 10, 0, 0)),
  failures: [
    { recipient: 'bad@example.net', status: '5.1.1', diagnostic: '550 5.1.1 <bad@example.net>: Recipient address rejected: User unknown', remoteMta: 'mx1.example.net', action: 'failed' },
    { recipient: 'gone@example.net', status: '5.4.7', diagnostic: 'delivery time expired\r\nafter 5 days', remoteMta: null, action: 'failed' },
  ],
};

interface Part {
  headers: Record<string, string>;
  body: string;
}

function parseHeaders(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const field of block.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(field);
    if (m) headers[m[1]!.toLowerCase()] = m[2]!;
  }
  return headers;
}

function parse(raw: string): { headers: Record<string, string>; parts: Part[] } {
  const split = raw.indexOf('\r\n\r\n');
  const headers = parseHeaders(raw.slice(0, split));
  const boundary = /boundary="([^"]+)"/.exec(headers['content-type']!)![1]!;
  const body = raw.slice(split + 4);
  const close = body.indexOf(`\r\n--${boundary}--`);
  expect(close).toBeGreaterThan(0);
  const chunks = body.slice(0, close).split(`--${boundary}\r\n`).slice(1);
  const parts = chunks.map((chunk) => {
    const end = chunk.indexOf('\r\n\r\n');
    return { headers: parseHeaders(chunk.slice(0, end)), body: chunk.slice(end + 4).replace(/\r\n$/, '') };
  });
  return { headers, parts };
}

describe('buildBounce', () => {
  let bounce: Awaited<ReturnType<typeof buildBounce>>;
  let raw: string;
  let headers: Record<string, string>;
  let parts: Part[];
  beforeAll(async () => {
    bounce = await buildBounce(input);
    raw = bounce.body.toString('utf8');
    ({ headers, parts } = parse(raw));
  });

  it('is an RFC 6522 multipart/report with three parts', () => {
    expect(headers['content-type']).toMatch(/^multipart\/report; report-type=delivery-status; boundary="/);
    expect(headers['mime-version']).toBe('1.0');
    expect(parts.map((p) => p.headers['content-type'])).toEqual(['text/plain; charset=us-ascii', 'message/delivery-status', 'text/rfc822-headers']);
  });

  it('comes from MAILER-DAEMON, goes to the original sender, and says it is automatic', () => {
    expect(headers.from).toBe('Mail Delivery System <MAILER-DAEMON@relay.example.test>');
    expect(headers.to).toBe('clinic@example.org');
    expect(headers['auto-submitted']).toBe('auto-replied');
    expect(headers.date).toBe('Tue, 14 Jan 2025 10:00:00 +0000');
    expect(headers['message-id']).toBe(bounce.messageId);
    expect(bounce.messageId).toMatch(/^<Q1A2B3C4D\.[0-9a-z]+\.[0-9a-f]+@relay\.example\.test>$/);
    expect(headers.subject).toBe(bounce.subject);
    expect(bounce.sender).toBe('');
    expect(bounce.recipients).toEqual(['clinic@example.org']);
  });

  it('carries RFC 3464 per-message and per-recipient fields', () => {
    const groups = parts[1]!.body.split('\r\n\r\n').map(parseHeaders);
    expect(groups).toHaveLength(3);
    expect(groups[0]).toMatchObject({ 'reporting-mta': 'dns; relay.example.test', 'arrival-date': 'Tue, 14 Jan 2025 09:58:07 +0000' });
    expect(groups[1]).toEqual({
      'final-recipient': 'rfc822; bad@example.net',
      action: 'failed',
      status: '5.1.1',
      'remote-mta': 'dns; mx1.example.net',
      'diagnostic-code': 'smtp; 550 5.1.1 <bad@example.net>: Recipient address rejected: User unknown',
    });
    // No remote MTA answered: no Remote-MTA field, our own reason on one line.
    expect(groups[2]).toEqual({
      'final-recipient': 'rfc822; gone@example.net',
      action: 'failed',
      status: '5.4.7',
      'diagnostic-code': 'X-SealRelay; delivery time expired after 5 days',
    });
  });

  it('attaches the original header block, and never the body', () => {
    expect(parts[2]!.body).toBe(ORIGINAL_HEADERS);
    expect(raw).not.toContain('CONFIDENTIAL');
    expect(parts[0]!.body).toContain('bad@example.net');
  });

  it('cuts off a body handed over by mistake', async () => {
    const withBody = await buildBounce({ ...input, originalHeaders: `${ORIGINAL_HEADERS}\r\n\r\n${SECRET}\r\n` });
    const text = withBody.body.toString('utf8');
    expect(text).not.toContain('CONFIDENTIAL');
    expect(parse(text).parts[2]!.body).toBe(ORIGINAL_HEADERS);
    // bare LF input is normalised to CRLF as well
    const lf = await buildBounce({ ...input, originalHeaders: `${ORIGINAL_HEADERS.replace(/\r\n/g, '\n')}\n\n${SECRET}` });
    expect(lf.body.toString('utf8')).not.toContain('CONFIDENTIAL');
    expect(parse(lf.body.toString('utf8')).parts[2]!.body).toBe(ORIGINAL_HEADERS);
  });

  it('keeps 8-bit headers byte for byte and marks the part 8bit', async () => {
    const latin1 = Buffer.from('Subject: Befund f\u00fcr M\u00fcller', 'latin1').toString('latin1');
    const b = await buildBounce({ ...input, originalHeaders: latin1 });
    expect(b.body.includes(Buffer.from('f\u00fcr', 'latin1'))).toBe(true);
    expect(b.body.toString('latin1')).toContain('Content-Transfer-Encoding: 8bit');
  });

  it('refuses what would break the message or bounce a bounce', async () => {
    await expect(buildBounce({ ...input, originalSender: '' })).rejects.toThrow(/never bounce a bounce/);
    await expect(buildBounce({ ...input, originalSender: 'a@b\r\nBcc: x@y' })).rejects.toThrow(/line breaks/);
    await expect(buildBounce({ ...input, failures: [] })).rejects.toThrow(/at least one/);
    await expect(buildBounce({ ...input, failures: [{ ...input.failures[0]!, status: 'bad' }] })).rejects.toThrow(RangeError);
  });

  it('writes an odd envelope sender as one address in To, quoted where it needs to be', async () => {
    for (const [sender, to] of [
      ['a,b@x.test', '<"a,b"@x.test>'],
      ['a@b.test@c.test', '<"a@b.test"@c.test>'],
    ]) {
      const b = await buildBounce({ ...input, originalSender: sender! });
      expect(parse(b.body.toString('utf8')).headers.to).toBe(to);
      expect(b.recipients).toEqual([sender]);
    }
  });

  describe('read by independent parsers', () => {
    // A remote reply that tries to add a field and a recipient group of its own.
    const hostile: BounceInput = {
      ...input,
      envelopeId: 'lab-batch-42',
      failures: [
        { ...input.failures[0]!, originalRecipient: 'rfc822;Bad@Example.NET' },
        { ...input.failures[1]!, diagnostic: '550 no\r\n\r\nFinal-Recipient: rfc822; forged@evil.test\r\nStatus: 2.0.0' },
      ],
    };
    let dir: string;
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dsn-'));
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** Python's email package: the report's structure and message/delivery-status as its field groups. */
    function python(message: Buffer): { type: string; reportType: string; parts: string[]; groups: Record<string, string>[]; text: string; headers: string } {
      const file = path.join(dir, `dsn-${fs.readdirSync(dir).length}.eml`);
      fs.writeFileSync(file, message);
      const script = [
        'import email, json, sys',
        'm = email.message_from_binary_file(open(sys.argv[1], "rb"))',
        'parts = m.get_payload()',
        'groups = [dict(g.items()) for g in parts[1].get_payload()]',
        'print(json.dumps({"type": m.get_content_type(), "reportType": m.get_param("report-type"), "parts": [p.get_content_type() for p in parts],',
        '  "groups": groups, "text": parts[0].get_payload(decode=True).decode("ascii"), "headers": parts[2].get_payload(decode=True).decode("latin1")}))',
      ].join('\n');
      return JSON.parse(execFileSync('python3', ['-c', script, file]).toString('utf8'));
    }

    it("Python's email package reads the per-message and per-recipient fields, and nothing a remote reply tried to add", async () => {
      const dsn = python((await buildBounce(hostile)).body);
      expect(dsn.type).toBe('multipart/report');
      expect(dsn.reportType).toBe('delivery-status');
      expect(dsn.parts).toEqual(['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
      expect(dsn.groups).toEqual([
        { 'Original-Envelope-Id': 'lab-batch-42', 'Reporting-MTA': 'dns; relay.example.test', 'X-SealRelay-Queue-ID': 'Q1A2B3C4D', 'Arrival-Date': 'Tue, 14 Jan 2025 09:58:07 +0000' },
        {
          'Original-Recipient': 'rfc822; Bad@Example.NET',
          'Final-Recipient': 'rfc822; bad@example.net',
          Action: 'failed',
          Status: '5.1.1',
          'Remote-MTA': 'dns; mx1.example.net',
          'Diagnostic-Code': 'smtp; 550 5.1.1 <bad@example.net>: Recipient address rejected: User unknown',
        },
        { 'Final-Recipient': 'rfc822; gone@example.net', Action: 'failed', Status: '5.4.7', 'Diagnostic-Code': 'smtp; 550 no Final-Recipient: rfc822; forged@evil.test Status: 2.0.0' },
      ]);
      // The notification decodes (it may travel quoted-printable) to one line per recipient.
      expect(dsn.text).toMatch(/\n<bad@example\.net>: host mx1\.example\.net said: 550 5\.1\.1 <bad@example\.net>: Recipient address rejected: User unknown\r?\n/);
      // (Python hands back decoded text with LF line ends.)
      expect(dsn.headers).toBe(`${ORIGINAL_HEADERS.replace(/\r\n/g, '\n')}\n`);
    });

    // mailparser shows message/delivery-status as text, after the notification.
    it('mailparser finds the sender, the recipient and the report, and no body of the original', async () => {
      const parsed = await simpleParser((await buildBounce({ ...hostile, originalHeaders: `${ORIGINAL_HEADERS}\r\n\r\n${SECRET}` })).body);
      expect(parsed.from?.value).toEqual([{ name: 'Mail Delivery System', address: 'MAILER-DAEMON@relay.example.test' }]);
      expect((Array.isArray(parsed.to) ? parsed.to[0] : parsed.to)?.value).toEqual([{ name: '', address: 'clinic@example.org' }]);
      expect(parsed.headers.get('auto-submitted')).toBe('auto-replied');
      expect(parsed.text).toContain('It will not be retried.');
      expect(parsed.text).toMatch(/\nFinal-Recipient: rfc822; gone@example\.net\r?\nAction: failed\r?\nStatus: 5\.4\.7\r?\n/);
      expect(parsed.attachments.map((a) => [a.contentType, a.content.toString('latin1')])).toEqual([['text/rfc822-headers', `${ORIGINAL_HEADERS}\r\n`]]);
      for (const part of [parsed.text ?? '', ...parsed.attachments.map((a) => a.content.toString('latin1'))]) expect(part).not.toContain('CONFIDENTIAL');
    });
  });

  it('formats dates per RFC 5322', () => {
    expect(rfc5322Date(new Date(Date.UTC(2024, 1, 29, 23, 5, 9)))).toBe('Thu, 29 Feb 2024 23:05:09 +0000');
  });
});

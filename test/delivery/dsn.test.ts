// The bounce is parsed back by hand (no MIME parser in the dependencies): top-level
// headers, the three parts of the multipart/report, the DSN fields. The body of the
// original must never appear in it.
import { describe, expect, it } from 'vitest';
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
  const bounce = buildBounce(input);
  const raw = bounce.body.toString('utf8');
  const { headers, parts } = parse(raw);

  it('is an RFC 6522 multipart/report with three parts', () => {
    expect(headers['content-type']).toMatch(/^multipart\/report; report-type=delivery-status; boundary="/);
    expect(headers['mime-version']).toBe('1.0');
    expect(parts.map((p) => p.headers['content-type'])).toEqual(['text/plain; charset=us-ascii', 'message/delivery-status', 'text/rfc822-headers']);
  });

  it('comes from MAILER-DAEMON, goes to the original sender, and says it is automatic', () => {
    expect(headers.from).toBe('Mail Delivery System <MAILER-DAEMON@relay.example.test>');
    expect(headers.to).toBe('<clinic@example.org>');
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

  it('cuts off a body handed over by mistake', () => {
    const withBody = buildBounce({ ...input, originalHeaders: `${ORIGINAL_HEADERS}\r\n\r\n${SECRET}\r\n` });
    const text = withBody.body.toString('utf8');
    expect(text).not.toContain('CONFIDENTIAL');
    expect(parse(text).parts[2]!.body).toBe(ORIGINAL_HEADERS);
    // bare LF input is normalised to CRLF as well
    const lf = buildBounce({ ...input, originalHeaders: `${ORIGINAL_HEADERS.replace(/\r\n/g, '\n')}\n\n${SECRET}` });
    expect(lf.body.toString('utf8')).not.toContain('CONFIDENTIAL');
    expect(parse(lf.body.toString('utf8')).parts[2]!.body).toBe(ORIGINAL_HEADERS);
  });

  it('keeps 8-bit headers byte for byte and marks the part 8bit', () => {
    const latin1 = Buffer.from('Subject: Befund f\u00fcr M\u00fcller', 'latin1').toString('latin1');
    const b = buildBounce({ ...input, originalHeaders: latin1 });
    expect(b.body.includes(Buffer.from('f\u00fcr', 'latin1'))).toBe(true);
    expect(b.body.toString('latin1')).toContain('Content-Transfer-Encoding: 8bit');
  });

  it('refuses what would break the message or bounce a bounce', () => {
    expect(() => buildBounce({ ...input, originalSender: '' })).toThrow(/never bounce a bounce/);
    expect(() => buildBounce({ ...input, originalSender: 'a@b\r\nBcc: x@y' })).toThrow(/line breaks/);
    expect(() => buildBounce({ ...input, failures: [] })).toThrow(/at least one/);
    expect(() => buildBounce({ ...input, failures: [{ ...input.failures[0]!, status: 'bad' }] })).toThrow(RangeError);
  });

  it('formats dates per RFC 5322', () => {
    expect(rfc5322Date(new Date(Date.UTC(2024, 1, 29, 23, 5, 9)))).toBe('Thu, 29 Feb 2024 23:05:09 +0000');
  });
});

import { describe, expect, test } from 'vitest';
import { fold, headerFacts, receivedHeader, rfc5322Date, stampMessage, withoutField, withProtocol, type InboundHop } from '../../src/ingress/received.ts';
import { decodeEncodedWords } from '../../src/mime/encoded-words.ts';
import { headerEnd } from '../../src/mime/header-block.ts';

const TLS13 = { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', bits: 256 };
const hop = (over: Partial<InboundHop> = {}): InboundHop => ({
  helo: 'app.clinic.test',
  ehlo: true,
  clientHostname: 'app.clinic.test',
  clientIp: '192.0.2.10',
  hostname: 'relay.example.test',
  queueId: '01kpRT3cR0yVRD0s',
  authenticated: true,
  tls: TLS13,
  recipients: ['patient@example.test'],
  date: new Date(Date.UTC(2025, 2, 4, 10, 11, 12)),
  ...over,
});
const unfold = (h: string) => h.replace(/\r\n[ \t]/g, ' ');

describe('RFC 3848 with-protocol', () => {
  test.each([
    [true, false, false, 'ESMTP'],
    [true, true, false, 'ESMTPS'],
    [true, false, true, 'ESMTPA'],
    [true, true, true, 'ESMTPSA'],
    [false, true, true, 'SMTP'],
  ])('ehlo=%s tls=%s auth=%s → %s', (ehlo, tls, authenticated, expected) => {
    expect(withProtocol({ ehlo, tls: tls ? TLS13 : null, authenticated })).toBe(expected);
  });
});

describe('Received header (RFC 5321 §4.4)', () => {
  test('TLS, AUTH, one recipient: all facts, RFC 5322 date, CRLF', () => {
    const h = receivedHeader(hop());
    expect(unfold(h)).toBe(
      'Received: from app.clinic.test (app.clinic.test [192.0.2.10]) by relay.example.test (SealRelay) with ESMTPSA id 01kpRT3cR0yVRD0s ' +
        '(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NO) for <patient@example.test>; Tue, 04 Mar 2025 10:11:12 +0000\r\n',
    );
  });

  test('folded: no line over 78 characters, continuation lines start with WSP, date kept whole', () => {
    const lines = receivedHeader(hop()).split('\r\n').slice(0, -1);
    expect(lines.length).toBeGreaterThan(1);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(78);
    for (const l of lines.slice(1)) expect(l).toMatch(/^\t\S/);
    expect(lines.at(-1)).toMatch(/\tfor <patient@example.test>; Tue, 04 Mar 2025 10:11:12 \+0000$/);
  });

  test('plaintext, no rDNS, several recipients: no TLS comment, no "for", [ip] literal only', () => {
    const h = unfold(receivedHeader(hop({ tls: null, authenticated: false, clientHostname: null, recipients: ['a@x.test', 'b@y.test'] })));
    expect(h).toBe('Received: from app.clinic.test ([192.0.2.10]) by relay.example.test (SealRelay) with ESMTP id 01kpRT3cR0yVRD0s; Tue, 04 Mar 2025 10:11:12 +0000\r\n');
  });

  test('IPv6 client: RFC 5321 §4.1.3 IPv6 address literal', () => {
    expect(receivedHeader(hop({ clientIp: '2001:db8::25', clientHostname: null }))).toContain('([IPv6:2001:db8::25])');
  });

  test('unknown cipher strength: bits left out', () => {
    expect(unfold(receivedHeader(hop({ tls: { version: 'TLSv1.2', cipher: 'ODD-CIPHER', bits: null } })))).toContain('(version=TLSv1.2 cipher=ODD-CIPHER verify=NO)');
  });

  test('rfc5322Date pads day and time', () => {
    expect(rfc5322Date(new Date(Date.UTC(2024, 0, 5, 3, 4, 5)))).toBe('Fri, 05 Jan 2024 03:04:05 +0000');
  });

  test('fold never splits a token longer than the limit', () => {
    const long = 'x'.repeat(100);
    expect(fold(['Received:', long, 'end'])).toBe(`Received:\r\n\t${long}\r\n\tend\r\n`);
  });
});

describe('header block', () => {
  test.each([
    ['header and body', 'A: 1\r\nB: 2\r\n\r\nbody\r\n', 12],
    ['headers only', 'A: 1\r\nB: 2\r\n', 12],
    ['no header', '\r\nbody\r\n', 0],
    ['empty', '', 0],
  ])('headerEnd: %s', (_n, text, expected) => {
    expect(headerEnd(Buffer.from(text))).toBe(expected);
  });

  test('Message-ID and Subject: first occurrence, folded subject unfolded, encoded-words decoded', () => {
    const block = Buffer.from('Message-ID:\r\n <abc@app.test>\r\nSubject: =?UTF-8?B?TMOkYm9y?=\r\n =?ISO-8859-1?Q?_f=FCr_Sie?=\r\nSubject: second\r\n');
    expect(headerFacts(block)).toEqual({ messageId: '<abc@app.test>', subject: 'Läbor für Sie', campaign: null, custom: null });
  });

  test('a raw UTF-8 subject (RFC 6532) is read as UTF-8', () => {
    expect(headerFacts(Buffer.from('Subject: Befund für Frau Ä\r\n')).subject).toBe('Befund für Frau Ä');
  });

  test.each([
    ['plain', 'Hello', 'Hello'],
    ['Q with underscore', '=?utf-8?q?Hello_World?=', 'Hello World'],
    ['adjacent words joined', '=?utf-8?q?a?= =?utf-8?q?b?=', 'ab'],
    ['unknown charset falls back', '=?x-unknown?q?caf=E9?=', 'café'],
    ['text around words kept', 'Re: =?utf-8?b?w6Q=?= ok', 'Re: ä ok'],
  ])('decodeEncodedWords: %s', (_n, input, expected) => {
    expect(decodeEncodedWords(input)).toBe(expected);
  });

  test('stampMessage: Received on top, Message-ID added at the end of the header block when missing', () => {
    const msg = Buffer.from('From: a@x.test\r\nSubject: hi\r\n\r\nbody\r\nMessage-ID: <not-a-header@body>\r\n');
    const out = stampMessage(msg, hop());
    const text = out.body.toString();
    expect(text.startsWith('Received: from app.clinic.test')).toBe(true);
    expect(out.messageId).toBe('<01kpRT3cR0yVRD0s.1741083072000@relay.example.test>');
    expect(text).toContain('Subject: hi\r\nMessage-ID: <01kpRT3cR0yVRD0s.1741083072000@relay.example.test>\r\n\r\nbody\r\n');
    expect(out.subject).toBe('hi');
  });

  test('stampMessage: an existing Message-ID is kept and nothing else is touched', () => {
    const msg = Buffer.from('Message-Id: <orig@app.test>\r\n\r\nbody\r\n');
    const out = stampMessage(msg, hop());
    expect(out.messageId).toBe('<orig@app.test>');
    expect(out.body.subarray(out.body.length - msg.length).equals(msg)).toBe(true);
    expect(out.body.toString().match(/Message-I[dD]:/g)).toHaveLength(1);
  });

  test.each([
    ['text without any header', 'Hello world\r\nsecond line\r\n', '', 'Hello world\r\nsecond line\r\n'],
    ['headers, then text without the empty line', 'Subject: hi\r\nHello world\r\n', 'Subject: hi\r\n', 'Hello world\r\n'],
    ['a folded header, then text', 'Subject: a\r\n b\r\nnot a field line\r\n', 'Subject: a\r\n b\r\n', 'not a field line\r\n'],
    ['an mbox "From " line first', 'From someone Tue Mar 4\r\nSubject: x\r\n\r\nb\r\n', '', 'From someone Tue Mar 4\r\nSubject: x\r\n\r\nb\r\n'],
  ])('stampMessage: %s → the header section ends at the first non-field line, with the empty line inserted there', (_n, input, header, body) => {
    const out = stampMessage(Buffer.from(input), hop()).body.toString();
    const received = receivedHeader(hop());
    expect(out.startsWith(received)).toBe(true);
    expect(out.slice(received.length)).toBe(`${header}Message-ID: <01kpRT3cR0yVRD0s.1741083072000@relay.example.test>\r\n\r\n${body}`);
  });

  test('stampMessage: with a Message-ID but no empty line before the text, only the empty line is inserted', () => {
    const out = stampMessage(Buffer.from('Message-ID: <m@app.test>\r\nHello\r\n'), hop());
    expect(out.messageId).toBe('<m@app.test>');
    expect(out.body.toString()).toMatch(/\r\nMessage-ID: <m@app\.test>\r\n\r\nHello\r\n$/);
    expect(out.body.toString().match(/Message-ID:/g)).toHaveLength(1);
  });

  test('stampMessage: with room left in front of the message, the Received field is written there (no copy)', () => {
    const text = 'Message-ID: <m@app.test>\r\n\r\nbody\r\n';
    const frame = Buffer.alloc(2048 + text.length);
    frame.write(text, 2048, 'latin1');
    const out = stampMessage(frame.subarray(2048), hop(), { headroom: 2048 });
    expect(out.body.buffer).toBe(frame.buffer);
    expect(out.body.toString('latin1')).toBe(receivedHeader(hop()) + text);
    // without room, a copy
    expect(stampMessage(Buffer.from(text), hop()).body.toString('latin1')).toBe(receivedHeader(hop()) + text);
  });

  test('stampMessage: a message with no header gets the Message-ID before the blank line', () => {
    const out = stampMessage(Buffer.from('\r\nonly body\r\n'), hop());
    expect(out.body.toString()).toMatch(/\r\nMessage-ID: <[^>]+>\r\n\r\nonly body\r\n$/);
  });
});

describe('report headers: the campaign (read, then stripped) and the custom field (read, kept)', () => {
  const report = { campaign: 'X-Campaign-ID', custom: 'X-Department' };

  test('read in any case; the first occurrence wins; a label: decoded, control characters made spaces, trimmed, at most 200 characters', () => {
    const block = Buffer.from(`X-CAMPAIGN-ID:  spring\x07sale \r\nX-Campaign-ID: second\r\nx-department: =?utf-8?q?K=C3=BCche?=\r\nX-Department: other\r\n`);
    expect(headerFacts(block, report)).toMatchObject({ campaign: 'spring sale', custom: 'Küche' });
    const long = headerFacts(Buffer.from(`X-Campaign-ID: ${'a'.repeat(5000)}\r\n`), report);
    expect(long.campaign).toHaveLength(200);
  });

  test('an empty value or a header not asked for is null', () => {
    expect(headerFacts(Buffer.from('X-Campaign-ID:   \r\nX-Department: x\r\n'), { campaign: 'X-Campaign-ID', custom: null })).toMatchObject({ campaign: null, custom: null });
  });

  test('withoutField drops every occurrence with its continuation lines, and nothing else (not a longer name, not a value that mentions it)', () => {
    const header = 'Subject: about X-Campaign-ID: yes\r\nx-campaign-id: a\r\n\tfolded\r\nX-Campaign-IDs: kept\r\nX-Campaign-ID : spaced\r\nTo: <b@c.test>\r\n';
    expect(withoutField(Buffer.from(header), 'X-Campaign-ID').toString()).toBe('Subject: about X-Campaign-ID: yes\r\nX-Campaign-IDs: kept\r\nTo: <b@c.test>\r\n');
    const untouched = Buffer.from('Subject: hi\r\n');
    expect(withoutField(untouched, 'X-Campaign-ID')).toBe(untouched);
  });

  test('stampMessage strips the campaign header from the header section only and reports both values', () => {
    const msg = Buffer.from('X-Campaign-ID: c1\r\nX-Department: Lab\r\nMessage-ID: <m@x.test>\r\n\r\nX-Campaign-ID: body line\r\n');
    const out = stampMessage(msg, hop(), { report });
    const text = out.body.toString();
    expect(text).toBe(`${receivedHeader(hop())}X-Department: Lab\r\nMessage-ID: <m@x.test>\r\n\r\nX-Campaign-ID: body line\r\n`);
    expect(out).toMatchObject({ campaign: 'c1', custom: 'Lab' });
  });
});

// The portal notice (src/portal/notice.ts): every instance of the notice field
// leaves the header block — folded lines with it — and every other byte of the
// message stays as it was (compared as buffers, body and 8-bit bytes included).
// The first instance's value comes back decoded (RFC 2047, UTF-8 or latin1
// 8-bit), without controls or bidi overrides, on one line, at most 200 characters
// cut between characters. Hostile input (a huge field, thousands of instances,
// broken encodings, a header block that is not fields) has a clear, bounded result.
import { describe, expect, it } from 'vitest';
import { NOTICE_MAX_CHARS, plainLine, takeNotice } from '../../src/portal/notice.ts';

const H = 'X-Portal-Notice';
const crlf = (lines: string[]): string => lines.map((l) => `${l}\r\n`).join('');

/** A message from header lines and a body, latin1 so that any byte can be written. */
function message(headers: string[], body = 'Hello,\r\nyour results are attached.\r\n'): Buffer {
  return Buffer.from(`${crlf(headers)}\r\n${body}`, 'latin1');
}

describe('removing the notice field', () => {
  it('removes the field and leaves every other byte identical', () => {
    const before = ['Received: from app (app [192.0.2.1])', '\tby relay; Thu, 1 Jan 2026 10:00:00 +0000', 'From: Clinic <lab@clinic.example>', 'Subject: Results'];
    const after = ['To: pat@patient.example', 'Message-ID: <m1@clinic.example>'];
    const body = 'Line one\r\n\r\nX-Portal-Notice: in the body, not a header\r\n\xe9\xff\x00 binary\r\n';
    const input = message([...before, 'X-Portal-Notice: Your lab results are ready', ...after], body);
    const { message: out, notice } = takeNotice(input, H);
    expect(notice).toBe('Your lab results are ready');
    expect(out.equals(message([...before, ...after], body))).toBe(true);
  });

  it('removes folded continuation lines with the field', () => {
    const input = message(['From: a@clinic.example', 'X-Portal-Notice: Your lab', ' \t results', '\tare ready', 'Subject: x']);
    const { message: out, notice } = takeNotice(input, H);
    expect(notice).toBe('Your lab results are ready');
    expect(out.equals(message(['From: a@clinic.example', 'Subject: x']))).toBe(true);
  });

  it('removes every instance, whatever the case of the name; the first is the notice', () => {
    const input = message(['x-portal-notice: first', 'From: a@clinic.example', 'X-PORTAL-NOTICE: second', '  folded', 'Subject: x', 'X-Portal-Notice : third']);
    const { message: out, notice } = takeNotice(input, H);
    expect(notice).toBe('first');
    expect(out.equals(message(['From: a@clinic.example', 'Subject: x']))).toBe(true);
  });

  it('leaves fields whose name only starts like it, and other header names, alone', () => {
    const headers = ['X-Portal-Notices: no', 'X-Portal-Notice-Extra: no', 'X-Portal: no', 'Subject: X-Portal-Notice: no'];
    const input = message(headers);
    const { message: out, notice } = takeNotice(input, H);
    expect(notice).toBeNull();
    expect(out).toBe(input);
  });

  it('uses the configured header name', () => {
    const input = message(['From: a@clinic.example', 'X-Clinic-Line: Results ready', 'X-Portal-Notice: not this one']);
    const { message: out, notice } = takeNotice(input, 'X-Clinic-Line');
    expect(notice).toBe('Results ready');
    expect(out.equals(message(['From: a@clinic.example', 'X-Portal-Notice: not this one']))).toBe(true);
  });

  it('returns the very same buffer when there is no notice field', () => {
    const input = message(['From: a@clinic.example', 'Subject: x']);
    expect(takeNotice(input, H)).toEqual({ message: input, notice: null });
    expect(takeNotice(input, H).message).toBe(input);
  });

  it('handles a message without a body, and a field on the last line without CRLF', () => {
    const noBody = Buffer.from('From: a@clinic.example\r\nX-Portal-Notice: ready\r\n', 'latin1');
    expect(takeNotice(noBody, H)).toEqual({ message: Buffer.from('From: a@clinic.example\r\n'), notice: 'ready' });
    const unterminated = Buffer.from('From: a@clinic.example\r\nX-Portal-Notice: ready', 'latin1');
    expect(takeNotice(unterminated, H)).toEqual({ message: Buffer.from('From: a@clinic.example\r\n'), notice: 'ready' });
  });

  it('does not look into the body or into attached messages', () => {
    const body = crlf(['--b', 'Content-Type: message/rfc822', '', 'X-Portal-Notice: inner', 'Subject: inner', '', 'inner body', '--b--']);
    const input = message(['Content-Type: multipart/mixed; boundary=b'], body);
    expect(takeNotice(input, H)).toEqual({ message: input, notice: null });
  });

  it('an empty or blank field is removed and gives no notice', () => {
    for (const value of ['', '   ', ' \t ', '=?utf-8?B??=', '=?utf-8?Q?_?=', '\x01\x02']) {
      const input = message(['From: a@clinic.example', `X-Portal-Notice:${value}`]);
      const { message: out, notice } = takeNotice(input, H);
      expect(notice, JSON.stringify(value)).toBeNull();
      expect(out.equals(message(['From: a@clinic.example']))).toBe(true);
    }
  });

  it('refuses a notice header setting that is not a field name', () => {
    expect(() => takeNotice(message(['From: a']), 'X Bad')).toThrow(TypeError);
    expect(() => takeNotice(message(['From: a']), 'X:Bad')).toThrow(TypeError);
    expect(() => takeNotice(message(['From: a']), '')).toThrow(TypeError);
  });
});

const read = (value: string): string | null => takeNotice(message([`X-Portal-Notice: ${value}`]), H).notice;

describe('reading the notice', () => {
  it.each([
    ['plain text', 'Your lab results are ready', 'Your lab results are ready'],
    ['B encoded-word', '=?UTF-8?B?SWhyZSBCZWZ1bmRlIHNpbmQgZGEg4pyU?=', 'Ihre Befunde sind da ✔'],
    ['Q encoded-word', '=?iso-8859-1?Q?R=E9sultats_pr=EAts?=', 'Résultats prêts'],
    ['adjacent words join, a character split across them', '=?utf-8?B?w6k=?= =?utf-8?B?w6k=?= ok', 'éé ok'],
    ['UTF-8 split between two Q words', '=?utf-8?Q?=C3?= =?utf-8?Q?=A9t=C3=A9?=', 'été'],
    ['text around encoded-words', 'Hello =?utf-8?Q?W=C3=B6rld?= again', 'Hello Wörld again'],
    ['raw 8-bit UTF-8 (RFC 6532)', Buffer.from('Résultats prêts ✔', 'utf8').toString('latin1'), 'Résultats prêts ✔'],
    ['raw 8-bit latin1 (not UTF-8)', 'R\xe9sultats pr\xeats', 'Résultats prêts'],
    ['an unknown charset reads as latin1', '=?x-unknown?Q?caf=E9?=', 'café'],
    ['a malformed encoded-word stays as text', '=?utf-8?Q?unterminated', '=?utf-8?Q?unterminated'],
    ['invalid base64 decodes what it can, never throws', '=?utf-8?B?!!!SGk=?=', 'Hi'],
    ['controls in an encoded-word become spaces', '=?utf-8?Q?a=0D=0AInjected:_x=00=1B[31mred?=', 'a Injected: x [31mred'],
    ['C1 controls go too', '=?utf-8?B?YcKFYsKbYw==?=', 'a b c'],
    ['bidi overrides and isolates are removed', '=?utf-8?B?cGF5IOKArmZkcC5leGXigKwgbm93IOKBpnjigakg4oCPeQ==?=', 'pay fdp.exe now x y'],
    ['whitespace collapses', 'a  \t b', 'a b'],
    ['other Unicode spaces collapse', '=?utf-8?B?YcKgwqBi4oCoYw==?=', 'a b c'],
  ])('%s', (_, value, expected) => {
    expect(read(value)).toBe(expected);
  });

  it(`cuts a long notice to ${NOTICE_MAX_CHARS} characters, ending in …`, () => {
    const notice = read('word '.repeat(100))!;
    expect(Array.from(notice)).toHaveLength(NOTICE_MAX_CHARS);
    expect(notice.endsWith('word…')).toBe(true);
    expect(read('x'.repeat(NOTICE_MAX_CHARS))).toBe('x'.repeat(NOTICE_MAX_CHARS));
    expect(read('x'.repeat(NOTICE_MAX_CHARS + 1))).toBe('x'.repeat(NOTICE_MAX_CHARS - 1) + '…');
  });

  it('cuts between characters: no emoji sequence, surrogate pair or accent is split', () => {
    const family = '👩‍👩‍👧'; // five code points, one character
    for (let pad = 190; pad <= 199; pad++) {
      const value = Buffer.from('x'.repeat(pad) + family.repeat(5), 'utf8').toString('latin1');
      const notice = read(value)!;
      expect(Array.from(notice).length).toBeLessThanOrEqual(NOTICE_MAX_CHARS);
      const kept = notice.slice(pad, -1);
      expect(kept.length % family.length, `pad ${pad}`).toBe(0);
      expect(notice.endsWith('…')).toBe(true);
    }
    const accented = 'e\u0301'.repeat(150); // e + combining acute
    const notice = plainLine(accented, NOTICE_MAX_CHARS);
    expect(notice.endsWith('\u0301…')).toBe(true);
    // A single "character" longer than the whole allowance is cut by code points: still bounded.
    expect(Array.from(plainLine('a' + '\u0301'.repeat(5000), NOTICE_MAX_CHARS))).toHaveLength(NOTICE_MAX_CHARS);
  });
});

describe('hostile input: clear and bounded', () => {
  it('a field of megabytes is read only as far as needed, and removed whole', () => {
    const huge = `X-Portal-Notice: start\r\n ${'y'.repeat(900)}` + ('\r\n ' + 'z'.repeat(990)).repeat(5100);
    const input = Buffer.concat([Buffer.from('From: a@clinic.example\r\n'), Buffer.from(huge + '\r\n', 'latin1'), Buffer.from('Subject: s\r\n\r\nbody')]);
    expect(input.length).toBeGreaterThan(5_000_000);
    const started = performance.now();
    const { message: out, notice } = takeNotice(input, H);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(out.toString()).toBe('From: a@clinic.example\r\nSubject: s\r\n\r\nbody');
    expect(Array.from(notice!)).toHaveLength(NOTICE_MAX_CHARS);
    expect(notice!.startsWith('start y')).toBe(true);
  });

  it('thousands of instances are all removed; other fields keep their order', () => {
    const headers: string[] = [];
    for (let i = 0; i < 20_000; i++) headers.push(`X-Portal-Notice: n${i}`, `X-Keep: ${i}`);
    const { message: out, notice } = takeNotice(message(headers), H);
    expect(notice).toBe('n0');
    expect(out.equals(message(headers.filter((h) => h.startsWith('X-Keep'))))).toBe(true);
  });

  it('a long run of encoded-word openers takes linear time', () => {
    const value = '=?'.repeat(4000) + '=?utf-8?Q?' + 'a?'.repeat(2000);
    const started = performance.now();
    const notice = read(value);
    expect(performance.now() - started).toBeLessThan(500);
    expect(Array.from(notice!).length).toBeLessThanOrEqual(NOTICE_MAX_CHARS);
  });

  it('a UTF-8 sequence at the read limit is not split into latin1 garbage', () => {
    const value = Buffer.from('é'.repeat(5000), 'utf8').toString('latin1'); // 10000 bytes: past the limit
    expect(read(value)).toBe('é'.repeat(NOTICE_MAX_CHARS - 1) + '…');
    const offByOne = Buffer.from('x' + 'é'.repeat(5000), 'utf8').toString('latin1');
    expect(read(offByOne)).toBe('x' + 'é'.repeat(NOTICE_MAX_CHARS - 2) + '…');
  });

  it('a header block that is not all fields is left exactly as it is, with no notice', () => {
    const cases = [
      'From: a\r\nnot a field line\r\nX-Portal-Notice: n\r\n\r\nbody', // a line that is no field
      ' continuation first\r\nX-Portal-Notice: n\r\n\r\nbody', // starts with a continuation
      'From: a\r\nX-Portal-Notice: n\nBcc: x@y\r\n\r\nbody', // a bare LF
      'From: a\r\nX-Portal-Notice: n\rBcc: x@y\r\n\r\nbody', // a bare CR
    ];
    for (const text of cases) {
      const input = Buffer.from(text, 'latin1');
      const out = takeNotice(input, H);
      expect(out.notice, JSON.stringify(text)).toBeNull();
      expect(out.message).toBe(input);
    }
  });

  it('8-bit bytes anywhere in the header block survive byte for byte', () => {
    const headers = ['Subject: \xc3\xa9t\xc3\xa9 \xff\xfe', 'X-Portal-Notice: \xe9\xff', 'X-Other: \x80\x81\x82'];
    const { message: out, notice } = takeNotice(message(headers, '\x00\x01\xff\r\n'), H);
    expect(notice).toBe('éÿ');
    expect(out.equals(message([headers[0]!, headers[2]!], '\x00\x01\xff\r\n'))).toBe(true);
  });

  it('an empty message and a message of only a blank line give nothing', () => {
    expect(takeNotice(Buffer.alloc(0), H).notice).toBeNull();
    expect(takeNotice(Buffer.from('\r\nX-Portal-Notice: body\r\n'), H).notice).toBeNull();
  });
});

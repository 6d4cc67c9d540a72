// conformMessage judged by an independent reader: Python's email package parses
// the message before and after repair, and every leaf part must decode to the
// same bytes; every line of the result must be at most 998 bytes plus CRLF.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { conformMessage, foldLine, type Conformed } from '../../src/mime/conform.ts';
import { decodeQuotedPrintable, quotedPrintable } from '../../src/mime/transfer-encoding.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conform-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Python's view: each leaf part's type and decoded payload (hex), and the top-level fields unfolded. */
const READER = `
import email, json, re, sys
from email import policy
with open(sys.argv[1], 'rb') as f:
    msg = email.message_from_bytes(f.read(), policy=policy.compat32)  # from bytes: no newline translation
parts = []
for part in msg.walk():
    if part.is_multipart():
        continue
    payload = part.get_payload(decode=True)
    parts.append({'type': part.get_content_type(), 'hex': payload.hex()})
headers = [[k.lower(), re.sub(r'\\r?\\n(?=[ \\t])', '', str(v))] for k, v in msg.items()]
print(json.dumps({'parts': parts, 'headers': headers}))
`;

interface PythonView {
  parts: { type: string; hex: string }[];
  headers: [string, string][];
}

let files = 0;
function python(message: Buffer): PythonView {
  const file = path.join(dir, `m${files++}.eml`);
  fs.writeFileSync(file, message);
  return JSON.parse(execFileSync('python3', ['-c', READER, file], { maxBuffer: 64 * 1024 * 1024 }).toString('utf8')) as PythonView;
}

/** Python's quopri decoding of each of `encoded`, in one run. */
function pythonQpDecode(encoded: Buffer[]): Buffer[] {
  const names = encoded.map((data) => {
    const file = path.join(dir, `q${files++}.txt`);
    fs.writeFileSync(file, data);
    return file;
  });
  const script = 'import quopri, sys\nfor name in sys.argv[1:]: print(quopri.decodestring(open(name, "rb").read()).hex())';
  return execFileSync('python3', ['-c', script, ...names]).toString().trim().split('\n').map((hex) => Buffer.from(hex.trim(), 'hex'));
}

const msg = (text: string): Buffer => Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'utf8');

/** Every line ends in CRLF (the last may end the message without one) and is at most 998 bytes before it. */
function expectConforming(body: Buffer): void {
  const text = body.toString('latin1');
  expect(text).not.toMatch(/\r(?!\n)|(?<!\r)\n/);
  const longest = Math.max(...text.split('\r\n').map((line) => line.length));
  expect(longest).toBeLessThanOrEqual(998);
}

/** Repaired, conforming, and every part decodes as before. */
function expectRepaired(before: Buffer, result: Conformed): PythonView {
  expect(result.unfixable).toEqual([]);
  expect(result.body).not.toBe(before);
  expectConforming(result.body);
  const was = python(before);
  const now = python(result.body);
  expect(now.parts).toEqual(was.parts);
  return now;
}

/** The body of a single-part message: after the first blank line. */
const bodyOf = (message: Buffer): string => message.toString('latin1').split('\r\n\r\n').slice(1).join('\r\n\r\n');

describe('conformMessage', () => {
  it('fast path: with no line over 998 bytes, the very same Buffer comes back', () => {
    const message = msg(`From: a@example.org\nSubject: fine\n\n${'y'.repeat(998)}\n${'z'.repeat(500)}\n`);
    const result = conformMessage(message);
    expect(result).toEqual({ body: message, repairs: [], unfixable: [], brokenDkimSignature: false });
    expect(result.body).toBe(message);
  });

  it('a 2,000-character text/plain line is re-encoded quoted-printable; the other fields stay byte for byte', () => {
    const line = 'word '.repeat(400);
    const before = msg(`From: a@example.org\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\nX-Keep:  odd   spacing\n\nshort\n${line}\nend\n`);
    const result = conformMessage(before);
    expectRepaired(before, result);
    expect(result.repairs).toEqual([{ part: 'message', action: 'quoted-printable' }]);
    const text = result.body.toString('latin1');
    expect(text.startsWith('From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\nX-Keep:  odd   spacing\r\n\r\nshort\r\n')).toBe(true);
    expect(text.endsWith('\r\nend\r\n')).toBe(true);
    expect(bodyOf(result.body).split('\r\n').every((l) => l.length <= 76)).toBe(true);
  });

  it('HTML with a 70,000-character line', () => {
    const html = `<html><body>${'<td class="c">caf\u00e9 = 5&nbsp;</td>'.repeat(2500)}</body></html>`;
    expect(html.length).toBeGreaterThan(70_000);
    const before = msg(`From: a@example.org\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n${html}\n`);
    const result = conformMessage(before);
    const now = expectRepaired(before, result);
    expect(Buffer.from(now.parts[0]!.hex, 'hex').toString('utf8')).toBe(`${html}\r\n`);
  });

  it('multipart/alternative: the long part is re-encoded, the short one stays byte-identical', () => {
    const plain = 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nShort plain text.\nSecond line.';
    const before = msg(
      `From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="b1"\n\n` +
        `preamble\n--b1\n${plain}\n--b1\nContent-Type: text/html; charset=utf-8\n\n<p>${'x'.repeat(3000)}</p>\n--b1--\nepilogue\n`,
    );
    const result = conformMessage(before);
    const now = expectRepaired(before, result);
    expect(now.parts.map((p) => p.type)).toEqual(['text/plain', 'text/html']);
    expect(result.repairs).toEqual([{ part: '2', action: 'quoted-printable' }]);
    expect(result.body.includes(msg(`--b1\n${plain}\n--b1\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n`))).toBe(true);
    expect(result.body.toString('latin1').endsWith('</p>\r\n--b1--\r\nepilogue\r\n')).toBe(true);
  });

  it('nested multipart/mixed > alternative + attachment; a non-text 7bit part becomes base64 and round-trips exactly', () => {
    const json = `{"rows":[${Array.from({ length: 300 }, (_, i) => `{"id":${i},"v":"x\\r\\n"}`).join(',')}]}\r\n{"second":"line"}`;
    const before = msg(
      `From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outer\n\n` +
        `--outer\nContent-Type: multipart/alternative; boundary="inner"\n\n` +
        `--inner\nContent-Type: text/plain\n\nplain ${'p'.repeat(1200)}\n` +
        `--inner\nContent-Type: text/html\n\n<b>short</b>\n--inner--\n` +
        `--outer\nContent-Type: application/json\nContent-Disposition: attachment; filename="rows.json"\n\n${json}\n--outer--\n`,
    );
    const result = conformMessage(before);
    const now = expectRepaired(before, result);
    expect(now.parts.map((p) => p.type)).toEqual(['text/plain', 'text/html', 'application/json']);
    expect(Buffer.from(now.parts[2]!.hex, 'hex').toString('latin1')).toBe(json);
    expect(result.repairs).toEqual([
      { part: '1.1', action: 'quoted-printable' },
      { part: '2', action: 'base64' },
    ]);
  });

  it('8-bit UTF-8 text keeps every byte', () => {
    const line = 'Grüße aus Köln, ½ € — 日本語のテキスト 🎉 '.repeat(60);
    const before = msg(`From: a@example.org\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n${line}\n`);
    const result = conformMessage(before);
    const now = expectRepaired(before, result);
    expect(Buffer.from(now.parts[0]!.hex, 'hex').toString('utf8')).toBe(`${line}\r\n`);
    expect(result.body.subarray(0, result.body.length).every((b) => b < 0x80)).toBe(true);
  });

  it('trailing spaces, "=" signs, leading dots and a line that is just "." survive', () => {
    const body = ['a = b == c =3D d   ', '.', '..two dots', '.leading dot', `${'x = '.repeat(300)}\t`, '-- not a boundary', 'tab\t', ''].join('\r\n');
    const before = Buffer.from(`From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${body}`, 'latin1');
    const result = conformMessage(before);
    const now = expectRepaired(before, result);
    expect(Buffer.from(now.parts[0]!.hex, 'hex').toString('latin1')).toBe(body);
    const lines = bodyOf(result.body).split('\r\n');
    expect(lines).toContain('.');
    expect(lines.some((l) => /[ \t]$/.test(l))).toBe(false);
  });

  it('quoted-printable with over-long encoded lines (broken by the sender) is decoded and encoded again', () => {
    const encoded = `caf=C3=A9 ${'=3D=3d'.repeat(400)} lower-case hex and a stray = sign\r\nnext =E2=82=AC line`;
    const before = Buffer.from(`From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${encoded}\r\n`, 'latin1');
    const result = conformMessage(before);
    expectRepaired(before, result);
    expect(result.repairs).toEqual([{ part: 'message', action: 'quoted-printable-rewrapped' }]);
    expect(result.body.toString('latin1')).toContain('Content-Transfer-Encoding: quoted-printable\r\n\r\n');
  });

  it('base64 with over-long lines is re-wrapped at 76', () => {
    const data = crypto.randomBytes(5000);
    const before = Buffer.from(`From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n${data.toString('base64')}\r\n`, 'latin1');
    const result = conformMessage(before);
    const now = expectRepaired(before, result);
    expect(Buffer.from(now.parts[0]!.hex, 'hex').equals(data)).toBe(true);
    expect(bodyOf(result.body).split('\r\n').every((l) => l.length <= 76)).toBe(true);
    expect(result.repairs).toEqual([{ part: 'message', action: 'base64-rewrapped' }]);
    expect(result.body.toString('latin1').endsWith('\r\n')).toBe(true);
  });

  it('a long Subject is folded at whitespace; Python reads the same value after unfolding', () => {
    const subject = Array.from({ length: 400 }, (_, i) => `word${i}`).join(' ');
    const before = msg(`From: a@example.org\nSubject: ${subject}\nTo: b@example.org\n\nbody\n`);
    const result = conformMessage(before);
    const now = expectRepaired(before, result);
    expect(now.headers).toEqual(python(before).headers);
    expect(now.headers.find(([name]) => name === 'subject')?.[1]).toBe(subject);
    expect(result.repairs).toEqual([{ part: 'message', action: 'header-folded' }]);
    expect(result.body.toString('latin1')).toMatch(/^From: a@example.org\r\nSubject: word0 [^\r]*\r\n word\d+/);
    expect(result.body.toString('latin1').endsWith('To: b@example.org\r\n\r\nbody\r\n')).toBe(true);
  });

  it('a 1,500-character header token with no whitespace is unfixable and left as it was', () => {
    const token = 'A'.repeat(1500);
    const before = msg(`From: a@example.org\nX-Token: ${token}\n\nbody\n`);
    const result = conformMessage(before);
    expect(result.unfixable).toEqual([{ part: 'message', reason: 'a header line over 998 bytes without whitespace to fold at' }]);
    expect(result.body.equals(before)).toBe(true);
  });

  it('folds a header line repeatedly, never leaving a whitespace-only line', () => {
    const line = `X-List: ${'a'.repeat(900)} ${'b'.repeat(900)} ${'c'.repeat(900)}`;
    const pieces = foldLine(line);
    expect(pieces.length).toBe(3);
    expect(pieces.join('')).toBe(line);
    expect(pieces.every((p) => p.length <= 998 && /[^ \t]/.test(p))).toBe(true);
    expect(foldLine(`X: ${'a'.repeat(1000)}${' '.repeat(10)}`)).toHaveLength(1); // only trailing whitespace: no place to cut
  });

  it('boundaries compare case-sensitively and must stand alone on their line', () => {
    const before = msg(
      `From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=Bnd\n\n--Bnd\nContent-Type: text/plain\n\n` +
        `--bnd\n--Bnd-not\n${'x'.repeat(1100)}\n--Bnd--\n`,
    );
    const result = conformMessage(before);
    const now = expectRepaired(before, result);
    expect(now.parts).toHaveLength(1);
    expect(result.repairs).toEqual([{ part: '1', action: 'quoted-printable' }]);
  });

  it('a multipart with no closing boundary: the last part runs to the end and is repaired, nothing lost', () => {
    const before = msg(
      `From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="zz"\n\n` +
        `--zz\nContent-Type: text/plain\n\nfirst\n--zz\nContent-Type: text/plain\n\n${'last '.repeat(300)}\nmore\n`,
    );
    const result = conformMessage(before);
    const now = expectRepaired(before, result);
    expect(now.parts).toHaveLength(2);
    expect(result.repairs).toEqual([{ part: '2', action: 'quoted-printable' }]);
  });

  it('a multipart whose boundary never occurs, or that has no boundary, is left as it was and reported', () => {
    for (const [type, reason] of [
      ['multipart/mixed; boundary="nowhere"', 'a multipart whose boundary never occurs'],
      ['multipart/mixed', 'a multipart without a boundary parameter'],
    ] as const) {
      const before = msg(`From: a@example.org\nMIME-Version: 1.0\nContent-Type: ${type}\n\n--elsewhere\n\n${'x'.repeat(1200)}\n`);
      const result = conformMessage(before);
      expect(result.unfixable).toEqual([{ part: 'message', reason }]);
      expect(result.body.equals(before)).toBe(true);
    }
  });

  it('a long line in multipart/signed content is unfixable: re-encoding would break the signature', () => {
    const before = msg(
      `From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=s\n\n` +
        `--s\nContent-Type: text/plain\n\n${'signed '.repeat(200)}\n--s\nContent-Type: application/pkcs7-signature\nContent-Transfer-Encoding: base64\n\nMIIB\n--s--\n`,
    );
    const result = conformMessage(before);
    expect(result.unfixable).toEqual([{ part: '1', reason: 'a line over 998 bytes in signed content (RFC 1847), which a repair would invalidate' }]);
    expect(result.body.equals(before)).toBe(true);
  });

  it('an encoding it cannot re-encode (x-uuencode) or a message/partial body is left as it was and reported', () => {
    const uu = msg(`From: a@example.org\nMIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: x-uuencode (old)\n\n${'M'.repeat(1200)}\n`);
    expect(conformMessage(uu).unfixable).toEqual([{ part: 'message', reason: 'a Content-Transfer-Encoding other than 7bit, 8bit, binary, quoted-printable or base64' }]);
    const partial = msg(`From: a@example.org\nMIME-Version: 1.0\nContent-Type: message/partial; id="x"; number=1\n\n${'M'.repeat(1200)}\n`);
    const result = conformMessage(partial);
    expect(result.unfixable).toEqual([{ part: 'message', reason: 'a message/partial part, which may not be re-encoded' }]);
    expect(result.body.equals(partial)).toBe(true);
  });

  it('no MIME-Version and no Content-Type: MIME-Version and the encoding are added, no Content-Type is invented', () => {
    const before = msg(`From: a@example.org\nSubject: legacy\n\n${'plain words '.repeat(120)}\n`);
    const result = conformMessage(before);
    expectRepaired(before, result);
    expect(result.body.toString('latin1')).toMatch(/^From: a@example.org\r\nSubject: legacy\r\nMIME-Version: 1\.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n/);
    expect(result.body.toString('latin1')).not.toMatch(/content-type/i);
    expect(result.repairs).toEqual([
      { part: 'message', action: 'quoted-printable' },
      { part: 'message', action: 'mime-version-added' },
    ]);
  });

  it('a message/rfc822 part is repaired as a message: its header folded, its body encoded', () => {
    const inner = `From: c@example.org\nSubject: ${'inner '.repeat(250)}\n\n${'forwarded '.repeat(150)}\n`;
    const before = msg(
      `From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/plain\n\nsee attached\n` +
        `--m\nContent-Type: message/rfc822\n\n${inner}--m--\n`,
    );
    const result = conformMessage(before);
    const now = expectRepaired(before, result);
    expect(now.parts.map((p) => p.type)).toEqual(['text/plain', 'text/plain']);
    expect(result.repairs).toEqual([
      { part: '2', action: 'quoted-printable' },
      { part: '2', action: 'header-folded' },
      { part: '2', action: 'mime-version-added' },
    ]);
  });

  it('a long preamble line is split, never into a line that starts with "-"', () => {
    const preamble = `${'p'.repeat(997)}--x${'q'.repeat(500)}`;
    const before = msg(`From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=x\n\n${preamble}\n--x\nContent-Type: text/plain\n\nhi\n--x--\n`);
    const result = conformMessage(before);
    const now = expectRepaired(before, result);
    expect(now.parts).toHaveLength(1);
    expect(result.repairs).toEqual([{ part: 'message', action: 'preamble-split' }]);
    expect(result.body.toString('latin1').split('\r\n').filter((l) => l.startsWith('-'))).toEqual(['--x', '--x--']);
  });

  it('reports that a repaired message carries a DKIM-Signature, which the repair breaks', () => {
    const dkim = 'DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; h=from:subject; bh=abc=; b=def=\n';
    const long = 'z'.repeat(1500);
    expect(conformMessage(msg(`${dkim}From: a@example.org\n\n${long}\n`)).brokenDkimSignature).toBe(true);
    expect(conformMessage(msg(`From: a@example.org\n\n${long}\n`)).brokenDkimSignature).toBe(false);
    expect(conformMessage(msg(`${dkim}From: a@example.org\n\nshort\n`)).brokenDkimSignature).toBe(false);
  });

  it('deep nesting is walked up to a limit and never throws', () => {
    let message = `Content-Type: text/plain\n\n${'deep '.repeat(300)}\n`;
    for (let i = 0; i < 200; i++) message = `Content-Type: multipart/mixed; boundary=b${i}\n\n--b${i}\n${message}--b${i}--\n`;
    const result = conformMessage(msg(`From: a@example.org\nMIME-Version: 1.0\n${message}`));
    expect(result.unfixable).toEqual([{ part: expect.stringMatching(/^1(\.1)+$/) as unknown as string, reason: 'MIME nesting deeper than 64' }]);
  });
});

describe('quotedPrintable', () => {
  it('decodes (Python quopri and libqp) to the same bytes, lines ≤ 76, none starting with "-" or ending in whitespace', () => {
    const alphabet = Buffer.from(' \t=-.\r\nab\xe9\x00\xff', 'latin1');
    const samples = Array.from({ length: 40 }, (_, round) => Buffer.from(Array.from({ length: 50 + round * 40 }, () => alphabet[crypto.randomInt(alphabet.length)]!)));
    const encoded = samples.map((data) => quotedPrintable(data));
    for (const [i, data] of samples.entries()) {
      const lines = encoded[i]!.toString('latin1').split('\r\n');
      expect(lines.every((l) => l.length <= 76 && !l.startsWith('-') && !/[ \t]$/.test(l))).toBe(true);
      expect(encoded[i]!.every((b) => b < 0x80)).toBe(true);
      expect(decodeQuotedPrintable(encoded[i]!).equals(data)).toBe(true);
    }
    expect(pythonQpDecode(encoded)).toEqual(samples);
  });
});

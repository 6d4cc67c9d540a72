// scanMessage over real MIME: which parts are read (text, HTML, text-like
// attachments, subject) and which are not (binary, preamble, epilogue), the
// transfer encodings and charsets, matches across window and chunk edges, the
// byte/time/structure limits, and that no result ever carries matched text.
import { describe, expect, it } from 'vitest';
import { buildDetectors } from '../../src/policy/dlp/detectors.ts';
import { ssnDetector } from '../../src/policy/dlp/detectors/ssn.ts';
import { MAX_DEPTH } from '../../src/policy/dlp/mime-walker.ts';
import { createScanner, scanMessage, type DlpScanResult } from '../../src/policy/dlp/scan.ts';
import { OVERLAP_CHARS, WINDOW_CHARS } from '../../src/policy/dlp/windows.ts';

const detectors = buildDetectors();
const limits = { maxBytes: 50 * 1024 * 1024, maxMs: 10_000 };
const b64 = (s: string | Buffer, lineLength = 76): string =>
  Buffer.from(s).toString('base64').replace(new RegExp(`(.{${lineLength}})`, 'g'), '$1\r\n').trim();

interface Part {
  headers: string[];
  body: string;
}
function message(headers: string[], parts: Part[], boundary = 'b=_1'): Buffer {
  const lines = [...headers, 'MIME-Version: 1.0', `Content-Type: multipart/mixed; boundary="${boundary}"`, '', 'This is a multi-part message.'];
  for (const p of parts) lines.push(`--${boundary}`, ...p.headers, '', p.body);
  lines.push(`--${boundary}--`, 'epilogue', '');
  return Buffer.from(lines.join('\r\n'));
}
const summary = (r: DlpScanResult): string[] => r.hits.map((h) => `${h.part}:${h.detector}=${h.count}`);

describe('scanMessage', () => {
  const planted = ['078-05-1120', '4111111111111111', '12345678', '287-65-4321', 'J45.909', '03/14/1975'];
  const mixed = message(
    ['From: a@clinic.example', 'To: b@example.org', 'Subject: lab results'],
    [
      { headers: ['Content-Type: text/plain; charset=utf-8'], body: 'Patient SSN 078-05-1120, see attached.' },
      {
        headers: ['Content-Type: text/html; charset=utf-8'],
        // entity-encoded digits and dashes, an inline tag inside the number, a comment and a style block
        body: '<html><style>.x{width:4111111111111111px}</style><p>Card&#58; &#52;111&#x2d;1111-<b>1111</b>&ndash;1111</p><!-- 287-65-4321 --></html>',
      },
      {
        headers: ['Content-Type: text/plain; charset=iso-8859-1', 'Content-Transfer-Encoding: quoted-printable'],
        // a soft line break inside the number, and an encoded "é"
        body: 'R=E9sum=E9: MRN: 1234=\r\n5678 and DOB: 03/=\r\n14/1975',
      },
      {
        headers: ['Content-Type: text/csv; name="patients.csv"', 'Content-Disposition: attachment; filename="patients.csv"', 'Content-Transfer-Encoding: base64'],
        body: b64('name,ssn,dx\nA. Patient,287-65-4321,J45.909\n'),
      },
      {
        headers: ['Content-Type: image/png; name="scan.png"', 'Content-Disposition: attachment; filename="scan.png"', 'Content-Transfer-Encoding: base64'],
        body: b64(Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47]), Buffer.from('SSN 123-45-6789 4111111111111111')])),
      },
    ],
  );

  it('reads text, HTML, QP and base64 text attachments; skips binary parts, preamble and epilogue', async () => {
    const r = await scanMessage(mixed, detectors, limits);
    expect(r.truncated).toBe(false);
    expect(r.truncatedBy).toBeUndefined();
    expect(summary(r)).toEqual([
      'text:ssn=1',
      'text:mrn=1',
      'text:dob=1',
      'html:credit-card=1',
      'attachment:ssn=1',
      'attachment:icd10=1',
    ]);
    expect(r.ms).toBeGreaterThan(0);
  });

  it('never returns the matched text', async () => {
    const json = JSON.stringify(await scanMessage(mixed, detectors, limits));
    for (const secret of planted) {
      expect(json).not.toContain(secret);
      expect(json).not.toContain(secret.replace(/\D/g, ''));
    }
    expect(Object.keys(JSON.parse(json) as object).sort()).toEqual(['hits', 'ms', 'truncated']);
  });

  it('finds a hit in an encoded-word subject (B and Q, a word split in two)', async () => {
    const subject = `=?UTF-8?B?${b64('SSN 078-05')}?= =?UTF-8?Q?-1120_and_dx_E11?=`;
    const r = await scanMessage(Buffer.from(`Subject: ${subject}\r\nContent-Type: text/plain\r\n\r\nhello\r\n`), detectors, limits);
    expect(summary(r)).toEqual(['subject:ssn=1', 'subject:icd10=1']);
  });

  it('scans a single-part message, and text in UTF-16 base64', async () => {
    const single = await scanMessage(Buffer.from('Subject: hi\r\n\r\nDOB: 1975-03-14\r\n'), detectors, limits);
    expect(summary(single)).toEqual(['text:dob=1']);
    const utf16 = message([], [{ headers: ['Content-Type: text/plain; charset=utf-16le', 'Content-Transfer-Encoding: base64'], body: b64(Buffer.from('SSN 078-05-1120', 'utf16le')) }]);
    expect(summary(await scanMessage(utf16, detectors, limits))).toEqual(['text:ssn=1']);
  });

  it('a body not separated from the header block by an empty line is still read, and an mbox From line skipped', async () => {
    const raw = 'From someone@example.org Mon Nov 24 05:00:00 2025\nSubject: SSN 078-05-1120\nX-Note: no empty line follows\nthe patient MRN: 12345678\n';
    expect(summary(await scanMessage(Buffer.from(raw), detectors, limits))).toEqual(['subject:ssn=1', 'text:mrn=1']);
  });

  it('walks nested multiparts and embedded messages (read as attachments); an outer boundary ends inner parts', async () => {
    const raw = [
      'Subject: outer',
      'Content-Type: multipart/mixed; boundary=outer',
      '',
      '--outer',
      'Content-Type: multipart/alternative; boundary=inner',
      '',
      '--inner',
      'Content-Type: text/plain',
      '',
      'SSN 078-05-1120',
      '--inner',
      'Content-Type: text/html',
      '',
      '<p>SSN 078-05-1120</p>',
      // no closing --inner--: the outer boundary ends it
      '--outer',
      'Content-Type: message/rfc822',
      '',
      'Subject: fwd: card 4111 1111 1111 1111',
      'Content-Type: multipart/alternative; boundary=fwd',
      '',
      '--fwd',
      'Content-Type: text/plain',
      '',
      'forwarded MRN: 7654321',
      '--fwd--',
      '--outer',
      'Content-Type: text/plain',
      '',
      'after the forward: DOB 1975-03-14',
      '--outer',
      'Content-Type: application/octet-stream; name="export.json"',
      'Content-Transfer-Encoding: base64',
      '',
      b64('{"dx":"E11.9"}'),
      '--outer--',
      '',
    ].join('\n'); // bare LF line ends
    expect(summary(await scanMessage(Buffer.from(raw), detectors, limits))).toEqual([
      'text:ssn=1',
      'text:dob=1',
      'html:ssn=1',
      'attachment:credit-card=1',
      'attachment:mrn=1',
      'attachment:icd10=1',
    ]);
  });

  it('normalises look-alike characters (Unicode dashes, no-break spaces, zero-width, full-width digits)', async () => {
    const body = 'SSN 078\u201305\u20131120; card 4111\u00a01111\u00a01111\u00a01111; MRN: \uff11\uff12\uff13\uff14\u200b5678';
    const raw = Buffer.from(`Content-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`);
    expect(summary(await scanMessage(raw, detectors, limits))).toEqual(['text:ssn=1', 'text:credit-card=1', 'text:mrn=1']);
  });
});

describe('window and chunk edges', () => {
  it('a match across a window edge is found once', async () => {
    for (const offset of [-20, -11, -5, 0, 3, OVERLAP_CHARS - 5]) {
      const filler = 'x '.repeat((WINDOW_CHARS + offset) / 2);
      const text = `${filler}SSN 078-05-1120 and later${' y'.repeat(WINDOW_CHARS)} 287-65-4321`;
      const r = await scanMessage(Buffer.from(`Content-Type: text/plain\r\n\r\n${text}\r\n`), detectors, limits);
      expect(summary(r), `offset ${offset}`).toEqual(['text:ssn=2']);
    }
  });

  it('context before a window edge still counts: a keyword for a bare SSN, a digit that disqualifies one', async () => {
    for (const offset of [-5, -2, 0]) {
      const keyword = `${'x'.repeat(WINDOW_CHARS + offset - ' SSN: '.length)} SSN: 287654321`;
      const glued = `${'x'.repeat(WINDOW_CHARS + offset - 1)}9287-65-4321`;
      for (const [text, hits] of [[keyword, ['text:ssn=1']], [glued, []]] as const) {
        const tail = ' z'.repeat(OVERLAP_CHARS); // so the text goes on past the window's right context
        const r = await scanMessage(Buffer.from(`Content-Type: text/plain\r\n\r\n${text}${tail}\r\n`), detectors, limits);
        expect(summary(r), `offset ${offset}`).toEqual(hits);
      }
    }
  });

  it('counts over many windows equal one scan of the whole text', async () => {
    let seed = 7;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const pieces: string[] = [];
    for (let i = 0; i < 3000; i++) pieces.push(random() < 0.1 ? '078-05-1120' : random() < 0.05 ? 'SSN 123456789' : 'word'.repeat(1 + Math.floor(random() * 40)));
    const text = pieces.join(' ');
    expect(text.length).toBeGreaterThan(5 * WINDOW_CHARS);
    const r = await scanMessage(Buffer.from(`Content-Type: text/plain\r\n\r\n${text}\r\n`), [ssnDetector], limits);
    expect(r.hits).toEqual([{ detector: 'ssn', part: 'text', count: ssnDetector.scan(text) }]);
  });

  it('the same hits whatever the raw chunk sizes (boundaries, QP and base64 split anywhere)', async () => {
    const raw = message(
      ['Subject: =?UTF-8?Q?dx_E11?='],
      [
        { headers: ['Content-Type: text/plain', 'Content-Transfer-Encoding: quoted-printable'], body: 'SSN =30=37=38-05-1120 =\r\ncard 4111-1111-1111-1111' },
        { headers: ['Content-Type: text/html', 'Content-Transfer-Encoding: base64'], body: b64('<p>DOB&#58; 03/14/1975 &amp; MRN&#58; 12345678</p>', 8) },
        { headers: ['Content-Type: application/json; name=a.json', 'Content-Transfer-Encoding: base64'], body: b64('{"icd":"J45.909"}') },
      ],
    );
    const whole = await scanMessage(raw, detectors, limits);
    expect(summary(whole)).toEqual(['subject:icd10=1', 'text:ssn=1', 'text:credit-card=1', 'html:mrn=1', 'html:dob=1', 'attachment:icd10=1']);
    for (const size of [1, 2, 3, 7, 13, 64]) {
      const scanner = createScanner(detectors, limits);
      for (let i = 0; i < raw.length; i += size) scanner.write(raw.subarray(i, i + size));
      expect(summary(scanner.end()), `chunks of ${size}`).toEqual(summary(whole));
    }
  });
});

describe('limits', () => {
  const big = Buffer.from(`Content-Type: text/plain\r\n\r\n${'lorem ipsum 2024 '.repeat(200_000)}\r\nSSN 078-05-1120\r\n`);

  it('a tiny time budget stops the scan and says so', async () => {
    const r = await scanMessage(big, detectors, { maxBytes: limits.maxBytes, maxMs: 0.01 });
    expect(r.truncated).toBe(true);
    expect(r.truncatedBy).toBe('maxMs');
    expect(r.hits).toEqual([]);
  });

  it('a byte limit scans what it read, then stops truncated', async () => {
    const raw = Buffer.from('Content-Type: text/plain\r\n\r\nSSN 078-05-1120\r\n' + 'z'.repeat(10_000) + '\r\n287-65-4321\r\n');
    const r = await scanMessage(raw, detectors, { maxBytes: 1000, maxMs: 10_000 });
    expect(r).toMatchObject({ truncated: true, truncatedBy: 'maxBytes', hits: [{ detector: 'ssn', part: 'text', count: 1 }] });
    const all = await scanMessage(raw, detectors, { maxBytes: raw.length, maxMs: 10_000 });
    expect(all).toMatchObject({ truncated: false, hits: [{ detector: 'ssn', part: 'text', count: 2 }] });
  });

  it('nesting deeper than MAX_DEPTH stops the walk as truncated (structure)', async () => {
    const lines: string[] = [];
    for (let i = 0; i <= MAX_DEPTH; i++) lines.push(`Content-Type: multipart/mixed; boundary=d${i}`, '', `--d${i}`);
    lines.push('Content-Type: text/plain', '', 'SSN 078-05-1120', '');
    const r = await scanMessage(Buffer.from(lines.join('\r\n')), detectors, limits);
    expect(r).toMatchObject({ truncated: true, truncatedBy: 'structure' });
  });

  it('a header block over the cap stops the walk as truncated (structure)', async () => {
    const raw = Buffer.from(`Subject: x\r\nX-Big: ${'a'.repeat(300 * 1024)}\r\n\r\nSSN 078-05-1120\r\n`);
    expect(await scanMessage(raw, detectors, limits)).toMatchObject({ truncated: true, truncatedBy: 'structure' });
  });
});

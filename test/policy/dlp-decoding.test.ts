// Decoding cases where mail clients show text that a naive decoder would turn
// into garbage (and the DLP would miss): base64 whose lines are padded one by
// one, windows-1252 punctuation (en dashes typed by Outlook between digits,
// also under the iso-8859-1 label), a repeated boundary parameter, and a file
// name sent as an RFC 2047 encoded-word.
import { describe, expect, it } from 'vitest';
import { buildDetectors } from '../../src/policy/dlp/detectors.ts';
import { createScanner, scanMessage, type DlpScanResult } from '../../src/policy/dlp/scan.ts';

const detectors = buildDetectors();
const limits = { maxBytes: 50 * 1024 * 1024, maxMs: 10_000 };
const summary = (r: DlpScanResult): string[] => r.hits.map((h) => `${h.part}:${h.detector}=${h.count}`);
const single = (headers: string[], body: Buffer | string): Buffer =>
  Buffer.concat([Buffer.from([...headers, '', ''].join('\r\n')), Buffer.from(body), Buffer.from('\r\n')]);

describe('DLP decoding', () => {
  it('reads base64 whose lines are padded one by one, whatever the chunk sizes', async () => {
    // Each line encoded on its own: "=" in mid-body; the first line short of one "=", the last one without any (its last digit is in the carry at the end).
    const [first, middle, last] = ['Patient SSN: ', '078-05-1120', ' card 4111 1111 1111 1111'].map((line) => Buffer.from(line).toString('base64'));
    expect([first, middle, last].map((b64) => /=*$/.exec(b64!)![0])).toEqual(['==', '=', '==']);
    const body = [first!.slice(0, -1), middle, last!.replace(/=+$/, '')].join('\r\n');
    const raw = single(['Content-Type: text/plain', 'Content-Transfer-Encoding: base64'], body);
    const whole = await scanMessage(raw, detectors, limits);
    expect(summary(whole)).toEqual(['text:ssn=1', 'text:credit-card=1']);
    for (const size of [1, 2, 3, 5, 7]) {
      const scanner = createScanner(detectors, limits);
      for (let i = 0; i < raw.length; i += size) scanner.write(raw.subarray(i, i + size));
      expect(summary(scanner.end()), `chunks of ${size}`).toEqual(summary(whole));
    }
  });

  it('reads windows-1252 en dashes (also labelled iso-8859-1, and quoted-printable) as dashes', async () => {
    const dashed = Buffer.from([...Buffer.from('SSN 078'), 0x96, ...Buffer.from('05'), 0x96, ...Buffer.from('1120')]);
    for (const charset of ['windows-1252', 'iso-8859-1', 'us-ascii']) {
      const r = await scanMessage(single([`Content-Type: text/plain; charset=${charset}`, 'Content-Transfer-Encoding: 8bit'], dashed), detectors, limits);
      expect(summary(r), charset).toEqual(['text:ssn=1']);
    }
    const qp = single(['Content-Type: text/plain; charset="Windows-1252"', 'Content-Transfer-Encoding: quoted-printable'], 'SSN 078=9605=961120');
    expect(summary(await scanMessage(qp, detectors, limits))).toEqual(['text:ssn=1']);
    const subject = single(['Subject: =?windows-1252?Q?SSN_078=9605=961120?=', 'Content-Type: text/plain'], 'hello');
    expect(summary(await scanMessage(subject, detectors, limits))).toEqual(['subject:ssn=1']);
  });

  it('a repeated boundary parameter: the first counts (as in libmime and mailparser), so the parts are read', async () => {
    const raw = [
      'Content-Type: multipart/mixed; boundary="one"; boundary="two"',
      '',
      '--one',
      'Content-Type: text/plain',
      '',
      'SSN 078-05-1120',
      '--one--',
      '',
    ].join('\r\n');
    expect(summary(await scanMessage(Buffer.from(raw), detectors, limits))).toEqual(['text:ssn=1']);
  });

  it('a file name sent as an encoded-word is decoded, so a CSV sent as octet-stream is read', async () => {
    const name = `=?UTF-8?B?${Buffer.from('patients.csv').toString('base64')}?=`;
    const raw = [
      'Content-Type: multipart/mixed; boundary=b',
      '',
      '--b',
      `Content-Type: application/octet-stream; name="${name}"`,
      `Content-Disposition: attachment; filename="${name}"`,
      '',
      'name,ssn',
      'A. Patient,078-05-1120',
      '--b--',
      '',
    ].join('\r\n');
    expect(summary(await scanMessage(Buffer.from(raw), detectors, limits))).toEqual(['attachment:ssn=1']);
  });
});

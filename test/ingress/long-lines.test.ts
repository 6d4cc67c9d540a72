// Long lines at ingress: accepted up to max_line_bytes and repaired before they
// are queued (mime/conform.ts, whose own tests check the content with an
// independent parser), so that what is queued and passed on has no line over 998
// octets; logged as ingress.repaired, with a warning when a DKIM signature broke.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodeQuotedPrintable } from '../../src/mime/transfer-encoding.ts';
import { startTestIngress, submitOne } from './harness.ts';

let t: Awaited<ReturnType<typeof startTestIngress>>;
beforeAll(async () => {
  t = await startTestIngress();
});
afterAll(() => t.close());

const submit = (message: string) => submitOne(t, message);

const longestLine = (body: Buffer) => Math.max(...body.toString('latin1').split('\r\n').map((l) => l.length));

describe('long lines', () => {
  test('a 2,000-character HTML line is accepted, re-encoded quoted-printable, and logged', async () => {
    const html = `<html><body>${'<p>Result: normal</p>'.repeat(100)}</body></html>`;
    expect(html.length).toBeGreaterThan(2000);
    const { reply, queued } = await submit(`From: lab@clinic.test\r\nSubject: results\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n${html}\r\n`);
    expect(reply.code).toBe(250);
    expect(queued).toHaveLength(1);
    const body = queued[0]!.body;
    expect(longestLine(body)).toBeLessThanOrEqual(998);
    expect(body.toString('latin1')).toMatch(/\r\nContent-Transfer-Encoding: quoted-printable\r\n/i);
    // decoded, the body is the original text (RawClient.send ends it with one more CRLF)
    const encoded = body.subarray(body.indexOf('\r\n\r\n') + 4);
    expect(decodeQuotedPrintable(encoded).toString('utf8').trimEnd()).toBe(html);
    const log = t.logs.find((l) => l.event === 'ingress.repaired' && l.queueId === queued[0]!.queueId);
    expect(log).toMatchObject({ repairs: ['message: quoted-printable'], dkimSignatureBroken: false });
  });

  test('a DKIM-signed message that needed repair is logged as such', async () => {
    const dkim = 'DKIM-Signature: v=1; a=rsa-sha256; d=clinic.test; s=s1; h=from:subject; bh=abc=; b=def=\r\n';
    const { reply, queued } = await submit(`${dkim}From: lab@clinic.test\r\nSubject: s\r\n\r\n${'x'.repeat(1500)}\r\n`);
    expect(reply.code).toBe(250);
    const log = t.logs.find((l) => l.event === 'ingress.repaired' && l.queueId === queued[0]!.queueId);
    expect(log).toMatchObject({ dkimSignatureBroken: true, msg: expect.stringMatching(/DKIM signature no longer verifies/) });
  });

  test('a long header line is folded at whitespace', async () => {
    const subject = Array.from({ length: 300 }, (_v, i) => `word${i}`).join(' ');
    const { reply, queued } = await submit(`From: lab@clinic.test\r\nSubject: ${subject}\r\n\r\nbody\r\n`);
    expect(reply.code).toBe(250);
    expect(longestLine(queued[0]!.body)).toBeLessThanOrEqual(998);
    expect(queued[0]!.subject).toBe(subject);
  });

  test('a header line without whitespace to fold at is refused 552 5.6.0, nothing queued', async () => {
    const { reply, queued } = await submit(`From: lab@clinic.test\r\nX-Token: ${'t'.repeat(1500)}\r\n\r\nbody\r\n`);
    expect(reply.code).toBe(552);
    expect(reply.text).toMatch(/^5\.6\.0 /);
    expect(queued).toEqual([]);
  });

  test('a message within RFC 5321 limits is queued byte for byte (no repair, no log)', async () => {
    const text = `From: lab@clinic.test\r\nMessage-ID: <m1@clinic.test>\r\nSubject: s\r\n\r\n${'x'.repeat(998)}\r\n`;
    const { queued } = await submit(text);
    expect(queued[0]!.body.toString('latin1')).toContain(text);
    expect(t.logs.some((l) => l.event === 'ingress.repaired' && l.queueId === queued[0]!.queueId)).toBe(false);
  });
});

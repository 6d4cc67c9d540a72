// withBase64Lines judged against Node's own (native) base64 encoder: every length around the line and group boundaries, both line sizes
// in use (57 bytes for S/MIME, 48 for OpenPGP armor), and a large random body.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { withBase64Lines } from '../../src/crypto/base64-lines.ts';

/** What the output must be: Node's base64 of `data`, cut into lines of `lineChars`, each ending in CRLF. */
function expected(data: Buffer, lineChars: number): string {
  const text = data.toString('base64');
  let lines = '';
  for (let i = 0; i < text.length; i += lineChars) lines += `${text.slice(i, i + lineChars)}\r\n`;
  return lines;
}

describe('withBase64Lines', () => {
  it.each([
    [57, 76],
    [48, 64],
  ])('lines of %i bytes: matches Node base64 in %i-character CRLF lines for every length 0–400', (lineBytes, lineChars) => {
    for (let length = 0; length <= 400; length++) {
      const data = crypto.randomBytes(length);
      expect(withBase64Lines([], data, new Uint8Array(0), lineBytes).toString('latin1')).toBe(expected(data, lineChars));
    }
  });

  it('puts head parts before and the tail after, and encodes a view without reading outside it', () => {
    const backing = crypto.randomBytes(3000);
    const view = backing.subarray(1000, 2001);
    const out = withBase64Lines([Buffer.from('A: 1\r\n'), Buffer.from('\r\n')], view, Buffer.from('--end--\r\n'), 57);
    expect(out.toString('latin1')).toBe(`A: 1\r\n\r\n${expected(Buffer.from(view), 76)}--end--\r\n`);
  });

  it('decodes back to a 1 MB random body byte for byte', () => {
    const data = crypto.randomBytes(1024 * 1024 + 7);
    const out = withBase64Lines([], data, new Uint8Array(0), 48);
    expect(Buffer.from(out.toString('latin1'), 'base64').equals(data)).toBe(true);
    expect(out.toString('latin1').split('\r\n').slice(0, -2).every((line) => line.length === 64)).toBe(true);
  });

  it('refuses a line size that would pad in the middle of the text', () => {
    expect(() => withBase64Lines([], Buffer.alloc(10), new Uint8Array(0), 50)).toThrow(RangeError);
    expect(() => withBase64Lines([], Buffer.alloc(10), new Uint8Array(0), 0)).toThrow(/positive multiple of 3/);
  });
});

// Our ASCII armor judged against openpgp.js's own (openpgp.armor / unarmor), which
// pgp-armor.ts stands in for on speed and memory (see its comment): for every length
// around the line and group boundaries and a large random body, the same base64 and
// the same CRC-24 checksum, only in CRLF lines of 64 characters instead of LF lines of
// 60; and openpgp.js reads ours back to the very bytes. gpg reading it is in pgp-mime.test.ts.
import crypto from 'node:crypto';
import * as openpgp from 'openpgp';
import { describe, expect, it } from 'vitest';
import { withArmoredMessage } from '../../src/crypto/pgp-armor.ts';

const NO_HEADERS: openpgp.Config = { ...openpgp.config, showVersion: false, showComment: false };

/** The armor's base64 (lines joined) and its checksum line, whatever the line length and line ends. */
function payload(armor: string): { base64: string; checksum: string } {
  const lines = armor.split(/\r?\n/);
  const begin = lines.indexOf('-----BEGIN PGP MESSAGE-----');
  const end = lines.indexOf('-----END PGP MESSAGE-----');
  const body = lines.slice(begin + 2, end); // after the BEGIN line and the blank line
  const checksum = body.at(-1)!;
  expect(checksum).toMatch(/^=[A-Za-z0-9+/]{4}$/);
  return { base64: body.slice(0, -1).join(''), checksum };
}

describe('withArmoredMessage', () => {
  it('writes what openpgp.armor writes, in 64-character CRLF lines, for every length 0–200 and a 100 KB body', async () => {
    const lengths = [...Array.from({ length: 201 }, (_, n) => n), 100 * 1024 + 1];
    for (const length of lengths) {
      const data = crypto.randomBytes(length);
      const ours = withArmoredMessage('head\r\n', data, 'tail\r\n').toString('latin1');
      expect(ours.startsWith('head\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n')).toBe(true);
      expect(ours.endsWith('\r\n-----END PGP MESSAGE-----\r\ntail\r\n')).toBe(true);
      expect(ours).not.toMatch(/\r(?!\n)|(?<!\r)\n/);
      const lines = ours.split('\r\n').slice(3, -4);
      expect(lines.slice(0, -1).every((line) => line.length === 64)).toBe(true);
      expect(lines.at(-1)?.length ?? 1).toBeGreaterThan(0);
      expect(lines.at(-1)?.length ?? 64).toBeLessThanOrEqual(64);
      const theirs = openpgp.armor(openpgp.enums.armor.message, data, undefined, undefined, undefined, true, NO_HEADERS);
      expect(payload(ours)).toEqual(payload(theirs));
      const back = await openpgp.unarmor(ours.slice('head\r\n'.length, -'tail\r\n'.length), NO_HEADERS);
      expect(back.type).toBe(openpgp.enums.armor.message);
      expect(Buffer.from(back.data as Uint8Array).equals(data)).toBe(true);
    }
  });
});

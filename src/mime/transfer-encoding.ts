// Content-transfer-encodings (RFC 2045 §6) for bodies that must be written again
// in lines of at most 76 characters. Quoted-printable is decoded by libqp (the
// lenient decoder nodemailer uses) but encoded here: libqp's encoder builds its
// string one character at a time (6 s for a 25 MB body, on the ingress thread)
// and lets a lone CR or LF through; this loop writes straight into one buffer.
// Base64 is Node's own codec; lines are cut here (libbase64.wrap gives the same
// lines, 20–35 % slower on a 25 MB body).
import libqp from 'libqp';

/** RFC 2045 §6.7 (5) and §6.8: encoded lines are at most 76 characters, CRLF not counted. */
export const ENCODED_LINE = 76;

const CR = 0x0d;
const LF = 0x0a;
const HEX = Buffer.from('0123456789ABCDEF', 'latin1');

/**
 * `data` as quoted-printable (RFC 2045 §6.7) in lines of at most 76 characters.
 * A CRLF in the data stays a line break (a hard break, which decodes back to
 * CRLF); a CR or LF on its own is escaped. Escaped besides the rule's "=" and
 * non-printables: whitespace that would end a line, and a "-" that would start
 * one, so that no line can read as a boundary delimiter. The result ends with
 * CRLF exactly when `data` does.
 */
export function quotedPrintable(data: Uint8Array): Buffer {
  const n = data.length;
  // Worst case: every byte escaped (3) and a soft break ("=" CRLF) every 25 escapes.
  const out = Buffer.allocUnsafe(3 * n + 3 * Math.ceil(n / 24) + 8);
  let o = 0;
  let column = 0;
  for (let i = 0; i < n; i++) {
    const c = data[i]!;
    if (c === CR && data[i + 1] === LF) {
      out[o++] = CR;
      out[o++] = LF;
      column = 0;
      i++;
      continue;
    }
    // The last character of a line may take column 76; any other leaves room for a soft break's "=".
    const lastOnLine = i + 1 === n || (data[i + 1] === CR && data[i + 2] === LF);
    const printable = c >= 0x21 && c <= 0x7e && c !== 0x3d; // "=" starts an escape
    const blank = (c === 0x20 || c === 0x09) && !lastOnLine;
    let width = (printable && !(c === 0x2d && column === 0)) || blank ? 1 : 3;
    if (column + width > (lastOnLine ? ENCODED_LINE : ENCODED_LINE - 1)) {
      out[o++] = 0x3d;
      out[o++] = CR;
      out[o++] = LF;
      column = 0;
      if (c === 0x2d) width = 3;
    }
    if (width === 1) {
      out[o++] = c;
    } else {
      out[o++] = 0x3d;
      out[o++] = HEX[c >> 4]!;
      out[o++] = HEX[c & 15]!;
    }
    column += width;
  }
  return out.subarray(0, o);
}

/**
 * Decodes quoted-printable leniently, as receivers do: an "=" that starts no
 * escape and raw 8-bit bytes are kept, soft line breaks and the whitespace a
 * transport may have added at line ends (RFC 2045 §6.7 (3)) are removed.
 */
export function decodeQuotedPrintable(encoded: Buffer): Buffer {
  return libqp.decode(encoded.toString('latin1'));
}

/** `data` as base64 lines of 76 characters joined by CRLF (no CRLF after the last). */
export function base64(data: Buffer): string {
  return inLines(data.toString('base64'));
}

/**
 * Base64 text re-wrapped at 76 characters without decoding it: the characters
 * stay exactly as they were (any decoder skips line breaks), only CR, LF, space
 * and tab move. No CRLF after the last line.
 */
export function rewrapBase64(encoded: Buffer): string {
  return inLines(encoded.toString('latin1').replace(/[\r\n\t ]+/g, ''));
}

function inLines(text: string): string {
  const lines: string[] = [];
  for (let at = 0; at < text.length; at += ENCODED_LINE) lines.push(text.slice(at, at + ENCODED_LINE));
  return lines.join('\r\n');
}

// Streaming decoders for MIME part bodies: Content-Transfer-Encoding (RFC 2045
// §6.7 quoted-printable, §6.8 base64) chunk by chunk, keeping only the few bytes
// that straddle a chunk edge, and the part's charset (../../mime/charset.ts). An
// unknown charset falls back to UTF-8: the detectors look for ASCII digits and
// words, which every ASCII-compatible charset keeps.
//
// Base64 is decoded by libbase64, which also reads bodies whose lines are padded
// one by one; only the carry of an unfinished quantum is kept here, because
// libbase64's own streaming Decoder is a Node stream and the scanner is
// synchronous. Quoted-printable stays home-made: libqp's Decoder holds the whole
// part until its end, and libqp.decode() strips whitespace at the end of its
// input, which a chunk edge inside a line would turn into lost spaces.
import libbase64 from 'libbase64';
import { TextDecoder } from 'node:util';
import { decoderForLabel, type CharsetDecoder } from '../../mime/charset.ts';

export interface ByteDecoder {
  write(chunk: Uint8Array): Buffer;
  end(): Buffer;
}

/** A decoder for a MIME charset label, UTF-8 when the label is missing or unknown. */
export function charsetDecoder(charset: string | null | undefined): CharsetDecoder {
  return decoderForLabel(charset?.trim() || 'utf-8') ?? new TextDecoder('utf-8');
}

/** The decoder for a Content-Transfer-Encoding; identity for 7bit, 8bit, binary and unknown values. */
export function transferDecoder(encoding: string): ByteDecoder {
  if (encoding === 'base64') return base64Decoder();
  if (encoding === 'quoted-printable') return quotedPrintableDecoder();
  return { write: (chunk) => Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), end: () => Buffer.alloc(0) };
}

function base64Decoder(): ByteDecoder {
  let carry = ''; // base64 characters after the last "=" that do not yet make a whole quantum of 4
  return {
    write(chunk) {
      const chars = carry + Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1').replace(/[^A-Za-z0-9+/=]/g, '');
      // Up to the last "=" the text ends in whole padded segments; a padding run restarts the quantum count.
      const padded = chars.lastIndexOf('=') + 1;
      const whole = chars.length - ((chars.length - padded) % 4);
      carry = chars.slice(whole);
      return libbase64.decode(chars.slice(0, whole));
    },
    end() {
      const rest = libbase64.decode(carry);
      carry = '';
      return rest;
    },
  };
}

const hexValue = (c: number): number => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1);

function quotedPrintableDecoder(): ByteDecoder {
  let carry: Buffer = Buffer.alloc(0); // a trailing "=", "=X" or "=\r" waiting for its next bytes
  const decode = (src: Buffer, final: boolean): Buffer => {
    const out = Buffer.allocUnsafe(src.length);
    let o = 0;
    let i = 0;
    for (; i < src.length; i++) {
      const c = src[i]!;
      if (c !== 0x3d) {
        out[o++] = c;
        continue;
      }
      if (i + 2 >= src.length && !final && !(i + 1 < src.length && src[i + 1] === 0x0a)) break;
      const a = src[i + 1] ?? -1;
      const b = src[i + 2] ?? -1;
      if (a === 0x0a) i += 1; // soft line break "=\n"
      else if (a === 0x0d && b === 0x0a) i += 2; // soft line break "=\r\n"
      else if (hexValue(a) >= 0 && hexValue(b) >= 0) {
        out[o++] = hexValue(a) * 16 + hexValue(b);
        i += 2;
      } else out[o++] = c; // a stray "=" is kept (RFC 2045 §6.7 note 1)
    }
    carry = Buffer.from(src.subarray(i));
    return out.subarray(0, o);
  };
  return {
    write: (chunk) => decode(carry.length ? Buffer.concat([carry, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), false),
    end: () => decode(carry, true),
  };
}

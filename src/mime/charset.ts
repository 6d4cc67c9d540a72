// Text decoders for MIME charset labels. Labels are resolved by Node's
// TextDecoder, as the WHATWG Encoding standard says and as browsers and mail
// clients do (iso-8859-1, latin1 and us-ascii all mean windows-1252). Node 20
// decodes windows-1252 as ISO-8859-1, though: bytes 0x80–0x9F (€, curly quotes,
// the en dash Outlook types between digits) become invisible C1 controls that
// no detector or reader sees. Those labels are decoded by iconv-lite, the
// charset library libmime and mailparser decode with.
import { iconvLite } from './lazy-libs.ts';
import { TextDecoder } from 'node:util';

/** The part of TextDecoder the callers use: `stream: true` keeps a character cut by a chunk edge for the next call. */
export interface CharsetDecoder {
  decode(bytes: Uint8Array, options?: { stream?: boolean }): string;
}

/** A decoder for a MIME charset label, or null when the label names no charset Node knows. */
export function decoderForLabel(label: string): CharsetDecoder | null {
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(label.trim());
  } catch {
    return null;
  }
  if (decoder.encoding !== 'windows-1252') return decoder;
  const cp1252 = iconvLite().getDecoder('windows-1252'); // one byte per character: nothing straddles a chunk edge
  return { decode: (bytes) => cp1252.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) };
}

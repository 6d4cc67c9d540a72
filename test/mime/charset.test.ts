// Charset labels as mail uses them: WHATWG label resolution, windows-1252's
// 0x80–0x9F range decoded as windows-1252 (Node 20's TextDecoder decodes it as
// ISO-8859-1), unknown labels reported as such.
import { describe, expect, it } from 'vitest';
import { decoderForLabel } from '../../src/mime/charset.ts';
import { decodeEncodedWords } from '../../src/mime/encoded-words.ts';

describe('decoderForLabel', () => {
  it('decodes windows-1252 punctuation under its labels', () => {
    for (const label of ['windows-1252', 'cp1252', 'ISO-8859-1', 'latin1', ' us-ascii ']) {
      expect(decoderForLabel(label)!.decode(Buffer.from([0x80, 0x20, 0x93, 0x96, 0x94, 0xe9])), label).toBe('€ “–”é');
    }
  });

  it('keeps other charsets, streamed: a UTF-8 character cut by a chunk edge', () => {
    const utf8 = decoderForLabel('utf-8')!;
    const euro = Buffer.from('€');
    expect(utf8.decode(euro.subarray(0, 1), { stream: true }) + utf8.decode(euro.subarray(1), { stream: false })).toBe('€');
    expect(decoderForLabel('iso-8859-15')!.decode(Buffer.from([0xa4]))).toBe('€');
    expect(decoderForLabel('utf-16le')!.decode(Buffer.from('ok', 'utf16le'))).toBe('ok');
  });

  it('returns null for a label that names no charset', () => {
    expect(decoderForLabel('x-unknown')).toBeNull();
    expect(decoderForLabel('')).toBeNull();
  });

  it('encoded-words in windows-1252 keep their dashes and quotes; an unknown charset still reads as latin1', () => {
    expect(decodeEncodedWords('=?windows-1252?Q?=93Befund=94_=96_=80_5?=')).toBe('“Befund” – € 5');
    expect(decodeEncodedWords('=?x-unknown?q?caf=E9?=')).toBe('café');
  });
});

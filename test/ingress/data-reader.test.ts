import { describe, expect, test } from 'vitest';
import { DataReader, HEADROOM, PART_BYTES } from '../../src/ingress/data-reader.ts';
import { headerSection } from '../../src/ingress/received.ts';

/** Feeds `text` in every two-chunk split, so no verdict depends on where TCP cut the stream. */
function verdicts(text: string, limits = { maxBytes: 10_000, maxLineBytes: 1000 }): string[] {
  const bytes = Buffer.from(text, 'latin1');
  const out = new Set<string>();
  for (let cut = 0; cut <= bytes.length; cut++) {
    const reader = new DataReader(limits);
    reader.push(bytes.subarray(0, cut));
    reader.push(bytes.subarray(cut));
    const r = reader.finish();
    out.add(r.ok ? `ok ${r.head.toString('latin1') === text && r.tail === null}` : r.refusal);
  }
  return [...out];
}

describe('DataReader', () => {
  test.each([
    ['CRLF only', 'Subject: x\r\n\r\nline\r\n', 'ok true'],
    ['empty message', '', 'ok true'],
    ['bare LF', 'Subject: x\r\n\r\nline\nmore\r\n', 'bare-newline'],
    ['bare CR', 'Subject: x\r\n\r\nline\rmore\r\n', 'bare-newline'],
    ['<LF>.<LF>', 'a\r\n\n.\nMAIL FROM:<x@y>\r\n', 'bare-newline'],
    ['<CR>.<CR>', 'a\r\n\r.\rMAIL FROM:<x@y>\r\n', 'bare-newline'],
    ['<LF>.<CRLF>', 'a\n.\r\nMAIL FROM:<x@y>\r\n', 'bare-newline'],
    ['<CRLF>.<LF>', 'a\r\n.\nb\r\n', 'bare-newline'],
    ['LF first byte', '\nx\r\n', 'bare-newline'],
    ['CR last byte', 'x\r\ny\r', 'bare-newline'],
    ['CR CR LF', 'x\r\r\n', 'bare-newline'],
  ])('%s → %s', (_name, text, expected) => {
    expect(verdicts(text)).toEqual([expected]);
  });

  test('line length: 1000 bytes including CRLF is fine, 1001 is not (RFC 5321 §4.5.3.1.6)', () => {
    expect(verdicts(`${'x'.repeat(998)}\r\nshort\r\n`)).toEqual(['ok true']);
    expect(verdicts(`short\r\n${'x'.repeat(999)}\r\nshort\r\n`)).toEqual(['line-length']);
    expect(verdicts(`${'x'.repeat(1001)}`)).toEqual(['line-length']);
  });

  test('lines over RFC 5321 but within max_line_bytes are kept and reported for repair', () => {
    const limits = { maxBytes: 10_000, maxLineBytes: 4000 };
    const read = (text: string, cut: number) => {
      const reader = new DataReader(limits);
      const bytes = Buffer.from(text, 'latin1');
      reader.push(bytes.subarray(0, cut));
      reader.push(bytes.subarray(cut));
      return reader.finish();
    };
    const long = `short\r\n${'x'.repeat(2998)}\r\nshort\r\n`;
    for (const cut of [0, 7, 1000, 3000, long.length]) expect(read(long, cut)).toMatchObject({ ok: true, longLines: true });
    expect(read(`${'x'.repeat(998)}\r\n`, 500)).toMatchObject({ ok: true, longLines: false });
    expect(read(`${'x'.repeat(999)}\r\n`, 500)).toMatchObject({ ok: true, longLines: true });
    expect(verdicts(`${'x'.repeat(3998)}\r\n`, limits)).toEqual(['ok true']);
    expect(verdicts(`${'x'.repeat(3999)}\r\n`, limits)).toEqual(['line-length']);
  });

  test('a large message in many chunks: kept byte for byte in one buffer of its own, with room in front', () => {
    const line = Buffer.from(`${'z'.repeat(98)}\r\n`);
    const reader = new DataReader({ maxBytes: 4 * 1024 * 1024, maxLineBytes: 1000 });
    const parts: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      // odd chunk sizes, as TCP cuts them
      const chunk = Buffer.concat([line, line.subarray(0, i % 7)]);
      parts.push(chunk);
      reader.push(chunk);
    }
    const r = reader.finish();
    if (!r.ok) throw new Error(r.refusal);
    expect(r.head.equals(Buffer.concat(parts))).toBe(true);
    expect(r.tail).toBeNull();
    // Its own memory (so the store thread can take it), the head room free in front, little slack behind.
    expect(r.head.byteOffset).toBe(HEADROOM);
    expect(r.head.buffer.byteLength - r.head.length - HEADROOM).toBeLessThanOrEqual(4096);
  });

  /** Feeds `message` in chunks of `chunk` bytes; what push handed on, and the verdict. */
  function readInChunks(message: Buffer, chunk: number, maxBytes = 32 * 1024 * 1024) {
    const reader = new DataReader({ maxBytes, maxLineBytes: 1000 });
    const parts: Buffer[] = [];
    for (let at = 0; at < message.length; at += chunk) parts.push(...reader.push(message.subarray(at, at + chunk)));
    return { parts, result: reader.finish() };
  }

  test('a message over PART_BYTES: handed on in parts of PART_BYTES, each in memory of its own; the head holds the header section', () => {
    const header = Buffer.from('From: a@b.test\r\nSubject: big\r\n\r\n');
    const body = Buffer.alloc(3 * PART_BYTES + 12_345, 'y\r\n'.repeat(30) + `${'q'.repeat(70)}\r\n`);
    const message = Buffer.concat([header, body]);
    for (const chunk of [65_536, 65_537, 1_000_003]) {
      const { parts, result } = readInChunks(message, chunk);
      if (!result.ok) throw new Error(result.refusal);
      expect(result.size).toBe(message.length);
      expect(result.head.length).toBeGreaterThanOrEqual(PART_BYTES);
      expect(result.head.subarray(0, header.length).equals(header)).toBe(true);
      for (const part of parts) {
        expect(part.length).toBe(PART_BYTES);
        expect(part.buffer.byteLength).toBe(PART_BYTES);
      }
      expect(Buffer.concat([result.head, ...parts, result.tail ?? Buffer.alloc(0)]).equals(message)).toBe(true);
      expect(parts.length).toBeGreaterThanOrEqual(1);
    }
  });

  test('a header section longer than PART_BYTES stays whole in the head', () => {
    const fields = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `X-Field-${i}: ${'v'.repeat(80)}\r\n`).join(''));
    const message = Buffer.concat([fields, Buffer.from('\r\n'), Buffer.alloc(2 * PART_BYTES, 'body line\r\n')]);
    const { parts, result } = readInChunks(message, 65_536);
    if (!result.ok) throw new Error(result.refusal);
    expect(result.head.length).toBeGreaterThan(fields.length);
    expect(headerSection(result.head)).toEqual({ end: fields.length, separated: true });
    expect(Buffer.concat([result.head, ...parts, result.tail ?? Buffer.alloc(0)]).equals(message)).toBe(true);
  });

  test('refused part way: nothing more is handed on or kept', () => {
    const good = Buffer.concat([Buffer.from('Subject: x\r\n\r\n'), Buffer.alloc(2 * PART_BYTES, 'fine\r\n')]);
    const message = Buffer.concat([good, Buffer.from('bare\nline\r\n'), Buffer.alloc(2 * PART_BYTES, 'more\r\n')]);
    const { parts, result } = readInChunks(message, 65_536);
    expect(result).toEqual({ ok: false, refusal: 'bare-newline', size: message.length });
    expect(parts.length * PART_BYTES).toBeLessThanOrEqual(good.length);
  });

  test('size: over the limit is refused, whatever else is wrong', () => {
    expect(verdicts('x'.repeat(30) + '\r\n', { maxBytes: 32, maxLineBytes: 1000 })).toEqual(['ok true']);
    expect(verdicts('x'.repeat(31) + '\r\n', { maxBytes: 32, maxLineBytes: 1000 })).toEqual(['size']);
    expect(verdicts('x\n'.repeat(20), { maxBytes: 32, maxLineBytes: 1000 })).toEqual(['size']);
  });

  test('memory stays bounded: nothing is kept once the message is refused', () => {
    const reader = new DataReader({ maxBytes: 1024, maxLineBytes: 1000 });
    for (let i = 0; i < 1000; i++) reader.push(Buffer.alloc(1024, 0x61));
    const r = reader.finish();
    expect(r).toEqual({ ok: false, refusal: 'size', size: 1024 * 1000 });
  });
});

// The header block and its fields, shared by ingress, delivery and both encryptions.
import { describe, expect, it } from 'vitest';
import { headerBlock, headerEnd, headerFields, HeaderSyntaxError } from '../../src/mime/header-block.ts';

describe('header block', () => {
  it('ends at the first empty line, or with the message', () => {
    expect(headerEnd(Buffer.from('A: 1\r\nB: 2\r\n\r\nbody\r\n'))).toBe(12);
    expect(headerEnd(Buffer.from('A: 1\r\n'))).toBe(6);
    expect(headerEnd(Buffer.from('\r\nbody'))).toBe(0);
  });

  it('splits fields with their continuation lines, names lower-cased, bytes kept', () => {
    const block = headerBlock(Buffer.from('Subject: a\r\n  folded\r\nX-Odd\t: v\r\nTo: =?utf-8?q?\xe9?=\r\n\r\nbody', 'latin1'));
    expect(headerFields(block)).toEqual([
      { name: 'subject', raw: 'Subject: a\r\n  folded\r\n' },
      { name: 'x-odd', raw: 'X-Odd\t: v\r\n' },
      { name: 'to', raw: 'To: =?utf-8?q?\xe9?=\r\n' },
    ]);
  });

  it('a malformed block is an error naming the line, never its text', () => {
    expect(() => headerFields(' folded: first\r\n')).toThrow(new HeaderSyntaxError('the header block starts with a continuation line'));
    let error: unknown;
    try {
      headerFields('Subject: ok\r\nSSN 078-05-1120 without a colon\r\n');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(HeaderSyntaxError);
    expect((error as Error).message).toBe('header line 2 is not a header field');
  });
});

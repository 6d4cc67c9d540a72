// A stored message's header block: where it ends, and its fields. Messages in the
// queue end every line with CRLF (ingress refuses bare LF and CR), so the block ends
// at the first empty line.

/**
 * Offset just past the last header line: the start of the blank line that
 * separates header and body, or the end of the message when there is no body.
 */
export function headerEnd(message: Buffer): number {
  if (message.length >= 2 && message[0] === 0x0d && message[1] === 0x0a) return 0;
  const blank = message.indexOf('\r\n\r\n');
  return blank < 0 ? message.length : blank + 2;
}

/** The header block as text (latin1 keeps every byte), its last line's CRLF included. */
export function headerBlock(message: Buffer): string {
  return message.subarray(0, headerEnd(message)).toString('latin1');
}

/** Parses a header block (up to the first empty line) into lower-cased names → unfolded values. */
export function parseHeaders(headerBlock: string): Map<string, string[]> {
  const headers = new Map<string, string[]>();
  const unfolded = headerBlock.replace(/\r?\n[ \t]+/g, ' ');
  for (const line of unfolded.split(/\r?\n/)) {
    if (!line) break;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const list = headers.get(name);
    if (list) list.push(value);
    else headers.set(name, [value]);
  }
  return headers;
}

/** What a message without Content-Type is (RFC 2045 §5.2), written out for an entity that moves inside another. */
export const IMPLICIT_CONTENT_TYPE = 'Content-Type: text/plain; charset=us-ascii\r\n';

/** One header field: its lower-case name and its raw text, continuation lines and final CRLF included. */
export interface HeaderField {
  readonly name: string;
  readonly raw: string;
}

export class HeaderSyntaxError extends Error {
  override readonly name = 'HeaderSyntaxError';
}

/** RFC 5322 §2.2: a field name is printable US-ASCII except the colon. */
const FIELD_START = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/;

/**
 * The fields of a header block (as headerBlock() returns it). A line that is
 * neither a field nor a continuation is an error naming its line number, never
 * its text: headers may hold what logs must not.
 */
export function headerFields(block: string): HeaderField[] {
  const fields: { name: string; raw: string }[] = [];
  for (const [index, line] of block.split(/(?<=\r\n)/).entries()) {
    if (line === '') continue;
    if (line.startsWith(' ') || line.startsWith('\t')) {
      const last = fields.at(-1);
      if (!last) throw new HeaderSyntaxError('the header block starts with a continuation line');
      last.raw += line;
      continue;
    }
    const name = FIELD_START.exec(line)?.[1];
    if (!name) throw new HeaderSyntaxError(`header line ${index + 1} is not a header field`);
    fields.push({ name: name.toLowerCase(), raw: line });
  }
  return fields;
}

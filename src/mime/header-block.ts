// Where a stored message's header block ends. Messages in the queue end every line
// with CRLF (ingress refuses bare LF and CR), so the block ends at the first empty line.

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

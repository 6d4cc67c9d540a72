// Hop counting: how many Received: fields a message carries (RFC 5321 §6.3 — the
// loop-detection count every MTA keeps). Used at ingress (refuse at end of DATA)
// and in delivery (bounce a queued copy over the limit). One linear pass over the
// header block, no regular expressions: headers are hostile input.

const RECEIVED = 'received';

/**
 * Counts the Received: fields in a header block (or a whole message: counting stops
 * at the first empty line, so a Received: line in the body is never counted). The
 * field name is matched case-insensitively at the start of a line, optionally
 * followed by spaces or tabs before the colon; continuation lines (starting with a
 * space or tab) belong to the field above and are never counted. CRLF and bare LF
 * line ends are both accepted.
 */
export function countHops(headerBlock: Buffer | string): number {
  const text = typeof headerBlock === 'string' ? headerBlock : headerBlock.toString('latin1', 0, headerLimit(headerBlock));
  let hops = 0;
  let start = 0;
  while (start < text.length) {
    const newline = text.indexOf('\n', start);
    const end = newline < 0 ? text.length : newline;
    const lineEnd = end > start && text.charCodeAt(end - 1) === 0x0d ? end - 1 : end;
    if (lineEnd === start) break; // the empty line: the body follows
    if (isReceived(text, start, lineEnd)) hops += 1;
    start = end + 1;
  }
  return hops;
}

/** Whether text[start, end) opens a Received field: the name, optional WSP, then a colon. */
function isReceived(text: string, start: number, end: number): boolean {
  if (end - start <= RECEIVED.length) return false;
  for (let i = 0; i < RECEIVED.length; i += 1) {
    // ASCII letters only: OR-ing 0x20 lower-cases A–Z and leaves a–z alone.
    if ((text.charCodeAt(start + i) | 0x20) !== RECEIVED.charCodeAt(i)) return false;
  }
  let i = start + RECEIVED.length;
  while (i < end && (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x09)) i += 1;
  return i < end && text.charCodeAt(i) === 0x3a;
}

/** Where a message's header block ends in a Buffer, so a large body is never decoded. */
function headerLimit(message: Buffer): number {
  const crlf = message.indexOf('\r\n\r\n');
  // A bare-LF blank line can only end the block first if it starts at or before the CRLF one:
  // the search stops there instead of reading a whole CRLF-only body (every queued message).
  const lf = (crlf < 0 ? message : message.subarray(0, crlf + 2)).indexOf('\n\n');
  const ends = [crlf < 0 ? -1 : crlf + 2, lf < 0 ? -1 : lf + 1].filter((n) => n >= 0);
  if (message.length > 0 && message[0] === 0x0a) return 0;
  if (message.length > 1 && message[0] === 0x0d && message[1] === 0x0a) return 0;
  return ends.length ? Math.min(...ends) : message.length;
}

// The portal notice: a short, non-sensitive line a sender adds to the notification
// ("Your lab results are ready") through a header field (portal.notice_header,
// default X-Portal-Notice). takeNotice removes every instance of that field from the
// message before it is sealed, so the recipient reads the message as the sender
// wrote it, and returns the line as plain text fit to show.
//
// Only the header block changes, and only by whole fields (continuation lines
// included): every other byte, body included, stays as it was. The first instance
// is the notice; the others are removed unread. Its value is read as UTF-8 when its
// 8-bit bytes are valid UTF-8 (RFC 6532), else as latin1; RFC 2047 encoded-words
// are decoded; control characters and bidi controls go (an RLO could make a line
// read backwards); whitespace collapses; the result is cut to NOTICE_MAX_CHARS.
//
// Hostile input stays bounded: at most NOTICE_RAW_MAX_BYTES of the value are read,
// however long the field, and the work on the header block is linear in its size. A
// header block that is not a clean list of CRLF-ended fields (never the case in the
// queue: ingress ends the header section at the first line that is not a field and
// refuses bare CR and LF) is left as it is, with no notice: nothing is lost, and no
// guess is made about where its fields begin.
import { TextDecoder } from 'node:util';
import { decodeEncodedWords } from '../mime/encoded-words.ts';
import { headerBlock, headerFields, HeaderSyntaxError } from '../mime/header-block.ts';

/** The longest notice shown, in Unicode code points, the closing "…" of a cut one included. */
export const NOTICE_MAX_CHARS = 200;
/**
 * How much of a notice field's value is read, in bytes. Enough for 200 characters
 * in the most verbose legal form (Q-encoded 4-byte UTF-8: 12 bytes a character,
 * plus the encoded-words' own syntax); the rest of a longer value would be cut anyway.
 */
export const NOTICE_RAW_MAX_BYTES = 8192;

const ELLIPSIS = '…';
/** RFC 5322 §2.2: a field name is printable US-ASCII except the colon. */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
/** A CR not before LF, or an LF not after CR. */
const BARE_CR_OR_LF = /\r(?!\n)|(?<!\r)\n/;
/** C0 and C1 controls and DEL: shown as a space, then collapsed. */
const CONTROLS = /\p{Cc}/gu;
/**
 * Bidi embedding, override and isolate controls and the directional marks (Unicode
 * UAX #9): removed, so the line cannot reorder what surrounds it in the email.
 */
const BIDI_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

export interface TakenNotice {
  /** The message without the notice field: the very `message` Buffer when it had none. */
  readonly message: Buffer;
  /** The notice as plain text, or null when there was none or it was empty once cleaned. */
  readonly notice: string | null;
}

/** Removes every `headerName` field from the message's header block and returns the first one's value, cleaned. */
export function takeNotice(message: Buffer, headerName: string): TakenNotice {
  if (!FIELD_NAME.test(headerName)) throw new TypeError('takeNotice: the notice header must be a header field name');
  const block = headerBlock(message);
  if (BARE_CR_OR_LF.test(block)) return { message, notice: null };
  let fields;
  try {
    fields = headerFields(block);
  } catch (err) {
    if (err instanceof HeaderSyntaxError) return { message, notice: null };
    throw err;
  }
  const wanted = headerName.toLowerCase();
  const kept: string[] = [];
  let first: string | null = null;
  let removed = false;
  for (const field of fields) {
    if (field.name !== wanted) {
      kept.push(field.raw);
      continue;
    }
    removed = true;
    first ??= field.raw;
  }
  if (!removed) return { message, notice: null };
  const head = Buffer.from(kept.join(''), 'latin1');
  return { message: Buffer.concat([head, message.subarray(block.length)]), notice: first === null ? null : noticeText(first) };
}

/** A notice field (name, value, continuations, CRLF; latin1 text, one character a byte) as the line to show. */
function noticeText(raw: string): string | null {
  // RFC 5322 §2.2.3: unfolding removes the CRLF before whitespace.
  let value = raw.slice(raw.indexOf(':') + 1).replace(/\r\n/g, '');
  if (value.length > NOTICE_RAW_MAX_BYTES) value = value.slice(0, utf8Boundary(value, NOTICE_RAW_MAX_BYTES));
  const text = plainLine(decodeEncodedWords(eightBit(value)), NOTICE_MAX_CHARS);
  return text === '' ? null : text;
}

/**
 * Text from outside as one plain line of at most `max` code points: controls become
 * spaces, bidi controls go, whitespace runs become one space, and a longer line is
 * cut and ends with "…". The notification shows names and subjects this way too.
 */
export function plainLine(text: string, max: number): string {
  return cut(text.replace(CONTROLS, ' ').replace(BIDI_CONTROLS, '').replace(/\s+/gu, ' ').trim(), max);
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** 8-bit header bytes (latin1 text here): UTF-8 when they are valid UTF-8, else latin1 as they stand. */
function eightBit(latin1: string): string {
  if (!/[\x80-\xff]/.test(latin1)) return latin1;
  try {
    return STRICT_UTF8.decode(Buffer.from(latin1, 'latin1'));
  } catch {
    return latin1;
  }
}

/** An offset at or before `at` that does not split a UTF-8 sequence (continuation bytes are 0x80–0xBF). */
function utf8Boundary(latin1: string, at: number): number {
  let end = at;
  while (end > at - 3 && end > 0 && (latin1.charCodeAt(end) & 0xc0) === 0x80) end--;
  return end;
}

/**
 * At most `max` code points; a longer text keeps what fits before the ellipsis,
 * cut between user-perceived characters (an accent or a joined emoji is never
 * split) unless a single one is longer than the whole allowance.
 */
function cut(text: string, max: number): string {
  const points = Array.from(text);
  if (points.length <= max) return text;
  const room = max - 1;
  let kept = 0;
  // The segmenter is lazy: it stops reading where the loop does.
  for (const { segment } of new Intl.Segmenter('en', { granularity: 'grapheme' }).segment(text)) {
    const size = Array.from(segment).length;
    if (kept + size > room) break;
    kept += size;
  }
  if (kept === 0) kept = room;
  return points.slice(0, kept).join('').trimEnd() + ELLIPSIS;
}

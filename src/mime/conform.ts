// Makes a message conform to RFC 5322 §2.1.1 (lines of at most 998 characters
// plus CRLF) before it is queued, without changing what any reader decodes from
// it. Ingress accepts longer lines (apps send unwrapped HTML) up to its own cap;
// Postfix would fold such lines, which changes the text, so instead:
//   - a leaf part with a long line is re-encoded: text/* as quoted-printable,
//     anything else as base64; quoted-printable with long encoded lines is
//     decoded and encoded again, base64 is re-wrapped;
//   - a long header line is folded at whitespace (CRLF before a space or tab, the
//     fold RFC 5322 §2.2.3 undoes), and reported unfixable where it has none;
//   - multiparts are walked by their boundaries, message/rfc822 parts as messages.
// Everything not repaired is copied byte for byte: the result is the original
// message with a few ranges replaced. What cannot be repaired without guessing
// (malformed MIME, an unknown encoding) is left as it was and reported unfixable,
// so the caller can refuse the message; nothing here throws on bad input.
import { libmime } from './lazy-libs.ts';
import { base64, decodeQuotedPrintable, quotedPrintable, rewrapBase64 } from './transfer-encoding.ts';

/** RFC 5322 §2.1.1: a line is at most 998 characters, CRLF not counted. */
export const MAX_LINE = 998;
/** Deeper MIME nesting than this is not walked (the recursion must stay far from the stack limit). */
export const MAX_DEPTH = 64;

export type RepairAction =
  /** Long header lines were folded at whitespace. */
  | 'header-folded'
  /** A 7bit/8bit/binary text body was re-encoded as quoted-printable. */
  | 'quoted-printable'
  /** A 7bit/8bit/binary non-text body was re-encoded as base64. */
  | 'base64'
  /** A quoted-printable body with long encoded lines was decoded and encoded again. */
  | 'quoted-printable-rewrapped'
  /** A base64 body with long lines was re-wrapped at 76 characters. */
  | 'base64-rewrapped'
  /** Long lines of a multipart preamble or epilogue (text no MIME reader shows) were split. */
  | 'preamble-split'
  | 'epilogue-split'
  /** A message that now has an encoded body got the MIME-Version field it lacked. */
  | 'mime-version-added';

/** One change, and where: "message" is the top-level entity, "2.1" a part in IMAP numbering. */
export interface Repair {
  readonly part: string;
  readonly action: RepairAction;
}

/** A long line left as it was; `reason` is a fixed phrase, never message text. */
export interface Unfixable {
  readonly part: string;
  readonly reason: string;
}

export interface Conformed {
  /** The message to queue: the very `message` Buffer when no line was too long. */
  readonly body: Buffer;
  /** What was changed, one entry per change and part; empty when `body` is the input. */
  readonly repairs: readonly Repair[];
  /** Long lines that could not be repaired: the caller refuses the message. */
  readonly unfixable: readonly Unfixable[];
  /** The message was changed and its top header has a DKIM-Signature, which no longer verifies. */
  readonly brokenDkimSignature: boolean;
}

const CR = 0x0d;
const LF = 0x0a;
const TOP = 'message';

/**
 * Offset of the first line in [start, end) longer than 998 bytes without its
 * CRLF, or -1. One pass of indexOf over the line ends, no copy: this runs for
 * every message.
 */
export function findLongLine(buf: Buffer, start = 0, end = buf.length): number {
  let line = start;
  while (line < end) {
    const lf = buf.indexOf(LF, line);
    if (lf < 0 || lf >= end) return end - line > MAX_LINE ? line : -1;
    if (lf - line - (buf[lf - 1] === CR ? 1 : 0) > MAX_LINE) return line;
    line = lf + 1;
  }
  return -1;
}

/** Makes `message` (CRLF line ends only) conform to the 998-character line limit; see the file comment. */
export function conformMessage(message: Buffer): Conformed {
  if (findLongLine(message) < 0) return { body: message, repairs: [], unfixable: [], brokenDkimSignature: false };
  const conformer = new Conformer(message);
  const top = conformer.entity(0, message.length, TOP, 'text/plain', 0);
  const body = conformer.result();
  const unfixable = conformer.unfixable;
  if (unfixable.length === 0 && findLongLine(body) >= 0) unfixable.push({ part: TOP, reason: 'a line over 998 bytes remains' });
  const changed = conformer.repairs.length > 0;
  return { body, repairs: conformer.repairs, unfixable, brokenDkimSignature: changed && top.fields.some((f) => f.name === 'dkim-signature') };
}

/** A header field: lower-case name and its byte range, continuation lines and final CRLF included. */
interface Field {
  readonly name: string;
  readonly start: number;
  end: number;
}

/** An entity (message or part) in [start, end): its fields, where the header ends and the body starts. */
interface Entity {
  readonly start: number;
  readonly end: number;
  readonly fields: Field[];
  /** Just past the last header line. */
  readonly headerEnd: number;
  /** After the blank line; equal to headerEnd when a non-header line starts the body without one. */
  readonly bodyStart: number;
}

/** A header field's first line (RFC 5322 §2.2, with the obsolete space before the colon) or a continuation. */
const FIELD_LINE = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/;

function parseEntity(buf: Buffer, start: number, end: number): Entity {
  const fields: Field[] = [];
  let pos = start;
  while (pos < end) {
    const lf = buf.indexOf(LF, pos);
    const lineEnd = lf < 0 || lf >= end ? end : lf + 1;
    if (buf[pos] === CR && buf[pos + 1] === LF && lineEnd === pos + 2) return { start, end, fields, headerEnd: pos, bodyStart: lineEnd };
    // Field names are short: the first bytes of the line tell what it is.
    const head = buf.toString('latin1', pos, Math.min(lineEnd, pos + 256));
    const last = fields.at(-1);
    if (head.startsWith(' ') || head.startsWith('\t')) {
      if (last) last.end = lineEnd;
      else fields.push({ name: '', start: pos, end: lineEnd });
    } else {
      const name = FIELD_LINE.exec(head)?.[1];
      // Not a field: the body starts here without a blank line (as Python's parser reads it).
      if (!name) return { start, end, fields, headerEnd: pos, bodyStart: pos };
      fields.push({ name: name.toLowerCase(), start: pos, end: lineEnd });
    }
    pos = lineEnd;
  }
  return { start, end, fields, headerEnd: end, bodyStart: end };
}

interface Edit {
  readonly start: number;
  readonly end: number;
  readonly text: Buffer;
  /** Among insertions at one place: MIME-Version (-1), other fields (0), the blank line that ends a header (1). */
  readonly rank: number;
}

const PASS_THROUGH = new Set(['7bit', '8bit', 'binary']);

class Conformer {
  readonly repairs: Repair[] = [];
  readonly unfixable: Unfixable[] = [];
  private readonly edits: Edit[] = [];
  /** Header ends where a blank line was inserted. */
  private readonly separated = new Set<number>();

  constructor(private readonly buf: Buffer) {}

  /** The input with every edit applied. */
  result(): Buffer {
    // Ties: an insertion (empty range) goes before a replacement that starts where it is.
    const edits = this.edits
      .map((edit, order) => ({ edit, order }))
      .sort((a, b) => a.edit.start - b.edit.start || a.edit.end - b.edit.end || a.edit.rank - b.edit.rank || a.order - b.order);
    const pieces: Buffer[] = [];
    let at = 0;
    for (const { edit } of edits) {
      pieces.push(this.buf.subarray(at, edit.start), edit.text);
      at = edit.end;
    }
    pieces.push(this.buf.subarray(at));
    return Buffer.concat(pieces);
  }

  /**
   * Repairs the entity in [start, end) (a message when `part` is TOP or the body of a
   * message/rfc822 part). Returns the entity; `encoded` says whether a body in it was
   * re-encoded so that the nearest enclosing message needs a MIME-Version.
   */
  entity(start: number, end: number, part: string, defaultType: string, depth: number, isMessage = true): Entity & { encoded: boolean } {
    const e = parseEntity(this.buf, start, end);
    const replaced = new Set<Field>();
    let encoded = false;
    if (findLongLine(this.buf, e.bodyStart, end) >= 0) {
      if (depth > MAX_DEPTH) this.unfixable.push({ part, reason: `MIME nesting deeper than ${MAX_DEPTH}` });
      else encoded = this.body(e, part, defaultType, depth, replaced);
    }
    this.foldHeader(e, part, replaced);
    if (encoded && isMessage) {
      if (!e.fields.some((f) => f.name === 'mime-version')) {
        this.insertField(e, 'MIME-Version: 1.0\r\n', -1);
        this.repairs.push({ part, action: 'mime-version-added' });
      }
      encoded = false;
    }
    return { ...e, encoded };
  }

  private body(e: Entity, part: string, defaultType: string, depth: number, replaced: Set<Field>): boolean {
    const type = this.contentType(e, defaultType);
    const cteField = fieldValue(this.buf, e.fields.find((f) => f.name === 'content-transfer-encoding'));
    // RFC 2045 §6.1: a token, which a comment may follow.
    const cte = cteField === null ? '7bit' : libmime().parseHeaderValue(cteField, { stripComments: true }).value.trim().toLowerCase();
    if (type.value.startsWith('multipart/')) {
      const boundary = type.params['boundary'];
      if (!boundary) {
        this.unfixable.push({ part, reason: 'a multipart without a boundary parameter' });
        return false;
      }
      return this.multipart(e, part, boundary, type.value, depth);
    }
    if ((type.value === 'message/rfc822' || type.value === 'message/global') && PASS_THROUGH.has(cte)) {
      this.entity(e.bodyStart, e.end, part, 'text/plain', depth + 1);
      return false;
    }
    return this.leaf(e, part, type.value, cte, replaced);
  }

  /** Re-encodes a leaf body that has a long line; true when its encoding changed. */
  private leaf(e: Entity, part: string, type: string, cte: string, replaced: Set<Field>): boolean {
    const data = this.buf.subarray(e.bodyStart, e.end);
    // A base64 body that runs to the end of the message ends its last line here.
    const eol = e.end === this.buf.length ? '\r\n' : '';
    if (cte === 'base64') {
      this.replace(e.bodyStart, e.end, rewrapBase64(data) + eol);
      this.repairs.push({ part, action: 'base64-rewrapped' });
      return false;
    }
    if (cte === 'quoted-printable') {
      this.replace(e.bodyStart, e.end, quotedPrintable(decodeQuotedPrintable(data)));
      this.repairs.push({ part, action: 'quoted-printable-rewrapped' });
      return false;
    }
    if (!PASS_THROUGH.has(cte)) {
      this.unfixable.push({ part, reason: 'a Content-Transfer-Encoding other than 7bit, 8bit, binary, quoted-printable or base64' });
      return false;
    }
    if (type.startsWith('message/')) {
      // RFC 2046 §5.2: message/partial, external-body (and the rest) may not be encoded.
      this.unfixable.push({ part, reason: `a ${type} part, which may not be re-encoded` });
      return false;
    }
    const text = type.startsWith('text/');
    this.replace(e.bodyStart, e.end, text ? quotedPrintable(data) : base64(data) + eol);
    this.setTransferEncoding(e, text ? 'quoted-printable' : 'base64', replaced);
    this.repairs.push({ part, action: text ? 'quoted-printable' : 'base64' });
    return true;
  }

  /** Walks the parts of a multipart body (RFC 2046 §5.1.1); true when a part's encoding changed. */
  private multipart(e: Entity, part: string, boundary: string, type: string, depth: number): boolean {
    const delimiters = findDelimiters(this.buf, e.bodyStart, e.end, Buffer.from(`--${boundary}`, 'latin1'));
    const first = delimiters[0];
    if (!first) {
      this.unfixable.push({ part, reason: 'a multipart whose boundary never occurs' });
      return false;
    }
    const prefix = part === TOP ? '' : `${part}.`;
    let encoded = false;
    // The CRLF before a delimiter belongs to it (RFC 2046 §5.1.1), not to the part before.
    if (first.start > e.bodyStart) this.splitLines(e.bodyStart, first.start - 2, part, 'preamble-split');
    for (const [i, d] of delimiters.entries()) {
      if (d.start + MAX_LINE + 2 < d.end) this.unfixable.push({ part, reason: 'a boundary line over 998 bytes' });
      if (d.close) {
        if (d.end < e.end) this.splitLines(d.end, e.end, part, 'epilogue-split');
        break;
      }
      // A part with no closing delimiter after it runs to the end of the multipart.
      const next = delimiters[i + 1];
      const partEnd = next ? Math.max(d.end, next.start - 2) : e.end;
      if (findLongLine(this.buf, d.end, partEnd) < 0) continue;
      if (type === 'multipart/signed') {
        // RFC 1847: the signature covers the part's exact bytes; a repair would break it.
        this.unfixable.push({ part: `${prefix}${i + 1}`, reason: 'a line over 998 bytes in signed content (RFC 1847), which a repair would invalidate' });
        continue;
      }
      const childType = type === 'multipart/digest' ? 'message/rfc822' : 'text/plain'; // RFC 2046 §5.1.5
      encoded = this.entity(d.end, partEnd, `${prefix}${i + 1}`, childType, depth + 1, false).encoded || encoded;
    }
    return encoded;
  }

  /**
   * Splits the long lines of a preamble or epilogue into lines of 998 bytes. MIME
   * readers ignore this text (RFC 2046 §5.1.1), so a line break in it hides
   * nothing, and dropping it would lose what a non-MIME reader is meant to see. A
   * new line never starts with "-", so it cannot become a boundary delimiter.
   */
  private splitLines(start: number, end: number, part: string, action: 'preamble-split' | 'epilogue-split'): void {
    let line = findLongLine(this.buf, start, end);
    if (line < 0) return;
    while (line >= 0) {
      const lf = this.buf.indexOf(LF, line);
      const lineEnd = lf < 0 || lf >= end ? end : lf - (this.buf[lf - 1] === CR ? 1 : 0);
      const text = this.buf.toString('latin1', line, lineEnd);
      const pieces: string[] = [];
      let at = 0;
      while (text.length - at > MAX_LINE) {
        let cut = at + MAX_LINE;
        while (cut > at + 1 && text[cut] === '-') cut--;
        if (text[cut] === '-') break;
        pieces.push(text.slice(at, cut));
        at = cut;
      }
      pieces.push(text.slice(at));
      if (text.length - at > MAX_LINE) this.unfixable.push({ part, reason: `a ${action.split('-')[0]} line of hyphens over 998 bytes` });
      this.replace(line, lineEnd, pieces.join('\r\n'));
      line = findLongLine(this.buf, lf < 0 || lf >= end ? end : lf + 1, end);
    }
    this.repairs.push({ part, action });
  }

  /** Folds each header line over 998 bytes at the last whitespace that keeps it within the limit. */
  private foldHeader(e: Entity, part: string, replaced: ReadonlySet<Field>): void {
    if (findLongLine(this.buf, e.start, e.headerEnd) < 0) return;
    let folded = false;
    for (const field of e.fields) {
      if (replaced.has(field)) continue;
      for (let line = findLongLine(this.buf, field.start, field.end); line >= 0; ) {
        const lf = this.buf.indexOf(LF, line);
        const lineEnd = lf < 0 || lf >= field.end ? field.end : lf - (this.buf[lf - 1] === CR ? 1 : 0);
        const pieces = foldLine(this.buf.toString('latin1', line, lineEnd));
        if (pieces.length > 1) {
          this.replace(line, lineEnd, pieces.join('\r\n'));
          folded = true;
        } else {
          this.unfixable.push({ part, reason: 'a header line over 998 bytes without whitespace to fold at' });
        }
        line = lf < 0 || lf >= field.end ? -1 : findLongLine(this.buf, lf + 1, field.end);
      }
    }
    if (folded) this.repairs.push({ part, action: 'header-folded' });
  }

  private contentType(e: Entity, defaultType: string): { value: string; params: Record<string, string> } {
    const raw = fieldValue(this.buf, e.fields.find((f) => f.name === 'content-type'));
    if (raw === null) return { value: defaultType, params: {} };
    const parsed = libmime().parseHeaderValue(raw, { stripComments: true });
    const value = parsed.value.trim().toLowerCase();
    // RFC 2045 §5.2: a type that cannot be read is text/plain.
    return { value: /^[^/\s]+\/[^/\s]+$/.test(value) ? value : 'text/plain', params: parsed.params };
  }

  /** Replaces every Content-Transfer-Encoding field by one at the first one's place, or adds it. */
  private setTransferEncoding(e: Entity, cte: string, replaced: Set<Field>): void {
    const field = `Content-Transfer-Encoding: ${cte}\r\n`;
    const old = e.fields.filter((f) => f.name === 'content-transfer-encoding');
    if (old.length === 0) this.insertField(e, field);
    for (const [i, f] of old.entries()) {
      this.replace(f.start, f.end, i === 0 ? field : '');
      replaced.add(f);
    }
  }

  /** Adds a field after the last one; with no blank line before the body, one is added too (once). */
  private insertField(e: Entity, field: string, rank = 0): void {
    this.replace(e.headerEnd, e.headerEnd, field, rank);
    if (e.bodyStart === e.headerEnd && !this.separated.has(e.headerEnd)) {
      this.separated.add(e.headerEnd);
      this.replace(e.headerEnd, e.headerEnd, '\r\n', 1);
    }
  }

  private replace(start: number, end: number, text: string | Buffer, rank = 0): void {
    this.edits.push({ start, end, text: typeof text === 'string' ? Buffer.from(text, 'latin1') : text, rank });
  }
}

/**
 * The pieces of a header line (CRLF not included) folded so that each is at most
 * 998 bytes: each cut is just before a space or tab, and no piece is whitespace
 * only (RFC 5322 §3.2.2). A line that cannot be cut that way comes back whole.
 */
export function foldLine(line: string): string[] {
  const pieces: string[] = [];
  let rest = line;
  while (rest.length > MAX_LINE) {
    const firstText = rest.search(/[^ \t]/);
    const lastText = rest.search(/[^ \t][ \t]*$/);
    let cut = MAX_LINE;
    while (cut > firstText && !(cut < lastText && (rest[cut] === ' ' || rest[cut] === '\t'))) cut--;
    if (cut <= firstText) return [line];
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  pieces.push(rest);
  return pieces;
}

interface Delimiter {
  /** Where the delimiter line starts (just after the CRLF that belongs to it). */
  readonly start: number;
  /** Just past its CRLF (or the end of the region). */
  readonly end: number;
  readonly close: boolean;
}

/**
 * The delimiter lines of a multipart body in [start, end), up to and including the
 * close delimiter: "--boundary", optionally "--", optional transport padding, at
 * the start of a line (RFC 2046 §5.1.1; the boundary compares case-sensitively).
 */
function findDelimiters(buf: Buffer, start: number, end: number, dashBoundary: Buffer): Delimiter[] {
  const found: Delimiter[] = [];
  for (let at = buf.indexOf(dashBoundary, start); at >= 0 && at + dashBoundary.length <= end; at = buf.indexOf(dashBoundary, at + 1)) {
    if (at !== start && !(buf[at - 1] === LF && buf[at - 2] === CR)) continue;
    const lf = buf.indexOf(LF, at);
    const lineEnd = lf < 0 || lf >= end ? end : lf + 1;
    const textEnd = lineEnd === end && buf[end - 1] !== LF ? end : lineEnd - 2;
    const tail = buf.toString('latin1', at + dashBoundary.length, Math.min(textEnd, at + dashBoundary.length + 1000));
    const m = /^(--)?[ \t]*$/.exec(tail);
    if (!m) continue;
    found.push({ start: at, end: lineEnd, close: m[1] === '--' });
    if (m[1]) break;
  }
  return found;
}

/** A field's value: after the colon, unfolded and trimmed; null for no field. */
function fieldValue(buf: Buffer, field: Field | undefined): string | null {
  if (!field) return null;
  const raw = buf.toString('latin1', field.start, field.end);
  return raw.slice(raw.indexOf(':') + 1).replace(/\r\n(?=[ \t])/g, '').trim();
}

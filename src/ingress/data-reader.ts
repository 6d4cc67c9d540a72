// Reads one message's DATA under the size limit, checking as the bytes arrive that
// it is safe to pass on. Memory is bounded: a large message is handed on in parts
// of PART_BYTES as it arrives (the caller writes them to the store), and only its
// head — the first part, which holds the whole header section — stays in memory
// until the end, for the loop checks and our stamp. Once the message is known to
// be refused, nothing more is kept (the rest is counted and dropped).
//
// Bare <LF> / bare <CR> policy: REJECT (like Postfix smtpd_forbid_bare_newline =
// reject). smtp-server ends DATA only on <CRLF>.<CRLF> and takes bare <LF> as an
// ordinary byte, so nothing can end a message early *here*. But we relay: a
// message holding "<LF>.<LF>" or "<LF>.<CRLF>" would be handed to the next hop,
// and some receivers treat a bare <LF> as a line end, so its second half could be
// read there as SMTP commands (SMTP smuggling, 2023). Normalising bare <LF> to
// <CRLF> would also be safe from smuggling, but it changes the content the client
// signed (DKIM) and guesses what a lone <CR> meant; refusing with a permanent 550
// makes the broken client visible and keeps the queue free of ambiguous line
// ends. Everything we queue ends its lines with <CRLF> only.
//
// Line length: RFC 5321 §4.5.3.1.6 allows 1000 octets including CRLF, but
// applications send longer (unwrapped HTML is common), and Postfix delivers them.
// Lines up to max_line_bytes are accepted and reported (`longLines`), so that the
// message can be made to conform before it is queued (mime/conform.ts); above the
// cap the message is answered 552, not 500: §4.5.3.1 offers "500 Line too long" as
// an example, but §4.3.2 allows only 250/552/554/451/452/450/550 after the final
// dot, and clients treat the reply there as the message's fate. 552 ("exceeded
// storage allocation", the §4.5.3.1 example for too much mail data) is the legal
// permanent reply closest in meaning.

import { headerSection } from './received.ts';

export type DataRefusal = 'size' | 'bare-newline' | 'line-length';

export type DataResult =
  | {
      readonly ok: true;
      /** The message's first bytes, its whole header section among them; the whole message when no part was handed on. */
      readonly head: Buffer;
      /** Bytes after the parts handed on by push(), to be written as the last part; null when there are none. */
      readonly tail: Buffer | null;
      readonly size: number;
      readonly longLines: boolean;
    }
  | { readonly ok: false; readonly refusal: DataRefusal; readonly size: number };

/** Bytes left free in front of a message's head: room for our Received and Message-ID fields. */
export const HEADROOM = 2048;
/** A message larger than this is handed on in parts of this size after its head. */
export const PART_BYTES = 1024 * 1024;
/** A head's buffer may grow this far past PART_BYTES before the check for its end: room for the chunk that crosses it. */
const HEAD_SLACK = 64 * 1024;
/**
 * A message's head starts at least this large (a message that arrives in one
 * chunk, as most small ones do, gets a buffer of exactly its size) and doubles as needed.
 */
const INITIAL_FRAME = 4 * 1024;
/** Unused bytes a finished head or tail may keep; more, and it is cut to size. */
const MAX_FRAME_SLACK = 4096;
/** RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF. */
const RFC_LINE_BYTES = 1000;
const CR = 0x0d;
const LF = 0x0a;
const NONE: readonly Buffer[] = [];

export class DataReader {
  readonly #maxBytes: number;
  readonly #maxLineBytes: number;
  /** The head so far, after HEADROOM free bytes; grown by doubling. */
  #head: Buffer | null = null;
  #headSize = 0;
  /** Set once the head holds PART_BYTES and the end of the header section: later bytes go to parts. */
  #headClosed = false;
  /** The head's size at which to look for the header section's end again (doubling: linear in all). */
  #nextHeadCheck = PART_BYTES;
  /** The part being filled, PART_BYTES long. */
  #part: Buffer | null = null;
  #partSize = 0;
  #size = 0;
  /** Bytes of the current (unfinished) line. */
  #lineBytes = 0;
  /** Last byte of the previous chunk, to judge a LF or CR at a chunk edge. */
  #lastByte = -1;
  #bareNewline = false;
  #lineTooLong = false;
  /** A line over RFC 5321's limit (but within ours) was seen. */
  #longLines = false;

  constructor(limits: { maxBytes: number; maxLineBytes: number }) {
    this.#maxBytes = limits.maxBytes;
    this.#maxLineBytes = limits.maxLineBytes;
  }

  get size(): number {
    return this.#size;
  }

  /** False once the message is known to be refused: from then on its bytes are counted, not kept. */
  get keeping(): boolean {
    return this.#refusal() === null;
  }

  /**
   * Takes the next chunk; returns the parts it completed (PART_BYTES each, in order),
   * which the reader no longer holds: the caller writes them to the store.
   */
  push(chunk: Buffer): readonly Buffer[] {
    if (chunk.length === 0) return NONE;
    this.#size += chunk.length;
    if (!this.#bareNewline || !this.#lineTooLong) this.#scan(chunk);
    this.#lastByte = chunk[chunk.length - 1] as number;
    if (this.#refusal() !== null) {
      this.#head = null;
      this.#part = null;
      return NONE;
    }
    if (this.#headClosed) return this.#keepInParts(chunk);
    this.#keepInHead(chunk);
    if (this.#headSize >= this.#nextHeadCheck) this.#closeHeadAtHeaderEnd();
    return NONE;
  }

  /**
   * Copies the chunk into the head's own buffer at once, so smtp-server's chunk
   * dies young: a chunk kept for the seconds a large message takes to arrive would be
   * promoted to V8's old generation, and its memory given back only at the next full
   * collection, long after the message was committed.
   */
  #keepInHead(chunk: Buffer): void {
    const needed = HEADROOM + this.#headSize + chunk.length;
    if (!this.#head || this.#head.length < needed) {
      const doubled = Math.min(2 * (this.#head?.length ?? 0), HEADROOM + this.#maxBytes);
      // Up to PART_BYTES the head grows to just past it, not to twice that.
      const capped = this.#headSize < PART_BYTES ? Math.min(doubled, HEADROOM + PART_BYTES + HEAD_SLACK) : doubled;
      const grown = Buffer.allocUnsafeSlow(Math.max(needed, capped, INITIAL_FRAME));
      this.#head?.copy(grown, HEADROOM, HEADROOM, HEADROOM + this.#headSize);
      this.#head = grown;
    }
    chunk.copy(this.#head, HEADROOM + this.#headSize);
    this.#headSize += chunk.length;
  }

  /** Closes the head once it holds the end of the header section (complete lines only); else looks again when it has doubled. */
  #closeHeadAtHeaderEnd(): void {
    const head = (this.#head as Buffer).subarray(HEADROOM, HEADROOM + this.#headSize);
    const complete = head.lastIndexOf(LF) + 1;
    if (headerSection(head.subarray(0, complete)).end < complete) this.#headClosed = true;
    else this.#nextHeadCheck = 2 * this.#headSize;
  }

  #keepInParts(chunk: Buffer): readonly Buffer[] {
    const done: Buffer[] = [];
    let from = 0;
    while (from < chunk.length) {
      this.#part ??= Buffer.allocUnsafeSlow(PART_BYTES);
      const copied = chunk.copy(this.#part, this.#partSize, from);
      this.#partSize += copied;
      from += copied;
      if (this.#partSize === PART_BYTES) {
        done.push(this.#part);
        this.#part = null;
        this.#partSize = 0;
      }
    }
    return done;
  }

  /** The verdict, once smtp-server has ended the stream. */
  finish(): DataResult {
    // A message whose last byte is CR (only possible for content smtp-server did not frame) ends with a bare CR.
    if (this.#lastByte === CR) this.#bareNewline = true;
    const refusal = this.#refusal();
    if (refusal) {
      this.#head = null;
      this.#part = null;
      return { ok: false, refusal, size: this.#size };
    }
    // The head in a buffer of its own with free room in front of it for the header fields
    // ingress adds (stampMessage), so that stamping needs no second copy.
    const head = fitted(this.#head ?? Buffer.allocUnsafeSlow(HEADROOM), HEADROOM, this.#headSize);
    const tail = this.#part && this.#partSize > 0 ? fitted(this.#part, 0, this.#partSize) : null;
    this.#head = null;
    this.#part = null;
    return { ok: true, head, tail, size: this.#size, longLines: this.#longLines };
  }

  #refusal(): DataRefusal | null {
    if (this.#size > this.#maxBytes) return 'size';
    if (this.#bareNewline) return 'bare-newline';
    if (this.#lineTooLong) return 'line-length';
    return null;
  }

  #scan(chunk: Buffer): void {
    // A CR that ended the previous chunk must be followed by LF here.
    if (this.#lastByte === CR && chunk[0] !== LF) this.#bareNewline = true;
    for (let cr = chunk.indexOf(CR); cr >= 0 && cr < chunk.length - 1; cr = chunk.indexOf(CR, cr + 1)) {
      if (chunk[cr + 1] !== LF) {
        this.#bareNewline = true;
        break;
      }
    }
    let lineStart = 0;
    for (let lf = chunk.indexOf(LF); lf >= 0; lf = chunk.indexOf(LF, lf + 1)) {
      const before = lf > 0 ? chunk[lf - 1] : this.#lastByte;
      if (before !== CR) this.#bareNewline = true;
      this.#lineBytes += lf + 1 - lineStart;
      this.#measure();
      this.#lineBytes = 0;
      lineStart = lf + 1;
    }
    this.#lineBytes += chunk.length - lineStart;
    this.#measure();
  }

  #measure(): void {
    if (this.#lineBytes > RFC_LINE_BYTES) this.#longLines = true;
    if (this.#lineBytes > this.#maxLineBytes) this.#lineTooLong = true;
  }
}

/**
 * `length` bytes at `offset` in `frame`, cut to a buffer of their own when the frame
 * has much unused room (the store thread takes a buffer whole, transferring its memory).
 */
function fitted(frame: Buffer, offset: number, length: number): Buffer {
  if (frame.length - offset - length <= MAX_FRAME_SLACK) return frame.subarray(offset, offset + length);
  const exact = Buffer.allocUnsafeSlow(offset + length);
  frame.copy(exact, offset, offset, offset + length);
  return exact.subarray(offset);
}

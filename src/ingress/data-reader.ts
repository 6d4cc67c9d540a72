// Reads one message's DATA into a Buffer under the size limit, checking as the
// bytes arrive that it is safe to pass on. Memory is bounded: once the message is
// known to be refused, nothing more is kept (the rest is counted and dropped).
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

export type DataRefusal = 'size' | 'bare-newline' | 'line-length';

export type DataResult =
  | { readonly ok: true; readonly message: Buffer; readonly size: number; readonly longLines: boolean }
  | { readonly ok: false; readonly refusal: DataRefusal; readonly size: number };

/** Bytes left free in front of a message read whole: room for our Received and Message-ID fields. */
export const HEADROOM = 2048;
/**
 * A message's buffer starts at least this large (a message that arrives in one
 * chunk, as most small ones do, gets a buffer of exactly its size) and doubles as needed.
 */
const INITIAL_FRAME = 4 * 1024;
/** Unused bytes a finished message's buffer may keep; more, and it is cut to size. */
const MAX_FRAME_SLACK = 4096;
/** RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF. */
const RFC_LINE_BYTES = 1000;
const CR = 0x0d;
const LF = 0x0a;

export class DataReader {
  readonly #maxBytes: number;
  readonly #maxLineBytes: number;
  /** The message so far, after HEADROOM free bytes; grown by doubling. */
  #frame: Buffer | null = null;
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

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#size += chunk.length;
    if (!this.#bareNewline || !this.#lineTooLong) this.#scan(chunk);
    this.#lastByte = chunk[chunk.length - 1] as number;
    if (this.#refusal() === null) this.#keep(chunk);
    else this.#frame = null;
  }

  /**
   * Copies the chunk into the message's own buffer at once, so smtp-server's chunk
   * dies young: a chunk kept for the seconds a large message takes to arrive would be
   * promoted to V8's old generation, and its memory given back only at the next full
   * collection, long after the message was committed.
   */
  #keep(chunk: Buffer): void {
    const needed = HEADROOM + this.#size;
    if (!this.#frame || this.#frame.length < needed) {
      const grown = Buffer.allocUnsafeSlow(Math.max(needed, Math.min(2 * (this.#frame?.length ?? 0), HEADROOM + this.#maxBytes), INITIAL_FRAME));
      this.#frame?.copy(grown, HEADROOM, HEADROOM, HEADROOM + this.#size - chunk.length);
      this.#frame = grown;
    }
    chunk.copy(this.#frame, HEADROOM + this.#size - chunk.length);
  }

  /** The verdict, once smtp-server has ended the stream. */
  finish(): DataResult {
    // A message whose last byte is CR (only possible for content smtp-server did not frame) ends with a bare CR.
    if (this.#lastByte === CR) this.#bareNewline = true;
    const refusal = this.#refusal();
    if (refusal) {
      this.#frame = null;
      return { ok: false, refusal, size: this.#size };
    }
    // The message in one buffer of its own, with free room in front of it for the header
    // fields ingress adds (stampMessage), so that stamping needs no second copy; cut to
    // size when growing left much unused (the store thread takes it whole).
    let frame = this.#frame ?? Buffer.allocUnsafeSlow(HEADROOM);
    this.#frame = null;
    if (frame.length - HEADROOM - this.#size > MAX_FRAME_SLACK) {
      const exact = Buffer.allocUnsafeSlow(HEADROOM + this.#size);
      frame.copy(exact, HEADROOM, HEADROOM, HEADROOM + this.#size);
      frame = exact;
    }
    const message = frame.subarray(HEADROOM, HEADROOM + this.#size);
    return { ok: true, message, size: this.#size, longLines: this.#longLines };
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

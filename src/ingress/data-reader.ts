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
/** RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF. */
const RFC_LINE_BYTES = 1000;
const CR = 0x0d;
const LF = 0x0a;

export class DataReader {
  readonly #maxBytes: number;
  readonly #maxLineBytes: number;
  #chunks: Buffer[] = [];
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
    if (this.#refusal() === null) this.#chunks.push(chunk);
    else this.#chunks = [];
  }

  /** The verdict, once smtp-server has ended the stream. */
  finish(): DataResult {
    // A message whose last byte is CR (only possible for content smtp-server did not frame) ends with a bare CR.
    if (this.#lastByte === CR) this.#bareNewline = true;
    const refusal = this.#refusal();
    if (refusal) {
      this.#chunks = [];
      return { ok: false, refusal, size: this.#size };
    }
    // One allocation for the whole message, with free room in front of it for the
    // header fields ingress adds (stampMessage), so that stamping needs no second copy.
    const frame = Buffer.allocUnsafe(HEADROOM + this.#size);
    let at = HEADROOM;
    for (const chunk of this.#chunks) at += chunk.copy(frame, at);
    this.#chunks = [];
    const message = frame.subarray(HEADROOM);
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

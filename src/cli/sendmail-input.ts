// The message sendmail reads on stdin, made into what SMTP ingress queues. Local
// programs write Unix text, so a line ends with LF or CRLF (Postfix's sendmail
// takes both), and every line end becomes CRLF here; ingress's DataReader then
// applies the same size and line-length rules as to a message sent by SMTP.
// Refused outright, before anything is queued:
//   - NUL: no RFC 5322 message holds one, and receivers cut or mangle it;
//   - a bare CR (one not before LF): ingress refuses it too (data-reader.ts says
//     why: a later hop may read it as a line end; what it meant is a guess);
//   - more than ingress.max_message_bytes: reading stops there, so memory stays
//     bounded by the limit whatever arrives on stdin.
// Without -i, a line holding one dot ends the message (sendmail's old rule, which
// cron and mail(1) rely on); what follows it is not read.
import { DataReader, type DataRefusal } from '../ingress/data-reader.ts';

export type InputRefusal = DataRefusal | 'nul' | 'bare-cr';

export type InputResult =
  | { readonly ok: true; readonly message: Buffer; readonly longLines: boolean }
  | { readonly ok: false; readonly refusal: InputRefusal; readonly size: number };

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');

/** Turns LF and CRLF line ends into CRLF, chunk by chunk, and finds the lone dot. */
class LineEnds {
  /** The previous byte was a CR whose next byte is not known yet. */
  #pendingCr = false;
  /** Bytes in the current line so far. */
  #lineBytes = 0;
  /** A dot that opened the current line, not written yet: if the line ends now, it ends the input. */
  #heldDot = false;
  refusal: 'nul' | 'bare-cr' | null = null;
  /** A line holding one dot was read, and ended the input. */
  ended = false;

  constructor(private readonly dotEndsInput: boolean) {}

  get lineOpen(): boolean {
    return this.#lineBytes > 0;
  }

  push(chunk: Buffer): Buffer {
    if (chunk.includes(0)) {
      this.refusal = 'nul';
      return Buffer.alloc(0);
    }
    // Each LF may gain a CR, and a held dot be written: at most twice the input, plus one.
    const out = Buffer.allocUnsafe(chunk.length * 2 + 1);
    let n = 0;
    for (let k = 0; k < chunk.length; k++) {
      const b = chunk[k] as number;
      if (this.#pendingCr) {
        this.#pendingCr = false;
        if (b !== LF) {
          this.refusal = 'bare-cr';
          return out.subarray(0, n);
        }
      }
      if (b === CR) {
        this.#pendingCr = true;
        continue;
      }
      if (b === LF) {
        if (this.#heldDot) {
          // The dot line itself is not part of the message; nothing after it is read.
          this.ended = true;
          return out.subarray(0, n);
        }
        out[n++] = CR;
        out[n++] = LF;
        this.#lineBytes = 0;
        continue;
      }
      if (this.#heldDot) {
        out[n++] = DOT;
        this.#heldDot = false;
      }
      if (this.#lineBytes++ === 0 && b === DOT && this.dotEndsInput) this.#heldDot = true;
      else out[n++] = b;
    }
    return out.subarray(0, n);
  }

  /** The bytes still held at the end of input (a dot that ended no line). */
  finish(): Buffer {
    // A message whose last byte is CR ends with a bare CR.
    if (this.#pendingCr) this.refusal = 'bare-cr';
    return this.#heldDot ? Buffer.from('.') : Buffer.alloc(0);
  }
}

/**
 * Reads the message from `input` under the ingress limits. Stops reading at the
 * first refusal (the caller exits; the writer sees a closed pipe) or at a lone dot.
 */
export async function readSendmailInput(
  input: AsyncIterable<Buffer>,
  opts: { maxBytes: number; maxLineBytes: number; dotEndsInput: boolean },
): Promise<InputResult> {
  const lines = new LineEnds(opts.dotEndsInput);
  const reader = new DataReader({ maxBytes: opts.maxBytes, maxLineBytes: opts.maxLineBytes });
  const parts: Buffer[] = [];
  for await (const chunk of input) {
    const normalised = lines.push(chunk);
    if (lines.refusal) return { ok: false, refusal: lines.refusal, size: reader.size + normalised.length };
    parts.push(...reader.push(normalised));
    if (!reader.keeping || lines.ended) break;
  }
  if (!lines.ended && reader.keeping) {
    const held = lines.finish();
    if (lines.refusal) return { ok: false, refusal: lines.refusal, size: reader.size };
    parts.push(...reader.push(held));
  }
  // A last line without its line end gets one: everything queued ends its lines with CRLF.
  if (lines.lineOpen && !lines.ended) parts.push(...reader.push(Buffer.from(CRLF)));
  const result = reader.finish();
  if (!result.ok) return result;
  const message = parts.length || result.tail ? Buffer.concat([result.head, ...parts, ...(result.tail ? [result.tail] : [])]) : result.head;
  return { ok: true, message, longLines: result.longLines };
}

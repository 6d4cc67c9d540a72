// One error type for everything that has an SMTP meaning. Whether to retry or
// bounce is read from the reply class (4xx temporary, 5xx permanent), never from
// the text; `reason` is for logs and records, `message` is what a client may see.

export type SmtpStage = 'connect' | 'greeting' | 'ehlo' | 'starttls' | 'tls-policy' | 'auth' | 'mail' | 'rcpt' | 'data' | 'dns' | 'policy' | 'queue';

export class SmtpError extends Error {
  /** Basic reply code, e.g. 451 or 550. */
  readonly code: number;
  /** RFC 3463 enhanced status, e.g. "4.7.5". */
  readonly enhanced: string;
  readonly stage: SmtpStage;
  /** Operator-facing detail (never shown to an SMTP client). */
  readonly reason: string;

  constructor(code: number, enhanced: string, stage: SmtpStage, message: string, reason = message) {
    super(message);
    if (code < 200 || code > 599) throw new RangeError(`not an SMTP reply code: ${code}`);
    if (!/^[245]\.\d{1,3}\.\d{1,3}$/.test(enhanced)) throw new RangeError(`not an enhanced status code: ${enhanced}`);
    if (String(code)[0] !== enhanced[0]) throw new RangeError(`reply ${code} and status ${enhanced} disagree on class`);
    this.name = 'SmtpError';
    this.code = code;
    this.enhanced = enhanced;
    this.stage = stage;
    this.reason = reason;
  }

  get temporary(): boolean {
    return this.code >= 400 && this.code < 500;
  }

  /** The reply as smtp-server sends it: smtp-server reads `responseCode` off the error. */
  get responseCode(): number {
    return this.code;
  }
}

/** Parses "451 4.7.1 text" style replies; enhanced code may be absent. */
export function parseReply(response: string): { code: number | null; enhanced: string | null; text: string } {
  const m = /^(\d{3})[ -](?:([245]\.\d{1,3}\.\d{1,3}) )?([\s\S]*)$/.exec(response.trim());
  if (!m) return { code: null, enhanced: null, text: response.trim() };
  return { code: Number(m[1]), enhanced: m[2] ?? null, text: (m[3] ?? '').trim() };
}

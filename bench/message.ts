// message: the mail the load generator submits. Shaped like what a healthcare
// app sends (a short text part and a base64 PDF-like attachment), padded so the
// whole message is `size` bytes give or take a line. Every message carries its
// own Message-ID and an X-Bench-Id header that the receiver reads to time it.
//
// The attachment is built once per run and shared: the load generator must not
// spend its (shared) CPU making fresh random bytes per message.
import { randomBytes } from 'node:crypto';

/** RFC 2045 §6.8: base64 lines of at most 76 characters. */
const BASE64_LINE = 76;
const CRLF = '\r\n';
const BOUNDARY = '=_bench_boundary_7f3a';

const TEXT_PART = [
  'Dear patient,',
  '',
  'Your appointment at the clinic is confirmed. Please find the letter with the',
  'details and the preparation instructions attached. Bring your insurance card',
  'and a list of the medicines you take. If you cannot come, call us at least',
  '24 hours before so that another patient can have the slot.',
  '',
  'Kind regards,',
  'The appointments team',
].join(CRLF);

export interface MessageFactory {
  /** The recipient of message i (a hundred mailboxes at the bench domain). */
  recipient(i: number): string;
  readonly sender: string;
  /** The whole message i, CRLF line endings. */
  build(id: string, i: number): Buffer;
}

export function messageFactory(opts: { size: number; domain: string }): MessageFactory {
  const sender = 'appointments@app.bench.local';
  const recipient = (i: number) => `patient${i % 100}@${opts.domain}`;
  const head = (id: string, i: number) =>
    [
      `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
      `From: "Clinic appointments" <${sender}>`,
      `To: <${recipient(i)}>`,
      `Subject: Your appointment (ref ${i})`,
      `Message-ID: <${id}@app.bench.local>`,
      `X-Bench-Id: ${id}`,
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${BOUNDARY}"`,
      '',
      `--${BOUNDARY}`,
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 7bit',
      '',
      TEXT_PART,
      `--${BOUNDARY}`,
      'Content-Type: application/pdf; name="appointment.pdf"',
      'Content-Transfer-Encoding: base64',
      'Content-Disposition: attachment; filename="appointment.pdf"',
      '',
      '',
    ].join(CRLF);
  const sample = head('x'.repeat(32), 0);
  const tail = `${CRLF}--${BOUNDARY}--${CRLF}`;
  const attachment = base64Lines(Math.max(BASE64_LINE, opts.size - sample.length - tail.length));
  const body = Buffer.from(attachment + tail);
  return {
    sender,
    recipient,
    build: (id, i) => Buffer.concat([Buffer.from(head(id, i)), body]),
  };
}

/** About `chars` characters of base64 (random bytes), in CRLF-terminated lines. */
function base64Lines(chars: number): string {
  const lines = Math.max(1, Math.round(chars / (BASE64_LINE + CRLF.length)));
  const text = randomBytes(Math.ceil((lines * BASE64_LINE * 3) / 4)).toString('base64');
  const out: string[] = [];
  for (let l = 0; l < lines; l++) out.push(text.slice(l * BASE64_LINE, (l + 1) * BASE64_LINE));
  return out.join(CRLF);
}

// Bounces: RFC 3464 delivery status notifications in an RFC 6522 multipart/report,
// composed by nodemailer's MailComposer (MIME structure, boundaries, header
// encoding and folding, transfer encodings); what goes into the report is decided here.
//
// Policy:
// - three parts: a human-readable text, the machine-readable message/delivery-status,
//   and the original message's header block as text/rfc822-headers. Never the body
//   (DESIGN.md security posture): it may carry PHI, and the sender still has it. If a
//   caller hands over more than the header block, everything after the first empty
//   line is cut off here;
// - from MAILER-DAEMON at our host name, to the original sender, sent by the caller with
//   the null envelope sender so that a bounce never bounces (RFC 5321 §4.5.5);
// - Auto-Submitted: auto-replied (RFC 3834 §5), so responders stay quiet.
//
// The header block goes in as a pre-built part (MailComposer's `raw`), byte for byte
// and labelled 8bit when it has 8-bit bytes, as Postfix sends it: MailComposer would
// re-encode a text/* part with 8-bit bytes or lines over 76 characters as
// quoted-printable or base64, and bounce processors read this part as it is to find the
// original Message-ID.
import crypto from 'node:crypto';

export interface BounceFailure {
  readonly recipient: string;
  /** RFC 3463 enhanced status, e.g. "5.1.1". */
  readonly status: string;
  /** The remote server's reply (or our own reason when no server answered). */
  readonly diagnostic: string;
  /** Host name of the MX that answered; null when none did. */
  readonly remoteMta: string | null;
  readonly action: 'failed';
  /** RFC 3461 ORCPT as the submitter gave it ("rfc822;ann@example.org"); becomes Original-Recipient. */
  readonly originalRecipient?: string | null;
}

export interface BounceInput {
  /** Our host name (server.hostname). */
  readonly reportingMta: string;
  readonly originalSender: string;
  readonly queueId: string;
  /** The original message's header block only. */
  readonly originalHeaders: string;
  readonly failures: readonly BounceFailure[];
  readonly arrivalDate: Date;
  /** RFC 3461 ENVID given on MAIL FROM; becomes Original-Envelope-Id (RFC 3464 §2.2.1). */
  readonly envelopeId?: string | null;
  /** Defaults to now; tests pin it. */
  readonly date?: Date;
}

export interface Bounce {
  readonly body: Buffer;
  readonly messageId: string;
  readonly subject: string;
  /** The envelope the bounce goes out with: null sender, to the original sender. */
  readonly sender: '';
  readonly recipients: readonly [string];
}

const SUBJECT = 'Undelivered Mail Returned to Sender';
const CRLF = '\r\n';
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 §3.3 date-time in UTC with a numeric zone ("GMT" is obsolete syntax). */
export function rfc5322Date(date: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[date.getUTCDay()]}, ${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ${p(date.getUTCHours())}:${p(date.getUTCMinutes())}:${p(date.getUTCSeconds())} +0000`;
}

function assertHeaderSafe(what: string, value: string): void {
  if (/[\r\n]/.test(value)) throw new TypeError(`${what} must not contain line breaks`);
}

/** One line, ASCII only: DSN fields are US-ASCII (RFC 3464 §2.1.2), server replies may be multiline or 8-bit. */
function fieldValue(text: string): string {
  return text
    .replace(/\s+/g, ' ')
    .replace(/[^\x20-\x7e]/g, '?')
    .trim();
}

/** The header block: up to the first empty line, lines ending in CRLF. */
function headerBlockOnly(headers: string): string {
  const normalized = headers.replace(/\r?\n/g, CRLF);
  const end = normalized.indexOf(CRLF + CRLF);
  const block = end < 0 ? normalized : normalized.slice(0, end);
  return block.replace(/^(\r\n)+/, '').replace(/(\r\n)+$/, '');
}

/** "rfc822;ann@example.org" → "rfc822; ann@example.org" (one line, ASCII). */
function originalRecipient(orcpt: string): string {
  const semi = orcpt.indexOf(';');
  return fieldValue(semi < 0 ? `rfc822; ${orcpt}` : `${orcpt.slice(0, semi).trim()}; ${orcpt.slice(semi + 1).trim()}`);
}

/** The message/delivery-status body (RFC 3464 §2.1): per-message fields, then one blank-line-separated group per recipient. */
function deliveryStatus(input: BounceInput): string {
  const perMessage = [
    ...(input.envelopeId ? [`Original-Envelope-Id: ${fieldValue(input.envelopeId)}`] : []),
    `Reporting-MTA: dns; ${input.reportingMta}`,
    `X-SealRelay-Queue-ID: ${fieldValue(input.queueId)}`,
    `Arrival-Date: ${rfc5322Date(input.arrivalDate)}`,
  ];
  const perRecipient = input.failures.map((f) =>
    [
      // RFC 3464 §2.3.1: the ORCPT address-type and address, as the submitter gave them.
      ...(f.originalRecipient ? [`Original-Recipient: ${originalRecipient(f.originalRecipient)}`] : []),
      `Final-Recipient: rfc822; ${f.recipient}`,
      `Action: ${f.action}`,
      `Status: ${f.status}`,
      ...(f.remoteMta ? [`Remote-MTA: dns; ${fieldValue(f.remoteMta)}`] : []),
      // "smtp;" only for a reply that came from an SMTP server; our own reasons are "X-SealRelay;".
      `Diagnostic-Code: ${/^\d{3}[ -]/.test(f.diagnostic.trim()) ? 'smtp' : 'X-SealRelay'}; ${fieldValue(f.diagnostic)}`,
    ].join(CRLF),
  );
  return [perMessage.join(CRLF), ...perRecipient].join(CRLF + CRLF) + CRLF;
}

function notification(input: BounceInput): string {
  return [
    `This is the mail system at host ${input.reportingMta}.`,
    '',
    'Your message could not be delivered to one or more recipients.',
    'It will not be retried. The reasons are below.',
    '',
    ...input.failures.map((f) => `<${f.recipient}>: ${f.remoteMta ? `host ${f.remoteMta} said: ` : ''}${fieldValue(f.diagnostic)}`),
    '',
    'The headers of your message are attached; its content is not.',
    '',
  ].join(CRLF);
}

/** The text/rfc822-headers part, headers included, as the bytes the original had. */
function headersPart(originalHeaders: string): Buffer {
  const headers = headerBlockOnly(originalHeaders);
  // bounce.ts reads the stored message as latin1, so chars up to U+00FF are bytes: write them back as such.
  const bytes = Buffer.from(headers, [...headers].some((ch) => ch.codePointAt(0)! > 0xff) ? 'utf8' : 'latin1');
  const head = [
    'Content-Type: text/rfc822-headers',
    'Content-Description: Undelivered Message Headers',
    ...(bytes.some((byte) => byte > 0x7f) ? ['Content-Transfer-Encoding: 8bit'] : []),
    '',
    '',
  ].join(CRLF);
  return Buffer.concat([Buffer.from(head, 'latin1'), bytes, Buffer.from(CRLF, 'latin1')]);
}

export async function buildBounce(input: BounceInput): Promise<Bounce> {
  if (!input.reportingMta) throw new TypeError('a bounce needs the reporting MTA');
  if (!input.originalSender) throw new TypeError('a bounce needs a sender to go to (never bounce a bounce)');
  if (!input.failures.length) throw new TypeError('a bounce needs at least one failed recipient');
  assertHeaderSafe('reportingMta', input.reportingMta);
  assertHeaderSafe('originalSender', input.originalSender);
  for (const f of input.failures) {
    assertHeaderSafe('recipient', f.recipient);
    if (!/^[245]\.\d{1,3}\.\d{1,3}$/.test(f.status)) throw new RangeError(`not an enhanced status code: ${f.status}`);
  }

  const date = input.date ?? new Date();
  const messageId = `<${input.queueId}.${date.getTime().toString(36)}.${crypto.randomBytes(6).toString('hex')}@${input.reportingMta}>`;
  const human = notification(input);
  const report = deliveryStatus(input);
  const original = headersPart(input.originalHeaders);
  // Every boundary MailComposer makes contains this random part: none of the parts may.
  let baseBoundary: string;
  do baseBoundary = `sealrelay_${crypto.randomBytes(12).toString('hex')}`;
  while (original.includes(baseBoundary) || human.includes(baseBoundary) || report.includes(baseBoundary));

  // Loaded when a bounce is made: MailComposer and its MIME modules are start-up time every CLI command would pay.
  const { default: MailComposer } = await import('nodemailer/lib/mail-composer');
  const root = new MailComposer({
    from: { name: 'Mail Delivery System', address: `MAILER-DAEMON@${input.reportingMta}` },
    // An object, so that the envelope address is one address and never parsed as a list.
    to: { name: '', address: input.originalSender },
    subject: SUBJECT,
    date,
    messageId,
    headers: { 'Auto-Submitted': 'auto-replied' },
    baseBoundary,
    alternatives: [{ contentType: 'text/plain; charset=us-ascii', content: human, headers: { 'Content-Description': 'Notification' } }],
    attachments: [
      { contentType: 'message/delivery-status', content: report, headers: { 'Content-Description': 'Delivery report' } },
      { raw: original },
    ],
  }).compile();
  // MailComposer makes the two parts and the attachment a multipart/mixed; RFC 6522 wants a multipart/report.
  root.setHeader('Content-Type', 'multipart/report; report-type=delivery-status');

  return Object.freeze({
    body: await root.build(),
    messageId,
    subject: SUBJECT,
    sender: '' as const,
    recipients: [input.originalSender] as const,
  });
}

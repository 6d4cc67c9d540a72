// A message submitted as JSON, made into MIME by nodemailer's MailComposer (the
// portal's composeMail: no file or URL access, CRLF line ends). Everything here is
// from outside: addresses must parse as one mailbox each, header fields the relay
// or the structure owns are refused, and sizes are held to the ingress limits, so
// the API accepts nothing SMTP ingress would not.
import { domainToASCII } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser';
import { composeMail } from '../../portal/compose.ts';
import { ApiError } from './errors.ts';
import type { SubmissionBody } from './schemas.ts';

/**
 * Fields a caller may not set through `headers`: trace fields (ours to write), the
 * MIME structure (MailComposer's), signatures and authentication results (a
 * caller's would be forged), and those the body's own fields set.
 */
const REFUSED_HEADERS: ReadonlySet<string> = new Set([
  'received',
  'return-path',
  'delivered-to',
  'dkim-signature',
  'arc-seal',
  'arc-message-signature',
  'arc-authentication-results',
  'authentication-results',
  'content-type',
  'content-transfer-encoding',
  'content-disposition',
  'content-id',
  'mime-version',
  'date',
  'from',
  'to',
  'cc',
  'bcc',
  'subject',
]);

/** A plain address: ASCII local part without specials, and a domain of labels. */
const LOCAL_PART = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$/;
const DOMAIN = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;
const MESSAGE_ID = /^<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>$/;

export interface SubmissionLimits {
  readonly maxMessageBytes: number;
  readonly maxRecipients: number;
}

export interface ComposedSubmission {
  readonly sender: string;
  /** Envelope recipients: to, cc and bcc, each once. */
  readonly recipients: string[];
  /** The message as MailComposer wrote it (no Received yet, no Bcc field). */
  readonly mime: Buffer;
}

export async function composeSubmission(body: SubmissionBody, limits: SubmissionLimits, date: Date): Promise<ComposedSubmission> {
  const from = mailbox(body.from, 'from');
  const lists = { to: body.to ?? [], cc: body.cc ?? [], bcc: body.bcc ?? [] };
  const parsed = Object.fromEntries(Object.entries(lists).map(([field, values]) => [field, values.map((v, i) => mailbox(v, `${field}[${i}]`))])) as Record<keyof typeof lists, Mailbox[]>;
  // Each address once (any case), as first written.
  const byAddress = new Map<string, string>();
  for (const a of [...parsed.to, ...parsed.cc, ...parsed.bcc]) if (!byAddress.has(a.address.toLowerCase())) byAddress.set(a.address.toLowerCase(), a.address);
  const recipients = [...byAddress.values()];
  if (!recipients.length) throw new ApiError(400, 'invalid_request', 'give at least one recipient in to, cc or bcc', 'to');
  if (recipients.length > limits.maxRecipients) {
    throw new ApiError(400, 'too_many_recipients', `${recipients.length} recipients; at most ${limits.maxRecipients} per message (ingress.max_recipients)`, 'to');
  }

  const headers: Record<string, string> = {};
  let messageId: string | undefined;
  for (const [name, value] of Object.entries(body.headers ?? {})) {
    const lower = name.toLowerCase();
    const field = `headers.${name}`;
    if (REFUSED_HEADERS.has(lower)) throw new ApiError(400, 'invalid_request', `${name} may not be set through headers${['from', 'to', 'cc', 'bcc', 'subject'].includes(lower) ? ` (use the ${lower} field)` : ''}`, field);
    if (lower === 'message-id') {
      if (!MESSAGE_ID.test(value.trim())) throw new ApiError(400, 'invalid_request', 'Message-ID must look like <id@host>', field);
      messageId = value.trim();
    } else if (Object.keys(headers).some((n) => n.toLowerCase() === lower)) {
      throw new ApiError(400, 'invalid_request', `${name} is given twice`, field);
    } else headers[name] = value;
  }

  // Attachments arrive base64 (4 characters for 3 bytes): refuse a message that cannot fit before decoding it.
  const attachmentBytes = (body.attachments ?? []).reduce((n, a) => n + Math.floor((a.content.length * 3) / 4), 0);
  const textBytes = Buffer.byteLength(body.text ?? '') + Buffer.byteLength(body.html ?? '');
  if (attachmentBytes + textBytes > limits.maxMessageBytes) throw tooLarge(limits);
  const attachments = (body.attachments ?? []).map((a, i) => {
    const content = Buffer.from(a.content, 'base64');
    // Node's decoder skips what is not base64; the schema allowed only base64 characters, this catches bad lengths.
    if (content.toString('base64').replace(/=+$/, '') !== a.content.replace(/=+$/, '')) throw new ApiError(400, 'invalid_request', 'content is not valid base64', `attachments[${i}].content`);
    return { filename: a.filename, content, ...(a.contentType ? { contentType: a.contentType } : {}), ...(a.contentId ? { cid: a.contentId } : {}) };
  });

  const mime = await composeMail({
    from,
    ...(parsed.to.length ? { to: parsed.to } : {}),
    ...(parsed.cc.length ? { cc: parsed.cc } : {}),
    // MailComposer leaves Bcc out of the message; they are envelope recipients only.
    ...(parsed.bcc.length ? { bcc: parsed.bcc } : {}),
    ...(body.subject !== undefined ? { subject: body.subject } : {}),
    ...(body.text !== undefined ? { text: body.text } : {}),
    ...(body.html !== undefined ? { html: body.html } : {}),
    ...(messageId ? { messageId } : {}),
    date,
    attachments,
    headers,
  });
  if (mime.length > limits.maxMessageBytes) throw tooLarge(limits);
  return { sender: from.address, recipients, mime };
}

export function tooLarge(limits: SubmissionLimits): ApiError {
  return new ApiError(413, 'too_large', `the message is larger than ${limits.maxMessageBytes} bytes (ingress.max_message_bytes)`, 'body');
}

interface Mailbox {
  readonly name: string;
  readonly address: string;
}

/** One mailbox ("a@b.example" or "Name <a@b.example>"), or a 400 naming `field`. */
function mailbox(value: string, field: string): Mailbox {
  const found = addressparser(value);
  const one = found.length === 1 ? found[0] : undefined;
  if (!one || 'group' in one || !one.address) throw new ApiError(400, 'invalid_address', `${field} must be one email address`, field);
  const at = one.address.lastIndexOf('@');
  const local = one.address.slice(0, at);
  const domain = at > 0 ? domainToASCII(one.address.slice(at + 1)) : '';
  if (at <= 0 || !LOCAL_PART.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..') || !DOMAIN.test(domain)) {
    throw new ApiError(400, 'invalid_address', `${field} is not a valid email address`, field);
  }
  return { name: one.name, address: `${local}@${domain}` };
}

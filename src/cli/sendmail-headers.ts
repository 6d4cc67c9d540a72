// What sendmail does to the header section before the message joins the common
// path (ingress/queued-message.ts), as Postfix's cleanup does for a local
// submission: -t reads recipients from To, Cc and Bcc; Bcc fields are removed
// always (they name hidden recipients, and a local program expects the MTA to
// take them out); a message without From or Date gets them, From naming the
// envelope sender with the -F full name. Message-ID is added by the stamp, as for
// every submission. The body is never read.
import addressparser from 'nodemailer/lib/addressparser';
import { encodeWord } from 'nodemailer/lib/mime-funcs';
import { headerSection, rfc5322Date, withoutField } from '../ingress/received.ts';

/** Fields that name recipients for -t (RFC 5322 §3.6.3). */
const RECIPIENT_FIELDS = new Set(['to', 'cc', 'bcc']);
/** Fields that must not reach a recipient. */
const HIDDEN_FIELDS = ['bcc', 'resent-bcc'];

/** The header section unfolded into [lower-case name, value] pairs, in order. */
function fields(header: Buffer): [string, string][] {
  const unfolded = header.toString('utf8').replace(/\r\n(?=[ \t])/g, '');
  const found: [string, string][] = [];
  for (const line of unfolded.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) found.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1)]);
  }
  return found;
}

/** The addresses in every To, Cc and Bcc field (groups flattened), as written; an entry without an address is returned as its text, for the caller to refuse. */
export function headerRecipients(message: Buffer): string[] {
  const header = message.subarray(0, headerSection(message).end);
  const found: string[] = [];
  for (const [name, value] of fields(header)) {
    if (!RECIPIENT_FIELDS.has(name) || value.trim() === '') continue;
    for (const a of addressparser(value, { flatten: true })) found.push(a.address || a.name);
  }
  return found;
}

/**
 * The message with Bcc fields removed and From and Date added where missing. The
 * full name must have been checked for control characters (no header injection).
 */
export function localHeaders(message: Buffer, opts: { from: string; fullName: string | null; date: Date }): Buffer {
  const { end } = headerSection(message);
  const original = message.subarray(0, end);
  let header = original;
  for (const name of HIDDEN_FIELDS) header = withoutField(header, name);
  const present = new Set(fields(header).map(([name]) => name));
  const added: string[] = [];
  if (!present.has('from')) added.push(`From: ${opts.fullName ? `${displayName(opts.fullName)} <${opts.from}>` : opts.from}\r\n`);
  if (!present.has('date')) added.push(`Date: ${rfc5322Date(opts.date)}\r\n`);
  if (header === original && !added.length) return message;
  return Buffer.concat([header, Buffer.from(added.join(''), 'utf8'), message.subarray(end)]);
}

/** RFC 5322 §3.2.4 quoted-string for ASCII, RFC 2047 encoded words otherwise. */
function displayName(name: string): string {
  if (/^[\x20-\x7e]*$/.test(name)) return `"${name.replace(/(["\\])/g, '\\$1')}"`;
  return encodeWord(name, 'Q', 52);
}

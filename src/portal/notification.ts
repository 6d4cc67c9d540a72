// The notification email: it tells a recipient that a secure message waits on the
// portal, and carries the link there. It names the organisation and the sender,
// the date the item expires, and what the recipient will be asked (a one-time code
// sent to this address). It never carries the message: this module is never given
// the body or attachment names, and the subject only when a rule allows it
// (portal.show_subject), so none can leak into it. The link never carries the
// recipient's address (checked here: a forwarded or scanned link must not tell
// whom it was for).
//
// Every value from outside — the organisation's settings, the sender's display
// name, the notice line, the subject — is hostile: each becomes one plain line
// (plainLine) before use, the HTML is escaped by default (the shared `html`
// template, src/html.ts), and the headers are written by
// nodemailer's MailComposer, which encodes names and the Subject (RFC 2047) and
// cannot be made to start a new header line. The HTML follows email clients'
// rules: inline styles only, layout tables marked role="presentation", the
// accent colour only from the validated "#rrggbb", and text on it in black or
// white, whichever contrasts more (WCAG 2: at least 4.58:1 for any accent). The
// logo is the one remote image (emails may load one; pages never do).
//
// RFC 3834: the notification is Auto-Submitted: auto-generated, so that vacation
// responders keep quiet.
import addressparser from 'nodemailer/lib/addressparser';
import type { Config } from '../config/schema.ts';
import { decodeEncodedWords } from '../mime/encoded-words.ts';
import { html } from '../html.ts';
import { composeMail, newMessageId } from './compose.ts';
import { plainLine } from './notice.ts';

export type Organisation = Readonly<Config['portal']['organisation']>;

export interface NotificationInput {
  /** portal.organisation, as the config validated it. */
  readonly organisation: Organisation;
  /** The notification's From address: portal.from ?? `portal@<server.hostname>`. */
  readonly from: string;
  /** Who sent the original message: its envelope sender, and its From field's value (raw or decoded) when it had one. */
  readonly sender: { readonly address: string; readonly header?: string | null };
  /** The recipient the item is for: the notification's To, and where the code will go. */
  readonly recipient: string;
  /** The portal link, whole (a #k=… fragment included); written into the email exactly as given. */
  readonly link: string;
  /** When the item expires. */
  readonly expiresAt: Date;
  /** The sender's notice line (notice.ts), or null. */
  readonly notice?: string | null;
  /** The original subject: only when a rule allows the notification to show it. */
  readonly subject?: string | null;
  /** server.hostname: the Message-ID's right-hand side. */
  readonly hostname: string;
  /** The Date of the notification; now when absent. */
  readonly date?: Date;
}

export interface Notification {
  /** The whole message, CRLF line ends, ready to queue. */
  readonly body: Buffer;
  /** "<…@hostname>". */
  readonly messageId: string;
  /** The Subject as text (before RFC 2047 encoding). */
  readonly subject: string;
}

export class NotificationError extends Error {
  override readonly name = 'NotificationError';
}

/** Longest sender display name, subject and footer line shown, in code points. */
const NAME_MAX_CHARS = 100;
const SUBJECT_MAX_CHARS = 200;
const FOOTER_LINE_MAX_CHARS = 200;
const FOOTER_MAX_LINES = 10;
/** A From field longer than this is not parsed for a display name (it is hostile or broken). */
const FROM_FIELD_MAX_CHARS = 2000;

const COLOUR = /^#[0-9a-fA-F]{6}$/;
/** A hostname (letters, digits, hyphens, dots) or an address literal for the Message-ID. */
const HOSTNAME = /^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])$/;
/** What a link written as it is into text and an attribute must not contain. */
const UNSAFE_IN_LINK = /[\s\p{Cc}"'<>\\`]/u;
const CONTROL = /\p{Cc}/u;

const WHITE = '#ffffff';
const BLACK = '#000000';
const TEXT = '#1b1b1b';
const MUTED = '#4a4a4a';
const PAGE = '#f3f4f6';
/** Links on white when the accent is too light to read there (the default accent). */
const FALLBACK_LINK = '#1f4e79';
const FONT = 'font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif';

/** Builds the notification; throws NotificationError when an input cannot be used safely. */
export async function buildNotification(input: NotificationInput): Promise<Notification> {
  const view = notificationView(input);
  const messageId = newMessageId(input.hostname);
  const body = await composeMail({
    from: { name: view.organisation, address: input.from },
    to: { name: '', address: input.recipient },
    subject: view.title,
    date: input.date ?? new Date(),
    messageId,
    headers: {
      // RFC 3834 §5: an automatic message that is not a reply to one.
      'Auto-Submitted': 'auto-generated',
      // Exchange and Outlook's own switch for out-of-office and delivery receipts.
      'X-Auto-Response-Suppress': 'All',
    },
    text: textPart(view),
    html: htmlPart(view),
  });
  return { body, messageId, subject: view.title };
}

/** What the email says, each value checked and made one plain line. */
interface View {
  readonly organisation: string;
  readonly title: string;
  /** "Name (address)", "address" or "Name". */
  readonly sender: string;
  readonly recipient: string;
  readonly link: string;
  readonly expiry: string;
  readonly notice: string | null;
  readonly subject: string | null;
  readonly footer: readonly string[];
  readonly logoUrl: string | null;
  readonly accent: string;
  readonly onAccent: string;
  readonly linkColour: string;
}

function notificationView(input: NotificationInput): View {
  const org = input.organisation;
  if (!COLOUR.test(org.colour)) throw new NotificationError('portal.organisation.colour must be "#rrggbb"');
  if (!HOSTNAME.test(input.hostname)) throw new NotificationError('the hostname is not a valid host name');
  checkAddress(input.recipient, 'recipient');
  checkAddress(input.from, 'from');
  const link = checkLink(input.link, input.recipient);
  const organisation = plainLine(org.name, NAME_MAX_CHARS) || 'Secure messages';
  const subject = input.subject ? plainLine(decodeEncodedWords(input.subject), SUBJECT_MAX_CHARS) || null : null;
  const accent = org.colour.toLowerCase();
  const onAccent = contrastRatio(accent, WHITE) >= contrastRatio(accent, BLACK) ? WHITE : BLACK;
  return {
    organisation,
    title: subject ? `Secure message from ${organisation}: ${subject}` : `Secure message from ${organisation}`,
    sender: senderLine(input.sender),
    recipient: plainLine(input.recipient, 320),
    link,
    expiry: expiryText(input.expiresAt),
    notice: input.notice ? plainLine(input.notice, 200) || null : null,
    subject,
    footer: org.footer
      .split(/\r\n|\r|\n/)
      .map((line) => plainLine(line, FOOTER_LINE_MAX_CHARS))
      .filter((line) => line !== '')
      .slice(0, FOOTER_MAX_LINES),
    logoUrl: org.logo_url === null ? null : checkLogo(org.logo_url),
    accent,
    onAccent,
    linkColour: contrastRatio(accent, WHITE) >= 4.5 ? accent : FALLBACK_LINK,
  };
}

function checkAddress(address: string, what: string): void {
  if (!address.includes('@') || CONTROL.test(address) || address.length > 320) throw new NotificationError(`the ${what} address is not usable`);
}

/** The link as given, once it is known to be an https URL that can be written as it is and does not name the recipient. */
function checkLink(link: string, recipient: string): string {
  if (!URL.canParse(link) || new URL(link).protocol !== 'https:' || UNSAFE_IN_LINK.test(link)) {
    throw new NotificationError('the portal link must be an https URL without spaces, quotes or angle brackets');
  }
  const forms = [link, safeDecode(link)].map((s) => s.toLowerCase());
  if (forms.some((s) => s.includes(recipient.toLowerCase()))) throw new NotificationError("the portal link must not carry the recipient's address");
  return link;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function checkLogo(url: string): string {
  if (!URL.canParse(url) || new URL(url).protocol !== 'https:') throw new NotificationError('portal.organisation.logo_url must be an https URL');
  // href is the URL serialised: quotes, spaces and angle brackets percent-encoded.
  return new URL(url).href;
}

/** The sender as shown: the From field's display name (hostile: one plain line) and the envelope address. */
function senderLine(sender: NotificationInput['sender']): string {
  const field = sender.header && sender.header.length <= FROM_FIELD_MAX_CHARS ? sender.header : null;
  const first = field === null ? undefined : addressparser(field)[0];
  const name = first?.name ? plainLine(decodeEncodedWords(first.name), NAME_MAX_CHARS) : '';
  // The envelope sender is empty for a bounce: the From address stands in.
  const fromAddress = first && 'address' in first && first.address ? first.address : '';
  const address = plainLine(sender.address || fromAddress, 320);
  if (name && address && name.toLowerCase() !== address.toLowerCase()) return `${name} (${address})`;
  return address || name || 'Someone';
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** "Saturday 14 March 2026 at 09:30 UTC": the recipient's time zone is unknown, so UTC, said plainly. */
function expiryText(at: Date): string {
  if (Number.isNaN(at.getTime())) throw new NotificationError('the expiry date is not a date');
  const hh = String(at.getUTCHours()).padStart(2, '0');
  const mm = String(at.getUTCMinutes()).padStart(2, '0');
  return `${DAYS[at.getUTCDay()]} ${at.getUTCDate()} ${MONTHS[at.getUTCMonth()]} ${at.getUTCFullYear()} at ${hh}:${mm} UTC`;
}

function codeSentence(view: View): string {
  return `When you open the link, you will be asked for a one-time code. We send it to ${view.recipient}, so only someone who can read this mailbox can open the message.`;
}

function textPart(view: View): string {
  const lines = [
    view.organisation,
    '',
    'You have a secure message',
    '',
    `${view.sender} has sent you a secure message. To protect it, it is not in this email: you read it on ${view.organisation}'s secure portal.`,
    '',
  ];
  if (view.notice) lines.push(`Note from the sender: ${view.notice}`, '');
  if (view.subject) lines.push(`Subject: ${view.subject}`, '');
  lines.push(
    'Read the message:',
    view.link,
    '',
    codeSentence(view),
    '',
    `You can read it until ${view.expiry}. After that it is deleted.`,
    '',
    'This email was sent automatically. If you were not expecting it, you can ignore it.',
  );
  if (view.footer.length) lines.push('', '--', ...view.footer);
  return lines.join('\r\n') + '\r\n';
}

function htmlPart(view: View): string {
  const p = `margin:0 0 16px 0;${FONT};font-size:16px;line-height:24px;color:${TEXT};`;
  const brand = view.logoUrl
    ? html`<img src="${view.logoUrl}" alt="${view.organisation}" height="48" style="display:block;height:48px;width:auto;max-width:240px;border:0;">`
    : html`<span style="${FONT};font-size:20px;line-height:28px;font-weight:bold;color:${view.onAccent};">${view.organisation}</span>`;
  const notice = view.notice
    ? html`<p style="${p}padding:8px 0 8px 12px;border-left:4px solid ${view.accent};"><strong>Note from the sender:</strong> ${view.notice}</p>`
    : '';
  const subject = view.subject ? html`<p style="${p}"><strong>Subject:</strong> ${view.subject}</p>` : '';
  const footer = view.footer.length
    ? html`<tr><td style="padding:16px 24px;background-color:${PAGE};${FONT};font-size:14px;line-height:20px;color:${MUTED};">${view.footer.map((line, i) => html`${i ? html`<br>` : ''}${line}`)}</td></tr>`
    : '';
  const page = html`<!DOCTYPE html>
<html lang="en" dir="ltr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>${view.title}</title>
</head>
<body style="margin:0;padding:0;background-color:${PAGE};">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:${PAGE};">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="max-width:600px;background-color:${WHITE};border-collapse:collapse;">
<tr><td style="padding:16px 24px;background-color:${view.accent};color:${view.onAccent};">${brand}</td></tr>
<tr><td style="padding:24px;">
<h1 style="margin:0 0 16px 0;${FONT};font-size:24px;line-height:32px;color:${TEXT};">You have a secure message</h1>
<p style="${p}">${view.sender} has sent you a secure message. To protect it, it is not in this email: you read it on ${view.organisation}’s secure portal.</p>
${notice}${subject}<table role="presentation" cellpadding="0" cellspacing="0" border="0" style="margin:8px 0 24px 0;">
<tr><td style="background-color:${view.accent};border-radius:4px;">
<a href="${view.link}" style="display:inline-block;padding:14px 24px;${FONT};font-size:18px;line-height:24px;font-weight:bold;color:${view.onAccent};text-decoration:none;border-radius:4px;">Read the message</a>
</td></tr>
</table>
<p style="${p}">If the button does not work, copy this link into your browser:<br>
<a href="${view.link}" style="color:${view.linkColour};text-decoration:underline;word-break:break-all;">${view.link}</a></p>
<h2 style="margin:24px 0 8px 0;${FONT};font-size:18px;line-height:24px;color:${TEXT};">What happens next</h2>
<p style="${p}">${codeSentence(view)}</p>
<p style="${p}">You can read it until <strong>${view.expiry}</strong>. After that it is deleted.</p>
<p style="${p}color:${MUTED};font-size:14px;line-height:20px;">This email was sent automatically. If you were not expecting it, you can ignore it.</p>
</td></tr>
${footer}</table>
</td></tr>
</table>
</body>
</html>
`;
  return page.toString();
}


/** WCAG 2 contrast ratio of two "#rrggbb" colours (1 to 21). */
function contrastRatio(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

/** WCAG 2 relative luminance of "#rrggbb". */
function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => {
    const s = parseInt(hex.slice(i, i + 2), 16) / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

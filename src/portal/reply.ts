// A recipient's secure reply, built as a new message for the queue (origin
// 'portal-reply': policy sends it with forced TLS, or back through the portal when
// the sender's side lacks TLS). Made with nodemailer's MailComposer:
//
// - From: the verified recipient (what they proved they own); Sender and the
//   envelope: the portal's own address, since the relay, not the recipient's mail
//   server, is what sends it (RFC 5322 §3.6.2), and a bounce must come back to us,
//   not to a mailbox that could not read it securely.
// - To: where the original asked replies to go (Reply-To, else From, else its
//   envelope sender); reply-all adds the original To and Cc, less the replier.
// - Threaded: In-Reply-To is the original Message-ID, References its References
//   and Message-ID (RFC 5322 §3.6.4).
// - Text and attachments together at most `maxBytes`.
import { newQueueId } from '../store/queue-id.ts';
import { composeMail, newMessageId } from './compose.ts';
import type { NewMessage } from '../store/store.ts';
import type { MessageView } from './message-view.ts';

export interface ReplyFile {
  readonly filename: string;
  readonly contentType: string;
  readonly content: Buffer;
}

export interface ReplyInput {
  /** The original, as the page read it. */
  readonly original: Pick<MessageView, 'from' | 'replyTo' | 'to' | 'cc' | 'subject' | 'messageId' | 'references'>;
  /** The item's facts: its envelope sender and Message-ID, and the verified recipient. */
  readonly item: { readonly sender: string; readonly recipient: string; readonly messageId: string | null };
  readonly text: string;
  readonly files: readonly ReplyFile[];
  readonly replyAll: boolean;
  /** The portal's address (portal.from, or portal@<server.hostname>). */
  readonly portalFrom: string;
  readonly hostname: string;
  readonly maxBytes: number;
  readonly clientIp: string | null;
  readonly now: number;
}

export class ReplyTooLarge extends RangeError {
  constructor(
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(`a reply of ${bytes} bytes is over the ${maxBytes}-byte limit`);
    this.name = 'ReplyTooLarge';
  }
}

/** The bytes a reply counts against its limit: its text (UTF-8) and its files. */
export function replySize(text: string, files: readonly { content: Buffer }[]): number {
  return Buffer.byteLength(text, 'utf8') + files.reduce((n, f) => n + f.content.length, 0);
}

/** Who a reply goes to, without duplicates or the replier; empty when the original names nobody usable. */
export function replyRecipients(input: Pick<ReplyInput, 'original' | 'item' | 'replyAll'>): string[] {
  const o = input.original;
  const me = input.item.recipient.toLowerCase();
  const primary = o.replyTo.length ? o.replyTo.map((m) => m.address) : o.from?.address ? [o.from.address] : [input.item.sender];
  const all = input.replyAll ? [...primary, ...o.to.map((m) => m.address), ...o.cc.map((m) => m.address)] : primary;
  const out: string[] = [];
  for (const address of all) {
    const a = address.trim();
    if (!isAddress(a) || a.toLowerCase() === me || out.some((x) => x.toLowerCase() === a.toLowerCase())) continue;
    out.push(a);
  }
  return out;
}

/** The addresses a reply-all would add beyond the sender (for the page to say whom). */
export function othersOnReplyAll(input: Pick<ReplyInput, 'original' | 'item'>): string[] {
  const direct = new Set(replyRecipients({ ...input, replyAll: false }).map((a) => a.toLowerCase()));
  return replyRecipients({ ...input, replyAll: true }).filter((a) => !direct.has(a.toLowerCase()));
}

export async function buildReply(input: ReplyInput): Promise<NewMessage> {
  const bytes = replySize(input.text, input.files);
  if (bytes > input.maxBytes) throw new ReplyTooLarge(bytes, input.maxBytes);
  const direct = replyRecipients({ ...input, replyAll: false });
  const others = input.replyAll ? othersOnReplyAll(input) : [];
  const recipients = [...direct, ...others];
  if (!direct.length) throw new Error('the original message names no address to reply to');
  const original = input.original.messageId ?? input.item.messageId;
  const references = [...input.original.references, ...(original ? [original] : [])].filter((r, i, all) => all.indexOf(r) === i);
  const subject = replySubject(input.original.subject);
  const messageId = newMessageId(input.hostname);
  const built = await composeMail({
    from: input.item.recipient,
    sender: input.portalFrom,
    to: direct,
    cc: others.length ? others : undefined,
    subject,
    messageId,
    date: new Date(input.now),
    inReplyTo: original ?? undefined,
    references: references.length ? references : undefined,
    text: input.text,
    attachments: input.files.map((f) => ({ filename: f.filename, contentType: f.contentType, content: f.content })),
    envelope: { from: input.portalFrom, to: recipients },
  });
  return {
    queueId: newQueueId(input.now),
    sender: input.portalFrom,
    recipients,
    body: built,
    messageId,
    subject,
    clientIp: input.clientIp,
    authUser: null,
    receivedAt: input.now,
    origin: 'portal-reply',
  };
}

function replySubject(subject: string | null): string {
  if (!subject) return 'Re: your secure message';
  return /^re:/i.test(subject) ? subject : `Re: ${subject}`;
}

/** An addr-spec as far as a reply needs: one @, no spaces or angle brackets. */
function isAddress(a: string): boolean {
  return /^[^\s@<>,;"]+@[^\s@<>,;"]+\.[^\s@<>,;"]+$/.test(a) && a.length <= 254;
}

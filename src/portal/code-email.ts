// The email that carries a portal item's one-time code (proof of address). It says
// the code, how long it works and what to do if it was not asked for — and nothing
// of the message: no subject, no body, no attachment name, not even the sender's
// address (whoever sees this email sees a code and a name of the organisation).
// A new message for the queue with origin 'portal-code', From portal.from or
// portal@<server.hostname>, marked Auto-Submitted (RFC 3834) so that nobody's
// auto-responder answers it.
import { newQueueId } from '../store/queue-id.ts';
import { composeMail, newMessageId } from './compose.ts';
import type { NewMessage } from '../store/store.ts';

export interface CodeEmailInput {
  readonly to: string;
  readonly code: string;
  readonly lifetimeSeconds: number;
  /** portal.from, or portal@<server.hostname>. */
  readonly from: string;
  /** portal.organisation.name. */
  readonly organisation: string;
  readonly hostname: string;
  readonly now: number;
}

export const CODE_EMAIL_SUBJECT = 'Your code to open a secure message';

/** The portal's sending address: portal.from, else portal@<server.hostname>. */
export function portalFromAddress(config: { portal: { from: string | null }; server: { hostname: string } }): string {
  return config.portal.from ?? `portal@${config.server.hostname}`;
}

/** "10 minutes", "1 hour", "90 seconds". */
export function lifetimeText(seconds: number): string {
  if (seconds % 3600 === 0) return plural(seconds / 3600, 'hour');
  if (seconds % 60 === 0) return plural(seconds / 60, 'minute');
  return plural(seconds, 'second');
}

export async function buildCodeEmail(input: CodeEmailInput): Promise<NewMessage> {
  const lifetime = lifetimeText(input.lifetimeSeconds);
  const org = input.organisation;
  const text = [
    `Your code is: ${input.code}`,
    '',
    `Enter it on the page where you asked for it. It works for ${lifetime}, once.`,
    '',
    `You asked for this code to open a secure message sent to you through ${org}.`,
    'If you did not ask for it, you can ignore this email: nobody can open the message without the code.',
    'Never tell anyone this code. We will never ask you for it by phone or email.',
    '',
  ].join('\n');
  const e = escapeText;
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${e(CODE_EMAIL_SUBJECT)}</title></head>
<body style="margin:0;padding:24px;background:#f3f2f1;font-family:Arial,sans-serif;color:#0b0c0c;font-size:17px;line-height:1.5">
<div style="max-width:560px;margin:0 auto;background:#ffffff;border:1px solid #b1b4b6;padding:24px">
<p style="margin:0 0 8px">Your code is:</p>
<p style="margin:0 0 16px;font-size:32px;font-weight:bold;letter-spacing:6px;font-family:'Courier New',monospace">${e(input.code)}</p>
<p style="margin:0 0 16px">Enter it on the page where you asked for it. It works for ${e(lifetime)}, once.</p>
<p style="margin:0 0 16px">You asked for this code to open a secure message sent to you through ${e(org)}. If you did not ask for it, you can ignore this email: nobody can open the message without the code.</p>
<p style="margin:0;color:#484949">Never tell anyone this code. We will never ask you for it by phone or email.</p>
</div></body></html>`;
  const messageId = newMessageId(input.hostname);
  const built = await composeMail({
    from: { name: org, address: input.from },
    to: input.to,
    subject: CODE_EMAIL_SUBJECT,
    messageId,
    date: new Date(input.now),
    text,
    html,
    headers: { 'Auto-Submitted': 'auto-generated' },
    envelope: { from: input.from, to: [input.to] },
  });
  return {
    queueId: newQueueId(input.now),
    sender: input.from,
    recipients: [input.to],
    body: built,
    messageId,
    subject: CODE_EMAIL_SUBJECT,
    clientIp: null,
    authUser: null,
    receivedAt: input.now,
    origin: 'portal-code',
  };
}

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** For the HTML part: the organisation's name is config text, escaped like any other. */
function escapeText(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

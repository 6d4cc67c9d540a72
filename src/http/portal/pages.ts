// The portal's pages, as PageContent for layout.ts. One question per page, the
// failure next to the field it is about, plain words for what happened and what to
// do (STYLE.md 16). Everything from a message or a request is escaped by `html`;
// the one exception is the sanitised HTML body (portal/message-view.ts), marked where
// it goes in. Items whose key is partly in the link get the link-key script, and
// their forms the attributes it reads (assets/link-key-js.ts); other pages run no
// script at all.
import { CSRF_FIELD } from '../csrf.ts';
import { html, trustedHtml, type SafeHtml } from '../../html.ts';
import type { PageContent } from '../layout.ts';
import type { MessageView, Mailbox } from '../../portal/message-view.ts';

const STYLESHEETS = ['portal.css'];

export interface ItemFacts {
  readonly token: string;
  readonly sender: string;
  readonly recipient: string;
  readonly expiresAt: number;
  readonly keyInLink: boolean;
}

/** "3 December 2026" — the date only, in UTC, spelled out (no 03/12 vs 12/03 doubt). */
export function dateText(ms: number): string {
  return new Date(ms).toLocaleDateString('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' });
}

/** "14:05 UTC on 3 December 2026". */
export function untilText(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 16)} UTC on ${dateText(ms)}`;
}

/** "p•••@patient.example": enough for a person to recognise their address, not to learn it. */
export function maskAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at <= 0) return '•••';
  return `${address[0]}•••${address.slice(at)}`;
}

export function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

const base = (item: ItemFacts) => `/m/${item.token}`;

/** A form that moves to the next step: carries the link's fragment along for keyInLink items. */
function form(item: ItemFacts, action: string, csrf: string, body: SafeHtml, opts: { id?: string; hidden?: boolean; multipart?: boolean; className?: string; autoOpen?: boolean } = {}): SafeHtml {
  return html`<form method="post" action="${action}"${opts.id ? html` id="${opts.id}"` : null}${opts.className ? html` class="${opts.className}"` : null}${opts.multipart ? html` enctype="multipart/form-data"` : null}${item.keyInLink ? html` data-carry-link` : null}${opts.hidden ? html` hidden data-needs-link` : null}${opts.autoOpen ? html` data-auto-open` : null}>
<input type="hidden" name="${CSRF_FIELD}" value="${csrf}">
${item.keyInLink ? html`<input type="hidden" name="k" value="" data-link-key>` : null}
${body}
</form>`;
}

function page(item: ItemFacts | null, title: string, main: SafeHtml): PageContent {
  return { title, main, stylesheets: STYLESHEETS, scripts: item?.keyInLink ? ['portal-link.js'] : [] };
}

/** For keyInLink items: what shows when the link's fragment is missing, and what to do without JavaScript. */
function linkNotices(item: ItemFacts): SafeHtml | null {
  if (!item.keyInLink) return null;
  return html`<div class="notice error" role="alert" id="link-incomplete" data-link-missing hidden><h2>This link is incomplete</h2>
<p>Part of the link that unlocks this message is missing, so it cannot be opened. Open the link in the email again by clicking it, rather than copying part of it. If the email was forwarded or the link was shortened, ask the sender to send the message again.</p></div>
<noscript><div class="notice error"><p>This message can only be opened with JavaScript switched on: part of its key is in the link, and this page's own small script passes it on without it ever being sent in an address. Switch JavaScript on for this site and open the link again.</p></div></noscript>`;
}

export function landingPage(item: ItemFacts, csrf: string, verified: boolean): PageContent {
  const action = verified
    ? html`<p><a class="button" href="${base(item)}/message"${item.keyInLink ? html` data-carry-link` : null}>Open the message</a></p>`
    : form(
        item,
        `${base(item)}/code`,
        csrf,
        html`<p>To open it, first confirm this is your email address. We will send a code to <strong>${maskAddress(item.recipient)}</strong>.</p>
<button type="submit">Send me a code</button>`,
        { id: 'request-code', hidden: item.keyInLink },
      );
  return page(
    item,
    'You have a secure message',
    html`<h1>You have a secure message</h1>
<div class="panel">
<dl class="facts"><dt>From</dt><dd>${item.sender}</dd><dt>Can be read until</dt><dd>${dateText(item.expiresAt)}</dd></dl>
${linkNotices(item)}
${action}
</div>
<p class="meta">The message is kept encrypted. Only the person it was sent to can open it, after confirming their email address.</p>`,
  );
}

export function codePage(item: ItemFacts, csrf: string, error: string | null = null): PageContent {
  const errorId = 'code-error';
  return page(
    item,
    error ? 'Error: Enter your code' : 'Enter your code',
    html`<h1>Enter your code</h1>
${error ? html`<div class="notice error" role="alert"><p>${error}</p></div>` : null}
${linkNotices(item)}
<div class="panel">
${form(
  item,
  `${base(item)}/verify`,
  csrf,
  html`<div class="field${error ? ' field-error' : ''}">
<label for="code">Code</label>
<span class="hint" id="code-hint">We sent it by email to ${maskAddress(item.recipient)}. It can take a minute to arrive; look in your junk or spam folder too.</span>
${error ? html`<span class="error-text" id="${errorId}"><span class="visually-hidden">Error:</span> ${error}</span>` : null}
<input class="code-input" type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" spellcheck="false" aria-describedby="code-hint${error ? ` ${errorId}` : ''}" autofocus>
</div>
<button type="submit">Continue</button>`,
  { id: 'verify' },
)}
</div>
<h2>Not received a code?</h2>
${form(item, `${base(item)}/code`, csrf, html`<p>Codes work for a short time, once. You can ask for a new one; any earlier code then stops working.</p><button type="submit" class="secondary">Send a new code</button>`, { id: 'resend' })}`,
  );
}

export function noCodePage(item: ItemFacts, csrf: string): PageContent {
  return page(
    item,
    'Your code has expired',
    html`<h1>Your code has expired</h1>
<div class="panel"><p>That code can no longer be used: codes work for a short time, and only once. Ask for a new code and use it soon after it arrives.</p>
${form(item, `${base(item)}/code`, csrf, html`<button type="submit">Send me a new code</button>`, { id: 'request-code' })}
</div>`,
  );
}

export function lockedPage(item: ItemFacts, until: number): PageContent {
  return page(
    item,
    'This message is locked for now',
    html`<h1>This message is locked for now</h1>
<div class="panel"><p>A wrong code was entered too many times, so to keep the message safe no code can be sent or used for a while.</p>
<p>You can try again after <strong>${untilText(until)}</strong>: open the link in the email again then and ask for a new code.</p>
<p>If you did not try to open this message, tell the sender: someone else may have the link.</p></div>`,
  );
}

export function passphrasePage(item: ItemFacts, csrf: string, error: string | null = null): PageContent {
  const errorId = 'passphrase-error';
  return page(
    item,
    error ? 'Error: Enter the passphrase' : 'Enter the passphrase',
    html`<h1>Enter the passphrase</h1>
${error ? html`<div class="notice error" role="alert"><p>${error}</p></div>` : null}
<div class="panel">
${form(
  item,
  `${base(item)}/passphrase`,
  csrf,
  html`<div class="field${error ? ' field-error' : ''}">
<label for="passphrase">Passphrase</label>
<span class="hint" id="passphrase-hint">The sender asked for a passphrase as well as the code. They will have given it to you another way, for example by phone or letter.</span>
${error ? html`<span class="error-text" id="${errorId}"><span class="visually-hidden">Error:</span> ${error}</span>` : null}
<input type="password" id="passphrase" name="passphrase" autocomplete="off" aria-describedby="passphrase-hint${error ? ` ${errorId}` : ''}" autofocus>
</div>
<button type="submit">Continue</button>`,
  { id: 'passphrase-form' },
)}
</div>`,
  );
}

/** keyInLink: the page that passes the link's key part on (by POST) to open the message. */
export function openerPage(item: ItemFacts, csrf: string): PageContent {
  return page(
    item,
    'Opening your message',
    html`<h1>Opening your message</h1>
${linkNotices(item)}
<div class="panel" data-needs-link hidden><p>Your message is being opened. If nothing happens, press the button.</p>
${form(item, `${base(item)}/message`, csrf, html`<button type="submit">Open the message</button>`, { id: 'open-message', autoOpen: true })}
</div>`,
  );
}

function mailbox(m: Mailbox): SafeHtml {
  return m.name && m.name !== m.address ? html`${m.name} &lt;${m.address}&gt;` : html`${m.address || m.name}`;
}

export function messagePage(item: ItemFacts, view: MessageView, csrf: string): PageContent {
  const subject = view.subject ?? '(no subject)';
  const attachments = view.attachments.map(
    (a) => html`<li><span class="attachment-name">${a.filename}</span> <span class="meta">${sizeText(a.size)}</span>
${
  item.keyInLink
    ? form(item, `${base(item)}/attachments/${a.number}`, csrf, html`<button type="submit" class="secondary">Download<span class="visually-hidden"> ${a.filename}</span></button>`, { className: 'inline-form' })
    : html`<a class="button secondary" href="${base(item)}/attachments/${a.number}" download>Download<span class="visually-hidden"> ${a.filename}</span></a>`
}</li>`,
  );
  // The one place markup from a message goes into a page: sanitised against an allow-list (portal/message-view.ts).
  const body = view.html !== null ? html`<div class="message-body">${trustedHtml(view.html)}</div>` : html`<div class="message-body"><pre class="message-text">${view.text ?? ''}</pre></div>`;
  return page(
    item,
    subject,
    html`<h1>${subject}</h1>
<dl class="facts">
<dt>From</dt><dd>${view.from ? mailbox(view.from) : item.sender}</dd>
<dt>To</dt><dd>${item.recipient}</dd>
${view.date ? html`<dt>Date</dt><dd>${view.date.toUTCString()}</dd>` : null}
<dt>Can be read until</dt><dd>${dateText(item.expiresAt)}</dd>
</dl>
${view.html !== null ? html`<p class="notice" id="remote-blocked">${view.remoteBlocked ? 'Pictures and other content from the internet in this message are blocked' : 'Pictures and other content from the internet are always blocked'}, to protect your privacy.</p>` : null}
<section class="panel" aria-labelledby="body-heading"><h2 id="body-heading" class="visually-hidden">Message</h2>${body}</section>
${view.attachments.length ? html`<h2>Attachments</h2><ul class="attachments">${attachments}</ul>` : null}
<div class="actions">
<a class="button" href="${base(item)}/reply"${item.keyInLink ? html` data-carry-link` : null}>Reply securely</a>
${form(item, `${base(item)}/sign-out`, csrf, html`<button type="submit" class="secondary">Sign out</button>`, { className: 'inline-form' })}
</div>`,
  );
}

export interface ReplyFormState {
  readonly text: string;
  readonly replyAll: boolean;
  readonly error: { readonly field: 'text' | 'files'; readonly message: string } | null;
}

export function replyPage(item: ItemFacts, csrf: string, opts: { maxBytes: number; others: readonly string[] | null; state?: ReplyFormState }): PageContent {
  const state = opts.state ?? { text: '', replyAll: false, error: null };
  const err = (field: 'text' | 'files') => (state.error?.field === field ? state.error.message : null);
  const othersText = opts.others === null ? 'everyone else the message was sent to' : opts.others.join(', ');
  return page(
    item,
    state.error ? 'Error: Reply securely' : 'Reply securely',
    html`<h1>Reply securely</h1>
${state.error ? html`<div class="notice error" role="alert"><p>${state.error.message}</p></div>` : null}
<p>Your reply goes to the sender from ${item.recipient}, protected as the message to you was.</p>
<div class="panel">
${form(
  item,
  `${base(item)}/reply`,
  csrf,
  html`<div class="field${err('text') ? ' field-error' : ''}">
<label for="reply-text">Your reply</label>
${err('text') ? html`<span class="error-text" id="text-error"><span class="visually-hidden">Error:</span> ${err('text')}</span>` : null}
<textarea id="reply-text" name="text" rows="8"${err('text') ? html` aria-describedby="text-error"` : null}>${state.text}</textarea>
</div>
<div class="field${err('files') ? ' field-error' : ''}">
<label for="reply-files">Attach files (optional)</label>
<span class="hint" id="files-hint">Up to ${sizeText(opts.maxBytes)} in all, your text included.</span>
${err('files') ? html`<span class="error-text" id="files-error"><span class="visually-hidden">Error:</span> ${err('files')}</span>` : null}
<input type="file" id="reply-files" name="files" multiple aria-describedby="files-hint${err('files') ? ' files-error' : ''}">
</div>
${opts.others === null || opts.others.length ? html`<div class="checkbox"><input type="checkbox" id="reply-all" name="replyAll" value="1"${state.replyAll ? html` checked` : null}><label for="reply-all">Also send my reply to ${othersText}</label></div>` : null}
<button type="submit">Send reply</button>`,
  { id: 'reply-form', multipart: true },
)}
</div>
<p><a href="${base(item)}/message"${item.keyInLink ? html` data-carry-link` : null}>Back to the message</a></p>`,
  );
}

export function replySentPage(item: ItemFacts, to: readonly string[]): PageContent {
  return page(
    item,
    'Your reply was sent',
    html`<h1>Your reply was sent</h1>
<div class="panel"><p>Your reply is on its way to ${to.join(', ')}, protected as the message to you was.</p></div>
<p><a href="${base(item)}/message"${item.keyInLink ? html` data-carry-link` : null}>Back to the message</a></p>`,
  );
}

export function signedOutPage(item: ItemFacts): PageContent {
  return page(
    item,
    'You have signed out',
    html`<h1>You have signed out</h1>
<div class="panel"><p>To read the message again, open the link in the email and ask for a new code.</p>
<p>On a shared computer, close the browser too.</p></div>
<p><a href="${base(item)}"${item.keyInLink ? html` data-carry-link` : null}>Back to the start</a></p>`,
  );
}

export function notVerifiedPage(item: ItemFacts): PageContent {
  return page(
    item,
    'Confirm your email address first',
    html`<h1>Confirm your email address first</h1>
<div class="panel"><p>To read this message, confirm it was sent to you: we send a code to your email address. If you had already done so, your session has ended after a time without use.</p>
<p><a class="button" href="${base(item)}"${item.keyInLink ? html` data-carry-link` : null}>Start again</a></p></div>`,
  );
}

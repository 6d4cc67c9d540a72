// What the portal shows of a decrypted message: who sent it, when, its subject,
// its body and its attachments, read with mailparser. Every part of it is treated
// as hostile:
//
// - HTML bodies are sanitised with sanitize-html against an allow-list: text
//   formatting, lists, tables and links (http, https, mailto) only. No script, no
//   event handler, no style (attribute or element), no form, no frame, no object, and
//   no image: nothing in the body can load anything from anywhere, so a tracking
//   pixel never tells the sender's side (or anyone) that the message was read. An
//   image is replaced by a marked "[picture not shown]"; `remoteBlocked` says the page
//   should say so. The page's CSP (security-headers.ts) is the second line.
// - Everything else (names, subject, attachment names) is text, escaped where the
//   page prints it (src/html.ts).
// - Attachments keep their bytes for download; their names are cleaned for the
//   Content-Disposition header (no path, no control characters).
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import sanitizeHtml from 'sanitize-html';

export interface Mailbox {
  readonly name: string;
  readonly address: string;
}

export interface AttachmentView {
  /** 1-based, as the download URL names it. */
  readonly number: number;
  /** Cleaned for display and download; never empty. */
  readonly filename: string;
  /** As the message declared it (lower case); what is served is decided by the route. */
  readonly contentType: string;
  readonly size: number;
  readonly content: Buffer;
}

export interface MessageView {
  readonly from: Mailbox | null;
  readonly replyTo: readonly Mailbox[];
  readonly to: readonly Mailbox[];
  readonly cc: readonly Mailbox[];
  readonly date: Date | null;
  readonly subject: string | null;
  readonly messageId: string | null;
  readonly references: readonly string[];
  /** The plain-text body (null when the message has none). */
  readonly text: string | null;
  /** The HTML body after sanitising; null when the message has none (then `text` is shown). */
  readonly html: string | null;
  /** The HTML asked to load something (an image, a stylesheet, a frame, …) and that was removed. */
  readonly remoteBlocked: boolean;
  readonly attachments: readonly AttachmentView[];
}

/** Markup kept: formatting, lists, tables, quotes and links. Headings move down (the page's own are h1 and h2). */
const ALLOWED_TAGS = [
  'a', 'abbr', 'address', 'b', 'big', 'blockquote', 'br', 'caption', 'center', 'cite', 'code', 'col', 'colgroup', 'dd', 'del', 'div', 'dl', 'dt',
  'em', 'font', 'h3', 'h4', 'h5', 'h6', 'hr', 'i', 'ins', 'kbd', 'li', 'mark', 'ol', 'p', 'pre', 'q', 's', 'samp', 'small', 'span', 'strike',
  'strong', 'sub', 'sup', 'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'tr', 'tt', 'u', 'ul', 'var',
];
/** Elements (or attributes) that load from elsewhere; their presence is what `remoteBlocked` reports. */
const LOADS_SOMETHING = /<\s*(img|image|iframe|frame|object|embed|video|audio|source|track|link|picture|input|svg|style|script|meta|base)\b|\burl\s*\(|\b(background|srcset|poster)\s*=/i;

const SANITISE: sanitizeHtml.IOptions = {
  allowedTags: ALLOWED_TAGS,
  allowedAttributes: {
    a: ['href', 'title', 'rel'],
    abbr: ['title'],
    td: ['colspan', 'rowspan'],
    th: ['colspan', 'rowspan', 'scope'],
    ol: ['start'],
    span: ['class'],
  },
  allowedClasses: { span: ['blocked'] },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowedSchemesAppliedToAttributes: ['href'],
  allowProtocolRelative: false,
  allowedStyles: {},
  disallowedTagsMode: 'discard',
  // The content of these is dropped with them (a <title> or <style> is not text to show).
  nonTextTags: ['script', 'style', 'textarea', 'option', 'noscript', 'title', 'head', 'template', 'xmp', 'iframe', 'object', 'noembed', 'noframes'],
  transformTags: {
    h1: 'h3',
    h2: 'h4',
    h3: 'h5',
    h4: 'h6',
    h5: 'h6',
    // A link leaves the portal without telling the other site where from, and in a new context.
    a: sanitizeHtml.simpleTransform('a', { rel: 'noopener noreferrer nofollow' }),
    img: (_tag, attribs) => ({ tagName: 'span', attribs: { class: 'blocked' }, text: attribs.alt ? `[picture not shown: ${attribs.alt.slice(0, 200)}]` : '[picture not shown]' }),
  },
};

/** The HTML body, sanitised (exported for tests of the allow-list). */
export function sanitiseHtml(htmlText: string): { html: string; remoteBlocked: boolean } {
  return { html: sanitizeHtml(htmlText, SANITISE), remoteBlocked: LOADS_SOMETHING.test(htmlText) };
}

/** Parses a decrypted message for the page. Never throws on malformed MIME: mailparser reads what it can. */
export async function readMessage(mime: Buffer): Promise<MessageView> {
  const parsed: ParsedMail = await simpleParser(mime, { skipHtmlToText: false, skipTextToHtml: true, skipImageLinks: true, keepCidLinks: true });
  const sanitised = typeof parsed.html === 'string' && parsed.html.trim() ? sanitiseHtml(parsed.html) : null;
  return {
    from: mailboxes(parsed.from)[0] ?? null,
    replyTo: mailboxes(parsed.replyTo),
    to: mailboxes(parsed.to),
    cc: mailboxes(parsed.cc),
    date: parsed.date && !Number.isNaN(parsed.date.getTime()) ? parsed.date : null,
    subject: parsed.subject?.trim() || null,
    messageId: parsed.messageId ?? null,
    references: typeof parsed.references === 'string' ? [parsed.references] : (parsed.references ?? []),
    text: parsed.text ?? null,
    html: sanitised?.html ?? null,
    remoteBlocked: sanitised?.remoteBlocked ?? false,
    attachments: parsed.attachments.map((a, i) => ({
      number: i + 1,
      filename: cleanFilename(a.filename, i + 1),
      contentType: (a.contentType || 'application/octet-stream').toLowerCase(),
      size: a.content.length,
      content: a.content,
    })),
  };
}

/** Every mailbox of an address header (groups flattened), without the empty ones. */
function mailboxes(field: AddressObject | AddressObject[] | undefined): Mailbox[] {
  const objects = field === undefined ? [] : Array.isArray(field) ? field : [field];
  const out: Mailbox[] = [];
  const walk = (list: readonly { name?: string; address?: string; group?: unknown[] }[]) => {
    for (const a of list) {
      if (Array.isArray(a.group)) walk(a.group as { name?: string; address?: string }[]);
      else if (a.address || a.name) out.push({ name: (a.name ?? '').trim(), address: (a.address ?? '').trim() });
    }
  };
  for (const o of objects) walk(o.value);
  return out;
}

/** Longest file name kept, in characters (file systems allow 255 bytes). */
const MAX_FILENAME_CHARS = 150;

/**
 * A file name safe to show and to offer for download: the last path segment only,
 * no control or bidi-override characters (which disguise "exe.pdf" as "fdp.exe"), not
 * hidden (leading dots), at most MAX_FILENAME_CHARS; "attachment-<n>" when nothing is left.
 */
export function cleanFilename(name: string | undefined, number: number): string {
  let n = (name ?? '').normalize('NFC');
  n = n.split(/[/\\]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  n = n.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '').trim().replace(/^\.+/, '');
  if (n.length > MAX_FILENAME_CHARS) {
    const dot = n.lastIndexOf('.');
    const ext = dot > 0 && n.length - dot <= 10 ? n.slice(dot) : '';
    n = n.slice(0, MAX_FILENAME_CHARS - ext.length) + ext;
  }
  return n || `attachment-${number}`;
}

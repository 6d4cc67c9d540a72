// A recipient's tracked copy of a message: made per recipient (its links name it),
// in delivery before any encryption, portal sealing or DKIM signing, so that what is
// sealed and signed is the tracked copy.
//
// - clicks: every http(s) href of <a> and <area> in the HTML parts goes through the
//   signed redirector (links.ts); other schemes (mailto:, tel:, #anchors) and URLs
//   that are not printable ASCII or are too long are left as they are.
// - opens: a 1×1 image before </body> of each HTML part (at its end when it has none).
// - unsubscribe: List-Unsubscribe with the signed link and List-Unsubscribe-Post
//   (RFC 8058) at the top of the header; any the sender set are replaced, so the
//   receiver sees one link and it is the one the relay honours. DKIM signs both
//   (crypto/dkim.ts SIGNED_HEADERS).
// - text parts are left alone (no footer is added: the body the sender wrote is theirs).
//
// The MIME structure is walked by mailsplit (the splitter/joiner mailparser uses):
// every part that is not rewritten passes byte for byte. An HTML part is decoded
// from its transfer encoding, rewritten, and encoded again (base64 stays base64;
// quoted-printable, and 7bit/8bit become, quoted-printable). HTML parts that are
// attachments, and parts inside an attached message (message/rfc822), are not touched.
//
// The HTML itself is tokenized by htmlparser2, which gives each attribute's exact
// span: only href attributes are replaced, every other byte stays. The decoded part
// is handled as latin1, one character per byte, so a charset never needs guessing.
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Joiner, Rewriter, Splitter, type RewriterNode } from '@zone-eu/mailsplit';
import { Parser } from 'htmlparser2';
import { headerEnd } from '../../mime/header-block.ts';
import type { TrackingTerms } from '../../policy/decision.ts';
import { isTrackableUrl, linkUrl, type LinkSigner } from './links.ts';

export interface TrackedCopyOptions {
  readonly queueId: string;
  readonly seq: number;
  readonly terms: TrackingTerms;
  /** The public URL the links point to. */
  readonly base: string;
  readonly signer: LinkSigner;
}

/** The recipient's copy with the tracking its terms ask for; the message itself when they ask for none. */
export async function trackedCopy(message: Buffer, o: TrackedCopyOptions): Promise<Buffer> {
  let out = message;
  if (o.terms.opens || o.terms.clicks) {
    const link = (kind: 'open' | 'click', url?: string) => linkUrl(o.base, o.signer, { kind, queueId: o.queueId, seq: o.seq, url });
    out = await rewriteHtmlParts(out, (html) => rewriteHtml(html, { clicks: o.terms.clicks ? (url) => link('click', url) : null, pixel: o.terms.opens ? link('open') : null }));
  }
  if (o.terms.unsubscribe) out = withUnsubscribeHeaders(out, linkUrl(o.base, o.signer, { kind: 'unsubscribe', queueId: o.queueId, seq: o.seq }));
  return out;
}

/** Applies `rewrite` to the decoded body of every inline HTML part (as latin1 text). */
async function rewriteHtmlParts(message: Buffer, rewrite: (html: string) => string): Promise<Buffer> {
  const rewriter = new Rewriter((data: { contentType?: string | false; disposition?: string | false; parentNode?: unknown; root?: boolean }) =>
    data.contentType === 'text/html' && data.disposition !== 'attachment' && !insideAttachedMessage(data),
  );
  rewriter.on('node', ({ decoder, encoder }: RewriterNode) => {
    const chunks: Buffer[] = [];
    decoder.on('data', (c: Buffer) => chunks.push(c));
    decoder.on('end', () => encoder.end(Buffer.from(rewrite(Buffer.concat(chunks).toString('latin1')), 'latin1')));
  });
  const out: Buffer[] = [];
  await pipeline(
    Readable.from([message]),
    new Splitter({ ignoreEmbedded: true }),
    rewriter,
    new Joiner(),
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

/** A node whose ancestor is a message/rfc822 part (with ignoreEmbedded the splitter should not descend, but be sure). */
function insideAttachedMessage(node: { parentNode?: unknown }): boolean {
  for (let p = node.parentNode as { contentType?: string | false; parentNode?: unknown } | undefined; p; p = p.parentNode as typeof p) {
    if (p.contentType === 'message/rfc822') return true;
  }
  return false;
}

const PIXEL_STYLE = 'display:block;width:1px;height:1px;border:0;margin:0;padding:0';

/**
 * One HTML document with its http(s) hrefs replaced by `clicks(url)` and, with `pixel`,
 * the image before </body>. Only the replaced attributes and the inserted image differ
 * from the input.
 */
export function rewriteHtml(html: string, o: { clicks: ((url: string) => string) | null; pixel: string | null }): string {
  const edits: { start: number; end: number; text: string }[] = [];
  let tag = '';
  let bodyEnd: number | null = null;
  const parser = new Parser(
    {
      onopentagname(name) {
        tag = name;
      },
      onattribute(name, value) {
        if (!o.clicks || name !== 'href' || (tag !== 'a' && tag !== 'area')) return;
        const url = value.trim();
        if (!/^https?:/i.test(url) || !isTrackableUrl(url)) return;
        edits.push({ start: parser.startIndex, end: parser.endIndex, text: `href="${escapeAttribute(o.clicks(url))}"` });
      },
      onclosetag(name) {
        if (name === 'body' && bodyEnd === null) bodyEnd = parser.startIndex;
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true },
  );
  parser.end(html);
  if (o.pixel) {
    const at = bodyEnd ?? html.length;
    edits.push({ start: at, end: at, text: `<img src="${escapeAttribute(o.pixel)}" width="1" height="1" alt="" style="${PIXEL_STYLE}">` });
  }
  edits.sort((a, b) => a.start - b.start);
  let out = '';
  let at = 0;
  for (const e of edits) {
    // An edit inside another (never expected from one tokenizer pass) is skipped rather than garbling the part.
    if (e.start < at) continue;
    out += html.slice(at, e.start) + e.text;
    at = e.end;
  }
  return out + html.slice(at);
}

function escapeAttribute(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The message with the relay's List-Unsubscribe pair at the top of its header, any the sender set removed. */
export function withUnsubscribeHeaders(message: Buffer, url: string): Buffer {
  const end = headerEnd(message);
  const head = message.subarray(0, end).toString('latin1');
  const fields = head.match(/[^\r\n]+(?:\r?\n[ \t][^\r\n]*)*(?:\r?\n)?/g) ?? [];
  const kept = fields.filter((f) => !/^list-unsubscribe(-post)?[ \t]*:/i.test(f));
  const ours = `List-Unsubscribe: <${url}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n`;
  return Buffer.concat([Buffer.from(ours + kept.join(''), 'latin1'), message.subarray(end)]);
}

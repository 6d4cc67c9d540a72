// Reading a verified item: the message page, its attachments, the secure reply and
// signing out. Every route needs the session of THAT item and its recipient (an id
// from another item's session opens nothing), and checks again that the item is
// still readable (a recall takes effect at the next request).
//
// keyInLink items: the key part arrives only in a POST body (field `k`, filled by the
// link-key script from the #fragment), is used to open the item for that request
// and is kept nowhere. So for them the message page is first a small page that
// posts it, and downloads are POSTs.
//
// Downloads: Content-Disposition attachment with an RFC 6266 / RFC 8187 file name,
// nosniff, and a content type from a short list of harmless ones (else
// application/octet-stream): a file never renders as a page of ours.
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AttachmentView } from '../../portal/message-view.ts';
import { portalFromAddress } from '../../portal/code-email.ts';
import { buildReply, othersOnReplyAll, replyRecipients, type ReplyFile } from '../../portal/reply.ts';
import type { PortalItemHead } from '../../store/store.ts';
import { HttpError } from '../errors.ts';
import { sendPage } from '../layout.ts';
import type { PortalContext } from './context.ts';
import { messagePage, notVerifiedPage, openerPage, replyPage, replySentPage, signedOutPage } from './pages.ts';
import { itemFacts } from './proof.ts';

/** Files one reply may carry. */
const REPLY_MAX_FILES = 10;
/** Non-file fields of the reply form (_csrf, k, text, replyAll, and room). */
const REPLY_MAX_FIELDS = 10;

/** Types served as they are; everything else is application/octet-stream. None of these can run script in a browser. */
const HARMLESS_TYPES = new Set(['application/pdf', 'image/png', 'image/jpeg', 'image/gif', 'image/webp', 'text/plain', 'text/csv', 'application/zip']);

type TokenRoute = { Params: { token: string; n?: string }; Body: Record<string, unknown> | undefined };
type TokenRequest = FastifyRequest<TokenRoute>;

interface ReplyUpload {
  readonly files: ReplyFile[];
  /** Text and files went over portal.reply_max_bytes (the rest was read and dropped). */
  tooLarge: boolean;
}
const uploads = new WeakMap<FastifyRequest, ReplyUpload>();

export async function registerReading(app: FastifyInstance, ctx: PortalContext): Promise<void> {
  const { server } = ctx;
  // Only this plugin's routes take multipart bodies.
  await app.register(multipart, { limits: { files: REPLY_MAX_FILES, fields: REPLY_MAX_FIELDS } });

  /** The item, when the request's session is verified for it; otherwise the page that says to start again. */
  const verified = async (request: TokenRequest, reply: FastifyReply): Promise<PortalItemHead | null> => {
    const item = await ctx.item(request.params.token);
    if (ctx.session(request, item)) return item;
    await sendPage(request, reply, notVerifiedPage(itemFacts(item, request.params.token)), 401);
    return null;
  };

  const showMessage = async (request: TokenRequest, reply: FastifyReply, item: PortalItemHead, linkKey: unknown) => {
    const view = await ctx.open(item, linkKey);
    await ctx.store.recordPortalEvent(item.id, 'portal-opened', ctx.event(request));
    return sendPage(request, reply, messagePage(itemFacts(item, request.params.token), view, server.csrf.token(request, reply)));
  };

  app.get('/m/:token/message', async (request: TokenRequest, reply) => {
    const item = await verified(request, reply);
    if (!item) return reply;
    if (item.keyInLink) return sendPage(request, reply, openerPage(itemFacts(item, request.params.token), server.csrf.token(request, reply)));
    return showMessage(request, reply, item, null);
  });

  app.post('/m/:token/message', async (request: TokenRequest, reply) => {
    const item = await verified(request, reply);
    if (!item) return reply;
    return showMessage(request, reply, item, request.body?.k);
  });

  const download = async (request: TokenRequest, reply: FastifyReply, linkKey: unknown) => {
    const item = await verified(request, reply);
    if (!item) return reply;
    const n = Number(request.params.n);
    const view = await ctx.open(item, linkKey);
    const attachment = Number.isSafeInteger(n) ? view.attachments[n - 1] : undefined;
    if (!attachment) throw new HttpError(404, 'That attachment is not in this message', 'Go back to the message and choose the attachment from its list.');
    await ctx.store.recordPortalEvent(item.id, 'portal-downloaded', ctx.event(request, `attachment ${n}`));
    return sendAttachment(reply, attachment);
  };
  app.get('/m/:token/attachments/:n', async (request: TokenRequest, reply) => download(request, reply, null));
  app.post('/m/:token/attachments/:n', async (request: TokenRequest, reply) => download(request, reply, request.body?.k));

  app.get('/m/:token/reply', async (request: TokenRequest, reply) => {
    const item = await verified(request, reply);
    if (!item) return reply;
    // keyInLink: the page cannot read the original (no key in a GET), so it names the others in general.
    const others = item.keyInLink ? null : othersOnReplyAll({ original: await ctx.open(item, null), item });
    return sendPage(request, reply, replyPage(itemFacts(item, request.params.token), server.csrf.token(request, reply), { maxBytes: ctx.config().portal.reply_max_bytes, others }));
  });

  app.post<TokenRoute>('/m/:token/reply', { preValidation: (request) => readUpload(request, ctx) }, async (request, reply) => {
    const item = await verified(request, reply);
    if (!item) return reply;
    const config = ctx.config();
    const upload = uploads.get(request) ?? { files: [], tooLarge: false };
    const text = typeof request.body?.text === 'string' ? request.body.text : '';
    const replyAll = request.body?.replyAll === '1';
    const facts = itemFacts(item, request.params.token);
    const again = (status: number, field: 'text' | 'files', message: string) =>
      sendPage(request, reply, replyPage(facts, server.csrf.token(request, reply), { maxBytes: config.portal.reply_max_bytes, others: null, state: { text, replyAll, error: { field, message } } }), status);
    if (upload.tooLarge) {
      return again(413, 'files', `Your reply is too large to send: text and files together can be at most ${Math.floor(config.portal.reply_max_bytes / 1024)} KB. Choose smaller or fewer files (your text is kept below), or send the rest in a second reply.`);
    }
    if (!text.trim() && !upload.files.length) return again(400, 'text', 'Write your reply, or attach a file.');
    const original = await ctx.open(item, request.body?.k);
    const message = await buildReply({
      original,
      item,
      text,
      files: upload.files,
      replyAll,
      portalFrom: portalFromAddress(config),
      hostname: config.server.hostname,
      maxBytes: config.portal.reply_max_bytes,
      clientIp: request.ip,
      now: ctx.now(),
    });
    await ctx.deps.queueMail(message);
    await ctx.store.recordPortalEvent(item.id, 'portal-replied', ctx.event(request, `${upload.files.length} attachment(s)${replyAll ? ', reply to all' : ''}`));
    return sendPage(request, reply, replySentPage(facts, replyRecipients({ original, item, replyAll })));
  });

  app.post('/m/:token/sign-out', async (request: TokenRequest, reply) => {
    await server.sessions.end(request, reply);
    const item = await ctx.item(request.params.token);
    return sendPage(request, reply, signedOutPage(itemFacts(item, request.params.token)));
  });
}

/**
 * Reads a multipart reply form before the CSRF check (which needs its `_csrf`
 * field): fields into the body, files into memory up to portal.reply_max_bytes as the
 * config says now. Past the limit the rest is read and dropped (each file at most
 * limit + 1 bytes, at most REPLY_MAX_FILES files), so the page can say so and keep the text.
 */
async function readUpload(request: FastifyRequest, ctx: PortalContext): Promise<void> {
  if (!request.isMultipart()) return;
  const max = ctx.config().portal.reply_max_bytes;
  const upload: ReplyUpload = { files: [], tooLarge: false };
  const fields: Record<string, string> = {};
  let total = 0;
  // throwFileSizeLimit is read by @fastify/multipart but missing from its types.
  const options = { limits: { fileSize: max + 1, fieldSize: max + 1, files: REPLY_MAX_FILES, fields: REPLY_MAX_FIELDS }, throwFileSizeLimit: false };
  const parts = request.parts(options as Parameters<FastifyRequest['parts']>[0]);
  for await (const part of parts) {
    if (part.type === 'file') {
      const chunks: Buffer[] = [];
      for await (const chunk of part.file as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > max) upload.tooLarge = true;
        else chunks.push(chunk);
      }
      if (part.file.truncated) upload.tooLarge = true;
      // A file input left empty still sends a part, with no name and no bytes.
      if (!upload.tooLarge && part.filename && chunks.length) upload.files.push({ filename: part.filename, contentType: part.mimetype || 'application/octet-stream', content: Buffer.concat(chunks) });
    } else if (typeof part.value === 'string') {
      fields[part.fieldname] = part.value;
      if (part.fieldname === 'text') total += Buffer.byteLength(part.value, 'utf8');
      if (part.valueTruncated || total > max) upload.tooLarge = true;
    }
  }
  if (upload.tooLarge) upload.files.length = 0;
  request.body = fields;
  uploads.set(request, upload);
}

function sendAttachment(reply: FastifyReply, a: AttachmentView): FastifyReply {
  const type = HARMLESS_TYPES.has(a.contentType) ? a.contentType : 'application/octet-stream';
  return reply
    .header('content-disposition', contentDisposition(a.filename))
    .header('x-content-type-options', 'nosniff')
    .type(type)
    .send(a.content);
}

/**
 * RFC 6266 §4.3: an ASCII fallback `filename` (quoted, without quotes, backslashes or
 * non-ASCII) and the exact name as `filename*` in RFC 8187's UTF-8 percent-encoding.
 */
export function contentDisposition(filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\%]/g, '_') || 'attachment';
  const exact = encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${fallback}"; filename*=UTF-8''${exact}`;
}

// /api/v1/messages: submission (send scope) and what became of a message (read).
//
// POST builds the MIME (submission.ts) and from there takes SMTP's path: our
// Received stamp with the inbound TLS facts (received.ts stampMessage, "with
// HTTPS"), the same report headers read (and the campaign header taken out), and
// one durable enqueue naming the token as the auth user, so policy, delivery and
// records treat it as any authenticated submission. With an Idempotency-Key the
// key is written in the enqueue's own transaction (Store.enqueueIdempotent).
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import canonicalize from 'canonicalize';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { buildEvidence, formatSignedEvidence, signEvidence } from '../../events/evidence.ts';
import { EvidenceKeyError, loadEvidenceSigningKey } from '../../events/evidence-key.ts';
import { messageToQueue } from '../../ingress/queued-message.ts';
import type { InboundHop } from '../../ingress/received.ts';
import { readInboundTls } from '../../ingress/tls-session.ts';
import { subjectField } from '../../log.ts';
import { newQueueId } from '../../store/queue-id.ts';
import type { IdempotencyKey, IdempotentEnqueue, NewMessage } from '../../store/store.ts';
import type { ApiContext } from './context.ts';
import { ApiError } from './errors.ts';
import {
  acceptedSchema,
  errorResponses,
  evidenceSchema,
  idempotencyHeaders,
  messageRefParams,
  searchQuery,
  searchSchema,
  submissionSchema,
  timelineSchema,
  type SubmissionBody,
} from './schemas.ts';
import { composeSubmission, tooLarge } from './submission.ts';
import { tokenAuthUser } from './tokens.ts';

/** Base64 and JSON around a message of ingress.max_message_bytes, with room for the text fields. */
export function submissionBodyLimit(maxMessageBytes: number): number {
  return Math.ceil((maxMessageBytes * 4) / 3) + 1024 * 1024;
}

export function registerMessages(app: FastifyInstance, ctx: ApiContext): void {
  app.post<{ Body: SubmissionBody; Headers: { 'idempotency-key'?: string } }>(
    '/messages',
    {
      config: { csrf: 'bearer-token', apiScope: 'send' },
      bodyLimit: submissionBodyLimit(ctx.config().ingress.max_message_bytes),
      schema: {
        summary: 'Send a message',
        description: 'Queues a message as SMTP submission does: same policy, delivery and records. 202 once it is durably queued.',
        tags: ['messages'],
        body: submissionSchema,
        headers: idempotencyHeaders,
        response: { 202: acceptedSchema, ...errorResponses([400, 401, 403, 413, 422, 429, 503]) },
      },
    },
    (request, reply) => submit(ctx, request, reply),
  );

  app.get<{ Querystring: { recipient?: string; since?: string; limit: number } }>(
    '/messages',
    {
      config: { apiScope: 'read' },
      schema: {
        summary: 'Search the delivery log',
        description: 'Attempts, operator actions and portal events, by recipient and time: the newest `limit`, oldest first.',
        tags: ['messages'],
        querystring: searchQuery,
        response: { 200: searchSchema, ...errorResponses([400, 401, 403, 429]) },
      },
    },
    async (request) => {
      const { recipient, since, limit } = request.query;
      const entries = await ctx.store.queryLog({ ...(recipient ? { recipient } : {}), ...(since ? { since: Date.parse(since) } : {}), limit });
      return { entries };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/messages/:id',
    {
      config: { apiScope: 'read' },
      schema: {
        summary: "A message's timeline",
        description: 'Every attempt with its decision, method and TLS facts, every operator action and portal event; and the queue entry while recipients wait.',
        tags: ['messages'],
        params: messageRefParams,
        response: { 200: timelineSchema, ...errorResponses([400, 401, 403, 404, 429]) },
      },
    },
    async (request) => {
      const { id } = request.params;
      const [entries, queued] = await Promise.all([ctx.store.queryLog({ message: id }), ctx.store.getQueueEntry(id)]);
      if (!entries.length && !queued) throw notFound(id);
      return { reference: id, queued, entries };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/messages/:id/evidence',
    {
      config: { apiScope: 'read' },
      schema: {
        summary: 'Signed evidence of a message',
        description: 'The evidence document signed with evidence.signing_key_file (as `sealrelay evidence`); 503 when no key is configured.',
        tags: ['messages'],
        params: messageRefParams,
        response: { 200: evidenceSchema, ...errorResponses([400, 401, 403, 404, 429, 503]) },
      },
    },
    async (request, reply) => {
      const config = ctx.config();
      const file = config.evidence.signing_key_file;
      if (file === null) throw new ApiError(503, 'evidence_unavailable', 'this relay cannot sign evidence: evidence.signing_key_file is not set (sealrelay evidence keygen makes a key)');
      let key;
      try {
        key = loadEvidenceSigningKey(file);
      } catch (err) {
        if (!(err instanceof EvidenceKeyError)) throw err;
        ctx.logger.error({ event: 'api.evidence_key', err: err.message }, 'the evidence signing key cannot be used');
        throw new ApiError(503, 'evidence_unavailable', 'the evidence signing key cannot be used; the relay log says why');
      }
      const { id } = request.params;
      const records = await ctx.store.queryLog({ message: id });
      if (!records.length) throw notFound(id);
      const signed = signEvidence(buildEvidence({ relay: config.server.hostname, reference: id, records }), key);
      return reply.type('application/json; charset=utf-8').send(formatSignedEvidence(signed));
    },
  );
}

function notFound(id: string): ApiError {
  return new ApiError(404, 'not_found', `no message ${id} in the queue or the delivery log`, 'id');
}

async function submit(ctx: ApiContext, request: FastifyRequest<{ Body: SubmissionBody; Headers: { 'idempotency-key'?: string } }>, reply: FastifyReply) {
  const token = request.apiToken!;
  const config = ctx.config();
  const limits = { maxMessageBytes: config.ingress.max_message_bytes, maxRecipients: config.ingress.max_recipients };
  const key = request.headers['idempotency-key'];
  const requestHash = createHash('sha256').update(canonicalize(request.body) ?? '').digest();
  const now = ctx.now();
  const idempotency: IdempotencyKey | null = key === undefined ? null : { tokenId: token.id, key, requestHash, createdAt: now, expiredBefore: now - config.api.idempotency_hours * 3_600_000 };

  const composed = await composeSubmission(request.body, limits, new Date(now));
  const queueId = newQueueId(now);
  const hop: InboundHop = {
    helo: `[${request.ip}]`,
    ehlo: true,
    clientHostname: null,
    clientIp: request.ip,
    hostname: config.server.hostname,
    queueId,
    authenticated: true,
    tls: inboundTls(request),
    recipients: composed.recipients,
    date: new Date(now),
    protocol: 'HTTPS',
  };
  const message = messageToQueue(
    composed.mime,
    hop,
    { sender: composed.sender, clientIp: request.ip, authUser: tokenAuthUser(token.name) },
    { report: { campaign: config.reports.campaign_header, custom: config.reports.custom_header }, campaign: request.body.campaign },
  );
  if (message.body.length > limits.maxMessageBytes) throw tooLarge(limits);
  const size = message.body.length;
  const messageId = message.messageId;

  const done = await enqueue(ctx, message, idempotency, request.ip);
  if (done.result === 'repeat') {
    if (!done.requestHash.equals(requestHash)) {
      throw new ApiError(422, 'idempotency_key_reused', 'this Idempotency-Key was used with a different request; use a new key for a new message', 'Idempotency-Key');
    }
    ctx.logger.info({ event: 'api.replayed', queueId: done.queueId, token: token.name, ip: request.ip }, 'repeated request answered from its Idempotency-Key; nothing queued');
    return reply.code(202).header('idempotent-replayed', 'true').send({ queueId: done.queueId, messageId: done.messageId });
  }
  ctx.kick();
  ctx.logger.info(
    { event: 'ingress.queued', via: 'api', queueId, messageId, size, token: token.name, ip: request.ip, recipients: composed.recipients.length, ...subjectField(message.subject, config.logging.log_subjects) },
    'queued',
  );
  return reply.code(202).send({ queueId, messageId });
}

/**
 * The durable enqueue (with the key, when one was sent). A failed commit is a 503 to
 * send again, as SMTP's 451: the client still has the message, and a key makes the
 * retry safe.
 */
async function enqueue(ctx: ApiContext, message: NewMessage, key: IdempotencyKey | null, ip: string): Promise<IdempotentEnqueue> {
  try {
    if (key) return await ctx.store.enqueueIdempotent(message, key);
    await ctx.store.enqueue(message);
    return { result: 'queued' };
  } catch (err) {
    ctx.logger.error({ event: 'store.error', queueId: message.queueId, err: (err as Error).message, ip }, 'enqueue failed; API client told to retry');
    throw new ApiError(503, 'queue_unavailable', 'the message could not be queued; send it again (with the same Idempotency-Key)', undefined, { 'retry-after': '60' });
  }
}

/** What TLS the request came over, read from its socket (null for fastify's inject, which has none). */
function inboundTls(request: FastifyRequest): InboundHop['tls'] {
  const socket = request.raw.socket as Partial<TLSSocket>;
  return typeof socket.getProtocol === 'function' && socket.encrypted ? readInboundTls(socket as TLSSocket) : null;
}

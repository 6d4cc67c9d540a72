// One message, from DATA to the reply: read it under the limits (data-reader.ts),
// stamp the inbound hop (received.ts), commit it with store.enqueue, and only
// then say "250 2.0.0 Ok: queued as <id>" (DESIGN: durable before 250). A failed
// commit is a temporary 451 4.3.0, so the client keeps the message and retries.
import { performance } from 'node:perf_hooks';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { subjectField, type Logger } from '../log.ts';
import type { SmtpError } from '../smtp-error.ts';
import { conformMessage } from '../mime/conform.ts';
import { countHops } from '../mime/hops.ts';
import { newQueueId } from '../store/queue-id.ts';
import type { NewMessage, Store } from '../store/store.ts';
import { DataReader, HEADROOM, type DataRefusal, type DataResult } from './data-reader.ts';
import { StagedParts } from './staged-parts.ts';
import type { Ticket } from './receive-budget.ts';
import { messageToQueue } from './queued-message.ts';
import { headerSection, type InboundHop } from './received.ts';
import { replies } from './replies.ts';
import type { SessionState } from './sessions.ts';
import type { IngressSettings } from './settings.ts';

/** What ingress needs of the store: the commit (with a large message's parts before it), and a look-up to tell a message that came back to us. */
export type IngressStore = Pick<Store, 'enqueue' | 'stageBodyPart' | 'discardStaged' | 'readBody' | 'getQueueEntry'>;

export interface AcceptOutcome {
  /** Text after "250" when the message was queued. */
  readonly reply?: string;
  readonly error?: SmtpError;
  readonly queueId?: string;
}

export async function acceptMessage(opts: {
  stream: SMTPServerDataStream;
  session: SMTPServerSession;
  state: SessionState;
  store: IngressStore;
  /** This message's share of the receive budget; the caller closes it after the reply. */
  ticket: Ticket;
  logger: Logger;
}): Promise<AcceptOutcome> {
  const { stream, session, state, store, ticket, logger } = opts;
  const { settings } = state;
  // The envelope is copied now: smtp-server resets the session once we reply.
  const sender = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
  const recipients = session.envelope.rcptTo.map((r) => r.address);
  const dsn = dsnOf(session);
  // RFC 8689: smtp-server sets it only for a MAIL FROM … REQUIRETLS over TLS.
  const requireTls = (session.envelope as { requireTLS?: boolean }).requireTLS === true;
  const helo = session.hostNameAppearsAs || `[${state.ip}]`;
  const ehlo = session.openingCommand === 'EHLO';
  const rdns = session.clientHostname && !session.clientHostname.startsWith('[') ? session.clientHostname : null;
  const who = { ip: state.ip, user: state.user?.name ?? null, recipients: recipients.length };

  // The queue id is chosen now: a large message's parts are written under it as they arrive.
  const queueId = newQueueId();
  const staged = new StagedParts(store, queueId, ticket);
  const reader = new DataReader({ maxBytes: settings.maxMessageBytes, maxLineBytes: settings.maxLineBytes });
  const result = await readAll(stream, reader, ticket, staged);
  if (result === null || !result.ok) await discard(staged, logger, queueId);
  if (result === null) {
    logger.info({ event: 'ingress.rejected', reason: 'connection_lost', ...who }, 'client went away during DATA');
    return { error: replies.queueFailed() };
  }
  // The reader applies this session's limits (smtp-server's stream.sizeExceeded uses the server-wide value, which a reload may have changed).
  if (!result.ok) {
    logger.info({ event: 'ingress.rejected', reason: result.refusal, size: result.size, ...who }, `message refused: ${result.refusal}`);
    return { error: refusalReply(result.refusal, settings.maxMessageBytes, settings.maxLineBytes) };
  }
  if (result.tail) await staged.write(result.tail);

  // Lines over RFC 5321's 1000 octets (within our cap): re-encode or fold them now, so
  // that what is queued and passed on conforms (mime/conform.ts keeps the content).
  // That needs the message whole: a large one is read back from its parts (rare: it
  // takes the message's size in memory a few times over, counted in the receive budget).
  let whole: Buffer | null = null;
  if (result.longLines && !staged.failure) {
    if (staged.count === 0) whole = result.head;
    else {
      await ticket.take(result.size);
      const rest = await store.readBody(queueId).catch((err: Error) => err);
      await discard(staged, logger, queueId);
      if (!(rest instanceof Buffer) || rest.length !== result.size - result.head.length) {
        const err = rest instanceof Error ? rest : new Error(`parts hold ${rest?.length ?? 0} bytes`);
        logger.error({ event: 'store.error', queueId, err: err.message, ...who }, 'could not read a message back to repair its long lines; client told to retry');
        return { error: replies.storeFailed(err) };
      }
      whole = Buffer.concat([result.head, rest]);
    }
  }
  const conformed = whole ? conformMessage(whole) : null;
  if (conformed?.unfixable.length) {
    await discard(staged, logger, queueId);
    const reasons = conformed.unfixable.map((u) => `${u.part}: ${u.reason}`);
    logger.info({ event: 'ingress.rejected', reason: 'line_unfixable', unfixable: reasons, ...who }, 'message refused: a long line cannot be repaired');
    return { error: replies.lineUnfixable() };
  }
  // The head has free room in front for our fields; a repaired or reassembled copy has none.
  const content = conformed ? conformed.body : result.head;
  const headroom = content === result.head ? HEADROOM : 0;
  // The header section is found once: the loop checks read it, stamping adds to it.
  const section = headerSection(content);

  const looped = await loopRefusal(content.subarray(0, section.end), settings, store);
  if (looped) {
    await discard(staged, logger, queueId);
    logger.warn({ event: 'ingress.rejected', reason: looped.reason, ...who }, `message refused: ${looped.reason}`);
    return { error: looped };
  }

  const receivedAt = Date.now();
  const hop: InboundHop = {
    helo,
    ehlo,
    clientHostname: rdns,
    clientIp: state.ip,
    hostname: settings.hostname,
    queueId,
    authenticated: state.user !== null,
    tls: session.secure ? state.tls : null,
    recipients,
    date: new Date(receivedAt),
  };
  const stamped = messageToQueue(content, hop, { sender, clientIp: state.ip, authUser: state.user?.name ?? null }, { headroom, section, report: settings.reportHeaders });
  const size = stamped.body.length + staged.bytes;
  const message: NewMessage = { ...stamped, ...(staged.count ? { staged: { parts: staged.count, bytes: staged.bytes } } : {}), ...dsn, ...(requireTls ? { requireTls } : {}) };
  // How long the durable commit held the reply: the store's share of the accept latency an app sees.
  const commitStart = performance.now();
  try {
    if (staged.failure) throw staged.failure;
    await store.enqueue(message);
  } catch (err) {
    await discard(staged, logger, queueId);
    logger.error({ event: 'store.error', queueId, err: (err as Error).message, ...who }, 'enqueue failed; client told to retry');
    return { error: replies.storeFailed(err) };
  }
  const commitMs = Math.round((performance.now() - commitStart) * 100) / 100;
  logger.info(
    { event: 'ingress.queued', queueId, messageId: stamped.messageId, size, commitMs, ...who, tls: state.tls?.version ?? null, ...(requireTls ? { requireTls } : {}), ...subjectField(stamped.subject, settings.logSubjects) },
    'queued',
  );
  if (conformed?.repairs.length) {
    // Say so: the message differs from what the client sent (the content each reader decodes does not).
    logger.info(
      { event: 'ingress.repaired', queueId, repairs: conformed.repairs.map((r) => `${r.part}: ${r.action}`), dkimSignatureBroken: conformed.brokenDkimSignature, ...who },
      conformed.brokenDkimSignature ? "long lines re-encoded; the sender's DKIM signature no longer verifies" : 'long lines re-encoded',
    );
  }
  return { reply: `2.0.0 Ok: queued as ${queueId}`, queueId };
}

/**
 * The two ends of a mail loop ingress can see: a message that has travelled more than
 * ingress.max_hops hops (Postfix hop_count_limit), and one carrying our own Received
 * stamp for a queue id still in our queue — we are delivering it, and it came back.
 * (Our stamp on a message whose queue entry is gone is a legitimate second pass, e.g.
 * forwarded back to us by a mailbox rule.)
 */
export async function loopRefusal(header: Buffer, settings: Pick<IngressSettings, 'maxHops' | 'hostname'>, store: Pick<IngressStore, 'getQueueEntry'>): Promise<SmtpError | null> {
  const hops = countHops(header);
  if (hops > settings.maxHops) return replies.tooManyHops();
  if (hops === 0) return null;
  for (const queueId of ownStamps(header.toString('latin1'), settings.hostname)) {
    if (await store.getQueueEntry(queueId)) return replies.mailLoop(queueId);
  }
  return null;
}

/** Queue ids in Received fields written by this relay ("by <hostname> (SealRelay) with … id <queue id>"). */
function ownStamps(header: string, hostname: string): string[] {
  const ids: string[] = [];
  const unfolded = header.replace(/\r\n[ \t]+/g, ' ');
  const mark = `by ${hostname.toLowerCase()} (sealrelay) with `;
  for (const line of unfolded.split('\r\n')) {
    if (!/^received[ \t]*:/i.test(line)) continue;
    const lower = line.toLowerCase();
    const at = lower.indexOf(mark);
    if (at < 0) continue;
    const id = /^\S+ id ([0-9A-Za-z]{9,32})\b/.exec(line.slice(at + mark.length))?.[1];
    if (id) ids.push(id);
  }
  return ids;
}

/** RFC 3461 parameters as smtp-server parsed them (ENVID on MAIL, NOTIFY/ORCPT per RCPT), for the bounces we make. */
function dsnOf(session: SMTPServerSession): Pick<NewMessage, 'envid' | 'recipientDsn'> {
  const envid = (session.envelope as { dsn?: { envid?: string | null } }).dsn?.envid ?? null;
  const recipientDsn = session.envelope.rcptTo.map((r) => {
    const given = (r as { dsn?: { notify?: readonly string[]; orcpt?: string } }).dsn;
    return { notify: given?.notify?.length ? given.notify.join(',').toUpperCase() : null, orcpt: given?.orcpt ?? null };
  });
  return recipientDsn.some((d) => d.notify !== null || d.orcpt !== null) || envid !== null ? { envid, recipientDsn } : {};
}

function refusalReply(refusal: DataRefusal, maxBytes: number, maxLineBytes: number): SmtpError {
  switch (refusal) {
    case 'size':
      return replies.messageTooBig(maxBytes);
    case 'bare-newline':
      return replies.bareNewline();
    case 'line-length':
      return replies.lineTooLong(maxLineBytes);
  }
}

/**
 * Feeds the DATA stream to the reader, and the parts it hands on to the store; null
 * when the stream died before its end. While the budget makes the message wait, or
 * a part is being written, the stream is paused: smtp-server stops reading the
 * socket, and the client's TCP window closes.
 */
function readAll(stream: SMTPServerDataStream, reader: DataReader, ticket: Ticket, staged: StagedParts): Promise<DataResult | null> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (value: DataResult | null) => {
      if (settled) return;
      settled = true;
      void staged.settled().then(() => resolve(value));
    };
    let holds = 0;
    const holdUntil = (done: Promise<unknown>) => {
      if (holds++ === 0) stream.pause();
      void done.then(() => {
        if (--holds === 0) stream.resume();
      });
    };
    stream.on('data', (chunk: Buffer) => {
      const parts = reader.push(chunk);
      const wait = reader.keeping ? ticket.take(chunk.length) : null;
      if (wait) holdUntil(wait);
      for (const part of parts) holdUntil(staged.write(part));
    });
    stream.once('end', () => settle(reader.finish()));
    stream.once('error', () => settle(null));
    stream.once('close', () => settle(stream.readableEnded ? reader.finish() : null));
  });
}

/** Drops a message's staged parts; a failure is logged (the next start sweeps them). */
async function discard(staged: StagedParts, logger: Logger, queueId: string): Promise<void> {
  try {
    await staged.discard();
  } catch (err) {
    logger.error({ event: 'store.error', queueId, err: (err as Error).message }, 'could not drop the parts of a message not queued');
  }
}

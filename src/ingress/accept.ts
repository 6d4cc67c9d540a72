// One message, from DATA to the reply: read it under the limits (data-reader.ts),
// stamp the inbound hop (received.ts), commit it with store.enqueue, and only
// then say "250 2.0.0 Ok: queued as <id>" (DESIGN: durable before 250). A failed
// commit is a temporary 451 4.3.0, so the client keeps the message and retries.
import { performance } from 'node:perf_hooks';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { subjectField, type Logger } from '../log.ts';
import type { SmtpError } from '../smtp-error.ts';
import { newQueueId } from '../store/queue-id.ts';
import type { NewMessage, Store } from '../store/store.ts';
import { DataReader, type DataRefusal, type DataResult } from './data-reader.ts';
import { stampMessage } from './received.ts';
import { replies } from './replies.ts';
import type { SessionState } from './sessions.ts';

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
  store: Pick<Store, 'enqueue'>;
  logger: Logger;
}): Promise<AcceptOutcome> {
  const { stream, session, state, store, logger } = opts;
  const { settings } = state;
  // The envelope is copied now: smtp-server resets the session once we reply.
  const sender = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
  const recipients = session.envelope.rcptTo.map((r) => r.address);
  const helo = session.hostNameAppearsAs || `[${state.ip}]`;
  const ehlo = session.openingCommand === 'EHLO';
  const rdns = session.clientHostname && !session.clientHostname.startsWith('[') ? session.clientHostname : null;
  const who = { ip: state.ip, user: state.user?.name ?? null, recipients: recipients.length };

  const reader = new DataReader({ maxBytes: settings.maxMessageBytes, maxLineBytes: settings.maxLineBytes });
  const result = await readAll(stream, reader);
  if (result === null) {
    logger.info({ event: 'ingress.rejected', reason: 'connection_lost', ...who }, 'client went away during DATA');
    return { error: replies.queueFailed() };
  }
  // The reader applies this session's limits (smtp-server's stream.sizeExceeded uses the server-wide value, which a reload may have changed).
  if (!result.ok) {
    logger.info({ event: 'ingress.rejected', reason: result.refusal, size: result.size, ...who }, `message refused: ${result.refusal}`);
    return { error: refusalReply(result.refusal, settings.maxMessageBytes, settings.maxLineBytes) };
  }

  const queueId = newQueueId();
  const receivedAt = Date.now();
  const stamped = stampMessage(result.message, {
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
  });
  const message: NewMessage = {
    queueId,
    sender,
    recipients,
    body: stamped.body,
    messageId: stamped.messageId,
    subject: stamped.subject,
    clientIp: state.ip,
    authUser: state.user?.name ?? null,
    receivedAt,
  };
  // How long the durable commit held the reply: the store's share of the accept latency an app sees.
  const commitStart = performance.now();
  try {
    await store.enqueue(message);
  } catch (err) {
    logger.error({ event: 'store.error', queueId, err: (err as Error).message, ...who }, 'enqueue failed; client told to retry');
    return { error: replies.queueFailed() };
  }
  const commitMs = Math.round((performance.now() - commitStart) * 100) / 100;
  logger.info(
    { event: 'ingress.queued', queueId, messageId: stamped.messageId, size: stamped.body.length, commitMs, ...who, tls: state.tls?.version ?? null, ...subjectField(stamped.subject, settings.logSubjects) },
    'queued',
  );
  return { reply: `2.0.0 Ok: queued as ${queueId}`, queueId };
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

/** Feeds the DATA stream to the reader; null when the stream died before its end. */
function readAll(stream: SMTPServerDataStream, reader: DataReader): Promise<DataResult | null> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (value: DataResult | null) => {
      if (settled) return;
      settled = true;
      resolve(value);
    };
    stream.on('data', (chunk: Buffer) => reader.push(chunk));
    stream.once('end', () => settle(reader.finish()));
    stream.once('error', () => settle(null));
    stream.once('close', () => settle(stream.readableEnded ? reader.finish() : null));
  });
}

// Turns bounced recipients of one job into a DSN queued to the envelope sender.
// Never to the null sender (RFC 5321 §4.5.5: no bounce of a bounce), and never
// with the body: only the original header block travels back (RFC 3462
// text/rfc822-headers), whatever RET asked (RET=FULL would put PHI back on the wire).
// The submitter's DSN parameters are honoured: no DSN for a recipient whose NOTIFY
// leaves out FAILURE, ENVID and ORCPT reported back as the RFC asks.
// The DSN of a REQUIRETLS message (RFC 8689 §5) is itself sent with REQUIRETLS: the
// header block it returns is part of what the sender wanted kept off unverified paths.
import { headerBlock } from '../mime/header-block.ts';
import { newQueueId } from '../store/queue-id.ts';
import type { NewMessage } from '../store/store.ts';
import type { Job, RecipientResult } from './attempt.ts';
import { buildBounce } from './dsn.ts';

/** The DSN to queue, and how many recipients it reports (those whose NOTIFY asked for failures). */
export interface Bounce {
  readonly message: NewMessage;
  readonly reported: number;
}

export async function bounceFor(job: Job, failed: readonly RecipientResult[], body: Buffer, hostname: string): Promise<Bounce | null> {
  if (job.sender === '') return null;
  // RFC 3461 §4.1: a recipient submitted with NOTIFY that leaves out FAILURE (NEVER, or only SUCCESS/DELAY) gets no failure DSN.
  const bounced = failed.filter((r) => wantsFailureNotice(r.item.dsn.notify));
  if (!bounced.length) return null;
  const queueId = newQueueId();
  const first = bounced[0]!.item;
  const dsn = await buildBounce({
    reportingMta: hostname,
    originalSender: job.sender,
    queueId: job.queueId,
    originalHeaders: headerBlock(body),
    arrivalDate: new Date(first.receivedAt),
    envelopeId: first.dsn.envid,
    failures: bounced.map((r) => ({
      recipient: r.item.recipient,
      // Like Postfix, a deferral that outlived the queue lifetime keeps its last
      // status (e.g. 4.7.4) under Action: failed; 4.4.7 "delivery time expired" when it had none.
      status: r.smtp.enhanced ?? (r.smtp.code !== null && r.smtp.code >= 500 ? '5.0.0' : '4.4.7'),
      diagnostic: r.smtp.response,
      remoteMta: r.mx?.host ?? null,
      action: 'failed' as const,
      originalRecipient: r.item.dsn.orcpt,
    })),
  });
  const message: NewMessage = {
    queueId,
    sender: '',
    recipients: [job.sender],
    body: dsn.body,
    messageId: dsn.messageId ?? null,
    subject: dsn.subject ?? null,
    clientIp: null,
    authUser: null,
    receivedAt: Date.now(),
    ...(first.requireTls ? { requireTls: true } : {}),
  };
  return { message, reported: bounced.length };
}

/** NOTIFY unset means the default: failures are reported (RFC 3461 §4.1). */
function wantsFailureNotice(notify: string | null): boolean {
  return notify === null || notify.split(',').includes('FAILURE');
}

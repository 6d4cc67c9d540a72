// Suppressions at delivery (reporting/tracking/suppression.ts): a recipient who
// unsubscribed from the sender's domain, or whom an operator suppressed, gets
// nothing — the record says `suppressed`, final, and no MX is contacted — unless the
// decision marks the message transactional. Bounces (null sender) and the mail the
// portal makes are never suppressed.
import { domainOf, type QueueItem, type Store } from '../store/store.ts';
import type { Job, RecipientResult } from './attempt.ts';

/** The job without its suppressed recipients (null when none is left), and their results. */
export async function splitSuppressed(job: Job, store: Pick<Store, 'suppressedAmong'>): Promise<{ sending: Job | null; suppressed: RecipientResult[] }> {
  const senderDomain = domainOf(job.sender);
  const candidates = job.items.filter((i) => i.origin === null);
  if (job.decision.transactional || !job.sender || !senderDomain || !candidates.length) return { sending: job, suppressed: [] };
  const blocked = new Set(await store.suppressedAmong(senderDomain, candidates.map((i) => i.recipient)));
  if (!blocked.size) return { sending: job, suppressed: [] };
  const isBlocked = (i: QueueItem) => i.origin === null && blocked.has(i.recipient);
  const sending = job.items.filter((i) => !isBlocked(i));
  return {
    sending: sending.length ? { ...job, items: sending } : null,
    suppressed: job.items.filter(isBlocked).map((item) => suppressedResult(item, senderDomain)),
  };
}

function suppressedResult(item: QueueItem, senderDomain: string): RecipientResult {
  return {
    item,
    outcome: 'suppressed',
    method: 'none',
    mx: null,
    starttlsOffered: null,
    tls: null,
    smtp: { code: null, enhanced: null, response: `suppressed: ${item.recipient} gets no mail from ${senderDomain} (unsubscribed or suppressed by an operator); not sent` },
  };
}

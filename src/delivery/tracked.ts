// Tracking at delivery (reporting/tracking/): when the decision asks for opens,
// clicks or an unsubscribe link, every recipient gets a copy of their own (the links
// name them), made here — before deliverJob seals it (PGP, S/MIME, the portal) and
// DKIM signs it — and delivered as a job of one. Without tracking, the job and its
// one shared copy go on unchanged.
import type { Protection } from '../crypto/protection.ts';
import type { LinkSigner } from '../reporting/tracking/links.ts';
import { wantsTracking } from '../policy/decision.ts';
import type { Job, RecipientResult } from './attempt.ts';
import { outgoing, type Outgoing } from './deliver.ts';

/** Where tracking links point and what signs them; null when tracking.key or a public URL is missing. */
export interface TrackingLinks {
  readonly base: string;
  readonly signer: LinkSigner;
}

export async function deliverTracked(
  job: Job,
  message: Outgoing,
  o: { tracking: TrackingLinks | null; protection: Protection; onFailure: (err: unknown) => void },
  deliver: (job: Job, message: Outgoing) => Promise<RecipientResult[]>,
): Promise<RecipientResult[]> {
  const terms = job.decision.tracking;
  if (!o.tracking || !wantsTracking(terms)) return deliver(job, message);
  // The MIME rewriter (htmlparser2 and its kin) loads with the first tracked message.
  const { trackedCopy } = await import('../reporting/tracking/rewrite.ts');
  const { base, signer } = o.tracking;
  const each = await Promise.all(
    job.items.map(async (item) => {
      let copy: Buffer;
      try {
        copy = await trackedCopy(message.bytes, { queueId: item.queueId, seq: item.seq, terms, base, signer });
      } catch (err) {
        // A message whose MIME cannot be rewritten still goes, untracked: the mail matters more than the count.
        o.onFailure(err);
        copy = message.bytes;
      }
      return deliver({ ...job, items: [item] }, outgoing(copy, o.protection));
    }),
  );
  return each.flat();
}

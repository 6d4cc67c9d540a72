// Stores seeded for retention tests, through the Store interface only: finished
// messages of a given age (records and events dated then), and messages of the same
// age still in the queue (deferred, held) or with a portal item still readable.
import type { Store, NewMessage, QueueItem } from '../../src/store/store.ts';
import { message, portalItem, record } from './contract.ts';

export const DAY_MS = 24 * 60 * 60 * 1000;

/** Claims the recipients of one message (the others claimed are given back). */
async function claimOf(s: Store, queueId: string): Promise<QueueItem[]> {
  const claimed = await s.claim({ owner: 'seed', limit: 10_000, leaseMs: 60_000 });
  const others = claimed.filter((i) => i.queueId !== queueId);
  if (others.length) await s.unclaim(others);
  return claimed.filter((i) => i.queueId === queueId).sort((a, b) => a.seq - b.seq);
}

/**
 * A message received at `at` whose every recipient was delivered a second later, over
 * TLS (so: queued, delivered and secured events). `marker` goes into each record's SMTP reply.
 */
export async function finishedMessage(s: Store, at: number, over: Partial<NewMessage> & { marker?: string } = {}): Promise<NewMessage> {
  const { marker, ...fields } = over;
  const m = message({ receivedAt: at, ...fields });
  await s.enqueue(m);
  const items = await claimOf(s, m.queueId);
  const tls = { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', bits: 256, authorized: true, authorizationError: null, peerCertSubject: 'CN=mx', peerCertFingerprint256: 'AA' };
  await s.finish(
    items.map((i) => record(i, { at: new Date(at + 1000).toISOString(), method: 'tls', tls, starttlsOffered: true, smtp: { code: 250, enhanced: '2.0.0', response: `250 2.0.0 ${marker ?? 'ok'}` } })),
    items.map((i) => ({ queueId: i.queueId, seq: i.seq, outcome: 'delivered' as const, error: null })),
  );
  return m;
}

/** A message received at `at`, tried then and deferred for a day: still in the queue. */
export async function deferredMessage(s: Store, at: number): Promise<NewMessage> {
  const m = message({ receivedAt: at });
  await s.enqueue(m);
  const items = await claimOf(s, m.queueId);
  const reply = { code: 451, enhanced: '4.4.1', response: '451 later' };
  await s.finish(
    items.map((i) => record(i, { at: new Date(at + 1000).toISOString(), outcome: 'deferred', method: 'none', smtp: reply })),
    items.map((i) => ({ queueId: i.queueId, seq: i.seq, outcome: 'deferred' as const, error: '451 later', nextAttemptAt: Date.now() + DAY_MS })),
  );
  return m;
}

/** A message received at `at` and held by an operator ever since. */
export async function heldMessage(s: Store, at: number): Promise<NewMessage> {
  const m = message({ receivedAt: at });
  await s.enqueue(m);
  await s.hold(m.queueId, 'alice');
  return m;
}

/** A finished message of `at` whose first recipient's portal item can still be opened (or, `erased`, was erased at expiry). */
export async function portalMessage(s: Store, at: number, opts: { erased?: boolean } = {}): Promise<{ message: NewMessage; itemId: string }> {
  const m = await finishedMessage(s, at);
  const expiresAt = opts.erased ? at + DAY_MS : Date.now() + 30 * DAY_MS;
  const item = portalItem({ queueId: m.queueId, seq: 0, messageId: m.messageId, createdAt: at, expiresAt });
  await s.putPortalItem(item);
  if (opts.erased) await s.expirePortalItems(at + 2 * DAY_MS, 100);
  return { message: m, itemId: item.id };
}

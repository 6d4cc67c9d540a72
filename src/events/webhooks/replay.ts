// `sealrelay webhooks replay`: send again what an endpoint was sent (or should have
// been) since a time. Works on the store while the relay runs: the deliveries become
// pending and the relay's dispatcher sends them at its next turn, in order per
// message, with their original event ids (receivers that already have one drop it).
// Events of the window the endpoint never got — written before it was added, or of a
// type it took up since — are added, so replay also backfills a new endpoint.
import type { WebhookEndpointConfig } from '../../config/webhooks.ts';
import type { Store } from '../../store/store.ts';
import { eventIdBefore, type WebhookReplay } from './outbox.ts';

/** Events per transaction: the relay's own writes never wait long for a replay. */
const REPLAY_BATCH = 2000;

export async function replayWebhooks(store: Store, endpoint: WebhookEndpointConfig, since: number, now = Date.now()): Promise<WebhookReplay> {
  let after: string | null = eventIdBefore(since);
  let requeued = 0;
  let added = 0;
  while (after !== null) {
    const batch = await store.replayWebhooks(endpoint.name, after, endpoint.events ?? null, REPLAY_BATCH, now);
    requeued += batch.requeued;
    added += batch.added;
    after = batch.resumeAfter;
  }
  return { requeued, added };
}

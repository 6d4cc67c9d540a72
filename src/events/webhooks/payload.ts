// What a webhook request carries: one event as JSON. Made once, when the event is
// copied into an endpoint's deliveries, and stored with it, so every retry and replay
// sends (and signs) the same bytes. The subject is never in it: events keep it for
// reports only (events/event.ts); nothing of the message's content leaves this way.
import type { RelayEvent } from '../event.ts';

/** Bumped when a field changes meaning or goes away (new fields may appear without it). */
export const WEBHOOK_SCHEMA = 1;

export interface WebhookPayload {
  readonly schema: typeof WEBHOOK_SCHEMA;
  /** The event id: time-ordered, unique; what receivers deduplicate on (also in SealRelay-Event-Id). */
  readonly id: string;
  readonly type: RelayEvent['type'];
  /** When the fact happened, ISO 8601 UTC with ms. */
  readonly at: string;
  readonly queue_id: string;
  /** The recipient's position in its message (0, 1, …): with queue_id, one recipient of one message. */
  readonly seq: number;
  readonly sender: string;
  readonly recipient: string;
  readonly domain: string;
  readonly method: RelayEvent['method'];
  readonly tls: string | null;
  readonly campaign: string | null;
  readonly custom: string | null;
  readonly automated: boolean;
}

export function webhookPayload(e: RelayEvent): WebhookPayload {
  return {
    schema: WEBHOOK_SCHEMA,
    id: e.id,
    type: e.type,
    at: new Date(e.at).toISOString(),
    queue_id: e.queueId,
    seq: e.seq,
    sender: e.sender,
    recipient: e.recipient,
    domain: e.domain,
    method: e.method,
    tls: e.tls,
    campaign: e.campaign,
    custom: e.custom,
    automated: e.automated,
  };
}

/** The request body of an event. */
export function webhookBody(e: RelayEvent): string {
  return JSON.stringify(webhookPayload(e));
}

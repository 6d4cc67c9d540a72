// The webhook outbox as the Store keeps it (schema 16): per endpoint a cursor into
// the events (id order, which is commit order) and a row per event copied for it.
//
// The dispatcher (dispatcher.ts) copies the events after an endpoint's cursor into
// its deliveries and moves the cursor in ONE transaction, so an event is copied
// exactly once whatever stops the relay. A delivery stays `pending` until a 2xx: it
// is claimed under a short lease while its request is in flight (a crash mid-request
// leaves it pending, and it is sent again: at least once), and settled after. Events
// of one message go to one endpoint in id order: a delivery is not due while an
// earlier one of its message to that endpoint is still pending. After give_up_hours
// without a 2xx it becomes `failed`, which `sealrelay webhooks status` shows and
// `sealrelay webhooks replay` sends again.
import type { EventType } from '../event.ts';

export type WebhookDeliveryState = 'pending' | 'delivered' | 'failed';

/** A delivery claimed for one request. */
export interface WebhookDelivery {
  readonly endpoint: string;
  readonly eventId: string;
  readonly queueId: string;
  readonly type: EventType;
  /** The request body, made when the event was copied (payload.ts). */
  readonly body: string;
  /** Requests made before this one. */
  readonly attempts: number;
  /** When it was queued (copied, or replayed): the give-up clock runs from here. ms since the epoch. */
  readonly queuedAt: number;
}

/** What became of one request: delivered (a 2xx), or not and when to try again (null: give up). */
export type WebhookSettlement =
  | { readonly endpoint: string; readonly eventId: string; readonly at: number; readonly delivered: true; readonly status: number }
  | {
      readonly endpoint: string;
      readonly eventId: string;
      readonly at: number;
      readonly delivered: false;
      /** The receiver's status; null: no answer (refused, reset, timeout). */
      readonly status: number | null;
      /** Short and ours ("HTTP 500", "connection refused"): never the receiver's body. */
      readonly error: string;
      /** The next try, ms since the epoch; null: given up (state failed). */
      readonly nextAt: number | null;
    };

/** One endpoint's outbox, for `webhooks status` and metrics. */
export interface WebhookEndpointStatus {
  readonly endpoint: string;
  /** Waiting for a 2xx (the backlog), and the oldest of them (ms since the epoch; null: none). */
  readonly pending: number;
  readonly oldestPendingAt: number | null;
  /** Given up, kept until pruned (keep_days) or replayed. */
  readonly failed: number;
  /** Running totals since the endpoint's first event, never reset: 2xx answers, requests that failed, deliveries given up. */
  readonly deliveredTotal: number;
  readonly failedAttemptsTotal: number;
  readonly gaveUpTotal: number;
  readonly lastDeliveredAt: number | null;
  /** The last failed request: when, its status (null: no answer) and our short reason. */
  readonly lastFailureAt: number | null;
  readonly lastStatus: number | null;
  readonly lastError: string | null;
}

/** A delivery as operators see it (`webhooks status`): no body. */
export interface WebhookDeliveryInfo {
  readonly endpoint: string;
  readonly eventId: string;
  readonly queueId: string;
  readonly type: EventType;
  readonly state: WebhookDeliveryState;
  readonly attempts: number;
  readonly queuedAt: number;
  readonly nextAt: number;
  readonly lastAt: number | null;
  readonly lastStatus: number | null;
  readonly lastError: string | null;
  readonly deliveredAt: number | null;
}

/** What `Store.replayWebhooks` did: deliveries sent again, and events of the window never copied for the endpoint. */
export interface WebhookReplay {
  readonly requeued: number;
  readonly added: number;
}

/** A cursor just before every event written at or after `ms` (ids begin with their time, events/event.ts); '' before all. */
export function eventIdBefore(ms: number): string {
  const floor = BigInt(Math.max(0, Math.trunc(ms))) << 80n;
  return floor === 0n ? '' : (floor - 1n).toString(16).padStart(32, '0');
}

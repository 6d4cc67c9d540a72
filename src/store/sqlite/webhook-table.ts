// The SQLite store's webhook outbox (schema 16; events/webhooks/outbox.ts tells the
// model). SqliteStore runs each method in a transaction of its own; the events are
// read through EventTable, in id order (= commit order, one writer at a time).
//
// Due deliveries are found in (next_at, event id) order, skipping any whose message
// has an earlier pending delivery to the same endpoint. To keep that skip short
// however large the backlog, a later delivery of a message never becomes due before
// an earlier one: it is copied with the next_at of its message's pending deliveries
// if that is later, and a failed request pushes its message's later deliveries back
// with it. So the rows scanned are about (events per message) × the rows claimed.
import type Database from 'better-sqlite3';
import type { EventType, RelayEvent } from '../../events/event.ts';
import type { WebhookDelivery, WebhookDeliveryInfo, WebhookEndpointStatus, WebhookReplay, WebhookSettlement } from '../../events/webhooks/outbox.ts';
import { webhookBody } from '../../events/webhooks/payload.ts';
import type { EventTable } from './event-table.ts';

/** Deliveries deleted per statement when pruning: never a long hold on the write lock. */
const PRUNE_BATCH = 5000;

export class WebhookTable {
  private readonly stmt;

  constructor(
    db: Database.Database,
    private readonly events: EventTable,
  ) {
    this.stmt = {
      cursor: db.prepare(`SELECT after_id FROM webhook_endpoints WHERE name = ?`).pluck(),
      // A new endpoint starts at the current end of the events: it is sent what happens from now on.
      addEndpoint: db.prepare(`INSERT INTO webhook_endpoints (name, after_id) VALUES (?, coalesce((SELECT max(id) FROM events), ''))`),
      moveCursor: db.prepare(`UPDATE webhook_endpoints SET after_id = ? WHERE name = ?`),
      messageNextAt: db.prepare(`SELECT max(next_at) FROM webhook_deliveries WHERE endpoint = ? AND queue_id = ? AND state = 'pending'`).pluck(),
      insert: db.prepare(
        `INSERT OR IGNORE INTO webhook_deliveries (endpoint, event_id, queue_id, type, body, queued_at, next_at)
         VALUES (@endpoint, @eventId, @queueId, @type, @body, @now, @nextAt)`,
      ),
      claim: db.prepare(
        `UPDATE webhook_deliveries SET lease_until = @until
         WHERE endpoint = @endpoint AND event_id IN (
           SELECT d.event_id FROM webhook_deliveries d
           WHERE d.endpoint = @endpoint AND d.state = 'pending' AND d.next_at <= @now AND d.lease_until <= @now
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                             WHERE e.endpoint = d.endpoint AND e.queue_id = d.queue_id AND e.state = 'pending' AND e.event_id < d.event_id)
           ORDER BY d.next_at, d.event_id LIMIT (@limit + 0))
         RETURNING event_id, queue_id, type, body, attempts, queued_at`,
      ),
      delivered: db.prepare(
        `UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1, lease_until = 0, last_at = @at, last_status = @status, last_error = NULL, delivered_at = @at
         WHERE endpoint = @endpoint AND event_id = @eventId AND state = 'pending'`,
      ),
      countDelivered: db.prepare(`UPDATE webhook_endpoints SET delivered = delivered + 1, last_delivered_at = @at WHERE name = @endpoint`),
      retry: db.prepare(
        `UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = 0, next_at = @nextAt, last_at = @at, last_status = @status, last_error = @error
         WHERE endpoint = @endpoint AND event_id = @eventId AND state = 'pending' RETURNING queue_id`,
      ).pluck(),
      pushBack: db.prepare(
        `UPDATE webhook_deliveries SET next_at = max(next_at, @nextAt)
         WHERE endpoint = @endpoint AND queue_id = @queueId AND state = 'pending' AND event_id > @eventId`,
      ),
      giveUp: db.prepare(
        `UPDATE webhook_deliveries SET state = 'failed', attempts = attempts + 1, lease_until = 0, last_at = @at, last_status = @status, last_error = @error
         WHERE endpoint = @endpoint AND event_id = @eventId AND state = 'pending'`,
      ),
      countFailure: db.prepare(
        `UPDATE webhook_endpoints SET failed_attempts = failed_attempts + 1, gave_up = gave_up + @gaveUp,
           last_failure_at = @at, last_status = @status, last_error = @error
         WHERE name = @endpoint`,
      ),
      recover: db.prepare(`UPDATE webhook_deliveries SET lease_until = 0 WHERE lease_until > 0 AND state = 'pending'`),
      requeue: db.prepare(
        `UPDATE webhook_deliveries SET state = 'pending', attempts = 0, queued_at = @now, next_at = @now, lease_until = 0, delivered_at = NULL
         WHERE endpoint = @endpoint AND event_id > @after AND event_id <= @to AND state != 'pending'`,
      ),
      status: db.prepare(
        `SELECT e.name AS endpoint, e.delivered, e.failed_attempts, e.gave_up, e.last_delivered_at, e.last_failure_at, e.last_status, e.last_error,
           (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint = e.name AND d.state = 'pending') AS pending,
           (SELECT min(queued_at) FROM webhook_deliveries d WHERE d.endpoint = e.name AND d.state = 'pending') AS oldest,
           (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint = e.name AND d.state = 'failed') AS failed
         FROM webhook_endpoints e ORDER BY e.name`,
      ),
      troubled: db.prepare(
        `SELECT endpoint, event_id, queue_id, type, state, attempts, queued_at, next_at, last_at, last_status, last_error, delivered_at
         FROM webhook_deliveries
         WHERE (@endpoint IS NULL OR endpoint = @endpoint) AND (state = 'failed' OR (state = 'pending' AND attempts > 0))
         ORDER BY last_at DESC, event_id DESC LIMIT @limit`,
      ),
      endpoints: db.prepare(`SELECT name FROM webhook_endpoints`).pluck(),
      prune: db.prepare(
        `DELETE FROM webhook_deliveries WHERE endpoint = @endpoint AND event_id IN (
           SELECT event_id FROM webhook_deliveries WHERE endpoint = @endpoint AND state = @state AND last_at < @before LIMIT ${PRUNE_BATCH})`,
      ),
    };
  }

  /** The endpoint's cursor, made at the current end of the events when it has none. */
  private cursorOf(endpoint: string): string {
    const cursor = this.stmt.cursor.get(endpoint) as string | undefined;
    if (cursor !== undefined) return cursor;
    this.stmt.addEndpoint.run(endpoint);
    return this.stmt.cursor.get(endpoint) as string;
  }

  private insert(endpoint: string, e: RelayEvent, now: number): number {
    const held = (this.stmt.messageNextAt.get(endpoint, e.queueId) as number | null) ?? 0;
    return this.stmt.insert.run({ endpoint, eventId: e.id, queueId: e.queueId, type: e.type, body: webhookBody(e), now, nextAt: Math.max(now, held) }).changes;
  }

  /** Copies up to `limit` events after the cursor (those of `types`; null: all) and moves the cursor past them. Returns how many events were read. */
  copy(endpoint: string, types: readonly EventType[] | null, limit: number, now: number): number {
    const after = this.cursorOf(endpoint);
    const events = this.events.list({ afterId: after || undefined, limit });
    for (const e of events) if (!types || types.includes(e.type)) this.insert(endpoint, e, now);
    if (events.length) this.stmt.moveCursor.run(events[events.length - 1]!.id, endpoint);
    return events.length;
  }

  claim(endpoint: string, limit: number, leaseMs: number, now: number): WebhookDelivery[] {
    const rows = this.stmt.claim.all({ endpoint, limit, now, until: now + leaseMs }) as ClaimRow[];
    // RETURNING gives no order: the caller starts them oldest first.
    return rows
      .map((r) => ({ endpoint, eventId: r.event_id, queueId: r.queue_id, type: r.type, body: r.body, attempts: r.attempts, queuedAt: r.queued_at }))
      .sort((a, b) => (a.eventId < b.eventId ? -1 : 1));
  }

  settle(s: WebhookSettlement): void {
    if (s.delivered) {
      if (this.stmt.delivered.run({ endpoint: s.endpoint, eventId: s.eventId, at: s.at, status: s.status }).changes) this.stmt.countDelivered.run({ endpoint: s.endpoint, at: s.at });
      return;
    }
    const row = { endpoint: s.endpoint, eventId: s.eventId, at: s.at, status: s.status, error: s.error };
    if (s.nextAt === null) {
      if (this.stmt.giveUp.run(row).changes) this.stmt.countFailure.run({ ...row, gaveUp: 1 });
      return;
    }
    const queueId = this.stmt.retry.get({ ...row, nextAt: s.nextAt }) as string | undefined;
    if (queueId === undefined) return;
    this.stmt.pushBack.run({ endpoint: s.endpoint, queueId, eventId: s.eventId, nextAt: s.nextAt });
    this.stmt.countFailure.run({ ...row, gaveUp: 0 });
  }

  /** At start: requests in flight when the last run stopped are due again now (one relay owns an SQLite store). */
  recover(): number {
    return this.stmt.recover.run().changes;
  }

  /**
   * One batch of a replay: events written after `afterId` (exclusive) up to the endpoint's
   * cursor, at most `limit` of them. Their settled deliveries become pending again with a
   * new give-up clock; those of `types` never copied (before the endpoint existed, or of a
   * type it did not take then) are added. `resumeAfter`: where the next batch starts; null: done.
   */
  replay(endpoint: string, afterId: string, types: readonly EventType[] | null, limit: number, now: number): WebhookReplay & { resumeAfter: string | null } {
    const cursor = this.cursorOf(endpoint);
    const events = this.events.list({ afterId: afterId || undefined, limit }).filter((e) => e.id <= cursor);
    const done = events.length < limit;
    const to = done ? cursor : events[events.length - 1]!.id;
    const requeued = to > afterId ? this.stmt.requeue.run({ endpoint, after: afterId, to, now }).changes : 0;
    let added = 0;
    for (const e of events) if (!types || types.includes(e.type)) added += this.insert(endpoint, e, now);
    return { requeued, added, resumeAfter: done ? null : to };
  }

  status(): WebhookEndpointStatus[] {
    return (this.stmt.status.all() as StatusRow[]).map((r) => ({
      endpoint: r.endpoint,
      pending: r.pending,
      oldestPendingAt: r.oldest,
      failed: r.failed,
      deliveredTotal: r.delivered,
      failedAttemptsTotal: r.failed_attempts,
      gaveUpTotal: r.gave_up,
      lastDeliveredAt: r.last_delivered_at,
      lastFailureAt: r.last_failure_at,
      lastStatus: r.last_status,
      lastError: r.last_error,
    }));
  }

  /** Deliveries given up or failing (pending after a failed request), the latest first. */
  troubled(endpoint: string | null, limit: number): WebhookDeliveryInfo[] {
    return (this.stmt.troubled.all({ endpoint, limit }) as InfoRow[]).map((r) => ({
      endpoint: r.endpoint,
      eventId: r.event_id,
      queueId: r.queue_id,
      type: r.type,
      state: r.state,
      attempts: r.attempts,
      queuedAt: r.queued_at,
      nextAt: r.next_at,
      lastAt: r.last_at,
      lastStatus: r.last_status,
      lastError: r.last_error,
      deliveredAt: r.delivered_at,
    }));
  }

  /** Deletes up to one batch per endpoint and state of deliveries settled before `before`; returns how many. */
  prune(before: number): number {
    let n = 0;
    for (const endpoint of this.stmt.endpoints.all() as string[]) {
      for (const state of ['delivered', 'failed']) n += this.stmt.prune.run({ endpoint, state, before }).changes;
    }
    return n;
  }
}

interface ClaimRow {
  event_id: string;
  queue_id: string;
  type: EventType;
  body: string;
  attempts: number;
  queued_at: number;
}

interface StatusRow {
  endpoint: string;
  delivered: number;
  failed_attempts: number;
  gave_up: number;
  last_delivered_at: number | null;
  last_failure_at: number | null;
  last_status: number | null;
  last_error: string | null;
  pending: number;
  oldest: number | null;
  failed: number;
}

interface InfoRow {
  endpoint: string;
  event_id: string;
  queue_id: string;
  type: EventType;
  state: WebhookDeliveryInfo['state'];
  attempts: number;
  queued_at: number;
  next_at: number;
  last_at: number | null;
  last_status: number | null;
  last_error: string | null;
  delivered_at: number | null;
}

// The SQLite store's events (schema 12): the outbox that reports, webhooks and
// metrics read. `write` runs only inside a transaction SqliteStore (or the portal
// table) opened for the fact itself, so an event commits with its fact or not at
// all. Ids come from events/event.ts `nextEventId`, made greater than the greatest
// id in the table: SQLite has one writer at a time, so id order is commit order and
// a reader paging `after` an id never skips an event committed later.
//
// The message facts reports split by (campaign, custom field, subject) arrive with
// `queued`; a later event written without them copies them from its message's
// `queued` event (an index look-up), so that it still has them once the message
// itself is gone from the queue.
import type Database from 'better-sqlite3';
import { checkEventQuery, nextEventId, type EventQuery, type EventType, type MessageFacts, type NewEvent, type RelayEvent } from '../../events/event.ts';

const NO_FACTS: MessageFacts = { campaign: null, custom: null, subject: null };

export class EventTable {
  private readonly stmt;
  /** Events this connection wrote (the store counts them for reports before it closes). */
  written = 0;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      lastId: db.prepare(`SELECT max(id) FROM events`).pluck(),
      insert: db.prepare(
        `INSERT INTO events (id, queue_id, seq, at, type, sender, recipient, domain, method, tls, campaign, custom, subject, automated)
         VALUES (@id, @queueId, @seq, @at, @type, @sender, @recipient, @domain, @method, @tls, @campaign, @custom, @subject, @automated)`,
      ),
      facts: db.prepare(`SELECT campaign, custom, subject FROM events WHERE queue_id = ? AND type = 'queued' LIMIT 1`),
    };
  }

  /** The message facts of an event: its own when it has them, else those of its message's `queued` event. */
  private factsOf(e: NewEvent, cache: Map<string, MessageFacts>): MessageFacts {
    if (e.campaign !== undefined && e.custom !== undefined && e.subject !== undefined) return { campaign: e.campaign, custom: e.custom, subject: e.subject };
    let facts = cache.get(e.queueId);
    if (!facts) {
      facts = (this.stmt.facts.get(e.queueId) as MessageFacts | undefined) ?? NO_FACTS;
      cache.set(e.queueId, facts);
    }
    return facts;
  }

  /** Writes events in the transaction already open; their ids keep the order they are given in. */
  write(events: readonly NewEvent[]): void {
    if (!events.length) return;
    if (!this.db.inTransaction) throw new Error('events are written only in the transaction of their fact');
    let last = (this.stmt.lastId.get() as string | null) ?? null;
    const now = Date.now();
    const cache = new Map<string, MessageFacts>();
    const rows = events.map((e) => {
      last = nextEventId(last, now);
      return { ...e, ...this.factsOf(e, cache), tls: e.tls ?? null, automated: e.automated ? 1 : 0, id: last };
    });
    // The report counts follow (report-table.ts catchUp), off the path of this commit.
    for (const row of rows) this.stmt.insert.run(row);
    this.written += rows.length;
  }

  list(query: EventQuery): RelayEvent[] {
    const q = checkEventQuery(query);
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: q.limit };
    if (q.afterId !== undefined) {
      where.push('id > @afterId');
      params.afterId = q.afterId;
    }
    if (q.since !== undefined) {
      where.push('at >= @since');
      params.since = q.since;
    }
    if (q.types?.length) {
      const names = q.types.map((t, i) => {
        params[`type${i}`] = t;
        return `@type${i}`;
      });
      where.push(`type IN (${names.join(', ')})`);
    }
    const sql = `SELECT * FROM events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT @limit`;
    return (this.db.prepare(sql).all(params) as EventRow[]).map(toEvent);
  }
}

interface EventRow {
  id: string;
  queue_id: string;
  seq: number;
  at: number;
  type: EventType;
  sender: string;
  recipient: string;
  domain: string;
  method: RelayEvent['method'];
  tls: string | null;
  campaign: string | null;
  custom: string | null;
  subject: string | null;
  automated: number;
}

function toEvent(r: EventRow): RelayEvent {
  return { id: r.id, queueId: r.queue_id, seq: r.seq, at: r.at, type: r.type, sender: r.sender, recipient: r.recipient, domain: r.domain, method: r.method, tls: r.tls, campaign: r.campaign, custom: r.custom, subject: r.subject, automated: r.automated === 1 };
}

// The SQLite store's suppressions and tracking events (schema 18): who must get no
// more mail from a sender domain (reporting/tracking/suppression.ts), and the opens,
// clicks and unsubscribes the tracking routes observe. Each write runs inside a
// transaction SqliteStore opens, and an event (event-table.ts) commits with its fact.
//
// Opens, clicks and unsubscribes name a recipient of a message by queue id and seq
// (the signed link carries nothing else): the recipient, the sender and the message
// facts are those of its `queued` event, which outlives the message in the queue.
import type Database from 'better-sqlite3';
import type { EventTable } from './event-table.ts';
import { normaliseAddress } from '../store.ts';
import { normaliseSenderDomain, suppressionKey, type Suppression, type SuppressionFilter, type SuppressionSource, type TrackedRecipient, type Unsubscribed } from '../../reporting/tracking/suppression.ts';

export class SuppressionTable {
  private readonly stmt;

  constructor(db: Database.Database, private readonly events: EventTable) {
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO suppressions (sender_domain, recipient, source, created_at, queue_id, seq) VALUES (@senderDomain, @recipient, @source, @createdAt, @queueId, @seq)
         ON CONFLICT (sender_domain, recipient) DO NOTHING`,
      ),
      get: db.prepare(`SELECT * FROM suppressions WHERE sender_domain = ? AND recipient = ?`),
      remove: db.prepare(`DELETE FROM suppressions WHERE sender_domain = ? AND recipient = ?`),
      list: db.prepare(
        `SELECT * FROM suppressions WHERE (@senderDomain IS NULL OR sender_domain = @senderDomain) AND (@recipient IS NULL OR recipient = @recipient)
         ORDER BY created_at DESC, sender_domain, recipient LIMIT @limit`,
      ),
      queued: db.prepare(`SELECT sender, recipient, domain FROM events WHERE queue_id = ? AND seq = ? AND type = 'queued' LIMIT 1`),
      deliveredAt: db.prepare(`SELECT max(at) FROM events WHERE queue_id = ? AND seq = ? AND type = 'delivered'`).pluck(),
    };
  }

  /** True when the suppression is new; false when that address was suppressed for that domain already. */
  add(s: { senderDomain: string; recipient: string; source: SuppressionSource; createdAt: number; queueId?: string | null; seq?: number | null }): boolean {
    const key = suppressionKey(s.senderDomain, s.recipient);
    return this.stmt.insert.run({ ...key, source: s.source, createdAt: s.createdAt, queueId: s.queueId ?? null, seq: s.seq ?? null }).changes > 0;
  }

  remove(senderDomain: string, recipient: string): boolean {
    const key = suppressionKey(senderDomain, recipient);
    return this.stmt.remove.run(key.senderDomain, key.recipient).changes > 0;
  }

  list(filter: SuppressionFilter): Suppression[] {
    const senderDomain = filter.senderDomain === undefined ? null : normaliseSenderDomain(filter.senderDomain);
    const recipient = filter.recipient === undefined ? null : normaliseAddress(filter.recipient);
    // A filter that is no domain or address matches nothing (rather than everything).
    if ((filter.senderDomain !== undefined && !senderDomain) || (filter.recipient !== undefined && !recipient)) return [];
    return (this.stmt.list.all({ senderDomain, recipient, limit: filter.limit ?? -1 }) as SuppressionRow[]).map(toSuppression);
  }

  /** Of `recipients`, those suppressed for mail from `senderDomain` (as given). */
  among(senderDomain: string, recipients: readonly string[]): string[] {
    const domain = normaliseSenderDomain(senderDomain);
    if (!domain) return [];
    return recipients.filter((r) => {
      const address = normaliseAddress(r);
      return address !== null && this.stmt.get.get(domain, address) !== undefined;
    });
  }

  target(queueId: string, seq: number): TrackedRecipient | null {
    const row = this.stmt.queued.get(queueId, seq) as { sender: string; recipient: string; domain: string } | undefined;
    if (!row) return null;
    return { queueId, seq, ...row, deliveredAt: (this.stmt.deliveredAt.get(queueId, seq) as number | null) ?? null };
  }

  /** Writes an `opened` or `clicked` event for the recipient; false when the link names none. */
  observe(queueId: string, seq: number, type: 'opened' | 'clicked', at: number, automated: boolean): boolean {
    const t = this.target(queueId, seq);
    if (!t) return false;
    this.events.write([{ queueId, seq, at, type, sender: t.sender, recipient: t.recipient, domain: t.domain, method: null, automated }]);
    return true;
  }

  /**
   * Suppresses the recipient of (queueId, seq) for its sender's domain and writes
   * `unsubscribed`; a second unsubscribe changes nothing and writes no event. Null when
   * the link names no recipient the relay knows, or one of a message without a sender domain.
   */
  unsubscribe(queueId: string, seq: number, at: number): Unsubscribed | null {
    const t = this.target(queueId, seq);
    const senderDomain = t ? normaliseSenderDomain(t.sender.slice(t.sender.lastIndexOf('@') + 1)) : null;
    if (!t || !t.sender.includes('@') || !senderDomain || !normaliseAddress(t.recipient)) return null;
    const created = this.add({ senderDomain, recipient: t.recipient, source: 'unsubscribe', createdAt: at, queueId, seq });
    if (created) this.events.write([{ queueId, seq, at, type: 'unsubscribed', sender: t.sender, recipient: t.recipient, domain: t.domain, method: null }]);
    const row = this.stmt.get.get(senderDomain, normaliseAddress(t.recipient)) as SuppressionRow;
    return { suppression: toSuppression(row), created };
  }
}

interface SuppressionRow {
  sender_domain: string;
  recipient: string;
  source: SuppressionSource;
  created_at: number;
  queue_id: string | null;
  seq: number | null;
}

function toSuppression(r: SuppressionRow): Suppression {
  return { senderDomain: r.sender_domain, recipient: r.recipient, source: r.source, createdAt: r.created_at, queueId: r.queue_id, seq: r.seq };
}

// The SQLite store's retention (store/retention.ts decides the cutoffs): deletes the
// oldest delivery records, events and erased portal items in small batches. Each
// batch walks an index on its time column (records_at, events_at,
// portal_items_created_at) from the oldest row, so it reads only what it deletes
// and holds the write lock for one short transaction.
//
// What is never pruned, whatever its age:
// - anything of a message still in the queue (a held message may wait for months);
// - anything of a message whose portal item is still readable: the recipient may
//   still open it, and reports count a recipient's first open by its earlier events;
// - the newest record and the newest event: new ids are made greater than the
//   greatest in the table, and readers follow both by id (logAfter, webhooks);
// - an event the report counts have not counted yet (they follow the events).
import type Database from 'better-sqlite3';
import type { PruneKind } from '../store.ts';

/** A row of a message the store must keep: still queued, or with a portal item still readable. */
const KEPT = (table: string) =>
  `(EXISTS (SELECT 1 FROM messages m WHERE m.queue_id = ${table}.queue_id)
    OR EXISTS (SELECT 1 FROM portal_items p WHERE p.queue_id = ${table}.queue_id AND p.erased_at IS NULL))`;

/** Per kind: its table, key, time column and the condition besides age. */
const KINDS: Readonly<Record<PruneKind, { table: string; key: string; at: string; also: string }>> = {
  records: { table: 'records', key: 'id', at: 'at', also: `NOT ${KEPT('records')} AND id < (SELECT max(id) FROM records)` },
  // Counted ones only: the report counts follow the events (report-table.ts, schema 20), and an event
  // pruned before it was counted would be missing from reports for good.
  events: {
    table: 'events',
    key: 'id',
    at: 'at',
    also: `NOT ${KEPT('events')} AND id < (SELECT max(id) FROM events) AND id <= coalesce((SELECT through_id FROM report_progress), '')`,
  },
  // Erased items only: a readable one is deleted by its own expiry (portal/expiry.ts) first.
  'portal-items': { table: 'portal_items', key: 'id', at: 'created_at', also: 'erased_at IS NOT NULL' },
};

export class RetentionTable {
  private readonly stmt: Record<PruneKind, { prune: Database.Statement; count: Database.Statement }>;

  constructor(db: Database.Database) {
    const of = (k: PruneKind) => {
      const { table, key, at, also } = KINDS[k];
      const oldest = `SELECT ${key} FROM ${table} INDEXED BY ${INDEXES[k]} WHERE ${at} < @before AND ${also}`;
      return {
        // `+ 0`: a bare bound LIMIT makes SQLite plan the statement again at every bind (sqlite-store.ts, claim).
        prune: db.prepare(`DELETE FROM ${table} WHERE ${key} IN (${oldest} ORDER BY ${at} LIMIT (@limit + 0))`),
        count: db.prepare(`SELECT count(*) FROM (${oldest})`).pluck(),
      };
    };
    this.stmt = { records: of('records'), events: of('events'), 'portal-items': of('portal-items') };
  }

  /** Deletes up to `limit` of the oldest prunable rows; runs inside the caller's transaction. */
  prune(kind: PruneKind, before: number, limit: number): number {
    return this.of(kind, before, limit).prune.run({ before, limit }).changes;
  }

  count(kind: PruneKind, before: number): number {
    return this.of(kind, before, 1).count.get({ before }) as number;
  }

  private of(kind: PruneKind, before: number, limit: number): { prune: Database.Statement; count: Database.Statement } {
    if (!Object.hasOwn(this.stmt, kind)) throw new TypeError(`prune: unknown kind "${String(kind)}" (known: ${Object.keys(this.stmt).join(', ')})`);
    if (!Number.isSafeInteger(before)) throw new TypeError(`prune: before must be a time in ms since the epoch, not ${String(before)}`);
    if (!Number.isSafeInteger(limit) || limit < 1) throw new TypeError(`prune: limit must be a whole number of 1 or more, not ${String(limit)}`);
    return this.stmt[kind];
  }
}

/** The index each kind walks: named, so a prune can never become a scan of the whole table. */
const INDEXES: Readonly<Record<PruneKind, string>> = { records: 'records_at', events: 'events_at', 'portal-items': 'portal_items_created_at' };

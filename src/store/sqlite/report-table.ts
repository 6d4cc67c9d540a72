// The SQLite store's report counts (schema 14): a rollup of the events, kept by
// EventTable.write in the transaction of each event (so it commits with its fact
// or not at all), read by reporting/report.ts through Store.reportCounts.
//
// Why a rollup and not indexes on the events: a 30-day report over a store of a
// million delivery records would read some three and a half million events, and a
// covering index for every split would copy most of each event five times over.
// The rollup has one row per split field, grain, time slot and value, with a
// counter per figure, at three grains: quarter hours (UTC), hours and UTC days.
// Quarter hours alone were not enough (a month split by domain read a million rows,
// over a second); so a report reads each stretch of its window at the coarsest
// grain that fits inside one of its buckets: a month split by domain reads about
// thirty day rows a domain; day buckets of a zone a whole number of hours from UTC
// read hour rows; India's half hours read quarter hours (bench/report.ts measures).
//
// Each recipient counts at most once per figure, at its first event of that kind
// (its first deferral, its first open): so the counts add up — quarter hours to
// hours to days, rows to the total — and a repeated event (a second open, a
// delivery made twice after a crash) is never counted again. Opens, clicks and
// unsubscribes are kept twice: the first of any kind, and the first made by a
// person (`automated` = 0), which is what reports show unless asked otherwise.
import type Database from 'better-sqlite3';
import type { Method } from '../../delivery/record.ts';
import type { EventType, RelayEvent } from '../../events/event.ts';
import { GRAINS, type ReportCounts, type ReportCountsQuery, type ReportCountsRow } from '../../reporting/counts.ts';

const MINUTE_MS = 60_000;

/** The split fields the rollup keeps; a report without a split sums `sender`, which every event has. */
const DIMENSIONS = ['domain', 'sender', 'subject', 'campaign', 'custom'] as const;

/** The rollup's counters, in table order. */
const COLUMNS = [
  'queued', 'delivered', 'deferred', 'bounced', 'dropped', 'secured',
  'tls13', 'tls12', 'tls_other', 'pgp', 'smime', 'portal', 'plaintext',
  'opened', 'opened_human', 'clicked', 'clicked_human', 'unsubscribed', 'unsubscribed_human',
] as const;
type Column = (typeof COLUMNS)[number];
const COLUMN_INDEX = Object.fromEntries(COLUMNS.map((c, i) => [c, i])) as Record<Column, number>;

/** Engagement events: counted apart when a machine (image proxy, link scanner) made them. */
const ENGAGEMENT: Readonly<Partial<Record<EventType, [Column, Column]>>> = {
  opened: ['opened', 'opened_human'],
  clicked: ['clicked', 'clicked_human'],
  unsubscribed: ['unsubscribed', 'unsubscribed_human'],
};
const OUTCOMES: Readonly<Partial<Record<EventType, Column>>> = {
  queued: 'queued',
  delivered: 'delivered',
  'portal-notified': 'delivered',
  deferred: 'deferred',
  bounced: 'bounced',
  dropped: 'dropped',
  secured: 'secured',
};

/** An event as EventTable writes it (its message facts filled in, `automated` as 0/1). */
export type EventRowToCount = Pick<RelayEvent, 'queueId' | 'seq' | 'at' | 'type' | 'sender' | 'domain' | 'method' | 'tls' | 'campaign' | 'custom' | 'subject'> & { readonly automated: number };

export class ReportTable {
  private readonly stmt;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      // Earlier events of this kind for the recipient, and whether one was a person's.
      before: db.prepare(
        `SELECT count(*) AS anyBefore, coalesce(max(automated = 0), 0) AS humanBefore FROM events WHERE queue_id = ? AND seq = ? AND type = ?`,
      ),
      add: db.prepare(
        `INSERT INTO report_counts (dimension, grain, slot, value, ${COLUMNS.join(', ')})
         VALUES (?, ?, ?, ?, ${COLUMNS.map(() => '?').join(', ')})
         ON CONFLICT (dimension, grain, slot, value) DO UPDATE SET ${COLUMNS.map((c) => `${c} = ${c} + excluded.${c}`).join(', ')}`,
      ),
    };
  }

  /**
   * Counts the events of one write, about to be inserted (in their transaction,
   * before their inserts). Their increments are summed first: the recipients of one
   * message share its sender, subject, campaign and custom field (and often a
   * domain), so a message to many costs few more upserts than a message to one.
   */
  count(events: readonly EventRowToCount[]): void {
    const sums = new Map<string, { key: [string, number, number, string]; add: number[] }>();
    /** Kinds of event already counted in this write, per recipient: `any` and `human` firsts. */
    const seen = new Set<string>();
    for (const e of events) {
      const add = this.increments(e, seen);
      if (!add) continue;
      for (const grain of GRAINS) {
        const slot = Math.floor(e.at / (grain * MINUTE_MS));
        for (const dimension of DIMENSIONS) {
          const value = e[dimension] ?? '';
          const id = `${dimension}\0${grain}\0${slot}\0${value}`;
          const sum = sums.get(id);
          if (sum) add.forEach((n, i) => (sum.add[i]! += n));
          else sums.set(id, { key: [dimension, grain, slot, value], add: [...add] });
        }
      }
    }
    for (const { key, add } of sums.values()) this.stmt.add.run(...key, ...add);
  }

  /** What one event adds to each counter (COLUMNS order); null: nothing (not a first, or not counted). */
  private increments(e: EventRowToCount, seen: Set<string>): number[] | null {
    const outcome = OUTCOMES[e.type];
    const engagement = ENGAGEMENT[e.type];
    if (!outcome && !engagement) return null;
    const recipient = `${e.queueId}\0${e.seq}\0${e.type}`;
    // A queue id is new with its `queued` events: nothing can come before them in the table.
    const stored = e.type === 'queued' ? { anyBefore: 0, humanBefore: 0 } : (this.stmt.before.get(e.queueId, e.seq, e.type) as { anyBefore: number; humanBefore: number });
    const anyBefore = stored.anyBefore > 0 || seen.has(`any\0${recipient}`);
    const humanBefore = stored.humanBefore > 0 || seen.has(`human\0${recipient}`);
    seen.add(`any\0${recipient}`);
    if (!e.automated) seen.add(`human\0${recipient}`);
    const add = new Array<number>(COLUMNS.length).fill(0);
    const set = (column: Column) => (add[COLUMN_INDEX[column]] = 1);
    if (outcome) {
      if (anyBefore) return null;
      set(outcome);
      if (outcome === 'delivered') set(methodColumn(e.method, e.tls));
    } else if (engagement) {
      const [any, human] = engagement;
      if (!anyBefore) set(any);
      if (!e.automated && !humanBefore) set(human);
      if (anyBefore && (e.automated || humanBefore)) return null;
    }
    return add;
  }

  /** The counts per split value and bucket of the query's pieces of time (reporting/report.ts cuts them). */
  query(q: ReportCountsQuery): ReportCountsRow[] {
    if (!q.pieces.length) return [];
    for (const p of q.pieces) {
      // They are written into the SQL below (a VALUES list): whole numbers and known grains only.
      if (![p.fromSlot, p.toSlot, p.bucket].every(Number.isSafeInteger) || !(GRAINS as readonly number[]).includes(p.grain)) {
        throw new TypeError(`report counts: bad piece ${JSON.stringify(p)}`);
      }
    }
    const pieces = q.pieces.map((p) => `(${p.grain}, ${p.fromSlot}, ${p.toSlot}, ${p.bucket})`).join(', ');
    const human = q.includeAutomated ? '' : '_human';
    const sums = [
      'sum(queued) AS queued', 'sum(delivered) AS delivered', 'sum(deferred) AS deferred', 'sum(bounced) AS bounced',
      'sum(dropped) AS dropped', 'sum(secured) AS secured', 'sum(tls13) AS tls13', 'sum(tls12) AS tls12',
      'sum(tls_other) AS tlsOther', 'sum(pgp) AS pgp', 'sum(smime) AS smime', 'sum(portal) AS portal', 'sum(plaintext) AS plaintext',
      `sum(opened${human}) AS opened`, `sum(clicked${human}) AS clicked`, `sum(unsubscribed${human}) AS unsubscribed`,
    ];
    const key = q.split === 'none' ? 'NULL' : `nullif(r.value, '')`;
    // Pieces first (CROSS JOIN keeps that order): each is one range of the primary key.
    const sql = `WITH pieces (grain, from_slot, to_slot, bucket) AS (VALUES ${pieces})
                 SELECT ${key} AS key, p.bucket AS bucket, ${sums.join(', ')}
                 FROM pieces p CROSS JOIN report_counts r
                 WHERE r.dimension = @dimension AND r.grain = p.grain AND r.slot >= p.from_slot AND r.slot < p.to_slot
                 GROUP BY 1, 2`;
    const rows = this.db.prepare(sql).all({ dimension: q.split === 'none' ? 'sender' : q.split }) as (ReportCounts & { key: string | null; bucket: number })[];
    return rows.map(({ key, bucket, ...counts }) => ({ key, bucket, counts }));
  }
}

/** How a delivered recipient's copy travelled, as the report's by-method figures name it. */
function methodColumn(method: Method | null, tls: string | null): Column {
  switch (method) {
    case 'tls':
      return tls === 'TLSv1.3' ? 'tls13' : tls === 'TLSv1.2' ? 'tls12' : 'tls_other';
    case 'pgp':
    case 'pgp+tls':
      return 'pgp';
    case 'smime':
    case 'smime+tls':
      return 'smime';
    case 'portal':
      return 'portal';
    default:
      // plaintext (and `none`, which no delivery has): not secured.
      return 'plaintext';
  }
}

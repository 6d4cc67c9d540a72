// The SQLite store's report counts (schema 14): a rollup of the events, read by
// reporting/report.ts through Store.reportCounts.
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
//
// The counts follow the events rather than being kept in each event's transaction
// (schema 20): counting there cost every commit some fifteen upserts per message,
// paid on the path of each SMTP reply. Event ids grow in commit order, so `catchUp`
// counts the events after `report_progress.through_id` in id order and moves the
// mark in the same transaction: each event is counted exactly once, whoever runs
// it (the relay's store thread every second, a report before it reads, the CLI).
// A batch of many messages sums to few upserts: they share slots, senders, domains.
import type Database from 'better-sqlite3';
import type { Method } from '../../delivery/record.ts';
import type { EventType, RelayEvent } from '../../events/event.ts';
import { COUNT_NAMES, GRAINS, type ReportCounts, type ReportCountsQuery, type ReportCountsRow, type ReportPiece } from '../../reporting/counts.ts';

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

/** An event as the table holds it (its message facts filled in, `automated` as 0/1). */
export type EventRowToCount = Pick<RelayEvent, 'queueId' | 'seq' | 'at' | 'type' | 'sender' | 'domain' | 'method' | 'tls' | 'campaign' | 'custom' | 'subject'> & { readonly automated: number };

export class ReportTable {
  private readonly stmt;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      // Earlier events of this kind for the recipient, and whether one was a person's.
      before: db.prepare(
        `SELECT count(*) AS anyBefore, coalesce(max(automated = 0), 0) AS humanBefore FROM events WHERE queue_id = ? AND seq = ? AND type = ? AND id < ?`,
      ),
      after: db.prepare(
        `SELECT id, queue_id AS queueId, seq, at, type, sender, domain, method, tls, campaign, custom, subject, automated FROM events WHERE id > ? ORDER BY id LIMIT ?`,
      ),
      progress: db.prepare(`SELECT through_id FROM report_progress`).pluck(),
      setProgress: db.prepare(`UPDATE report_progress SET through_id = ?`),
      lastEvent: db.prepare(`SELECT max(id) FROM events`).pluck(),
      // One range of the primary key, in its order; the counters in COUNT_NAMES order.
      rangeHuman: db.prepare(`SELECT value, slot, ${countsRead('_human')} FROM report_counts WHERE dimension = ? AND grain = ? AND slot >= ? AND slot < ?`).raw(),
      rangeAll: db.prepare(`SELECT value, slot, ${countsRead('')} FROM report_counts WHERE dimension = ? AND grain = ? AND slot >= ? AND slot < ?`).raw(),
      add: db.prepare(
        `INSERT INTO report_counts (dimension, grain, slot, value, ${COLUMNS.join(', ')})
         VALUES (?, ?, ?, ?, ${COLUMNS.map(() => '?').join(', ')})
         ON CONFLICT (dimension, grain, slot, value) DO UPDATE SET ${COLUMNS.map((c) => `${c} = ${c} + excluded.${c}`).join(', ')}`,
      ),
    };
  }

  /**
   * Counts up to `limit` events not counted yet, in the transaction already open,
   * and moves the mark past them. Returns how many it read: fewer than `limit`
   * means the counts have caught up with the events.
   */
  catchUp(limit: number): number {
    if (!this.db.inTransaction) throw new Error('report counts are caught up only inside a transaction');
    const through = this.stmt.progress.get() as string | null;
    const events = this.stmt.after.all(through ?? '', limit) as (EventRowToCount & { id: string })[];
    if (!events.length) return 0;
    const sums = new Map<string, { key: [string, number, number, string]; add: number[] }>();
    for (const e of events) {
      const add = this.increments(e);
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
    this.stmt.setProgress.run(events[events.length - 1]!.id);
    return events.length;
  }

  /** Whether events wait to be counted (a primary-key look-up each). */
  behind(): boolean {
    return (this.stmt.lastEvent.get() as string | null ?? '') > ((this.stmt.progress.get() as string | null) ?? '');
  }

  /** What one event adds to each counter (COLUMNS order); null: nothing (not a first, or not counted). */
  private increments(e: EventRowToCount & { id: string }): number[] | null {
    const outcome = OUTCOMES[e.type];
    const engagement = ENGAGEMENT[e.type];
    if (!outcome && !engagement) return null;
    // A queue id is new with its `queued` events: nothing can come before them in the table.
    const earlier = e.type === 'queued' ? { anyBefore: 0, humanBefore: 0 } : (this.stmt.before.get(e.queueId, e.seq, e.type, e.id) as { anyBefore: number; humanBefore: number });
    const anyBefore = earlier.anyBefore > 0;
    const humanBefore = earlier.humanBefore > 0;
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

  /**
   * The counts per split value and bucket of the query's pieces of time
   * (reporting/report.ts cuts them). Each grain's pieces are read as few ranges of
   * the primary key as they make, in slot order, and summed here: a month split by
   * domain per hour is some 200,000 rows, and letting SQLite group them (a sort of
   * every row) cost several times the reading.
   */
  query(q: ReportCountsQuery): ReportCountsRow[] {
    const dimension = q.split === 'none' ? 'sender' : q.split;
    const read = q.includeAutomated ? this.stmt.rangeAll : this.stmt.rangeHuman;
    const sums = new Map<string, { key: string | null; bucket: number; n: number[] }>();
    for (const run of runsOf(q.pieces)) {
      let i = 0;
      for (const row of read.iterate(dimension, run.grain, run.fromSlot, run.toSlot) as IterableIterator<[string, number, ...number[]]>) {
        const [value, slot] = row;
        // Rows come in slot order, and so do the run's pieces.
        while (run.pieces[i]!.toSlot <= slot) i++;
        const bucket = run.pieces[i]!.bucket;
        const key = q.split === 'none' || value === '' ? null : value;
        const id = `${bucket}\0${key ?? '\u0001'}`;
        let sum = sums.get(id);
        if (!sum) sums.set(id, (sum = { key, bucket, n: new Array<number>(COUNT_NAMES.length).fill(0) }));
        for (let c = 0; c < COUNT_NAMES.length; c++) sum.n[c]! += row[c + 2] as number;
      }
    }
    return [...sums.values()].map(({ key, bucket, n }) => ({
      key,
      bucket,
      counts: Object.fromEntries(COUNT_NAMES.map((name, c) => [name, n[c]!])) as unknown as ReportCounts,
    }));
  }
}

/** One grain's pieces that follow each other without a gap: one range of slots to read. */
interface Run {
  readonly grain: number;
  readonly fromSlot: number;
  readonly toSlot: number;
  readonly pieces: readonly ReportPiece[];
}

/** The query's pieces as runs per grain, in slot order; checked, as they come from a caller. */
function runsOf(pieces: readonly ReportPiece[]): Run[] {
  for (const p of pieces) {
    if (![p.fromSlot, p.toSlot, p.bucket].every(Number.isSafeInteger) || p.fromSlot > p.toSlot || !(GRAINS as readonly number[]).includes(p.grain)) {
      throw new TypeError(`report counts: bad piece ${JSON.stringify(p)}`);
    }
  }
  const sorted = pieces.filter((p) => p.fromSlot < p.toSlot).sort((a, b) => a.grain - b.grain || a.fromSlot - b.fromSlot);
  const runs: { grain: number; fromSlot: number; toSlot: number; pieces: ReportPiece[] }[] = [];
  for (const p of sorted) {
    const last = runs.at(-1);
    if (last && last.grain === p.grain && p.fromSlot < last.toSlot) throw new TypeError(`report counts: pieces overlap at ${JSON.stringify(p)}`);
    if (last && last.grain === p.grain && last.toSlot === p.fromSlot) {
      last.toSlot = p.toSlot;
      last.pieces.push(p);
    } else {
      runs.push({ grain: p.grain, fromSlot: p.fromSlot, toSlot: p.toSlot, pieces: [p] });
    }
  }
  return runs;
}

/** The counters a report reads, in COUNT_NAMES order: engagement of people only (`_human`) or of anyone (''). */
function countsRead(engagement: '_human' | ''): string {
  return `queued, delivered, deferred, bounced, dropped, secured, tls13, tls12, tls_other, pgp, smime, portal, plaintext, opened${engagement}, clicked${engagement}, unsubscribed${engagement}`;
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

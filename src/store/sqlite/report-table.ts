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
import { GRAINS, type ReportCounts, type ReportCountsQuery, type ReportCountsRow, type ReportPiece } from '../../reporting/counts.ts';

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
      // One range of the primary key, in its order, as a JSON array of [value, slot, counters in COUNT_NAMES order].
      range: {
        human: db.prepare(`SELECT json_group_array(json_array(value, slot, ${countsRead('_human')})) FROM ${RANGE}`).pluck(),
        all: db.prepare(`SELECT json_group_array(json_array(value, slot, ${countsRead('')})) FROM ${RANGE}`).pluck(),
      },
      // The same for the kept values (a JSON array), then per slot the others' sums with a null value.
      rangeKept: {
        human: db.prepare(`SELECT json_group_array(json_array(value, slot, ${countsRead('_human')})) FROM (${keptRows(countsRead('_human'))})`).pluck(),
        all: db.prepare(`SELECT json_group_array(json_array(value, slot, ${countsRead('')})) FROM (${keptRows(countsRead(''))})`).pluck(),
      },
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
   * (reporting/report.ts cuts them). Each grain's pieces are read as ranges of the
   * primary key, and summed per bucket here. A month split by domain per hour is
   * some 200,000 rows: letting SQLite group them cost a sort of every row, and
   * handing them over value by value cost more than the reading; so each range
   * comes back as one JSON array that SQLite builds and V8 parses.
   */
  query(q: ReportCountsQuery): ReportCountsRow[] {
    const dimension = q.split === 'none' ? 'sender' : q.split;
    const engagement = q.includeAutomated ? 'all' : 'human';
    const keep = q.keep && q.split !== 'none' ? JSON.stringify(q.keep) : null;
    /**
     * Sums per bucket, then per split value ('' for none; OTHER for the values not kept):
     * the first row of a bucket and value is kept and the later ones added into it, so
     * that the common case (one row each) allocates nothing more than the parse did.
     */
    const sums = new Map<number, Map<string, Row>>();
    const runs = runsOf(q.pieces);
    // Each bucket one slot of one grain (hours by a split, in a zone of whole-hour
    // offsets): every row is a value's whole count in its bucket, nothing to add up.
    const out: ReportCountsRow[] = [];
    const rowsAreSums = q.split !== 'none' && oneSlotEach(runs);
    for (const run of runs) {
      // A week a read, and never more than MAX_READS reads (a caller may ask for any range).
      const step = Math.max(Math.ceil(RANGE_MINUTES / run.grain), Math.ceil((run.toSlot - run.fromSlot) / MAX_READS));
      let i = 0;
      for (let from = run.fromSlot; from < run.toSlot; from += step) {
        const range = { dimension, grain: run.grain, from, to: Math.min(from + step, run.toSlot) };
        // The values not kept are summed per slot by SQLite: a few rows, whatever their number.
        const rows = JSON.parse(
          keep === null ? (this.stmt.range[engagement].get(range) as string) : (this.stmt.rangeKept[engagement].get({ ...range, keep }) as string),
        ) as Row[];
        for (const row of rows) {
          // Rows come in slot order, and so do the run's pieces.
          while (run.pieces[i]!.toSlot <= row[1]) i++;
          const bucket = run.pieces[i]!.bucket;
          if (rowsAreSums) {
            out.push(countsRow(row[0] ?? OTHER, bucket, row));
            continue;
          }
          let values = sums.get(bucket);
          if (!values) sums.set(bucket, (values = new Map()));
          const value = q.split === 'none' ? '' : (row[0] ?? OTHER);
          const first = values.get(value);
          if (first) for (let c = FIRST_COUNT; c < row.length; c++) (first[c] as number) += row[c] as number;
          else values.set(value, row);
        }
      }
    }
    for (const [bucket, values] of sums) {
      for (const [value, row] of values) out.push(countsRow(value, bucket, row));
    }
    return out;
  }
}

/** The row of a split value ('' for none, OTHER for the values not kept) in a bucket. */
function countsRow(value: string, bucket: number, row: Row): ReportCountsRow {
  return value === OTHER ? { key: null, bucket, counts: countsOf(row), other: true } : { key: value === '' ? null : value, bucket, counts: countsOf(row) };
}

/** Every piece one slot long, and no two pieces in one bucket. */
function oneSlotEach(runs: readonly Run[]): boolean {
  const buckets = new Set<number>();
  for (const run of runs) {
    for (const p of run.pieces) {
      if (p.toSlot - p.fromSlot !== 1 || buckets.has(p.bucket)) return false;
      buckets.add(p.bucket);
    }
  }
  return true;
}

/** A row as a range read gives it: [value, slot, counters in COUNT_NAMES order]. */
type Row = [string | null, number, ...number[]];
/** Where a Row's counters start. */
const FIRST_COUNT = 2;

/** The sums key of the values not kept (no split value is a lone NUL: they are header text without control characters). */
const OTHER = '\u0000';

/** How much time one read covers: bounds the JSON of one range (a week of a busy split by domain at hours is a few MB). */
const RANGE_MINUTES = 7 * 1440;
const MAX_READS = 64;

/** A Row's counters as the named counts. */
function countsOf(row: Row): ReportCounts {
  const n = row as unknown as number[];
  return {
    queued: n[2]!, delivered: n[3]!, deferred: n[4]!, bounced: n[5]!, dropped: n[6]!, secured: n[7]!,
    tls13: n[8]!, tls12: n[9]!, tlsOther: n[10]!, pgp: n[11]!, smime: n[12]!, portal: n[13]!, plaintext: n[14]!,
    opened: n[15]!, clicked: n[16]!, unsubscribed: n[17]!,
  };
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

/** One range of the rollup's primary key. */
const RANGE = `report_counts WHERE dimension = @dimension AND grain = @grain AND slot >= @from AND slot < @to`;

/** The rows of the kept values (@keep, a JSON array), then one row per slot summing the others (value null). */
function keptRows(counters: string): string {
  const names = counters.split(', ');
  return `SELECT * FROM (SELECT value, slot, ${counters} FROM ${RANGE} AND value IN (SELECT value FROM json_each(@keep)))
          UNION ALL
          SELECT * FROM (SELECT NULL AS value, slot, ${names.map((c) => `sum(${c}) AS ${c}`).join(', ')} FROM ${RANGE} AND value NOT IN (SELECT value FROM json_each(@keep)) GROUP BY slot)
          ORDER BY slot`;
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

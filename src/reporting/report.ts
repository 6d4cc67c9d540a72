// Split reports: counts and percentages of what happened to recipients over a
// window, split by recipient domain, sender, subject, campaign or the custom
// field, in hour or day buckets of the caller's time zone. The CLI (`sealrelay
// report`) and the API both build a ReportQuery with `parseReportQuery` and run it
// with `runReport`; the answer is the Report below (JSON as it is) or its CSV
// (csv.ts).
//
// What is counted (the same in every format):
// - Recipients, from the events (events/event.ts), by the time of the event: a
//   recipient queued on Monday and delivered on Tuesday is queued in Monday's
//   bucket and delivered in Tuesday's.
// - Each recipient at most once per figure, at its first event of that kind: the
//   first deferral, the first open. So the figures add up — hours to days, days to
//   the window, rows to the total — and a second open or a delivery made twice
//   after a crash is not counted again. Opened, clicked and unsubscribed are unique
//   recipients; a recipient whose first open fell before the window is not counted
//   again for opening inside it.
// - delivered: delivered by any method, the portal's notification included;
//   deferred: deferred at least once; bounced, dropped: their final outcome.
// - secured: delivered by any method but plaintext. By method, of delivered:
//   tls13 / tls12 (TLS of that version negotiated with the MX), tlsOther (another
//   version), pgp (PGP/MIME, with TLS on top or not), smime (likewise), portal, plaintext.
// - Opens, clicks and unsubscribes made by machines (image proxies, link scanners:
//   events with `automated`) are left out unless includeAutomated.
// - Percentages: delivered, deferred, bounced and dropped of queued; secured, each
//   method, opened and unsubscribed of delivered; clickThroughRate = unique clicks /
//   delivered. Numerator and denominator come from the same row, so with buckets
//   shorter than delivery takes a percentage can pass 100. null where the
//   denominator is 0. Rounded to one decimal.
// - The window is whole quarter hours (the store keeps counts per quarter hour):
//   `since` is rounded down and `until` up; the Report says the window it covers.
//   Day and hour buckets follow the zone's calendar, DST changes included (a day of
//   23 or 25 hours; a repeated hour is two buckets with different offsets); the
//   first and last bucket may cover part of their day or hour.
import type { Store } from '../store/store.ts';
import { COUNT_NAMES, REPORT_BUCKETS, REPORT_SPLITS, SLOT_MS, type ReportBucket, type ReportCounts, type ReportCountsRow, type ReportPiece, type ReportSplit } from './counts.ts';
import { checkTimeZone, localDayStart, localIso, zoneOffsets } from './zone.ts';

export { REPORT_BUCKETS, REPORT_SPLITS, type ReportBucket, type ReportCounts, type ReportSplit } from './counts.ts';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** The longest window a report covers. */
export const MAX_REPORT_DAYS = 366;
/** The longest window of an hourly report (744 buckets a row). */
export const MAX_HOURLY_REPORT_DAYS = 31;
/**
 * Split values a bucketed report shows one by one unless asked otherwise (CLI and
 * API): the rest are summed into one `other` row per bucket. A month of hours split
 * by 300 domains is 200,000 rows that nobody reads and no report draws in a second.
 */
export const DEFAULT_REPORT_TOP = 25;
/** The most values `top` may ask for. */
export const MAX_REPORT_TOP = 10_000;

export interface ReportQuery {
  /** Start of the window, ms since the epoch (rounded down to the quarter hour). */
  readonly since: number;
  /** End of the window, exclusive, ms since the epoch (rounded up to the quarter hour). */
  readonly until: number;
  readonly split: ReportSplit;
  readonly bucket: ReportBucket;
  /** IANA time zone name the buckets follow. */
  readonly timeZone: string;
  /** Count opens, clicks and unsubscribes made by machines too. */
  readonly includeAutomated: boolean;
  /**
   * With a split and buckets: the split values with the most queued recipients over
   * the window shown one by one, the others summed per bucket into a row marked
   * `other`. 0 or absent: every value.
   */
  readonly top?: number;
}

/** Checks a query before it reaches the store; throws a TypeError naming the field at fault. */
export function checkReportQuery(q: ReportQuery): ReportQuery {
  for (const field of ['since', 'until'] as const) {
    if (!Number.isSafeInteger(q[field]) || q[field] < 0) throw new TypeError(`report: ${field} must be a time in ms since the epoch, not ${String(q[field])}`);
  }
  if (q.since >= q.until) throw new TypeError('report: since must be before until');
  if (!(REPORT_SPLITS as readonly unknown[]).includes(q.split)) throw new TypeError(`report: split must be one of ${REPORT_SPLITS.join(', ')}, not "${String(q.split)}"`);
  if (!(REPORT_BUCKETS as readonly unknown[]).includes(q.bucket)) throw new TypeError(`report: bucket must be one of ${REPORT_BUCKETS.join(', ')}, not "${String(q.bucket)}"`);
  if (typeof q.includeAutomated !== 'boolean') throw new TypeError('report: includeAutomated must be true or false');
  if (typeof q.timeZone !== 'string') throw new TypeError('report: timeZone must be an IANA time zone name');
  if (q.top !== undefined && (!Number.isSafeInteger(q.top) || q.top < 0 || q.top > MAX_REPORT_TOP)) {
    throw new TypeError(`report: top must be a whole number from 1 to ${MAX_REPORT_TOP}, or all, not ${String(q.top)}`);
  }
  const days = (q.until - q.since) / DAY_MS;
  if (days > MAX_REPORT_DAYS) throw new TypeError(`report: the window may be at most ${MAX_REPORT_DAYS} days, not ${Math.ceil(days)}`);
  if (q.bucket === 'hour' && days > MAX_HOURLY_REPORT_DAYS) {
    throw new TypeError(`report: hourly buckets cover at most ${MAX_HOURLY_REPORT_DAYS} days; use bucket day for ${Math.ceil(days)}`);
  }
  checkTimeZone(q.timeZone);
  return q;
}

/** A query as it arrives from outside (CLI options, URL query parameters): strings. */
export interface ReportQueryInput {
  /** A duration back from now ("30m", "7d", "2w") or an ISO 8601 time; required. */
  readonly since?: string | number;
  /** Likewise; absent: now. */
  readonly until?: string | number;
  readonly split?: string;
  readonly bucket?: string;
  /** IANA time zone; absent: UTC. */
  readonly tz?: string;
  readonly includeAutomated?: boolean | string;
  /** "all", or how many split values to show one by one; absent: DEFAULT_REPORT_TOP. */
  readonly top?: string | number;
}

const UNIT_MS: Readonly<Record<string, number>> = { m: 60_000, h: HOUR_MS, d: DAY_MS, w: 7 * DAY_MS };
const DURATION = /^(?:\d{1,6}[mhdw])+$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

/** "7d" → now − 7 days; "2026-03-01" or "2026-03-01T08:00:00Z" → that time (a date alone: midnight UTC). */
function parseTime(field: string, value: string | number, now: number): number {
  if (typeof value === 'number') return value;
  const text = value.trim();
  if (DURATION.test(text)) {
    let ms = 0;
    for (const [, n, unit] of text.matchAll(/(\d+)([mhdw])/g)) ms += Number(n) * UNIT_MS[unit!]!;
    return now - ms;
  }
  if (ISO_TIME.test(text)) {
    const at = Date.parse(text);
    if (!Number.isNaN(at)) return at;
  }
  throw new TypeError(`report: ${field} must be a duration back from now (30m, 12h, 7d, 2w) or an ISO 8601 time (2026-03-01T08:00:00Z), not "${value}"`);
}

function parseTop(value: string | number | undefined): number {
  if (value === undefined || value === '') return DEFAULT_REPORT_TOP;
  if (value === 'all') return 0;
  const n = typeof value === 'number' ? value : /^\d{1,6}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_REPORT_TOP) throw new TypeError(`report: top must be a whole number from 1 to ${MAX_REPORT_TOP}, or all, not "${value}"`);
  return n;
}

function parseFlag(value: boolean | string | undefined): boolean {
  if (value === undefined || typeof value === 'boolean') return value ?? false;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new TypeError(`report: includeAutomated must be true or false, not "${value}"`);
}

/** A checked ReportQuery from strings; throws a TypeError naming the field at fault. */
export function parseReportQuery(input: ReportQueryInput, now = Date.now()): ReportQuery {
  if (input.since === undefined || input.since === '') throw new TypeError('report: since is required (e.g. 7d)');
  return checkReportQuery({
    since: parseTime('since', input.since, now),
    until: input.until === undefined || input.until === '' ? now : parseTime('until', input.until, now),
    split: (input.split ?? 'none') as ReportSplit,
    bucket: (input.bucket ?? 'none') as ReportBucket,
    timeZone: input.tz ?? 'UTC',
    includeAutomated: parseFlag(input.includeAutomated),
    top: parseTop(input.top),
  });
}

/** Percentages (one decimal), null where the denominator is 0. See the module comment for each one's base. */
export interface ReportPercent {
  readonly delivered: number | null;
  readonly deferred: number | null;
  readonly bounced: number | null;
  readonly dropped: number | null;
  readonly secured: number | null;
  readonly tls13: number | null;
  readonly tls12: number | null;
  readonly tlsOther: number | null;
  readonly pgp: number | null;
  readonly smime: number | null;
  readonly portal: number | null;
  readonly plaintext: number | null;
  readonly opened: number | null;
  readonly unsubscribed: number | null;
  /** Unique clicks / delivered. */
  readonly clickThroughRate: number | null;
}

export interface ReportFigures {
  readonly counts: ReportCounts;
  readonly percent: ReportPercent;
}

export interface ReportRow extends ReportFigures {
  /** The split value; null: no split, or events without one (no campaign, the null sender), or `other`. */
  readonly key: string | null;
  /** The split values beyond the top ones (ReportQuery.top), summed. */
  readonly other?: true;
  /** Local start of the bucket, ISO 8601 with the zone's offset ("2026-03-08T00:00:00-05:00"); null: no buckets. */
  readonly bucket: string | null;
}

/** The JSON the API returns and `sealrelay report --format json` prints. */
export interface Report {
  /** The window covered (whole quarter hours), ISO 8601 UTC; until is exclusive. */
  readonly since: string;
  readonly until: string;
  readonly split: ReportSplit;
  readonly bucket: ReportBucket;
  readonly timeZone: string;
  readonly includeAutomated: boolean;
  /** Split values shown one by one (ReportQuery.top); 0: all. */
  readonly top: number;
  /** By bucket, then by most queued, then by key (the `other` row last). */
  readonly rows: readonly ReportRow[];
  /** The whole window, all rows together. */
  readonly total: ReportFigures;
}

/** Runs a report on the store: one read of its counts (Store.reportCounts). */
export async function runReport(store: Store, query: ReportQuery): Promise<Report> {
  const q = checkReportQuery(query);
  const fromSlot = Math.floor(q.since / SLOT_MS);
  const toSlot = Math.ceil(q.until / SLOT_MS);
  const top = q.split !== 'none' && q.bucket !== 'none' ? (q.top ?? 0) : 0;
  const keep = top ? await topValues(store, q, fromSlot, toSlot, top) : undefined;
  const rows = await store.reportCounts({ split: q.split, pieces: reportPieces(q, fromSlot, toSlot), includeAutomated: q.includeAutomated, ...(keep ? { keep } : {}) });
  // Many rows share a bucket (one per split value): each bucket's label is made once.
  const labels = new Map<number, string | null>();
  const label = (row: ReportCountsRow): string | null => {
    let text = labels.get(row.bucket);
    if (text === undefined) labels.set(row.bucket, (text = bucketStart(q, row)));
    return text;
  };
  const sorted = inReportOrder(rows);
  return {
    since: new Date(fromSlot * SLOT_MS).toISOString(),
    until: new Date(toSlot * SLOT_MS).toISOString(),
    split: q.split,
    bucket: q.bucket,
    timeZone: q.timeZone,
    includeAutomated: q.includeAutomated,
    top,
    rows: sorted.map((r) => (r.other ? { key: r.key, bucket: label(r), other: true as const, counts: r.counts, percent: percentOf(r.counts) } : { key: r.key, bucket: label(r), counts: r.counts, percent: percentOf(r.counts) })),
    total: figures(sumCounts(rows)),
  };
}

/**
 * The `top` split values with the most queued recipients over the whole window
 * (read at the coarsest grains: cheap), as the store names them ('' for none);
 * undefined when there are no more than `top` of them.
 */
async function topValues(store: Store, q: ReportQuery, fromSlot: number, toSlot: number, top: number): Promise<string[] | undefined> {
  const totals = await store.reportCounts({ split: q.split, pieces: reportPieces({ bucket: 'none', timeZone: q.timeZone }, fromSlot, toSlot), includeAutomated: q.includeAutomated });
  if (totals.length <= top) return undefined;
  totals.sort((a, b) => b.counts.queued - a.counts.queued || byKey(a.key, b.key));
  return totals.slice(0, top).map((r) => r.key ?? '');
}

/** Quarter hours in an hour and in a day. */
const HOUR_SLOTS = HOUR_MS / SLOT_MS;
const DAY_SLOTS = DAY_MS / SLOT_MS;

/**
 * The window [fromSlot, toSlot) (quarter hours) cut into the buckets of the query's
 * zone, and each bucket into pieces the store reads at the coarsest grain that fits:
 * whole UTC days, then whole hours, then quarter hours at the edges.
 */
export function reportPieces(q: Pick<ReportQuery, 'bucket' | 'timeZone'>, fromSlot: number, toSlot: number): ReportPiece[] {
  if (q.bucket === 'none') return cut(fromSlot, toSlot, 0);
  const offsets = zoneOffsets(q.timeZone, fromSlot, toSlot);
  let next = 0;
  const bucketOf = (slot: number): number => {
    while (next + 1 < offsets.length && offsets[next + 1]!.fromSlot <= slot) next++;
    const offset = offsets[next]!.offsetMs;
    const local = slot * SLOT_MS + offset;
    return q.bucket === 'hour' ? Math.floor(local / HOUR_MS) * HOUR_MS - offset : Math.floor(local / DAY_MS);
  };
  const pieces: ReportPiece[] = [];
  let start = fromSlot;
  let bucket = bucketOf(fromSlot);
  for (let slot = fromSlot + 1; slot <= toSlot; slot++) {
    const here = slot < toSlot ? bucketOf(slot) : Number.NaN;
    if (here === bucket) continue;
    pieces.push(...cut(start, slot, bucket));
    [start, bucket] = [slot, here];
  }
  return pieces;
}

/** Quarter hours [from, to) as pieces of whole UTC days, whole hours and quarter hours. */
function cut(from: number, to: number, bucket: number): ReportPiece[] {
  const pieces: ReportPiece[] = [];
  const firstDay = Math.ceil(from / DAY_SLOTS);
  const endDay = Math.floor(to / DAY_SLOTS);
  const parts: [number, number][] = [];
  if (firstDay < endDay) {
    pieces.push({ grain: 1440, fromSlot: firstDay, toSlot: endDay, bucket });
    parts.push([from, firstDay * DAY_SLOTS], [endDay * DAY_SLOTS, to]);
  } else {
    parts.push([from, to]);
  }
  for (const [a, b] of parts) {
    const firstHour = Math.ceil(a / HOUR_SLOTS);
    const endHour = Math.floor(b / HOUR_SLOTS);
    if (firstHour < endHour) {
      pieces.push({ grain: 60, fromSlot: firstHour, toSlot: endHour, bucket });
      if (a < firstHour * HOUR_SLOTS) pieces.push({ grain: 15, fromSlot: a, toSlot: firstHour * HOUR_SLOTS, bucket });
      if (endHour * HOUR_SLOTS < b) pieces.push({ grain: 15, fromSlot: endHour * HOUR_SLOTS, toSlot: b, bucket });
    } else if (a < b) {
      pieces.push({ grain: 15, fromSlot: a, toSlot: b, bucket });
    }
  }
  return pieces;
}

/**
 * The rows in the Report's order: by bucket, the `other` row last in its bucket, then
 * by most queued, then by key. The store gives them grouped by bucket, mostly in
 * bucket order: then each bucket's rows are sorted on their own.
 */
function inReportOrder(rows: readonly ReportCountsRow[]): ReportCountsRow[] {
  const sorted = [...rows];
  for (let i = 1; i < sorted.length; i++) if (sorted[i]!.bucket < sorted[i - 1]!.bucket) return sorted.sort((a, b) => a.bucket - b.bucket || withinBucket(a, b));
  for (let start = 0, end = 1; start < sorted.length; start = end++) {
    while (end < sorted.length && sorted[end]!.bucket === sorted[start]!.bucket) end++;
    if (end - start > 1) sortRange(sorted, start, end);
  }
  return sorted;
}

/** Sorts rows[start, end) of one bucket in place. */
function sortRange(rows: ReportCountsRow[], start: number, end: number): void {
  const part = rows.slice(start, end).sort(withinBucket);
  for (let i = 0; i < part.length; i++) rows[start + i] = part[i]!;
}

function withinBucket(a: ReportCountsRow, b: ReportCountsRow): number {
  if (a.other !== b.other) return a.other ? 1 : -1;
  return b.counts.queued - a.counts.queued || byKey(a.key, b.key);
}

/** Split values in code point order, none last. */
function byKey(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null || b === null) return a === null ? 1 : -1;
  return a < b ? -1 : 1;
}

function bucketStart(q: ReportQuery, row: ReportCountsRow): string | null {
  if (q.bucket === 'none') return null;
  return localIso(q.timeZone, q.bucket === 'hour' ? row.bucket : localDayStart(q.timeZone, row.bucket));
}

/** The rows' counts added up; spelled out field by field, as a month of hours by domain is 200,000 rows. */
function sumCounts(rows: readonly ReportCountsRow[]): ReportCounts {
  const t = { queued: 0, delivered: 0, deferred: 0, bounced: 0, dropped: 0, secured: 0, tls13: 0, tls12: 0, tlsOther: 0, pgp: 0, smime: 0, portal: 0, plaintext: 0, opened: 0, clicked: 0, unsubscribed: 0 } satisfies Record<(typeof COUNT_NAMES)[number], number>;
  for (const { counts: c } of rows) {
    t.queued += c.queued;
    t.delivered += c.delivered;
    t.deferred += c.deferred;
    t.bounced += c.bounced;
    t.dropped += c.dropped;
    t.secured += c.secured;
    t.tls13 += c.tls13;
    t.tls12 += c.tls12;
    t.tlsOther += c.tlsOther;
    t.pgp += c.pgp;
    t.smime += c.smime;
    t.portal += c.portal;
    t.plaintext += c.plaintext;
    t.opened += c.opened;
    t.clicked += c.clicked;
    t.unsubscribed += c.unsubscribed;
  }
  return t;
}

const percent = (part: number, whole: number): number | null => (whole ? Math.round((part / whole) * 1000) / 10 : null);

function figures(c: ReportCounts): ReportFigures {
  return { counts: c, percent: percentOf(c) };
}

function percentOf(c: ReportCounts): ReportPercent {
  return {
      delivered: percent(c.delivered, c.queued),
      deferred: percent(c.deferred, c.queued),
      bounced: percent(c.bounced, c.queued),
      dropped: percent(c.dropped, c.queued),
      secured: percent(c.secured, c.delivered),
      tls13: percent(c.tls13, c.delivered),
      tls12: percent(c.tls12, c.delivered),
      tlsOther: percent(c.tlsOther, c.delivered),
      pgp: percent(c.pgp, c.delivered),
      smime: percent(c.smime, c.delivered),
      portal: percent(c.portal, c.delivered),
      plaintext: percent(c.plaintext, c.delivered),
      opened: percent(c.opened, c.delivered),
      unsubscribed: percent(c.unsubscribed, c.delivered),
      clickThroughRate: percent(c.clicked, c.delivered),
  };
}

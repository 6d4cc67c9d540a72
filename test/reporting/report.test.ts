// Split reports from a real SQLite store seeded through the Store API (seed.ts):
// every split and bucket equals the figures counted by hand; machine-made opens
// and clicks are left out unless asked; each recipient counts once per figure;
// day and hour buckets follow the zone across DST and in half- and
// quarter-hour zones; bad queries are refused with the field named; the CSV
// parses back to the same numbers and a hostile subject cannot run as a formula.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportToCsv } from '../../src/reporting/csv.ts';
import { DEFAULT_REPORT_TOP, parseReportQuery, reportPieces, runReport, type Report, type ReportQuery } from '../../src/reporting/report.ts';
import Database from 'better-sqlite3';
import { EventTable } from '../../src/store/sqlite/event-table.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';
import type { Store } from '../../src/store/store.ts';
import { message, record } from '../store/contract.ts';
import { counts, HOSTILE, HOUR, seedReportStore, T0 } from './seed.ts';

const dirs: string[] = [];
function storePath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-report-'));
  dirs.push(dir);
  return join(dir, 'queue.db');
}

let path: string;
let store: SqliteStore;
beforeAll(async () => {
  path = storePath();
  store = new SqliteStore(path);
  await seedReportStore(store);
});
afterAll(async () => {
  await store.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const TWO_DAYS: ReportQuery = { since: T0, until: T0 + 48 * HOUR, split: 'none', bucket: 'none', timeZone: 'UTC', includeAutomated: false };
const report = (over: Partial<ReportQuery> = {}, on: Store = store): Promise<Report> => runReport(on, { ...TWO_DAYS, ...over });
const byKey = (r: Report) => Object.fromEntries(r.rows.map((row) => [String(row.key), row.counts]));

const INVOICE = counts({ queued: 6, delivered: 5, deferred: 1, dropped: 1, secured: 4, tls13: 1, tls12: 1, pgp: 1, smime: 1, plaintext: 1, opened: 2, clicked: 1, unsubscribed: 1 });
const M2 = counts({ queued: 2, delivered: 1, bounced: 1, secured: 1, portal: 1 });

describe('counts by hand', () => {
  it('no split: the whole window, with every percentage', async () => {
    const r = await report();
    const all = counts({ queued: 8, delivered: 6, deferred: 1, bounced: 1, dropped: 1, secured: 5, tls13: 1, tls12: 1, pgp: 1, smime: 1, portal: 1, plaintext: 1, opened: 2, clicked: 1, unsubscribed: 1 });
    expect(r.rows).toHaveLength(1);
    expect(r.rows[0]).toMatchObject({ key: null, bucket: null, counts: all });
    expect(r.total.counts).toEqual(all);
    expect(r.total.percent).toEqual({
      delivered: 75, deferred: 12.5, bounced: 12.5, dropped: 12.5,
      secured: 83.3, tls13: 16.7, tls12: 16.7, tlsOther: 0, pgp: 16.7, smime: 16.7, portal: 16.7, plaintext: 16.7,
      opened: 33.3, unsubscribed: 16.7, clickThroughRate: 16.7,
    });
    expect(r).toMatchObject({ since: '2026-11-02T00:00:00.000Z', until: '2026-11-04T00:00:00.000Z', split: 'none', bucket: 'none', timeZone: 'UTC', includeAutomated: false });
  });

  it('split by domain, the most queued first', async () => {
    const r = await report({ split: 'domain' });
    expect(r.rows.map((row) => row.key)).toEqual(['big.test', 'small.test', 'other.test']);
    expect(byKey(r)).toEqual({
      'big.test': counts({ queued: 5, delivered: 4, deferred: 1, dropped: 1, secured: 4, tls13: 1, tls12: 1, pgp: 1, portal: 1, opened: 1, clicked: 1, unsubscribed: 1 }),
      'small.test': counts({ queued: 2, delivered: 2, secured: 1, smime: 1, plaintext: 1, opened: 1 }),
      'other.test': counts({ queued: 1, bounced: 1 }),
    });
    expect(r.rows[1]!.percent).toMatchObject({ delivered: 100, secured: 50, smime: 50, plaintext: 50, opened: 50, clickThroughRate: 0 });
    expect(r.rows[2]!.percent).toMatchObject({ bounced: 100, secured: null, clickThroughRate: null });
  });

  it('split by sender, subject, campaign and custom field; none is a row of its own', async () => {
    expect(byKey(await report({ split: 'sender' }))).toEqual({ 'a@s1.test': INVOICE, 'b@s2.test': M2 });
    expect(byKey(await report({ split: 'subject' }))).toEqual({ Invoice: INVOICE, [HOSTILE]: M2 });
    const campaign = await report({ split: 'campaign' });
    expect(campaign.rows.map((row) => row.key)).toEqual(['dec', 'nov', null]);
    expect(byKey(campaign)).toEqual({
      dec: counts({ queued: 3, delivered: 2, dropped: 1, secured: 2, smime: 1, tls12: 1, unsubscribed: 1 }),
      nov: counts({ queued: 3, delivered: 3, deferred: 1, secured: 2, tls13: 1, pgp: 1, plaintext: 1, opened: 2, clicked: 1 }),
      null: M2,
    });
    const custom = await report({ split: 'custom' });
    expect(custom.rows.map((row) => row.key)).toEqual([null, 'x']);
    expect(custom.rows[1]!.counts).toEqual(byKey(campaign).nov);
  });

  it('day buckets: each fact in the day it happened; the days add up to the total', async () => {
    const r = await report({ bucket: 'day' });
    expect(r.rows.map((row) => [row.bucket, row.counts])).toEqual([
      ['2026-11-02T00:00:00+00:00', counts({ queued: 6, delivered: 4, deferred: 1, dropped: 1, secured: 3, tls13: 1, tls12: 1, smime: 1, plaintext: 1, opened: 2, clicked: 1 })],
      ['2026-11-03T00:00:00+00:00', counts({ queued: 2, delivered: 2, bounced: 1, secured: 2, pgp: 1, portal: 1, unsubscribed: 1 })],
    ]);
    expect(r.total.counts).toEqual((await report()).total.counts);
  });

  it('split and bucketed at once: rows by day, then by volume', async () => {
    const r = await report({ split: 'domain', bucket: 'day' });
    expect(r.rows.map((row) => [row.bucket!.slice(0, 10), row.key, row.counts.queued, row.counts.delivered])).toEqual([
      ['2026-11-02', 'big.test', 4, 2],
      ['2026-11-02', 'small.test', 2, 2],
      ['2026-11-03', 'big.test', 1, 2],
      ['2026-11-03', 'other.test', 1, 0],
    ]);
  });

  it('hour buckets, and opens and clicks made by machines left out unless asked', async () => {
    const opensByHour = (r: Report) => Object.fromEntries(r.rows.filter((row) => row.counts.opened || row.counts.clicked).map((row) => [row.bucket, [row.counts.opened, row.counts.clicked]]));
    // By people: r3 opened at +4h, r1 at +5h (after a machine at +4h), and clicked at +5h (r3's click was a scanner's).
    expect(opensByHour(await report({ bucket: 'hour', until: T0 + 24 * HOUR }))).toEqual({
      '2026-11-02T04:00:00+00:00': [1, 0],
      '2026-11-02T05:00:00+00:00': [1, 1],
    });
    // With machines: r1's first open is the machine's at +4h, and the scanner's click counts.
    const all = await report({ bucket: 'hour', until: T0 + 24 * HOUR, includeAutomated: true });
    expect(opensByHour(all)).toEqual({ '2026-11-02T04:00:00+00:00': [2, 1], '2026-11-02T05:00:00+00:00': [0, 1] });
    expect(all.total.percent.clickThroughRate).toBe(50);
  });

  it('a recipient whose first open fell before the window is not counted again inside it', async () => {
    const r = await report({ since: T0 + 24 * HOUR });
    expect(r.total.counts).toEqual(counts({ queued: 2, delivered: 2, bounced: 1, secured: 2, pgp: 1, portal: 1, unsubscribed: 1 }));
  });

  it('an empty window has no rows and a zero total', async () => {
    const r = await report({ since: T0 - 48 * HOUR, until: T0 });
    expect(r.rows).toEqual([]);
    expect(r.total.counts).toEqual(counts({}));
    expect(r.total.percent.delivered).toBeNull();
  });

  it('top: the values with the most queued one by one, the others summed per bucket into one `other` row', async () => {
    const over = { split: 'domain', bucket: 'day', timeZone: 'Europe/Berlin' } as const;
    const all = await report({ ...over, top: 0 });
    const top1 = await report({ ...over, top: 1 });
    expect(top1.top).toBe(1);
    // big.test has the most recipients over the window (5 of 8): its rows stay as they were.
    expect(top1.rows.filter((r) => r.key === 'big.test')).toEqual(all.rows.filter((r) => r.key === 'big.test'));
    const buckets = [...new Set(all.rows.map((r) => r.bucket))];
    for (const bucket of buckets) {
      const rest = all.rows.filter((r) => r.bucket === bucket && r.key !== 'big.test');
      const other = top1.rows.filter((r) => r.bucket === bucket && r.other);
      if (!rest.length) {
        expect(other).toEqual([]);
        continue;
      }
      // One row, last in its bucket, with the sums of the others.
      expect(other).toHaveLength(1);
      expect(other[0]).toMatchObject({ key: null, other: true });
      expect(top1.rows.filter((r) => r.bucket === bucket).at(-1)).toBe(other[0]);
      for (const name of Object.keys(other[0]!.counts) as (keyof Report['total']['counts'])[]) {
        expect(other[0]!.counts[name], `${bucket} ${name}`).toBe(rest.reduce((n, r) => n + r.counts[name], 0));
      }
    }
    expect(top1.total).toEqual(all.total);
    // As many values as there are, or more: every value has its row, and none is `other`.
    expect((await report({ ...over, top: 3 })).rows).toEqual(all.rows);
    // Without buckets, or without a split, top changes nothing.
    expect((await report({ split: 'domain', top: 1 })).rows).toEqual((await report({ split: 'domain', top: 0 })).rows);
  });

  it('the threaded store (the relay\'s) answers the same', async () => {
    const threaded = await ThreadedSqliteStore.open(path);
    try {
      for (const split of ['none', 'domain', 'subject'] as const) expect(await report({ split, bucket: 'day' }, threaded)).toEqual(await report({ split, bucket: 'day' }));
    } finally {
      await threaded.close();
    }
  });
});

it('a delivery recorded twice (a retry after a crash) and a repeated deferral count once, in one write or in two', async () => {
  const s = new SqliteStore(storePath());
  try {
    await s.enqueue(message({ recipients: ['p@twice.test', 'q@twice.test'], receivedAt: T0 }));
    const [p, q] = (await s.claim({ owner: 'w', limit: 10, leaseMs: HOUR })).sort((a, b) => a.seq - b.seq);
    const at = (h: number) => new Date(T0 + h * HOUR).toISOString();
    const tls = { protocol: 'TLSv1.3', cipher: 'x', bits: 256, authorized: true, authorizationError: null, peerCertSubject: null, peerCertFingerprint256: null };
    for (const h of [1, 2]) await s.finish([record(p!, { at: at(h), outcome: 'deferred', method: 'none' })], []);
    for (const h of [3, 4]) await s.finish([record(p!, { at: at(h), method: 'tls', tls })], []);
    await s.finish([record(q!, { at: at(3), method: 'tls', tls }), record(q!, { at: at(3), method: 'tls', tls })], []);
    const r = await runReport(s, { ...TWO_DAYS, bucket: 'hour', until: T0 + 24 * HOUR });
    expect(r.total.counts).toEqual(counts({ queued: 2, delivered: 2, deferred: 1, secured: 2, tls13: 2 }));
    expect(r.rows.map((row) => row.bucket!.slice(11, 13))).toEqual(['00', '01', '03']);
  } finally {
    await s.close();
  }
});

it('the events of one write count as if written one by one', async () => {
  const path = storePath();
  const m = message({ recipients: ['o@batch.test'], receivedAt: T0 });
  let s = new SqliteStore(path);
  await s.enqueue(m);
  await s.close();
  const raw = new Database(path);
  const e = { queueId: m.queueId, seq: 0, at: T0 + HOUR, sender: m.sender, recipient: 'o@batch.test', domain: 'batch.test', method: null };
  const events = new EventTable(raw);
  raw.transaction(() => events.write([{ ...e, type: 'opened', automated: true }, { ...e, type: 'opened' }, { ...e, type: 'opened' }, { ...e, type: 'clicked' }, { ...e, type: 'clicked' }]))();
  raw.close();
  s = new SqliteStore(path);
  try {
    for (const includeAutomated of [false, true]) {
      expect((await runReport(s, { ...TWO_DAYS, includeAutomated })).total.counts).toEqual(counts({ queued: 1, opened: 1, clicked: 1 }));
    }
  } finally {
    await s.close();
  }
});

describe('time zones', () => {
  /** Queues one recipient at each time; the report's day or hour buckets then say where each fell. */
  async function bucketsOf(times: readonly string[], query: Partial<ReportQuery>): Promise<[string | null, number][]> {
    const s = new SqliteStore(storePath());
    try {
      for (const t of times) await s.enqueue(message({ recipients: ['z@zone.test'], receivedAt: Date.parse(t) }));
      const since = Math.min(...times.map((t) => Date.parse(t))) - 24 * HOUR;
      const r = await runReport(s, { ...TWO_DAYS, since, until: since + 72 * HOUR, ...query });
      return r.rows.map((row) => [row.bucket, row.counts.queued]);
    } finally {
      await s.close();
    }
  }

  it('America/New_York, spring forward: the 8th of March 2026 has 23 hours', async () => {
    const days = await bucketsOf(['2026-03-08T04:30:00Z', '2026-03-08T05:15:00Z', '2026-03-09T03:45:00Z', '2026-03-09T04:00:00Z'], { bucket: 'day', timeZone: 'America/New_York' });
    expect(days).toEqual([
      ['2026-03-07T00:00:00-05:00', 1], // 23:30 EST on the 7th
      ['2026-03-08T00:00:00-05:00', 2], // 00:15 EST and 23:45 EDT on the 8th
      ['2026-03-09T00:00:00-04:00', 1], // midnight EDT
    ]);
  });

  it('America/New_York, fall back: the 1st of November 2026 has 25 hours and 1 a.m. twice', async () => {
    const times = ['2026-11-01T03:45:00Z', '2026-11-01T05:30:00Z', '2026-11-01T06:30:00Z', '2026-11-02T04:30:00Z', '2026-11-02T05:00:00Z'];
    expect(await bucketsOf(times, { bucket: 'day', timeZone: 'America/New_York' })).toEqual([
      ['2026-10-31T00:00:00-04:00', 1], // 23:45 EDT on the 31st
      ['2026-11-01T00:00:00-04:00', 3], // 01:30 EDT, 01:30 EST, 23:30 EST
      ['2026-11-02T00:00:00-05:00', 1],
    ]);
    const hours = await bucketsOf(times.slice(1, 3), { bucket: 'hour', timeZone: 'America/New_York' });
    expect(hours).toEqual([['2026-11-01T01:00:00-04:00', 1], ['2026-11-01T01:00:00-05:00', 1]]);
  });

  it('Asia/Kolkata (+05:30) and Asia/Kathmandu (+05:45): days and hours begin on the half and quarter hour', async () => {
    const kolkata = ['2026-01-01T18:15:00Z', '2026-01-01T18:30:00Z'];
    expect(await bucketsOf(kolkata, { bucket: 'day', timeZone: 'Asia/Kolkata' })).toEqual([['2026-01-01T00:00:00+05:30', 1], ['2026-01-02T00:00:00+05:30', 1]]);
    expect(await bucketsOf(kolkata, { bucket: 'hour', timeZone: 'Asia/Kolkata' })).toEqual([['2026-01-01T23:00:00+05:30', 1], ['2026-01-02T00:00:00+05:30', 1]]);
    const kathmandu = ['2026-01-01T18:00:00Z', '2026-01-01T18:15:00Z'];
    expect(await bucketsOf(kathmandu, { bucket: 'day', timeZone: 'Asia/Kathmandu' })).toEqual([['2026-01-01T00:00:00+05:45', 1], ['2026-01-02T00:00:00+05:45', 1]]);
  });
});

it('split values are summed over the pieces of their bucket, whatever grain each piece is read at', async () => {
  // From 22:45: the first day's bucket is a quarter hour (grain 15) and an hour (grain 60),
  // one slot each; the next day is one slot of grain 1440, the last a quarter hour; hours in
  // Kathmandu are pieces of three quarter hours and one.
  const s = new SqliteStore(storePath());
  try {
    const mail: [string, string[]][] = [
      ['2026-01-01T22:50:00Z', ['a@one.test', 'b@two.test']],
      ['2026-01-01T23:30:00Z', ['a@one.test', 'b@two.test']],
      ['2026-01-02T12:00:00Z', ['a@one.test', 'b@two.test', 'c@three.test']],
      ['2026-01-02T18:00:00Z', ['a@one.test']],
      ['2026-01-03T00:05:00Z', ['a@one.test']],
    ];
    for (const [t, recipients] of mail) await s.enqueue(message({ recipients, receivedAt: Date.parse(t) }));
    const since = Date.parse('2026-01-01T22:45:00Z');
    // The last quarter hour is read first (grain 15) though its bucket is last.
    const until = Date.parse('2026-01-03T00:15:00Z');
    const rows = async (q: Partial<ReportQuery>) => (await runReport(s, { ...TWO_DAYS, since, until, split: 'domain', ...q })).rows.map((r) => [r.bucket, r.key, r.counts.queued]);
    expect(await rows({ bucket: 'day' })).toEqual([
      ['2026-01-01T00:00:00+00:00', 'one.test', 2],
      ['2026-01-01T00:00:00+00:00', 'two.test', 2],
      ['2026-01-02T00:00:00+00:00', 'one.test', 2],
      ['2026-01-02T00:00:00+00:00', 'three.test', 1],
      ['2026-01-02T00:00:00+00:00', 'two.test', 1],
      ['2026-01-03T00:00:00+00:00', 'one.test', 1],
    ]);
    // The other row stays last in its bucket, even where it holds more than the kept value.
    expect(await rows({ bucket: 'hour', timeZone: 'Asia/Kathmandu', top: 1 })).toEqual([
      ['2026-01-02T04:00:00+05:45', 'one.test', 1],
      ['2026-01-02T04:00:00+05:45', null, 1],
      ['2026-01-02T05:00:00+05:45', 'one.test', 1],
      ['2026-01-02T05:00:00+05:45', null, 1],
      ['2026-01-02T17:00:00+05:45', 'one.test', 1],
      ['2026-01-02T17:00:00+05:45', null, 2],
      ['2026-01-02T23:00:00+05:45', 'one.test', 1],
      ['2026-01-03T05:00:00+05:45', 'one.test', 1],
    ]);
  } finally {
    await s.close();
  }
});

it('reads each stretch at the coarsest grain: whole UTC days, then hours, then quarter hours at the edges', () => {
  const day = 96; // quarter hours
  const from = 10 * day + 21; // day 10, 05:15
  const to = 13 * day + 10; // day 13, 02:30
  expect(reportPieces({ bucket: 'none', timeZone: 'UTC' }, from, to)).toEqual([
    { grain: 1440, fromSlot: 11, toSlot: 13, bucket: 0 },
    { grain: 60, fromSlot: 10 * 24 + 6, toSlot: 11 * 24, bucket: 0 },
    { grain: 15, fromSlot: from, toSlot: 10 * day + 24, bucket: 0 },
    { grain: 60, fromSlot: 13 * 24, toSlot: 13 * 24 + 2, bucket: 0 },
    { grain: 15, fromSlot: 13 * day + 8, toSlot: to, bucket: 0 },
  ]);
  // Berlin's days (23:00 to 23:00 UTC in winter) hold no UTC day: they are read by the hour.
  const berlin = reportPieces({ bucket: 'day', timeZone: 'Europe/Berlin' }, T0 / 900_000 - 4, T0 / 900_000 + day - 4);
  expect(berlin).toEqual([{ grain: 60, fromSlot: T0 / HOUR - 1, toSlot: T0 / HOUR + 23, bucket: T0 / (24 * HOUR) }]);
});

describe('queries from outside', () => {
  const NOW = Date.UTC(2026, 11, 3, 12, 7, 30);

  it('parses durations, ISO times, fields and the zone; the window is rounded out to quarter hours', async () => {
    const q = parseReportQuery({ since: '7d', split: 'domain', bucket: 'day', tz: 'Europe/Berlin', includeAutomated: 'true' }, NOW);
    expect(q).toEqual({ since: NOW - 7 * 24 * HOUR, until: NOW, split: 'domain', bucket: 'day', timeZone: 'Europe/Berlin', includeAutomated: true, top: DEFAULT_REPORT_TOP });
    expect(parseReportQuery({ since: '2026-11-01', until: '2026-11-02T06:00:00+01:00' }, NOW)).toMatchObject({ since: Date.UTC(2026, 10, 1), until: Date.UTC(2026, 10, 2, 5), split: 'none', bucket: 'none', timeZone: 'UTC', includeAutomated: false });
    expect(parseReportQuery({ since: '7d', top: 'all' }, NOW).top).toBe(0);
    expect(parseReportQuery({ since: '7d', top: '3' }, NOW).top).toBe(3);
    const r = await runReport(store, parseReportQuery({ since: '2026-11-02T00:10:00Z', until: '2026-11-03T23:50:00Z' }));
    expect([r.since, r.until]).toEqual(['2026-11-02T00:00:00.000Z', '2026-11-04T00:00:00.000Z']);
  });

  it.each([
    [{ since: undefined }, /since is required/],
    [{ since: 'yesterday' }, /since must be a duration .* not "yesterday"/],
    [{ since: '7x' }, /since must be/],
    [{ since: '2026-13-45' }, /since must be/],
    [{ until: 'soon' }, /until must be/],
    [{ since: '1h', until: '2h' }, /since must be before until/],
    [{ split: 'recipient' }, /split must be one of none, domain, sender, subject, campaign, custom, not "recipient"/],
    [{ bucket: 'week' }, /bucket must be one of none, hour, day/],
    [{ tz: 'Mars/Olympus_Mons' }, /unknown time zone "Mars\/Olympus_Mons"/],
    [{ includeAutomated: 'yes' }, /includeAutomated must be true or false/],
    [{ since: '400d' }, /at most 366 days/],
    [{ since: '32d', bucket: 'hour' }, /hourly buckets cover at most 31 days/],
    [{ top: '0' }, /top must be a whole number from 1 to 10000, or all, not "0"/],
    [{ top: '10001' }, /top must be/],
    [{ top: 'ten' }, /top must be/],
    [{ top: '-1' }, /top must be/],
  ])('refuses %o with a TypeError naming the field', (bad, message) => {
    const input = { since: '7d', ...bad };
    expect(() => parseReportQuery(input, NOW)).toThrow(TypeError);
    expect(() => parseReportQuery(input, NOW)).toThrow(message);
  });

  it('runReport checks a query made in code too', async () => {
    await expect(runReport(store, { ...TWO_DAYS, split: 'recipient' as never })).rejects.toThrow(/split must be one of/);
    await expect(runReport(store, { ...TWO_DAYS, since: Number.NaN })).rejects.toThrow(/since must be a time/);
  });
});

describe('CSV', () => {
  it('parses back (csv-parse) to the same numbers, with the split value and bucket first', async () => {
    const r = await report({ split: 'domain', bucket: 'day' });
    const csv = reportToCsv(r);
    expect(csv.endsWith('\r\n')).toBe(true);
    const parsed = parse(csv, { columns: true }) as Record<string, string>[];
    expect(parsed).toHaveLength(r.rows.length);
    expect(Object.keys(parsed[0]!).slice(0, 4)).toEqual(['domain', 'bucket_start', 'queued', 'delivered']);
    r.rows.forEach((row, i) => {
      const line = parsed[i]!;
      expect(line.domain).toBe(row.key);
      expect(line.bucket_start).toBe(row.bucket);
      expect([line.queued, line.delivered, line.deferred, line.bounced, line.dropped, line.secured, line.tls13, line.tls12, line.tls_other, line.pgp, line.smime, line.portal, line.plaintext, line.opened, line.clicked, line.unsubscribed].map(Number)).toEqual([
        row.counts.queued, row.counts.delivered, row.counts.deferred, row.counts.bounced, row.counts.dropped, row.counts.secured, row.counts.tls13, row.counts.tls12,
        row.counts.tlsOther, row.counts.pgp, row.counts.smime, row.counts.portal, row.counts.plaintext, row.counts.opened, row.counts.clicked, row.counts.unsubscribed,
      ]);
      expect(line.delivered_pct === '' ? null : Number(line.delivered_pct)).toBe(row.percent.delivered);
      expect(line.click_through_rate_pct === '' ? null : Number(line.click_through_rate_pct)).toBe(row.percent.clickThroughRate);
    });
  });

  it('a hostile subject stays one cell and cannot run as a formula; an empty value is an empty cell', async () => {
    const r = await report({ split: 'subject' });
    const rows = parse(reportToCsv(r), { columns: true }) as Record<string, string>[];
    const hostile = rows.find((row) => row.subject!.includes('HYPERLINK'))!;
    expect(hostile.subject).toBe(`'${HOSTILE}`);
    expect(Number(hostile.queued)).toBe(2);
    expect(rows.find((row) => row.subject === 'Invoice')?.queued).toBe('6');
    for (const start of ['+1', '-1', '@SUM(A1)', '\tx', '\rx']) {
      const csv = reportToCsv({ ...r, rows: [{ ...r.rows[0]!, key: start }] });
      expect((parse(csv, { columns: true }) as Record<string, string>[])[0]!.subject).toBe(`'${start}`);
    }
    const campaign = parse(reportToCsv(await report({ split: 'campaign' })), { columns: true }) as Record<string, string>[];
    expect(campaign.map((row) => row.campaign)).toEqual(['dec', 'nov', '']);
  });
});

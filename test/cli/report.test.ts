// `sealrelay report` as an operator runs it (the built CLI in a child process) on a
// store seeded through the Store API (test/reporting/seed.ts): the table fits 120
// columns and shows the hand-counted figures; CSV parses back to the same numbers;
// JSON is the API's Report, the same as runReport gives in-process; bad --since,
// --until, --split, --bucket, --tz, --format exit 64 with a message and no output.
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_REPORT_TOP, runReport, type Report } from '../../src/reporting/report.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { seedReportStore, HOUR, T0 } from '../reporting/seed.ts';
import { makeSandbox, runCli, type Sandbox } from './harness.ts';

let box: Sandbox;
beforeAll(async () => {
  box = makeSandbox();
  const store = new SqliteStore(box.storePath);
  try {
    await seedReportStore(store);
  } finally {
    await store.close();
  }
});
afterAll(() => box.cleanup());

const WINDOW = ['--since', '2026-11-02T00:00:00Z', '--until', '2026-11-04T00:00:00Z'];
const report = (...args: string[]) => runCli(['-c', box.configFile, 'report', ...args]);

async function inProcess(split: 'domain' | 'subject', bucket: 'day' | 'none', includeAutomated = false): Promise<Report> {
  const store = new SqliteStore(box.storePath);
  try {
    return await runReport(store, { since: T0, until: T0 + 48 * HOUR, split, bucket, timeZone: 'UTC', includeAutomated, top: DEFAULT_REPORT_TOP });
  } finally {
    await store.close();
  }
}

it('prints the three tables within 120 columns, with the counts and the total', async () => {
  const r = await report(...WINDOW, '--split', 'domain', '--bucket', 'day', '--tz', 'UTC');
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const lines = r.stdout.split('\n');
  expect(lines.slice(0, 2)).toEqual(['Report 2026-11-02T00:00:00.000Z to 2026-11-04T00:00:00.000Z', 'split by domain, per day (UTC); opens and clicks by people only']);
  for (const title of ['Delivery (% of queued)', 'Protection (% of delivered)', 'Engagement (unique recipients, % of delivered)']) expect(lines).toContain(title);
  for (const line of lines) expect(line.length).toBeLessThanOrEqual(120);
  const cells = (line: string) => line.trim().split(/\s{2,}/);
  // Delivery: day 1 at big.test, and the whole window.
  expect(lines.map(cells)).toContainEqual(['big.test', '2026-11-02', '4', '2 50.0%', '1 25.0%', '0 0.0%', '1 25.0%']);
  expect(lines.map(cells)).toContainEqual(['TOTAL', '8', '6 75.0%', '1 12.5%', '1 12.5%', '1 12.5%']);
  // Protection and engagement totals.
  expect(lines.map(cells)).toContainEqual(['TOTAL', '83.3%', '16.7%', '16.7%', '0.0%', '16.7%', '16.7%', '16.7%', '16.7%']);
  expect(lines.map(cells)).toContainEqual(['TOTAL', '2 33.3%', '1', '16.7%', '1 16.7%']);
  // The run is in the audit trail: who, what split, which window.
  const store = new SqliteStore(box.storePath);
  try {
    const [entry] = (await store.listAudit({ action: 'report.download', limit: 10 })).slice(-1);
    expect(entry).toMatchObject({ actorKind: 'os-user', target: 'split=domain bucket=day', detail: '2026-11-02T00:00:00.000Z to 2026-11-04T00:00:00.000Z' });
  } finally {
    await store.close();
  }
});

it('cuts a long split value to fit and never prints its control characters', async () => {
  const r = await report(...WINDOW, '--split', 'subject', '--bucket', 'day', '--tz', 'Asia/Kolkata');
  expect(r.code).toBe(0);
  for (const line of r.stdout.split('\n')) expect(line.length).toBeLessThanOrEqual(120);
  expect(r.stdout).toContain('=HYPERLINK(');
  // eslint-disable-next-line no-control-regex -- looking for control characters is the point
  expect(r.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
  expect(r.stdout).toContain('per day (Asia/Kolkata)');
});

it('--format csv parses back (csv-parse) to the same numbers as the report in-process', async () => {
  const r = await report(...WINDOW, '--split', 'domain', '--bucket', 'day', '--tz', 'UTC', '--format', 'csv');
  expect(r.code).toBe(0);
  const rows = parse(r.stdout, { columns: true }) as Record<string, string>[];
  const expected = await inProcess('domain', 'day');
  expect(rows.map((row) => [row.domain, row.bucket_start, Number(row.queued), Number(row.delivered), Number(row.secured), Number(row.opened), row.delivered_pct])).toEqual(
    expected.rows.map((row) => [row.key, row.bucket, row.counts.queued, row.counts.delivered, row.counts.secured, row.counts.opened, String(row.percent.delivered)]),
  );
  expect(rows.reduce((sum, row) => sum + Number(row.queued), 0)).toBe(8);
});

it('--format json is the Report runReport gives; --include-automated counts the scanner\'s click', async () => {
  const r = await report(...WINDOW, '--split', 'subject', '--tz', 'UTC', '--format', 'json');
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual(await inProcess('subject', 'none'));
  const all = await report(...WINDOW, '--format', 'json', '--tz', 'UTC', '--include-automated');
  expect((JSON.parse(all.stdout) as Report).total.counts.clicked).toBe(2);
});

it.each([
  [['--since', 'yesterday'], /since must be a duration/],
  [['--since', '7d', '--until', 'later'], /until must be/],
  [['--since', '7d', '--split', 'recipient'], /split must be one of none, domain, sender, subject, campaign, custom/],
  [['--since', '7d', '--bucket', 'week'], /bucket must be one of none, hour, day/],
  [['--since', '7d', '--tz', 'Mars/Olympus_Mons'], /unknown time zone "Mars\/Olympus_Mons"/],
  [['--since', '40d', '--bucket', 'hour'], /hourly buckets cover at most 31 days/],
  [['--since', '7d', '--format', 'xml'], /Allowed choices are table, csv, json/],
  [[], /required option '--since <when>'/],
])('exits 64 on %j with a message and prints nothing', async (args, message) => {
  const r = await report(...args);
  expect(r.code).toBe(64);
  expect(r.stderr).toMatch(message);
  expect(r.stdout).toBe('');
});

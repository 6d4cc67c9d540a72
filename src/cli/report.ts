// `sealrelay report`: the split report of reporting/report.ts over a window, as
// a table for people, CSV for spreadsheets or JSON (the API's shape) for tools:
//
//   sealrelay report --since 7d --split domain --bucket day --tz Europe/Berlin
//   sealrelay report --since 2026-11-01 --until 2026-12-01 --split campaign --format csv > november.csv
//
// The table comes in three parts so that it fits 120 columns: delivery (counts and
// % of queued), protection (% of delivered by method) and engagement; each ends
// with the total. CSV and JSON have every count and percentage. The CLI opens the
// store file on its own connection: in WAL mode a reader never holds up the
// relay's commits. Bad --since, --until, --split, --bucket or --tz exit 64.
import { Option, type Command } from 'commander';
import { reportToCsv } from '../reporting/csv.ts';
import { DEFAULT_REPORT_TOP, parseReportQuery, REPORT_BUCKETS, REPORT_SPLITS, runReport, type Report, type ReportFigures, type ReportQuery } from '../reporting/report.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { auditCommand } from './operator.ts';
import { columnWidths, renderTable, truncate, type Column } from './table.ts';

const FORMATS = ['table', 'csv', 'json'] as const;
type Format = (typeof FORMATS)[number];
/** The table never grows wider than this; the split value is cut to fit. */
const TABLE_WIDTH = 120;
/** A split value is never cut shorter than this. */
const MIN_KEY_WIDTH = 12;
const GAP = 2;

interface ReportOptions {
  since: string;
  until?: string;
  split: string;
  bucket: string;
  tz: string;
  format: Format;
  includeAutomated?: boolean;
  top?: string;
}

export function registerReport(program: Command, context: () => CliContext): void {
  program
    .command('report')
    .description('counts and percentages of queued, delivered, deferred, bounced, dropped, secured (by method), opened, clicked and unsubscribed recipients, split and bucketed')
    .requiredOption('--since <when>', 'start: duration back from now (30m, 12h, 7d, 2w) or ISO 8601 time')
    .option('--until <when>', 'end (exclusive), like --since; default now')
    .option('--split <field>', `one row per value of: ${REPORT_SPLITS.join(', ')}`, 'none')
    .option('--bucket <size>', `time buckets: ${REPORT_BUCKETS.join(', ')}`, 'none')
    .option('--tz <zone>', 'IANA time zone of the buckets (default: this machine\'s)', Intl.DateTimeFormat().resolvedOptions().timeZone)
    .addOption(new Option('--format <format>', 'output format').choices(FORMATS).default('table'))
    .option('--include-automated', 'count opens, clicks and unsubscribes made by machines (image proxies, link scanners) too')
    .option('--top <n>', `with --split and --bucket: the n values with the most queued shown one by one, the rest summed as "(other)"; all: every value (default ${DEFAULT_REPORT_TOP})`)
    .action(async (opts: ReportOptions) => {
      const query = toQuery(opts);
      const config = readConfig(context());
      const report = await withStore(config, async (store) => {
        // Reports name domains, senders and subjects: each one run is in the audit trail.
        await auditCommand(store, 'report.download', `split=${query.split} bucket=${query.bucket}`, `${new Date(query.since).toISOString()} to ${new Date(query.until).toISOString()}`);
        return runReport(store, query);
      });
      if (opts.format === 'json') console.log(JSON.stringify(report, null, 2));
      else if (opts.format === 'csv') process.stdout.write(reportToCsv(report));
      else console.log(reportTables(report));
    });
}

function toQuery(opts: ReportOptions): ReportQuery {
  try {
    return parseReportQuery({ since: opts.since, until: opts.until, split: opts.split, bucket: opts.bucket, tz: opts.tz, includeAutomated: opts.includeAutomated === true, ...(opts.top === undefined ? {} : { top: opts.top }) });
  } catch (err) {
    if (err instanceof TypeError) throw new CliError(EXIT.USAGE, err.message.replace(/^report: /, ''));
    throw err;
  }
}

const count = (n: number): string => String(n);
const pct = (p: number | null): string => (p === null ? '-' : `${p.toFixed(1)}%`);
/** "12 75.0%"; the count alone where there is no percentage (nothing to take it of). */
const countPct = (n: number, p: number | null): string => (p === null ? String(n) : `${n} ${pct(p)}`);

/** One part of the table: its title and, per row of figures, its cells. */
interface Part {
  readonly title: string;
  readonly columns: readonly Column[];
  cells(f: ReportFigures): string[];
}

const PARTS: readonly Part[] = [
  {
    title: 'Delivery (% of queued)',
    columns: [{ header: 'QUEUED' }, { header: 'DELIVERED' }, { header: 'DEFERRED' }, { header: 'BOUNCED' }, { header: 'DROPPED' }],
    cells: ({ counts: c, percent: p }) => [count(c.queued), countPct(c.delivered, p.delivered), countPct(c.deferred, p.deferred), countPct(c.bounced, p.bounced), countPct(c.dropped, p.dropped)],
  },
  {
    title: 'Protection (% of delivered)',
    columns: [{ header: 'SECURED' }, { header: 'TLS1.3' }, { header: 'TLS1.2' }, { header: 'TLS-OTHER' }, { header: 'PGP' }, { header: 'S/MIME' }, { header: 'PORTAL' }, { header: 'PLAINTEXT' }],
    cells: ({ percent: p }) => [p.secured, p.tls13, p.tls12, p.tlsOther, p.pgp, p.smime, p.portal, p.plaintext].map(pct),
  },
  {
    title: 'Engagement (unique recipients, % of delivered)',
    columns: [{ header: 'OPENED' }, { header: 'CLICKED' }, { header: 'CTR' }, { header: 'UNSUBSCRIBED' }],
    cells: ({ counts: c, percent: p }) => [countPct(c.opened, p.opened), count(c.clicked), pct(p.clickThroughRate), countPct(c.unsubscribed, p.unsubscribed)],
  },
];

/** A split value on one line; other control characters (a hostile subject's) would drive the terminal: shown as "?". */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const printable = (text: string): string => text.replace(/\s+/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');

/** The report as the three tables, after a line saying what it covers. */
export function reportTables(report: Report): string {
  const automated = report.includeAutomated ? 'machine-made opens and clicks included' : 'opens and clicks by people only';
  const split = report.split === 'none' ? 'no split' : `split by ${report.split}`;
  const bucket = report.bucket === 'none' ? '' : `, per ${report.bucket} (${report.timeZone})`;
  const head = `Report ${report.since} to ${report.until}\n${split}${bucket}; ${automated}`;
  if (!report.rows.length) return `${head}\n\nno events in this window`;
  return [head, ...PARTS.map((part) => `\n${part.title}\n${partTable(report, part)}`)].join('\n');
}

function partTable(report: Report, part: Part): string {
  const lead: Column[] = [
    ...(report.split === 'none' ? [] : [{ header: report.split.toUpperCase() }]),
    ...(report.bucket === 'none' ? [] : [{ header: report.bucket.toUpperCase() }]),
  ];
  const columns: Column[] = [...lead, ...part.columns.map((c) => ({ ...c, align: 'right' as const }))];
  const leadCells = (key: string | null, bucket: string | null, other: boolean): string[] => [
    ...(report.split === 'none' ? [] : [other ? '(other)' : key === null ? '(none)' : printable(key)]),
    ...(report.bucket === 'none' ? [] : [bucket === null ? '' : bucketLabel(report, bucket)]),
  ];
  let rows = report.rows.map((r) => [...leadCells(r.key, r.bucket, r.other === true), ...part.cells(r)]);
  const total = [...lead.map((_, i) => (i === 0 ? 'TOTAL' : '')), ...part.cells(report.total)];
  if (report.split !== 'none') {
    // Cut the split value so that the table fits.
    const widths = columnWidths(columns, [...rows, total]);
    const others = widths.slice(1).reduce((a, b) => a + b, 0) + GAP * (columns.length - 1);
    const keyWidth = Math.max(MIN_KEY_WIDTH, TABLE_WIDTH - others);
    rows = rows.map(([key, ...rest]) => [truncate(key ?? '', keyWidth), ...rest]);
  }
  const widths = columnWidths(columns, [...rows, total]);
  const rule = widths.map((w) => '-'.repeat(w)).join(' '.repeat(GAP));
  return `${renderTable(columns, rows, { widths })}\n${rule}\n${renderTable(columns, [total], { header: false, widths })}`;
}

/** "2026-03-08" for a day, "2026-11-01 01:00-04:00" for an hour (the offset tells a repeated hour apart). */
function bucketLabel(report: Report, start: string): string {
  return report.bucket === 'day' ? start.slice(0, 10) : `${start.slice(0, 10)} ${start.slice(11, 16)}${start.slice(19)}`;
}

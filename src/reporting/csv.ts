// A Report as CSV (RFC 4180, CRLF), for spreadsheets: one line per row of the
// report, the split value and bucket first when there are any, then every count
// and every percentage (empty where there is none). The total is not a line of
// its own — the counts add up (report.ts) — so every line is a row of the data.
//
// The split values come from outside (subjects, campaigns, custom headers,
// senders) and are hostile: csv-stringify quotes them, and a cell a spreadsheet
// would take for a formula (one beginning with = + - @, a tab or a CR) gets a
// leading apostrophe, as OWASP's "CSV injection" advice says.
import { stringify } from 'csv-stringify/sync';
import { COUNT_NAMES, type ReportCounts } from './counts.ts';
import type { Report, ReportPercent } from './report.ts';

const COUNT_HEADERS: Readonly<Record<keyof ReportCounts, string>> = {
  queued: 'queued',
  delivered: 'delivered',
  deferred: 'deferred',
  bounced: 'bounced',
  dropped: 'dropped',
  secured: 'secured',
  tls13: 'tls13',
  tls12: 'tls12',
  tlsOther: 'tls_other',
  pgp: 'pgp',
  smime: 'smime',
  portal: 'portal',
  plaintext: 'plaintext',
  opened: 'opened',
  clicked: 'clicked',
  unsubscribed: 'unsubscribed',
};

const PERCENT_HEADERS: Readonly<Record<keyof ReportPercent, string>> = {
  delivered: 'delivered_pct',
  deferred: 'deferred_pct',
  bounced: 'bounced_pct',
  dropped: 'dropped_pct',
  secured: 'secured_pct',
  tls13: 'tls13_pct',
  tls12: 'tls12_pct',
  tlsOther: 'tls_other_pct',
  pgp: 'pgp_pct',
  smime: 'smime_pct',
  portal: 'portal_pct',
  plaintext: 'plaintext_pct',
  opened: 'opened_pct',
  unsubscribed: 'unsubscribed_pct',
  clickThroughRate: 'click_through_rate_pct',
};
const PERCENT_NAMES = Object.keys(PERCENT_HEADERS) as (keyof ReportPercent)[];

const FORMULA_START = /^[=+\-@\t\r]/;

/** A text cell a spreadsheet will show as text, never run as a formula. */
export function neutraliseCell(text: string): string {
  return FORMULA_START.test(text) ? `'${text}` : text;
}

export function reportToCsv(report: Report): string {
  const header = [
    ...(report.split === 'none' ? [] : [report.split]),
    ...(report.bucket === 'none' ? [] : ['bucket_start']),
    ...COUNT_NAMES.map((n) => COUNT_HEADERS[n]),
    ...PERCENT_NAMES.map((n) => PERCENT_HEADERS[n]),
  ];
  const lines = report.rows.map((row) => [
    ...(report.split === 'none' ? [] : [row.other ? '(other)' : neutraliseCell(row.key ?? '')]),
    ...(report.bucket === 'none' ? [] : [row.bucket ?? '']),
    ...COUNT_NAMES.map((n) => String(row.counts[n])),
    ...PERCENT_NAMES.map((n) => (row.percent[n] === null ? '' : String(row.percent[n]))),
  ]);
  return stringify([header, ...lines], { record_delimiter: 'windows' });
}

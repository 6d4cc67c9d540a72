// GET /api/v1/reports: the split report `sealrelay report` prints (reporting/report.ts),
// as JSON or — for a compliance officer's spreadsheet — CSV (reporting/csv.ts, cells
// that a spreadsheet would run as formulas neutralised). Read scope: reports name
// domains, senders and subjects. Each download is in the audit trail as an API request.
import type { FastifyInstance } from 'fastify';
import { COUNT_NAMES } from '../../reporting/counts.ts';
import { reportToCsv } from '../../reporting/csv.ts';
import { DEFAULT_REPORT_TOP, parseReportQuery, REPORT_BUCKETS, REPORT_SPLITS, runReport, type ReportQueryInput } from '../../reporting/report.ts';
import type { ApiContext } from './context.ts';
import { ApiError } from './errors.ts';
import { errorResponses } from './schemas.ts';

const PERCENT_NAMES = ['delivered', 'deferred', 'bounced', 'dropped', 'secured', 'tls13', 'tls12', 'tlsOther', 'pgp', 'smime', 'portal', 'plaintext', 'opened', 'unsubscribed', 'clickThroughRate'] as const;

const reportQuery = {
  type: 'object',
  additionalProperties: false,
  required: ['since'],
  properties: {
    since: { type: 'string', minLength: 1, maxLength: 40, description: 'A duration back from now (30m, 12h, 7d, 2w) or an ISO 8601 time.' },
    until: { type: 'string', minLength: 1, maxLength: 40, description: 'Likewise; absent: now.' },
    split: { type: 'string', enum: [...REPORT_SPLITS], default: 'none' },
    bucket: { type: 'string', enum: [...REPORT_BUCKETS], default: 'none' },
    tz: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_+/-]+$', default: 'UTC', description: 'IANA time zone the buckets follow.' },
    include_automated: { type: 'boolean', default: false, description: 'Count opens, clicks and unsubscribes made by machines too.' },
    top: { type: 'string', pattern: '^(all|[0-9]{1,6})$', description: `With a split and buckets: the values with the most queued shown one by one, the rest summed per bucket into a row with other: true; all: every value. Default ${DEFAULT_REPORT_TOP}.` },
    format: { type: 'string', enum: ['json', 'csv'], default: 'json' },
  },
} as const;

const figures = {
  type: 'object',
  additionalProperties: false,
  required: ['counts', 'percent'],
  properties: {
    counts: { type: 'object', additionalProperties: false, required: [...COUNT_NAMES], properties: Object.fromEntries(COUNT_NAMES.map((n) => [n, { type: 'integer' }])) },
    percent: { type: 'object', additionalProperties: false, required: [...PERCENT_NAMES], properties: Object.fromEntries(PERCENT_NAMES.map((n) => [n, { type: 'number', nullable: true }])) },
  },
} as const;

const reportSchema = {
  description: 'Counts and percentages per split value and bucket (docs/reports.md says how each is counted). With format=csv: text/csv.',
  type: 'object',
  additionalProperties: false,
  required: ['since', 'until', 'split', 'bucket', 'timeZone', 'includeAutomated', 'top', 'rows', 'total'],
  properties: {
    since: { type: 'string' },
    until: { type: 'string' },
    split: { type: 'string', enum: [...REPORT_SPLITS] },
    bucket: { type: 'string', enum: [...REPORT_BUCKETS] },
    timeZone: { type: 'string' },
    includeAutomated: { type: 'boolean' },
    top: { type: 'integer', description: 'Split values shown one by one; 0: all.' },
    rows: {
      type: 'array',
      items: { type: 'object', additionalProperties: false, required: ['key', 'bucket', ...figures.required], properties: { key: { type: 'string', nullable: true }, bucket: { type: 'string', nullable: true }, other: { type: 'boolean', description: 'The values beyond the top ones, summed (key null).' }, ...figures.properties } },
    },
    total: figures,
  },
} as const;

/** The query parameter a parse error is about (report.ts says "report: <field> …"): the window's length is since's, hourly limits bucket's, an unknown zone tz's. */
function fieldOf(message: string): string {
  const word = /^report: (\w+)/.exec(message)?.[1] ?? '';
  const named: Readonly<Record<string, string>> = { since: 'since', until: 'until', split: 'split', bucket: 'bucket', timeZone: 'tz', includeAutomated: 'include_automated', hourly: 'bucket', unknown: 'tz', top: 'top' };
  return named[word] ?? 'since';
}

interface ReportQueryString {
  since: string;
  until?: string;
  split: string;
  bucket: string;
  tz: string;
  include_automated: boolean;
  top?: string;
  format: 'json' | 'csv';
}

export function registerReports(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: ReportQueryString }>(
    '/reports',
    {
      config: { apiScope: 'read' },
      schema: { summary: 'A split report: counts and percentages by domain, sender, subject, campaign or custom field, bucketed by hour or day', tags: ['reports'], querystring: reportQuery, response: { 200: reportSchema, ...errorResponses([400, 401, 403, 429]) } },
    },
    async (request, reply) => {
      const q = request.query;
      const input: ReportQueryInput = { since: q.since, ...(q.until ? { until: q.until } : {}), split: q.split, bucket: q.bucket, tz: q.tz, includeAutomated: q.include_automated, ...(q.top ? { top: q.top } : {}) };
      let query;
      try {
        query = parseReportQuery(input, ctx.now());
      } catch (err) {
        if (!(err instanceof TypeError)) throw err;
        throw new ApiError(400, 'invalid_request', err.message.replace(/^report: /, ''), fieldOf(err.message));
      }
      const report = await runReport(ctx.store, query);
      if (q.format === 'csv') {
        const name = `sealrelay-report-${query.split}-${report.since.slice(0, 10)}.csv`;
        return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${name}"`).send(reportToCsv(report));
      }
      return report;
    },
  );
}

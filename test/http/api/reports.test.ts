// GET /api/v1/reports: the same report as `sealrelay report` (reporting/report.ts),
// as JSON or as CSV a spreadsheet opens with the same numbers (and a hostile subject
// as one harmless cell); read scope; bad parameters a 400 naming the parameter.
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_REPORT_TOP, runReport } from '../../../src/reporting/report.ts';
import { HOSTILE, HOUR, seedReportStore, T0 } from '../../reporting/seed.ts';
import { startApi, type ApiHarness } from './api-harness.ts';

let api: ApiHarness;
let reader: string;
const WINDOW = `since=${new Date(T0).toISOString()}&until=${new Date(T0 + 48 * HOUR).toISOString()}`;

beforeAll(async () => {
  api = await startApi();
  await seedReportStore(api.store);
  reader = await api.token('compliance', ['read']);
});
afterAll(() => api?.close());

describe('GET /api/v1/reports', () => {
  it('JSON: the report runReport makes, split by domain and bucketed by day in the caller’s zone', async () => {
    const res = await api.request('GET', `/api/v1/reports?${WINDOW}&split=domain&bucket=day&tz=America/New_York`, { token: reader });
    expect(res.statusCode).toBe(200);
    const expected = await runReport(api.store, { since: T0, until: T0 + 48 * HOUR, split: 'domain', bucket: 'day', timeZone: 'America/New_York', includeAutomated: false, top: DEFAULT_REPORT_TOP });
    expect(res.json()).toEqual(JSON.parse(JSON.stringify(expected)));
    expect(res.json().total.counts).toMatchObject({ queued: 8, delivered: 6, bounced: 1, dropped: 1, secured: 5 });
    // 1 November 2026 is the day New York leaves daylight time: its day starts at -04:00, the next ones at -05:00.
    expect([...new Set((res.json().rows as { bucket: string }[]).map((r) => r.bucket))]).toEqual(['2026-11-01T00:00:00-04:00', '2026-11-02T00:00:00-05:00', '2026-11-03T00:00:00-05:00']);
  });

  it('CSV: an attachment whose cells parse back to the JSON figures; a subject that is a formula is one neutralised cell', async () => {
    const json = (await api.request('GET', `/api/v1/reports?${WINDOW}&split=subject`, { token: reader })).json();
    const res = await api.request('GET', `/api/v1/reports?${WINDOW}&split=subject&format=csv`, { token: reader });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="sealrelay-report-subject-2026-11-02\.csv"$/);
    const rows = parse(res.body, { columns: true }) as Record<string, string>[];
    const bySubject = new Map(rows.map((r) => [r.subject, r]));
    const hostile = [...bySubject.keys()].find((k) => k?.includes('HYPERLINK'))!;
    expect(hostile).toBe(`'${HOSTILE}`);
    for (const row of json.rows as { key: string; counts: Record<string, number> }[]) {
      const cells = bySubject.get(row.key === HOSTILE ? hostile : row.key)!;
      expect(Number(cells.queued)).toBe(row.counts.queued);
      expect(Number(cells.delivered)).toBe(row.counts.delivered);
      expect(Number(cells.secured)).toBe(row.counts.secured);
    }
  });

  it('bad parameters are a 400 naming the parameter, and nothing is read', async () => {
    const cases: [string, string][] = [
      ['', 'since'],
      ['since=yesterday', 'since'],
      [`${WINDOW}&split=patient`, 'split'],
      [`${WINDOW}&bucket=week`, 'bucket'],
      [`${WINDOW}&tz=Mars/Olympus`, 'tz'],
      [`${WINDOW}&tz=${encodeURIComponent('<script>')}`, 'tz'],
      ['since=60d&bucket=hour', 'bucket'],
      [`since=${new Date(T0 + HOUR).toISOString()}&until=${new Date(T0).toISOString()}`, 'since'],
      [`${WINDOW}&format=xlsx`, 'format'],
      [`${WINDOW}&limit=5`, 'limit'],
    ];
    for (const [query, field] of cases) {
      const res = await api.request('GET', `/api/v1/reports?${query}`, { token: reader });
      expect(res.statusCode, query).toBe(400);
      expect(res.json(), query).toMatchObject({ field });
      expect(res.body).not.toContain('<script>');
    }
  });

  it('needs a token with the read scope', async () => {
    const sender = await api.token('app', ['send', 'metrics']);
    expect((await api.request('GET', `/api/v1/reports?${WINDOW}`)).statusCode).toBe(401);
    expect((await api.request('GET', `/api/v1/reports?${WINDOW}`, { token: sender })).statusCode).toBe(403);
  });
});

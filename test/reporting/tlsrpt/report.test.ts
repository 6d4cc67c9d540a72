// The RFC 8460 report of a day of sessions seeded as real DeliveryRecords in a real
// SQLite store: valid against the RFC's schema (test/fixtures/tlsrpt-report.schema.json,
// §4.4), and counting sessions, not recipients.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema, type Config } from '../../../src/config/schema.ts';
import { reportFor } from '../../../src/reporting/tlsrpt/job.ts';
import { buildTlsReport, dayRange, reportFileName, type TlsReport } from '../../../src/reporting/tlsrpt/report.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { validateReport } from './schema.ts';
import { DAY, dayRecords, seedTlsDay, STS_POLICY, T0, TLSA_RECORD } from './seed.ts';


const config: Config = configSchema.parse({
  ingress: { listeners: {} },
  server: { hostname: 'relay.clinic.test' },
  tlsrpt: { organization_name: 'Clinic Ltd', contact_info: 'tls-reports@clinic.test' },
});

let store: SqliteStore;
beforeAll(async () => {
  store = new SqliteStore(join(mkdtempSync(join(tmpdir(), 'sealrelay-tlsrpt-')), 'store.db'));
  await seedTlsDay(store);
});
afterAll(() => store.close());

const policyOf = (report: TlsReport, type: string) => report.policies.filter((p) => p.policy['policy-type'] === type);

describe('TLS report of a day (RFC 8460 §4)', () => {
  it('validates against the RFC schema and names the day, reporter and report id', async () => {
    const report = (await reportFor(store, config, 'sts.test', DAY))!;
    expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
    expect(report['organization-name']).toBe('Clinic Ltd');
    expect(report['contact-info']).toBe('tls-reports@clinic.test');
    expect(report['date-range']).toEqual({ 'start-datetime': '2026-11-02T00:00:00Z', 'end-datetime': '2026-11-02T23:59:59Z' });
    expect(report['report-id']).toBe('2026-11-02_sts.test@relay.clinic.test');
  });

  it('MTA-STS: the cached policy, sessions counted once each, failures by result type', async () => {
    const report = (await reportFor(store, config, 'sts.test', DAY))!;
    expect(report.policies).toHaveLength(1);
    const [sts] = policyOf(report, 'sts');
    expect(sts!.policy).toEqual({
      'policy-type': 'sts',
      'policy-string': ['version: STSv1', 'mode: enforce', 'mx: mx1.sts.test', 'mx: *.backup.sts.test', 'max_age: 86400'],
      'policy-domain': 'sts.test',
      'mx-host': ['mx1.sts.test', '*.backup.sts.test'],
    });
    // Q1 (3 recipients, one session) and Q2; Q5 lies outside the day.
    expect(sts!.summary).toEqual({ 'total-successful-session-count': 2, 'total-failure-session-count': 3 });
    const details = [...sts!['failure-details']!].sort((a, b) => a['result-type'].localeCompare(b['result-type']));
    expect(details.map((d) => [d['result-type'], d['receiving-mx-hostname'], d['receiving-ip'], d['failed-session-count']])).toEqual([
      // Q3 attempt 1: two recipients in one session.
      ['certificate-expired', 'mx1.sts.test', '192.0.2.1', 1],
      ['starttls-not-supported', 'mx2.backup.sts.test', '192.0.2.2', 1],
      // Q4: stopped before connecting, no host to name.
      ['validation-failure', undefined, undefined, 1],
    ]);
    expect(details[0]!['failure-reason-code']).toMatch(/CERT_HAS_EXPIRED/);
  });

  it('no policy: opportunistic TLS with any certificate succeeds, no STARTTLS fails, a refused connection is no session', async () => {
    const report = (await reportFor(store, config, 'plain.test', DAY))!;
    expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
    expect(report.policies).toEqual([
      {
        policy: { 'policy-type': 'no-policy-found', 'policy-domain': 'plain.test' },
        summary: { 'total-successful-session-count': 1, 'total-failure-session-count': 1 },
        'failure-details': [
          { 'result-type': 'starttls-not-supported', 'receiving-mx-hostname': 'mx.plain.test', 'receiving-ip': '192.0.2.3', 'failed-session-count': 1, 'failure-reason-code': 'mx.plain.test did not offer STARTTLS' },
        ],
      },
    ]);
    // The 550 for j@plain.test named the recipient: never copied into the report.
    expect(JSON.stringify(report)).not.toContain('j@plain.test');
  });

  it('DANE: policy tlsa with the TLSA set of the MX, a mismatch is a validation failure', async () => {
    const report = (await reportFor(store, config, 'dane.test', DAY))!;
    expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
    const [tlsa] = policyOf(report, 'tlsa');
    expect(tlsa!.policy).toEqual({ 'policy-type': 'tlsa', 'policy-string': [TLSA_RECORD], 'policy-domain': 'dane.test', 'mx-host': ['mx.dane.test'] });
    expect(tlsa!.summary).toEqual({ 'total-successful-session-count': 1, 'total-failure-session-count': 1 });
    expect(tlsa!['failure-details']!.map((d) => d['result-type'])).toEqual(['validation-failure']);
  });

  it('DANE failures before any TLS: a bogus TLSA answer (policy tlsa), dane-only without DANE (dane-required)', async () => {
    const report = (await reportFor(store, config, 'dnssec.test', DAY))!;
    expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
    expect(report.policies.map((p) => [p.policy['policy-type'], p.summary['total-failure-session-count'], p['failure-details']!.map((d) => [d['result-type'], d['receiving-mx-hostname']])])).toEqual([
      ['no-policy-found', 1, [['dane-required', 'mx.dnssec.test']]],
      ['tlsa', 1, [['dnssec-invalid', 'mx.dnssec.test']]],
    ]);
  });

  it('a domain without sessions that day has no report; the store lists the day\'s domains', async () => {
    expect(await reportFor(store, config, 'sts.test', '2026-11-04')).toBeNull();
    const { start, end } = dayRange(DAY);
    expect(await store.recordDomains(start, end)).toEqual(['dane.test', 'dnssec.test', 'plain.test', 'sts.test']);
    expect(await store.recordDomains(start - 2 * 3600_000, start)).toEqual(['sts.test']);
  });

  it('built from any records, a report takes only its domain\'s on its day', async () => {
    const reporter = { organizationName: 'Clinic Ltd', contactInfo: 'tls-reports@clinic.test', submitter: 'relay.clinic.test' };
    const fromAll = buildTlsReport({ domain: 'sts.test', day: DAY, records: dayRecords(), reporter, sts: STS_POLICY });
    expect(fromAll).toEqual(await reportFor(store, config, 'sts.test', DAY));
  });

  it('the schema refuses what the RFC does not allow', () => {
    const bad = { 'organization-name': 'x', 'date-range': { 'start-datetime': 'yesterday', 'end-datetime': '2026-11-02T23:59:59Z' }, 'contact-info': 'x', 'report-id': 'x', policies: [] };
    expect(validateReport(bad)).toBe(false);
    expect(validateReport({ ...bad, 'date-range': { 'start-datetime': '2026-11-02T00:00:00Z', 'end-datetime': '2026-11-02T23:59:59Z' } })).toBe(true);
  });

  it('§5.3 file name and UTC days', () => {
    expect(reportFileName('relay.clinic.test', 'sts.test', DAY)).toBe(`relay.clinic.test!sts.test!${T0 / 1000}!${T0 / 1000 + 86399}.json.gz`);
    expect(() => dayRange('2026-02-30')).toThrow(RangeError);
    expect(() => dayRange('2026-1-2')).toThrow(RangeError);
  });
});

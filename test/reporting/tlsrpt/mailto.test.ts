// The whole relay: yesterday's sessions are in its store when it starts; its daily job
// makes the report for the domain that asks for one by `mailto:` and queues it; the
// relay delivers it like any mail to a real SMTP server (the rua domain's MX), DKIM-
// signed for the submitter's domain. The attachment is the report, gzipped (§5.3).
import dns from 'node:dns';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { simpleParser } from 'mailparser';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { dkimKeygen } from '../../../src/crypto/dkim.ts';
import { reportFor } from '../../../src/reporting/tlsrpt/job.ts';
import { dayRange, previousDay } from '../../../src/reporting/tlsrpt/report.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { startDnsStub, type DnsStub } from '../../helpers/dns-stub.ts';
import { startMxSet, type MxSet } from '../../helpers/mx.ts';
import { startTestRelay, testConfig, type TestRelay } from '../../helpers/relay.ts';
import { validateReport } from './schema.ts';
import { seedTlsDay } from './seed.ts';

let dnsStub: DnsStub;
let mxs: MxSet;
let relay: TestRelay;
const day = previousDay(Date.now());

beforeAll(async () => {
  const work = mkdtempSync(join(tmpdir(), 'sealrelay-tlsrpt-mailto-'));
  mxs = await startMxSet([{ kind: 'tls13', name: 'mx.reports.test' }]);
  dnsStub = await startDnsStub({
    '_smtp._tls.sts.test': { TXT: ['v=TLSRPTv1; rua=mailto:tlsrpt@reports.test'] },
    // plain.test and dane.test publish nothing: no report for them.
  });
  const dkim = dkimKeygen('clinic.test', { selector: 'sealrelay', type: 'rsa' });
  dnsStub.set(dkim.dnsName, 'TXT', [dkim.dnsTxt]);
  const dkimFile = join(work, 'dkim.key');
  writeFileSync(dkimFile, dkim.privateKeyPem, { mode: 0o600 });
  const config = testConfig({
    delivery: { dns: { servers: [dnsStub.server] }, routes: { 'reports.test': `${mxs.mxs[0]!.host}:${mxs.port}` } },
    dkim: { domains: { 'clinic.test': { selector: 'sealrelay', key_file: dkimFile } } },
    tlsrpt: { enabled: true, jitter_minutes: 0, submitter: 'clinic.test', organization_name: 'Clinic Ltd' },
  });
  const seeding = new SqliteStore(config.store.path);
  await seedTlsDay(seeding, dayRange(day).start);
  await seeding.close();
  relay = await startTestRelay(config);
}, 60_000);

afterAll(async () => {
  await relay?.close();
  await mxs?.close();
  await dnsStub?.close();
});

it('the relay mails yesterday\'s report as multipart/report; report-type="tlsrpt", DKIM-signed, gzip attachment = the report', async () => {
  const [mail] = await mxs.mxs[0]!.waitFor(1, 20_000);
  expect(mail!.envelope).toMatchObject({ from: 'noreply-tlsrpt@clinic.test', to: ['tlsrpt@reports.test'] });
  const raw = mail!.raw.toString('latin1');
  const parsed = await simpleParser(mail!.raw);
  expect(parsed.headers.get('tls-report-domain')).toBe('sts.test');
  expect(parsed.headers.get('tls-report-submitter')).toBe('clinic.test');
  expect(parsed.subject).toBe(`Report Domain: sts.test Submitter: clinic.test Report-ID: <${day}_sts.test@clinic.test>`);
  expect(raw).toMatch(/^Content-Type: multipart\/report; report-type="?tlsrpt"?;?/im);
  expect(parsed.attachments).toHaveLength(1);
  const [attachment] = parsed.attachments;
  const { start, end } = dayRange(day);
  expect(attachment!.contentType).toBe('application/tlsrpt+gzip');
  expect(attachment!.filename).toBe(`clinic.test!sts.test!${start / 1000}!${end / 1000 - 1}.json.gz`);
  const report = JSON.parse(gunzipSync(attachment!.content).toString('utf8')) as unknown;
  expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
  const reader = new SqliteStore(relay.config.store.path);
  try {
    expect(report).toEqual(await reportFor(reader, relay.config, 'sts.test', day));
    expect(await reader.listTlsReports()).toMatchObject([{ domain: 'sts.test', day, destination: 'mailto:tlsrpt@reports.test', status: 'sent', attempts: 1 }]);
  } finally {
    await reader.close();
  }

  const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([dnsStub.server]);
  const dkim = await dkimVerify(Buffer.from(raw, 'latin1'), { resolver: (name: string, rrtype: string) => resolver.resolve(name, rrtype) as Promise<string[][]> });
  expect(dkim.results.map((r: { status: { result: string } }) => r.status.result)).toContain('pass');
  // The report itself went through delivery like any mail: recorded.
  const records = await relay.waitForRecords((all) => all.some((r) => r.recipient === 'tlsrpt@reports.test' && r.outcome === 'delivered'));
  expect(records.filter((r) => r.domain === 'reports.test')).toHaveLength(1);
  // Only the domain that asked got a report.
  expect(mxs.mxs[0]!.received).toHaveLength(1);
}, 30_000);

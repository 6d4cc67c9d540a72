// `sealrelay tlsrpt preview|status` as an operator runs them: a real child process on
// a store seeded with a day of sessions, the domain's TLSRPT record in the DNS stub.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { reportFor } from '../../src/reporting/tlsrpt/job.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { validateReport } from '../reporting/tlsrpt/schema.ts';
import { DAY, seedTlsDay } from '../reporting/tlsrpt/seed.ts';
import { makeSandbox, runCli, type Sandbox } from './harness.ts';

let dns: DnsStub;
let sandbox: Sandbox;
beforeAll(async () => {
  dns = await startDnsStub({ '_smtp._tls.sts.test': { TXT: ['v=TLSRPTv1; rua=mailto:tlsrpt@reports.test, https://reports.test/r'] } });
  sandbox = makeSandbox(['delivery:', '  dns:', `    servers: ["${dns.server}"]`, 'tlsrpt:', '  submitter: clinic.test', '  contact_info: tls@clinic.test'].join('\n'));
  const store = new SqliteStore(sandbox.storePath);
  await seedTlsDay(store);
  await store.close();
});
afterAll(async () => {
  sandbox.cleanup();
  await dns.close();
});

describe('sealrelay tlsrpt', () => {
  it('preview prints the report that would be sent, and where it would go', async () => {
    const out = await runCli(['--config', sandbox.configFile, 'tlsrpt', 'preview', 'STS.test', '--day', DAY]);
    expect(out.code, out.stderr).toBe(0);
    const report = JSON.parse(out.stdout) as unknown;
    expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
    const store = new SqliteStore(sandbox.storePath);
    try {
      expect(report).toEqual(await reportFor(store, loadConfig(sandbox.configFile), 'sts.test', DAY));
    } finally {
      await store.close();
    }
    expect(report).toMatchObject({ 'contact-info': 'tls@clinic.test', 'report-id': `${DAY}_sts.test@clinic.test` });
    expect(out.stderr).toContain('would be sent to: mailto:tlsrpt@reports.test, https://reports.test/r');
  });

  it('preview of a domain without a record says it would not be sent; nothing that day exits 1; a bad day exits 64', async () => {
    const plain = await runCli(['--config', sandbox.configFile, 'tlsrpt', 'preview', 'plain.test', '--day', DAY]);
    expect(plain.code).toBe(0);
    expect(plain.stderr).toMatch(/would not be sent: no TXT record at _smtp\._tls\.plain\.test/);
    const none = await runCli(['--config', sandbox.configFile, 'tlsrpt', 'preview', 'sts.test', '--day', '2026-11-05']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no TLS session with sts\.test on 2026-11-05/);
    const bad = await runCli(['--config', sandbox.configFile, 'tlsrpt', 'preview', 'sts.test', '--day', '2026-13-01']);
    expect(bad.code).toBe(64);
  });

  it('status shows each destination of the reports made', async () => {
    const store = new SqliteStore(sandbox.storePath);
    try {
      await store.saveTlsReports(DAY, [{ reportId: 'r1', domain: 'sts.test', day: DAY, json: '{}', destinations: ['mailto:tlsrpt@reports.test', 'https://reports.test/r'] }], Date.UTC(2026, 10, 3, 0, 30), Date.UTC(2026, 10, 4));
      await store.settleTlsReports([{ reportId: 'r1', destination: 'https://reports.test/r', result: 'retry', at: Date.UTC(2026, 10, 3, 0, 31), nextAt: Date.UTC(2026, 10, 3, 0, 40), error: 'HTTP 503' }]);
    } finally {
      await store.close();
    }
    const out = await runCli(['--config', sandbox.configFile, 'tlsrpt', 'status']);
    expect(out.code, out.stderr).toBe(0);
    const rows = out.stdout.split('\n').filter((l) => l.includes('sts.test'));
    expect(rows).toHaveLength(2);
    expect(rows.find((l) => l.includes('https://reports.test/r'))).toMatch(/pending\s+1\s+2026-11-03T00:40:00Z\s+HTTP 503/);
    expect(rows.find((l) => l.includes('mailto:'))).toMatch(/pending\s+0\s+2026-11-03T00:30:00Z/);
  });
});

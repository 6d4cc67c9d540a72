// A day's reports made from a real store and sent to `https:` destinations: a real
// HTTPS server on loopback with a certificate from the test CA, found through the DNS
// stub. A failing endpoint is retried with backoff, then given up (RFC 8460 §5.4).
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema, type Config } from '../../../src/config/schema.ts';
import { createLogger } from '../../../src/log.ts';
import { isPrivateAddress, postReport } from '../../../src/reporting/tlsrpt/https.ts';
import { makeDayReports, reportFor, sendDueReports, type TlsRptDeps } from '../../../src/reporting/tlsrpt/job.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { startDnsStub, type DnsStub } from '../../helpers/dns-stub.ts';
import { sharedTestCa, writeTemp } from '../../helpers/test-ca.ts';
import { validateReport } from './schema.ts';
import { DAY, HOUR, seedTlsDay, T0 } from './seed.ts';

interface Received {
  path: string;
  contentType: string | undefined;
  body: Buffer;
}

let server: https.Server;
let port: number;
const received: Received[] = [];
/** Status answered per path, in order; then 200. */
const script = new Map<string, number[]>();
let dns: DnsStub;
let store: SqliteStore;
let config: Config;
let clock = T0 + 25 * HOUR;

beforeAll(async () => {
  const cert = sharedTestCa().issue({ commonName: 'reports.rcpt.test' });
  server = https.createServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', contentType: req.headers['content-type'], body: Buffer.concat(chunks) });
      const status = script.get(req.url ?? '')?.shift() ?? 200;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'thanks' : 'x'.repeat(100_000));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
  dns = await startDnsStub({
    'reports.rcpt.test': { A: ['127.0.0.1'] },
    'other.rcpt.test': { A: ['127.0.0.1'] },
    '_smtp._tls.sts.test': { TXT: [`v=TLSRPTv1; rua=https://reports.rcpt.test:${port}/sts`] },
    '_smtp._tls.plain.test': { TXT: [`v=TLSRPTv1; rua=https://reports.rcpt.test:${port}/plain`] },
    '_smtp._tls.dane.test': { TXT: [`v=TLSRPTv1; rua=https://reports.rcpt.test:${port}/dane`] },
  });
  config = configSchema.parse({
    ingress: { listeners: {} },
    server: { hostname: 'relay.clinic.test' },
    delivery: { dns: { servers: [dns.server], timeout_ms: 2000 } },
    tlsrpt: { enabled: true, ca_file: writeTemp('tlsrpt-ca.pem', sharedTestCa().certPem), timeout_ms: 5000, retry_hours: 2, allow_private_destinations: true },
  });
  store = new SqliteStore(join(mkdtempSync(join(tmpdir(), 'sealrelay-tlsrpt-send-')), 'store.db'));
  await seedTlsDay(store);
});
afterAll(async () => {
  await store.close();
  await dns.close();
  server.close();
});

const deps = (): TlsRptDeps => ({
  store,
  config,
  logger: createLogger('silent'),
  queueMail: () => Promise.reject(new Error('no mailto: here')),
  now: () => clock,
  retryFirstMs: 60_000,
});

describe('TLS reports over https: (RFC 8460 §5.4)', () => {
  it('makes a day\'s reports once, then POSTs each gzipped as application/tlsrpt+gzip', async () => {
    script.set('/plain', [500, 503]);
    script.set('/dane', [500, 500, 500, 500, 500]);
    // dnssec.test publishes no record: 4 domains that day, 3 reports.
    expect(await makeDayReports(deps(), DAY)).toEqual({ day: DAY, domains: 4, reports: 3 });
    // A second run (a restart the same day) makes nothing more.
    expect(await makeDayReports(deps(), DAY)).toEqual({ day: DAY, domains: 0, reports: 0 });

    const first = await sendDueReports(deps());
    expect(first.map((s) => [s.destination.replace(/.*\//, ''), s.result]).sort()).toEqual([['dane', 'retry'], ['plain', 'retry'], ['sts', 'sent']]);
    const sts = received.find((r) => r.path === '/sts')!;
    expect(sts.contentType).toBe('application/tlsrpt+gzip');
    const report = JSON.parse(gunzipSync(sts.body).toString('utf8')) as unknown;
    expect(validateReport(report), JSON.stringify(validateReport.errors)).toBe(true);
    expect(report).toEqual(await reportFor(store, config, 'sts.test', DAY));
  });

  it('a failing endpoint is retried after its backoff and the same report arrives', async () => {
    // Not yet due: nothing is sent.
    expect(await sendDueReports(deps())).toEqual([]);
    clock += 2 * 60_000;
    const second = await sendDueReports(deps());
    expect(second.map((s) => [s.destination.replace(/.*\//, ''), s.result]).sort()).toEqual([['dane', 'retry'], ['plain', 'retry']]);
    clock += 5 * 60_000;
    const third = await sendDueReports(deps());
    expect(third.map((s) => [s.destination.replace(/.*\//, ''), s.result]).sort()).toEqual([['dane', 'retry'], ['plain', 'sent']]);
    const plain = received.filter((r) => r.path === '/plain');
    expect(plain).toHaveLength(3);
    expect(new Set(plain.map((r) => gunzipSync(r.body).toString('utf8'))).size).toBe(1);
    const status = await store.listTlsReports({ domain: 'plain.test' });
    expect(status).toMatchObject([{ day: DAY, status: 'sent', attempts: 3, lastError: null }]);
  });

  it('a destination still failing at the end of retry_hours is given up, its last error kept', async () => {
    clock = T0 + 25 * HOUR + 2 * HOUR;
    const last = await sendDueReports(deps());
    expect(last.map((s) => s.result)).toEqual(['failed']);
    const [dane] = await store.listTlsReports({ domain: 'dane.test' });
    expect(dane).toMatchObject({ status: 'failed', attempts: 4 });
    // The endpoint's long answer is cut to a line in the record.
    expect(dane!.lastError).toMatch(/^HTTP 500: x+$/);
    expect(dane!.lastError!.length).toBeLessThan(300);
    clock += 24 * HOUR;
    expect(await sendDueReports(deps())).toEqual([]);
  });

  it('the endpoint must prove its name with a certificate from the trust store', async () => {
    const posts = received.length;
    const opts = { dnsServers: [dns.server], timeoutMs: 5000, ca: sharedTestCa().certPem, allowPrivate: true };
    expect(await postReport(`https://reports.rcpt.test:${port}/ok`, Buffer.from('x'), opts)).toEqual({ ok: true, status: 200 });
    const wrongName = await postReport(`https://other.rcpt.test:${port}/x`, Buffer.from('x'), opts);
    expect(wrongName).toMatchObject({ ok: false, error: expect.stringMatching(/ERR_TLS_CERT_ALTNAME_INVALID|altnames/) });
    const untrusted = await postReport(`https://reports.rcpt.test:${port}/x`, Buffer.from('x'), { dnsServers: [dns.server], timeoutMs: 5000, allowPrivate: true });
    expect(untrusted).toMatchObject({ ok: false });
    expect(await postReport(`https://nowhere.rcpt.test:${port}/x`, Buffer.from('x'), opts)).toMatchObject({ ok: false, error: expect.stringMatching(/no address|resolve/) });
    // A TXT record cannot aim the relay at its own network unless the operator allows it.
    expect(await postReport(`https://reports.rcpt.test:${port}/x`, Buffer.from('x'), { ...opts, allowPrivate: false })).toMatchObject({ ok: false, error: expect.stringMatching(/private network/) });
    expect(await postReport(`https://[::ffff:127.0.0.1]:${port}/x`, Buffer.from('x'), { ...opts, allowPrivate: false })).toMatchObject({ ok: false, error: expect.stringMatching(/private network/) });
    expect(isPrivateAddress('10.1.2.3') && isPrivateAddress('fe80::1') && isPrivateAddress('::1') && !isPrivateAddress('192.0.2.1') && !isPrivateAddress('2001:db8::1')).toBe(true);
    // Only the first reached the endpoint's handler.
    expect(received.length).toBe(posts + 1);
  });
});

// MTA-STS end to end (RFC 8461): policies fetched over HTTPS on loopback with the
// test CA, DNS from the stub. enforce: TLS with a valid certificate to a listed MX
// or nothing — even behind a STARTTLS-stripping man in the middle; testing: deliver
// and record what would have failed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { startPolicyServer, policyText, type PolicyServer } from '../helpers/https-policy-server.ts';
import { startStripTlsProxy } from '../helpers/mitm.ts';
import { startMxSet, type MxSet } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';
import { issueSmimeCert } from '../helpers/smime-certs.ts';
import { parseKeyFile } from '../../src/crypto/keys.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { sharedTestCa, writeTemp } from '../helpers/test-ca.ts';

describe('MTA-STS', () => {
  let dns: DnsStub;
  let mxs: MxSet;
  let web: PolicyServer;
  let relay: TestRelay;
  let proxy: Awaited<ReturnType<typeof startStripTlsProxy>>;

  beforeAll(async () => {
    mxs = await startMxSet([
      { kind: 'tls13', name: 'mx.sts.test' },
      { kind: 'selfsigned', name: 'mx.selfsigned.test' },
    ]);
    const good = mxs.byName('mx.sts.test');
    proxy = await startStripTlsProxy({ upstreamHost: good.host, upstreamPort: good.port, port: mxs.port, mode: 'strip' });
    web = await startPolicyServer({ ca: sharedTestCa() });
    const sts = (id: string) => ({ TXT: [`v=STSv1; id=${id};`] });
    dns = await startDnsStub({
      // enforce, MX listed, real TLS: delivered.
      'enforce.test': { MX: [{ preference: 10, exchange: 'mx.sts.test' }] },
      '_mta-sts.enforce.test': sts('e1'),
      'mta-sts.enforce.test': { A: ['127.0.0.1'] },
      // enforce, but the MX is not in the policy: nothing sent.
      'mismatch.test': { MX: [{ preference: 10, exchange: 'mx.sts.test' }] },
      '_mta-sts.mismatch.test': sts('m1'),
      'mta-sts.mismatch.test': { A: ['127.0.0.1'] },
      // enforce, MX listed, but a man in the middle strips STARTTLS: nothing sent.
      'stripped.test': { MX: [{ preference: 10, exchange: 'mx.stripped.test' }] },
      '_mta-sts.stripped.test': sts('s1'),
      'mta-sts.stripped.test': { A: ['127.0.0.1'] },
      'mx.stripped.test': { A: [proxy.host] },
      // testing, self-signed certificate: delivered, the would-be failure recorded.
      'testing.test': { MX: [{ preference: 10, exchange: 'mx.selfsigned.test' }] },
      '_mta-sts.testing.test': sts('t1'),
      'mta-sts.testing.test': { A: ['127.0.0.1'] },
      // a TXT record but the policy fetch fails (404): no policy, opportunistic as usual.
      'broken.test': { MX: [{ preference: 10, exchange: 'mx.sts.test' }] },
      '_mta-sts.broken.test': sts('b1'),
      'mta-sts.broken.test': { A: ['127.0.0.1'] },
      'mx.sts.test': { A: [good.host] },
      'mx.selfsigned.test': { A: [mxs.byName('mx.selfsigned.test').host] },
    });
    web.set('enforce.test', policyText({ mode: 'enforce', mx: ['mx.sts.test'], maxAge: 86400 }));
    web.set('mismatch.test', policyText({ mode: 'enforce', mx: ['*.elsewhere.test'], maxAge: 86400 }));
    web.set('stripped.test', policyText({ mode: 'enforce', mx: ['mx.stripped.test'], maxAge: 86400 }));
    web.set('testing.test', policyText({ mode: 'testing', mx: ['mx.selfsigned.test'], maxAge: 86400 }));
    web.set('broken.test', { status: 404, body: 'not here' });
    const config = testConfig({
      delivery: { port: mxs.port, dns: { servers: [dns.server] }, retry: { first_seconds: 3600 } },
      mta_sts: { enabled: true, ca_file: writeTemp('sts-ca.pem', sharedTestCa().certPem), https_port: web.port, timeout_ms: 3000 },
      policies: { rules: [{ name: 'sealed', match: { recipient: 'sealed@stripped.test' }, mode: 'forced' }] },
      crypto: { wkd: { enabled: false } },
    });
    // A certificate for the forced recipient: its fallback chain could seal the message (S/MIME).
    const store = new SqliteStore(config.store.path);
    for (const key of (await parseKeyFile(Buffer.from(issueSmimeCert({ email: 'sealed@stripped.test' }).certPem), { source: 'import', now: Date.now() })).keys) await store.putKey(key);
    await store.close();
    relay = await startTestRelay(config);
  }, 30_000);

  afterAll(async () => {
    await relay?.close();
    await proxy?.close();
    await web?.close();
    await mxs?.close();
    await dns?.close();
  });

  const attempt = async (to: string) => {
    const id = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: [to] }));
    const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === id), 15_000);
    return records.find((x) => x.queueId === id)!;
  };

  it('enforce, listed MX, valid certificate: delivered over TLS, verification mta-sts, verdict pass', async () => {
    const r = await attempt('pat@enforce.test');
    expect(r).toMatchObject({ outcome: 'delivered', method: 'tls', decision: { mode: 'opportunistic', verification: 'mta-sts' }, mtaSts: { mode: 'enforce', id: 'e1', result: 'pass' } });
    expect(r.tls?.authorized).toBe(true);
  });

  it('enforce, MX not in the policy: deferred, nothing sent', async () => {
    const before = mxs.byName('mx.sts.test').received.length;
    const r = await attempt('pat@mismatch.test');
    expect(r).toMatchObject({ outcome: 'deferred', method: 'none', mx: null, smtp: { code: 451, enhanced: '4.7.5' } });
    expect(r.mtaSts?.result).toMatch(/no MX host of mismatch\.test matches its MTA-STS policy/);
    expect(mxs.byName('mx.sts.test').received.length).toBe(before);
  });

  it('enforce behind a STARTTLS-stripping man in the middle: zero plaintext deliveries', async () => {
    const before = mxs.byName('mx.sts.test').received.length;
    const r = await attempt('pat@stripped.test');
    expect(r).toMatchObject({ outcome: 'deferred', method: 'none', starttlsOffered: false });
    expect(r.mtaSts).toMatchObject({ mode: 'enforce', result: expect.stringMatching(/no TLS with mx\.stripped\.test/) });
    expect(mxs.byName('mx.sts.test').received.length).toBe(before);
    expect(proxy.strippedEhlo).toBeGreaterThanOrEqual(1);
  });

  it('enforce behind the same man in the middle, forced with a certificate to fall back on: still nothing sent', async () => {
    // RFC 8461 §5: no delivery to a host that fails the policy — a sealed (S/MIME) copy included.
    const before = mxs.byName('mx.sts.test').received.length;
    const r = await attempt('sealed@stripped.test');
    expect(r).toMatchObject({ outcome: 'deferred', method: 'none', encryption: null, decision: { mode: 'forced', verification: 'mta-sts' } });
    expect(r.fallback?.tried.at(-1)).toMatch(/^smime: key [0-9A-F]{64}/);
    expect(r.mtaSts).toMatchObject({ mode: 'enforce', result: expect.stringMatching(/no TLS with mx\.stripped\.test/) });
    expect(mxs.byName('mx.sts.test').received.length).toBe(before);
  });

  it('testing: delivered as policy says, the would-be failure recorded', async () => {
    const r = await attempt('pat@testing.test');
    expect(r).toMatchObject({ outcome: 'delivered', method: 'tls', decision: { verification: 'none' }, mtaSts: { mode: 'testing', id: 't1' } });
    expect(r.mtaSts?.result).toMatch(/^would fail: certificate of mx\.selfsigned\.test not valid/);
  });

  it('policy fetch failure: no policy applies, delivered opportunistically, no verdict', async () => {
    const r = await attempt('pat@broken.test');
    expect(r).toMatchObject({ outcome: 'delivered', method: 'tls', mtaSts: null, decision: { verification: 'none' } });
  });

  it('policies are cached: a second message to an enforce domain fetches nothing new', async () => {
    const fetched = web.requests('enforce.test');
    await attempt('second@enforce.test');
    expect(web.requests('enforce.test')).toBe(fetched);
  });
});

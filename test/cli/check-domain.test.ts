// `sealrelay check-domain` as a real process against a loopback world: the DNS stub
// publishes the MX hosts (TLS 1.3 with a certificate from the test CA, plaintext only,
// self-signed, and an address where nothing listens) and an MTA-STS record whose
// policy the HTTPS policy server serves. Progress goes to stderr, the report to stdout.
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckDomainReport } from '../../src/cli/check-domain.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { policyText, startPolicyServer, type PolicyServer } from '../helpers/https-policy-server.ts';
import { allocLoopbackIp, mxZone, startMxSet, type MxSet } from '../helpers/mx.ts';
import { sharedTestCa, writeTemp } from '../helpers/test-ca.ts';
import { claimAll, makeSandbox, message, record, runCli, withStore, type Sandbox } from './harness.ts';

describe('sealrelay check-domain', () => {
  let dns: DnsStub;
  let mxs: MxSet;
  let web: PolicyServer;
  /** No store file: TLS-known status is unknown. */
  let fresh: Sandbox;
  /** A store in which known.test has delivered over TLS. */
  let seeded: Sandbox;
  const dead = { name: 'mx4.check.test', host: allocLoopbackIp() };

  beforeAll(async () => {
    mxs = await startMxSet([
      { kind: 'tls13', name: 'mx1.check.test' },
      { kind: 'plain', name: 'mx2.check.test' },
      { kind: 'selfsigned', name: 'mx3.check.test' },
    ]);
    web = await startPolicyServer({ ca: sharedTestCa() });
    web.set('check.test', policyText({ mode: 'enforce', mx: ['mx1.check.test'], maxAge: 604800 }));
    dns = await startDnsStub({
      ...mxZone('check.test', [...mxs.mxs, dead]),
      '_mta-sts.check.test': { TXT: ['v=STSv1; id=c1;'] },
      'mta-sts.check.test': { A: ['127.0.0.1'] },
      'known.test': { MX: [{ preference: 5, exchange: 'mx1.check.test' }] },
      'deadonly.test': { MX: [{ preference: 10, exchange: dead.name }] },
      'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
    });
    const yaml = [
      'tls:',
      `  ca_file: ${JSON.stringify(writeTemp('check-domain-ca.pem', sharedTestCa().certPem))}`,
      'delivery:',
      `  port: ${mxs.port}`,
      `  dns: { servers: [${JSON.stringify(dns.server)}], timeout_ms: 2000 }`,
      '  connect_timeout_ms: 3000',
      '  greeting_timeout_ms: 3000',
      'mta_sts:',
      `  ca_file: ${JSON.stringify(writeTemp('check-domain-sts-ca.pem', sharedTestCa().certPem))}`,
      `  https_port: ${web.port}`,
      '  timeout_ms: 3000',
      'policies:',
      '  rules:',
      '    - name: labs',
      '      match: { recipient_domain: known.test }',
      '      mode: forced',
    ].join('\n');
    fresh = makeSandbox(yaml);
    seeded = makeSandbox(yaml);
    await withStore(seeded.storePath, async (store) => {
      await store.enqueue(message('KN1', ['pat@known.test'], Date.now()));
      const [item] = await claimAll(store);
      await store.finish(
        [record({ queueId: item!.queueId, seq: item!.seq, recipient: item!.recipient, attempt: item!.attempt, at: Date.now(), outcome: 'delivered' })],
        [{ queueId: item!.queueId, seq: item!.seq, outcome: 'delivered', error: null }],
      );
    });
  }, 30_000);

  afterAll(async () => {
    fresh?.cleanup();
    seeded?.cleanup();
    await web?.close();
    await mxs?.close();
    await dns?.close();
  });

  const check = (box: Sandbox, ...args: string[]) => runCli(['--config', box.configFile, 'check-domain', ...args]);

  it('prints a readable report on stdout and progress on stderr', async () => {
    const res = await check(fresh, 'check.test');
    expect(res.code, res.stderr).toBe(0);
    const good = mxs.byName('mx1.check.test');
    const cert = new X509Certificate(good.certPem!);
    const at = (mx: { name: string; host: string }) => `${mx.name} [${mx.host}]:${mxs.port}`;

    // Progress while probing.
    expect(res.stderr).toMatch(/^check\.test: resolving MX…$/m);
    expect(res.stderr).toContain(`${at(good)}: connecting…`);
    expect(res.stderr).toContain(`${at(good)}: STARTTLS, TLSv1.3 ${good.sessions[0]!.cipher} 256 bits, certificate verified`);
    expect(res.stderr).toContain(`${at(mxs.byName('mx2.check.test'))}: no STARTTLS (plaintext only)`);
    expect(res.stderr).toMatch(/^check\.test: MTA-STS: mode enforce, id c1, mx mx1\.check\.test$/m);

    const out = res.stdout;
    expect(out).toMatch(/^check\.test \(probed \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$/m);
    expect(out).toMatch(/^MX \(in the order delivery tries them\):$/m);
    // Per MX: preference and address, then its facts.
    const outLines = out.split('\n');
    /** The lines of one MX: its heading "  <pref>  <name> [ip]:port" and the indented lines under it. */
    const block = (name: string) => {
      const start = outLines.findIndex((l) => l.startsWith('  ') && l.includes(`  ${name} [`));
      expect(start, `${name} in the report`).toBeGreaterThan(0);
      const end = outLines.findIndex((l, i) => i > start && !l.startsWith('      '));
      return outLines.slice(start, end).join('\n');
    };
    expect(out).toContain(`  10  ${at(good)}`);
    const b1 = block('mx1.check.test');
    expect(b1).toMatch(/reachable\s+yes \(\d+ ms\)/);
    expect(b1).toMatch(/STARTTLS\s+offered/);
    expect(b1).toMatch(new RegExp(`TLS\\s+TLSv1\\.3 ${good.sessions[0]!.cipher} 256 bits, meets the floor \\(TLSv1\\.2, 128 bits\\)`));
    expect(b1).toMatch(/certificate\s+CN=mx1\.check\.test/);
    expect(b1).toContain(`SHA-256 ${cert.fingerprint256}`);
    expect(b1).toContain(`expires ${new Date(cert.validTo).toISOString().replace(/\.\d{3}Z$/, 'Z')} (in 29 days)`);
    expect(b1).toMatch(/verdict\s+chain and name verified/);
    expect(b1).toMatch(/MTA-STS\s+listed \(mx1\.check\.test\)/);

    const b2 = block('mx2.check.test');
    expect(b2).toMatch(/STARTTLS\s+not offered \(plaintext only\)/);
    expect(b2).toMatch(/MTA-STS\s+NOT listed in the policy/);
    expect(b2).not.toMatch(/certificate/);

    const b3 = block('mx3.check.test');
    expect(b3).toMatch(/verdict\s+not verified: DEPTH_ZERO_SELF_SIGNED_CERT \(verification ca would refuse it\)/);

    const b4 = block('mx4.check.test');
    expect(b4).toMatch(/reachable\s+no/);
    expect(b4).toMatch(/error\s+connect: .*ECONNREFUSED/);

    expect(out).toMatch(/^MTA-STS:\s+record id c1$/m);
    expect(out).toMatch(/^\s+policy mode enforce, max_age 604800 s, mx mx1\.check\.test$/m);
    expect(out).toMatch(/MX hosts: mx1\.check\.test listed; mx2\.check\.test NOT listed/);
    expect(out).toMatch(/^TLS-known:\s+unknown \(no store at .*\)$/m);
    expect(out).toMatch(/^Policy:\s+postmaster@check\.test → mode opportunistic, verification mta-sts, floor TLSv1\.2 128 bits, TLS expected \(rule default\)$/m);
    expect(out).toMatch(/↑ check\.test has an MTA-STS enforce policy \(id c1, mx mx1\.check\.test\)/);
  });

  it('--json prints one JSON object with the same facts', async () => {
    const res = await check(fresh, 'check.test', '--json');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.trim().split('\n')).toHaveLength(1);
    const r = JSON.parse(res.stdout) as CheckDomainReport;
    expect(r).toMatchObject({
      domain: 'check.test',
      usable: true,
      destination: { kind: 'mx', route: null },
      mtaSts: { status: 'policy', id: 'c1', mode: 'enforce', applied: true },
      tlsKnown: { store: false, knowledge: null },
      policy: { recipient: 'postmaster@check.test', decision: { mode: 'opportunistic', verification: 'mta-sts', tlsExpected: true, rule: 'default' } },
    });
    expect(r.mxs.map((m) => [m.host, m.preference, m.reachable, m.starttlsOffered, m.tls?.protocol ?? null, m.certificate?.authorized ?? null])).toEqual([
      ['mx1.check.test', 10, true, true, 'TLSv1.3', true],
      ['mx2.check.test', 20, true, false, null, null],
      ['mx3.check.test', 30, true, true, 'TLSv1.3', false],
      ['mx4.check.test', 40, false, null, null, null],
    ]);
    expect(r.mxs[0]!.certificate!.notAfter).toBe(new Date(new X509Certificate(mxs.byName('mx1.check.test').certPem!).validTo).toISOString());
    expect(r.mxs[3]!.error).toMatchObject({ stage: 'connect', reason: expect.stringMatching(/ECONNREFUSED/) });
    expect(res.stderr).toMatch(/connecting…/);
  });

  it('reads TLS-known status from the store and lets it raise the decision', async () => {
    const res = await check(seeded, 'known.test');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^TLS-known:\s+yes, since \d{4}-.*Z \(a missing STARTTLS is treated as a possible downgrade\)$/m);
    expect(res.stdout).toMatch(/mode forced, verification none, .*TLS expected \(rule rule:labs\)/);
    expect(res.stdout).toMatch(/↑ rule labs: .* → raised to forced/);
    expect(res.stdout).toMatch(/↑ known\.test is TLS-known: delivered over TLS since/);
    expect(res.stdout).toMatch(/^MTA-STS:\s+no policy: no TXT record at _mta-sts\.known\.test$/m);

    const json = JSON.parse((await check(seeded, 'known.test', '--json')).stdout) as CheckDomainReport;
    expect(json.tlsKnown).toMatchObject({ store: true, knowledge: { domain: 'known.test', tlsKnownSince: expect.any(Number) } });
    // A domain the store has never seen.
    const other = JSON.parse((await check(seeded, 'check.test', '--json')).stdout) as CheckDomainReport;
    expect(other.tlsKnown).toEqual({ store: true, knowledge: null });
  });

  it('exits 0 when the domain was probed, even if no MX answered', async () => {
    const res = await check(fresh, 'deadonly.test');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/reachable\s+no/);
  });

  it('exits 1 when the domain has no usable MX, after printing why', async () => {
    const nullMx = await check(fresh, 'nullmx.test');
    expect(nullMx.code).toBe(1);
    expect(nullMx.stdout).toMatch(/^MX:\s+none usable: nullmx\.test publishes a null MX \(RFC 7505\)/m);
    expect(nullMx.stderr).toMatch(/^sealrelay: nullmx\.test has no usable MX: /m);

    const missing = await check(fresh, 'nowhere.test', '--json');
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ usable: false, destination: { kind: 'error', reason: expect.stringMatching(/NXDOMAIN/) } });
  });

  it('usage errors exit 64', async () => {
    expect((await check(fresh)).code).toBe(64);
    const address = await check(fresh, 'pat@check.test');
    expect(address.code).toBe(64);
    expect(address.stderr).toMatch(/wants a domain, not an address/);
    expect((await check(fresh, 'not a domain')).code).toBe(64);
    expect((await check(fresh, 'check.test', '--bogus')).code).toBe(64);
  });
});

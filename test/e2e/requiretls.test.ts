// REQUIRETLS and TLS-Required: No (RFC 8689) end to end: a whole relay, MXs on
// loopback (smtp-server; `hideREQUIRETLS: false` makes one advertise REQUIRETLS),
// MTA-STS policies over HTTPS with the test CA, DNS from the stub.
//  - REQUIRETLS submitted over STARTTLS reaches a next hop that advertises it, under
//    MTA-STS verification, with the parameter passed on in MAIL FROM;
//  - a next hop without it: nothing delivered, a 5.7.30 bounce, and the DSN (itself
//    sent with REQUIRETLS) carries no body; with a second MX that has it, that one gets it;
//  - no MTA-STS and no DANE: bounced without a connection;
//  - TLS-Required: No: honoured only for an authenticated sender where a rule allows
//    it (a plaintext MX then gets the message), ignored otherwise, and REQUIRETLS wins.
import { writeFileSync } from 'node:fs';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/ingress/users.ts';
import crypto from 'node:crypto';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { startSignedZones, type SignedZones } from '../helpers/dnssec-zone.ts';
import { startPolicyServer, policyText, type PolicyServer } from '../helpers/https-policy-server.ts';
import { startMxSet, type MxSet } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, testConfig, type TestRelay } from '../helpers/relay.ts';
import { sharedTestCa, writeTemp } from '../helpers/test-ca.ts';

const SECRET = 'the lab result line nobody else may read';
const ADVERTISES = { hideREQUIRETLS: false };

/** One message over STARTTLS (the relay's dev certificate is self-signed), REQUIRETLS on MAIL FROM when asked. */
async function submit(opts: { port: number; to: string[]; requireTls: boolean; headers?: string; auth?: boolean; retFull?: boolean }): Promise<string> {
  const conn = new SMTPConnection({ host: '127.0.0.1', port: opts.port, tls: { rejectUnauthorized: false }, connectionTimeout: 5000, greetingTimeout: 5000, socketTimeout: 10_000 });
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('error', reject);
      conn.connect(() => resolve());
    });
    if (opts.auth) await new Promise<void>((resolve, reject) => conn.login({ user: 'app1', pass: 'app1-secret' }, (err) => (err ? reject(err) : resolve())));
    const body = `From: <app@clinic.test>\r\nTo: <${opts.to.join('>, <')}>\r\nSubject: results\r\n${opts.headers ?? ''}\r\n${SECRET}\r\n`;
    const envelope = { from: 'app@clinic.test', to: opts.to, ...(opts.requireTls ? { requireTLSExtensionEnabled: true } : {}), ...(opts.retFull ? { dsn: { ret: 'FULL' } } : {}) };
    const info = await new Promise<{ response: string }>((resolve, reject) => conn.send(envelope, body, (err, info) => (err ? reject(err) : resolve(info as { response: string }))));
    return info.response;
  } finally {
    conn.quit();
  }
}

describe('REQUIRETLS (RFC 8689)', () => {
  let dns: DnsStub;
  let mxs: MxSet;
  let web: PolicyServer;
  let relay: TestRelay;

  beforeAll(async () => {
    mxs = await startMxSet([
      { kind: 'tls13', name: 'mx.rt.test', serverOptions: ADVERTISES },
      { kind: 'tls13', name: 'mx.nort.test' },
      { kind: 'tls13', name: 'mx.clinic.test', serverOptions: ADVERTISES },
      { kind: 'plain', name: 'mx.plain.test' },
      { kind: 'selfsigned', name: 'mx.self.test', serverOptions: ADVERTISES },
    ]);
    web = await startPolicyServer({ ca: sharedTestCa() });
    const sts = (domain: string, id: string) => ({ [`_mta-sts.${domain}`]: { TXT: [`v=STSv1; id=${id};`] }, [`mta-sts.${domain}`]: { A: ['127.0.0.1'] } });
    const a = (name: string) => ({ [name]: { A: [mxs.byName(name).host] } });
    dns = await startDnsStub({
      'rt.test': { MX: [{ preference: 10, exchange: 'mx.rt.test' }] },
      ...sts('rt.test', 'r1'),
      'nort.test': { MX: [{ preference: 10, exchange: 'mx.nort.test' }] },
      ...sts('nort.test', 'n1'),
      // The first MX lacks REQUIRETLS, the second has it (RFC 8689 §4.2.1: try the next MX).
      'two.test': { MX: [{ preference: 10, exchange: 'mx.nort.test' }, { preference: 20, exchange: 'mx.rt.test' }] },
      ...sts('two.test', 'w1'),
      // The sender's own domain: where the DSNs go, REQUIRETLS-capable under MTA-STS.
      'clinic.test': { MX: [{ preference: 10, exchange: 'mx.clinic.test' }] },
      ...sts('clinic.test', 'c1'),
      // No MTA-STS (and DANE not asked for): nothing can authenticate the MX.
      'nopolicy.test': { MX: [{ preference: 10, exchange: 'mx.rt.test' }] },
      // An MTA-STS policy in testing mode, a self-signed MX that advertises REQUIRETLS.
      'testing.test': { MX: [{ preference: 10, exchange: 'mx.self.test' }] },
      ...sts('testing.test', 't1'),
      'plain-ok.test': { MX: [{ preference: 10, exchange: 'mx.plain.test' }] },
      'plain-no.test': { MX: [{ preference: 10, exchange: 'mx.plain.test' }] },
      ...a('mx.rt.test'),
      ...a('mx.nort.test'),
      ...a('mx.clinic.test'),
      ...a('mx.plain.test'),
      ...a('mx.self.test'),
    });
    web.set('rt.test', policyText({ mode: 'enforce', mx: ['mx.rt.test'], maxAge: 86400 }));
    web.set('nort.test', policyText({ mode: 'enforce', mx: ['mx.nort.test'], maxAge: 86400 }));
    web.set('two.test', policyText({ mode: 'enforce', mx: ['mx.nort.test', 'mx.rt.test'], maxAge: 86400 }));
    web.set('clinic.test', policyText({ mode: 'enforce', mx: ['mx.clinic.test'], maxAge: 86400 }));
    web.set('testing.test', policyText({ mode: 'testing', mx: ['mx.self.test'], maxAge: 86400 }));
    const config = testConfig({
      delivery: { port: mxs.port, dns: { servers: [dns.server] }, retry: { first_seconds: 3600 } },
      mta_sts: { enabled: true, ca_file: writeTemp('rt-sts-ca.pem', sharedTestCa().certPem), https_port: web.port, timeout_ms: 3000 },
      policies: {
        rules: [
          { name: 'partner-optional', match: { recipient_domain: 'plain-ok.test' }, mode: 'forced', fallback: [], allow_tls_required_no: true },
          { name: 'partner-strict', match: { recipient_domain: 'plain-no.test' }, mode: 'forced', fallback: [] },
        ],
      },
      crypto: { wkd: { enabled: false } },
    });
    writeFileSync(config.ingress.users_file, `users:\n  app1:\n    password: "${await hashPassword('app1-secret', { N: 1024, r: 8, p: 1 })}"\n`);
    relay = await startTestRelay(config);
  }, 30_000);

  afterAll(async () => {
    await relay?.close();
    await web?.close();
    await mxs?.close();
    await dns?.close();
  });

  const recordOf = async (id: string, recipient: string) => {
    const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === id && x.recipient === recipient), 15_000);
    return records.find((x) => x.queueId === id && x.recipient === recipient)!;
  };
  const count = (mx: string) => mxs.byName(mx).received.length;

  it('a next hop that advertises REQUIRETLS gets the message, with REQUIRETLS on MAIL FROM, under MTA-STS', async () => {
    const before = count('mx.rt.test');
    const id = queueIdOf(await submit({ port: relay.port, to: ['pat@rt.test'], requireTls: true }));
    const r = await recordOf(id, 'pat@rt.test');
    expect(r).toMatchObject({ outcome: 'delivered', method: 'tls', decision: { verification: 'mta-sts', fallbackChain: [] }, mtaSts: { mode: 'enforce', result: 'pass' } });
    expect(r.decision.reasons.join('\n')).toMatch(/^REQUIRETLS \(RFC 8689\)/m);
    const got = mxs.byName('mx.rt.test').received.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]!.envelope).toEqual({ from: 'app@clinic.test', to: ['pat@rt.test'], requireTLS: true });
    expect(got[0]!.tls).not.toBeNull();
  });

  it('without REQUIRETLS on MAIL FROM the same route carries no REQUIRETLS', async () => {
    const before = count('mx.rt.test');
    const id = queueIdOf(await submit({ port: relay.port, to: ['plain-demand@rt.test'], requireTls: false }));
    expect(await recordOf(id, 'plain-demand@rt.test')).toMatchObject({ outcome: 'delivered' });
    expect(mxs.byName('mx.rt.test').received.slice(before)[0]!.envelope.requireTLS).toBeUndefined();
  });

  it('a next hop without REQUIRETLS: nothing delivered, bounced 5.7.30, the DSN (sent with REQUIRETLS) has no body, RET=FULL or not', async () => {
    const before = count('mx.nort.test');
    const dsnsBefore = count('mx.clinic.test');
    const id = queueIdOf(await submit({ port: relay.port, to: ['pat@nort.test'], requireTls: true, retFull: true }));
    const r = await recordOf(id, 'pat@nort.test');
    expect(r).toMatchObject({ outcome: 'bounced', method: 'none', smtp: { code: 550, enhanced: '5.7.30' } });
    expect(r.smtp.response).toMatch(/mx\.nort\.test does not advertise REQUIRETLS/);
    // The TLS session itself was fine (verified): what it lacked was the extension.
    expect(r.tls?.authorized).toBe(true);
    expect(count('mx.nort.test')).toBe(before);

    const [dsn] = await mxs.byName('mx.clinic.test').waitFor(dsnsBefore + 1, 15_000).then((all) => all.slice(dsnsBefore));
    expect(dsn!.envelope).toEqual({ from: '', to: ['app@clinic.test'], requireTLS: true });
    const text = dsn!.raw.toString();
    expect(text).toMatch(/^Status: 5\.7\.30/m);
    expect(text).toContain('Subject: results');
    expect(text).not.toContain(SECRET);
  });

  it('the first MX lacks REQUIRETLS, the second has it: the second gets the message', async () => {
    const nortBefore = count('mx.nort.test');
    const rtBefore = count('mx.rt.test');
    const id = queueIdOf(await submit({ port: relay.port, to: ['pat@two.test'], requireTls: true }));
    const r = await recordOf(id, 'pat@two.test');
    expect(r).toMatchObject({ outcome: 'delivered', method: 'tls', mx: { host: 'mx.rt.test' } });
    expect(count('mx.nort.test')).toBe(nortBefore);
    expect(mxs.byName('mx.rt.test').received.slice(rtBefore)[0]!.envelope.requireTLS).toBe(true);
  });

  it('an MTA-STS policy in testing mode counts as enforce: a self-signed MX gets nothing, bounced 5.7.30', async () => {
    const before = count('mx.self.test');
    const id = queueIdOf(await submit({ port: relay.port, to: ['pat@testing.test'], requireTls: true }));
    const r = await recordOf(id, 'pat@testing.test');
    expect(r).toMatchObject({ outcome: 'bounced', method: 'none', smtp: { enhanced: '5.7.30' }, decision: { verification: 'mta-sts' }, mtaSts: { mode: 'testing' } });
    expect(r.smtp.response).toMatch(/mx\.self\.test/);
    expect(count('mx.self.test')).toBe(before);
  });

  it('no MTA-STS policy and no DANE: bounced 5.7.30 without sending anything', async () => {
    const before = count('mx.rt.test');
    const id = queueIdOf(await submit({ port: relay.port, to: ['pat@nopolicy.test'], requireTls: true }));
    const r = await recordOf(id, 'pat@nopolicy.test');
    expect(r).toMatchObject({ outcome: 'bounced', method: 'none', mx: null, smtp: { enhanced: '5.7.30' } });
    expect(r.smtp.response).toMatch(/no MTA-STS policy and DANE is not asked for/);
    expect(count('mx.rt.test')).toBe(before);
  });

  it('TLS-Required: No from an authenticated sender where a rule allows it: delivered to a plaintext MX, recorded', async () => {
    const before = count('mx.plain.test');
    const id = queueIdOf(await submit({ port: relay.port, to: ['pat@plain-ok.test'], requireTls: false, auth: true, headers: 'TLS-Required: No\r\n' }));
    const r = await recordOf(id, 'pat@plain-ok.test');
    expect(r).toMatchObject({ outcome: 'delivered', method: 'plaintext', decision: { mode: 'opportunistic', verification: 'none' } });
    expect(r.decision.reasons.join('\n')).toMatch(/TLS-Required: No from app1 honoured \(rule partner-optional allows it\)/);
    expect(count('mx.plain.test')).toBe(before + 1);
  });

  it('TLS-Required: No where no rule allows it: ignored, the mode holds (nothing in plaintext), recorded', async () => {
    const before = count('mx.plain.test');
    const id = queueIdOf(await submit({ port: relay.port, to: ['pat@plain-no.test'], requireTls: false, auth: true, headers: 'TLS-Required: No\r\n' }));
    const r = await recordOf(id, 'pat@plain-no.test');
    expect(r).toMatchObject({ outcome: 'deferred', method: 'none', decision: { mode: 'forced' } });
    expect(r.decision.reasons.join('\n')).toMatch(/TLS-Required: No ignored: no rule for this recipient allows it/);
    expect(count('mx.plain.test')).toBe(before);
  });

  it('TLS-Required: No from an unauthenticated sender: ignored even where a rule allows it', async () => {
    const before = count('mx.plain.test');
    const id = queueIdOf(await submit({ port: relay.port, to: ['anon@plain-ok.test'], requireTls: false, headers: 'TLS-Required: No\r\n' }));
    const r = await recordOf(id, 'anon@plain-ok.test');
    expect(r).toMatchObject({ outcome: 'deferred', method: 'none', decision: { mode: 'forced' } });
    expect(r.decision.reasons.join('\n')).toMatch(/TLS-Required: No ignored: only an authenticated sender/);
    expect(count('mx.plain.test')).toBe(before);
  });

  it('REQUIRETLS and TLS-Required: No together: REQUIRETLS wins', async () => {
    const before = count('mx.plain.test');
    const id = queueIdOf(await submit({ port: relay.port, to: ['both@plain-ok.test'], requireTls: true, auth: true, headers: 'TLS-Required: No\r\n' }));
    const r = await recordOf(id, 'both@plain-ok.test');
    expect(r).toMatchObject({ outcome: 'bounced', smtp: { enhanced: '5.7.30' }, decision: { mode: 'forced' } });
    expect(r.decision.reasons.join('\n')).toMatch(/TLS-Required: No ignored: the message came with REQUIRETLS, which wins/);
    expect(count('mx.plain.test')).toBe(before);
  });
});

describe('REQUIRETLS under DANE (RFC 8689 with RFC 7672)', () => {
  let mxs: MxSet;
  let zones: SignedZones;
  let relay: TestRelay;

  beforeAll(async () => {
    // Self-signed: only DANE can authenticate them; one advertises REQUIRETLS.
    mxs = await startMxSet([
      { kind: 'selfsigned', name: 'mx-rt.signed.test', serverOptions: ADVERTISES },
      { kind: 'selfsigned', name: 'mx-nort.signed.test' },
      { kind: 'tls13', name: 'mx.unsigned.test', serverOptions: ADVERTISES },
    ]);
    const certHash = (name: string) => crypto.createHash('sha256').update(new crypto.X509Certificate(mxs.byName(name).certPem!).raw).digest('hex');
    const tlsa = (host: string) => `_${mxs.port}._tcp.${host} TLSA 3 0 1 ${certHash(`${host}.signed.test`)}`;
    zones = await startSignedZones({
      zones: [
        {
          origin: 'signed.test',
          signing: 'signed',
          records: ['rt MX 10 mx-rt', `mx-rt A ${mxs.byName('mx-rt.signed.test').host}`, tlsa('mx-rt'), 'nort MX 10 mx-nort', `mx-nort A ${mxs.byName('mx-nort.signed.test').host}`, tlsa('mx-nort')],
        },
        // Unsigned: DANE does not apply, and there is no MTA-STS either.
        { origin: 'unsigned.test', signing: 'unsigned', records: ['@ MX 10 mx', `mx A ${mxs.byName('mx.unsigned.test').host}`] },
      ],
    });
    relay = await startTestRelay(testConfig({ delivery: { port: mxs.port, dns: { servers: [zones.resolver], dnssec: true, timeout_ms: 2000 }, retry: { first_seconds: 3600 } } }));
  }, 30_000);

  afterAll(async () => {
    await relay?.close();
    await zones?.close();
    await mxs?.close();
  });

  const recordOf = async (id: string) => {
    const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === id), 15_000);
    return records.find((x) => x.queueId === id)!;
  };

  it('a TLSA match and REQUIRETLS advertised: delivered with REQUIRETLS on MAIL FROM, the record names the match', async () => {
    const r = await recordOf(queueIdOf(await submit({ port: relay.port, to: ['pat@rt.signed.test'], requireTls: true })));
    expect(r).toMatchObject({ outcome: 'delivered', method: 'tls', dane: { status: 'matched' } });
    // Not the CA store: DANE authenticated the self-signed certificate.
    expect(r.tls?.authorized).toBe(false);
    expect(mxs.byName('mx-rt.signed.test').received.map((m) => m.envelope)).toEqual([{ from: 'app@clinic.test', to: ['pat@rt.signed.test'], requireTLS: true }]);
  });

  it('a TLSA match but no REQUIRETLS at the next hop: bounced 5.7.30, nothing delivered', async () => {
    const r = await recordOf(queueIdOf(await submit({ port: relay.port, to: ['pat@nort.signed.test'], requireTls: true })));
    expect(r).toMatchObject({ outcome: 'bounced', method: 'none', smtp: { enhanced: '5.7.30' }, dane: { status: 'matched' } });
    expect(r.smtp.response).toMatch(/does not advertise REQUIRETLS/);
    expect(mxs.byName('mx-nort.signed.test').received).toHaveLength(0);
  });

  it('an unsigned zone (no DANE) without MTA-STS: bounced 5.7.30, nothing delivered, even to a CA-valid MX that has REQUIRETLS', async () => {
    const r = await recordOf(queueIdOf(await submit({ port: relay.port, to: ['pat@unsigned.test'], requireTls: true })));
    expect(r).toMatchObject({ outcome: 'bounced', method: 'none', smtp: { enhanced: '5.7.30' } });
    expect(r.smtp.response).toMatch(/not verified by MTA-STS or DANE/);
    expect(mxs.byName('mx.unsigned.test').received).toHaveLength(0);
  });
});

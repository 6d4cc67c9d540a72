// Evidence witnessed by the receiver (DESIGN.md "The DeliveryRecord"): what the
// relay's record says about an attempt — which MX address took it, the TLS version,
// cipher and bits, the certificate's fingerprint, subject and expiry, whether it
// verified — must EQUAL what the receiving MX saw on its own socket and what
// OpenSSL, an independent tool, says about the certificate that MX served. Checked
// for a CA-verified MX, a self-signed one under opportunistic, next-MX fallback,
// the implicit MX (no MX record → A), and an MTA-STS enforce domain.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SMTPServerSession } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryRecord } from '../../src/delivery/record.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { policyText, startPolicyServer, type PolicyServer } from '../helpers/https-policy-server.ts';
import { startMxSet, type MxSet, type ReceivedMessage, type SeenSession, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';
import { sharedTestCa, writeTemp } from '../helpers/test-ca.ts';

const work = mkdtempSync(join(tmpdir(), 'sealrelay-evidence-'));
const STS_POLICY_MX = ['mx.sts.test'];

interface OpensslCipher {
  /** IANA name, as tls.TLSSocket#getCipher().standardName. */
  standardName: string;
  /** Key size from the cipher's `Enc=…(bits)` column; 0 for `Enc=None`. */
  bits: number;
}

/**
 * OpenSSL's own cipher table (`openssl ciphers -v -stdname`), by OpenSSL name: the
 * receiver's source for bits, independent of the relay's src/tls/cipher-bits.ts.
 */
function opensslCiphers(): Map<string, OpensslCipher> {
  const out = spawnSync('openssl', ['ciphers', '-v', '-stdname', 'ALL:eNULL:@SECLEVEL=0'], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`openssl ciphers failed: ${out.stderr}`);
  const table = new Map<string, OpensslCipher>();
  for (const line of out.stdout.split('\n')) {
    // "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 - ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 Kx=ECDH Au=RSA Enc=AESGCM(128) Mac=AEAD"
    const m = /^(\S+)\s+-\s+(\S+)\s+\S+\s+Kx=\S+\s+Au=\S+\s+Enc=(\S+)/.exec(line);
    if (!m) continue;
    const bits = /\((\d+)\)$/.exec(m[3]!);
    table.set(m[2]!, { standardName: m[1]!, bits: bits ? Number(bits[1]) : 0 });
  }
  return table;
}

interface OpensslVerdict {
  ok: boolean;
  /** X509_V_ERR number from "error N at D depth lookup: …"; null when ok. */
  error: number | null;
  output: string;
}

/** `openssl verify` of a served certificate against the test CA and the MX name the relay connected to. */
function opensslVerify(certPem: string, hostname: string): OpensslVerdict {
  const dir = mkdtempSync(join(work, 'verify-'));
  writeFileSync(join(dir, 'ca.pem'), sharedTestCa().certPem);
  writeFileSync(join(dir, 'cert.pem'), certPem);
  const out = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), '-verify_hostname', hostname, join(dir, 'cert.pem')], { encoding: 'utf8' });
  const output = `${out.stdout}${out.stderr}`;
  const error = /error (\d+) at \d+ depth/.exec(output);
  return { ok: out.status === 0, error: error ? Number(error[1]) : null, output };
}

interface Witness {
  mx: StartedMx;
  message: ReceivedMessage;
  session: SeenSession;
}

/** What `mx` saw of the one message it got for `rcpt`, and of the session that carried it. */
function witness(mx: StartedMx, rcpt: string): Witness {
  const messages = mx.received.filter((m) => m.envelope.to.includes(rcpt));
  expect(messages, `${mx.name} received ${rcpt} once`).toHaveLength(1);
  const message = messages[0]!;
  const session = mx.sessions.find((s) => s.id === message.sessionId);
  if (!session) throw new Error(`${mx.name} has no session ${message.sessionId}`);
  return { mx, message, session };
}

let ciphers: Map<string, OpensslCipher>;

/** The record's MX and TLS blocks against the receiver's socket and OpenSSL's reading of its certificate. */
function expectRecordAgrees(record: DeliveryRecord, w: Witness): OpensslVerdict {
  // The address and listener that took the DATA are the ones the record names.
  expect(record.mx).toMatchObject({ ip: w.session.localAddress, port: w.session.localPort });
  // The SNI the receiver got is the MX host name the record names (RFC 7817: the name checked).
  expect(w.session.servername).toBe(record.mx!.host);

  expect(w.session.secure).toBe(true);
  const served = new X509Certificate(w.mx.certPem!);
  // The socket served the certificate this MX was given.
  expect(w.session.servedCertFingerprint256).toBe(served.fingerprint256);
  const cipher = ciphers.get(w.session.cipher!);
  if (!cipher) throw new Error(`OpenSSL does not know cipher ${w.session.cipher}`);
  expect(cipher.standardName).toBe(w.session.standardCipher);
  const verdict = opensslVerify(w.mx.certPem!, record.mx!.host);

  expect(record.tls).toMatchObject({
    protocol: w.session.protocol,
    cipher: w.session.cipher,
    bits: cipher.bits,
    authorized: verdict.ok,
    peerCertSubject: served.subject.split('\n').join(', '),
    peerCertFingerprint256: w.session.servedCertFingerprint256,
    peerCertNotAfter: new Date(served.validTo).toISOString(),
  });
  expect(record.tls!.authorizationError === null).toBe(verdict.ok);
  // And the receiver's own Received: line names the same TLS.
  expect(w.message.receivedHeader).toContain(`(using ${record.tls!.protocol} with cipher ${record.tls!.cipher})`);
  return verdict;
}

describe('the DeliveryRecord equals what the receiving MX witnessed', () => {
  let dns: DnsStub;
  let web: PolicyServer;
  let mxs: MxSet;
  let relay: TestRelay;
  /** Connections the busy MX turned away with 421 before its greeting. */
  let busyRefusals = 0;

  beforeAll(async () => {
    ciphers = opensslCiphers();
    mxs = await startMxSet([
      { kind: 'tls13', name: 'mx.verified.test' },
      // TLS 1.2 with a 128-bit suite, so bits differ from the TLS 1.3 MXs' 256.
      { kind: 'selfsigned', name: 'mx.selfsigned.test', serverOptions: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' } },
      {
        kind: 'tls13',
        name: 'mx.busy.test',
        serverOptions: {
          onConnect(_session: SMTPServerSession, callback: (err?: Error | null) => void) {
            busyRefusals++;
            callback(Object.assign(new Error('4.3.2 Service currently unavailable'), { responseCode: 421 }));
          },
        },
      },
      { kind: 'tls12', name: 'mx.backup.test' },
      // The domain's own name is its implicit MX, and its certificate names it.
      { kind: 'tls13', name: 'implicit.test' },
      { kind: 'tls13', name: 'mx.unlisted.test' },
      { kind: 'tls13', name: 'mx.sts.test' },
    ]);
    const a = (name: string) => ({ A: [mxs.byName(name).host] });
    web = await startPolicyServer({ ca: sharedTestCa() });
    dns = await startDnsStub({
      'verified.test': { MX: [{ preference: 10, exchange: 'mx.verified.test' }] },
      'selfsigned.test': { MX: [{ preference: 10, exchange: 'mx.selfsigned.test' }] },
      // The preferred MX answers 421: the backup must take the message.
      'fallback.test': { MX: [{ preference: 20, exchange: 'mx.backup.test' }, { preference: 10, exchange: 'mx.busy.test' }] },
      // No MX record at all (RFC 5321 §5.1): the A record is the MX.
      'implicit.test': a('implicit.test'),
      // The preferred MX is live and would take mail, but the MTA-STS policy does not list it.
      'sts.test': { MX: [{ preference: 10, exchange: 'mx.unlisted.test' }, { preference: 20, exchange: 'mx.sts.test' }] },
      '_mta-sts.sts.test': { TXT: ['v=STSv1; id=ev1;'] },
      'mta-sts.sts.test': { A: ['127.0.0.1'] },
      ...Object.fromEntries(['mx.verified.test', 'mx.selfsigned.test', 'mx.busy.test', 'mx.backup.test', 'mx.unlisted.test', 'mx.sts.test'].map((n) => [n, a(n)])),
    });
    web.set('sts.test', policyText({ mode: 'enforce', mx: STS_POLICY_MX, maxAge: 86400 }));
    relay = await startTestRelay(
      testConfig({
        delivery: { port: mxs.port, dns: { servers: [dns.server] }, retry: { first_seconds: 3600 } },
        mta_sts: { enabled: true, ca_file: writeTemp('evidence-sts-ca.pem', sharedTestCa().certPem), https_port: web.port, timeout_ms: 3000 },
        policies: { domains: { 'verified.test': { mode: 'forced', verification: 'ca' } } },
        crypto: { wkd: { enabled: false } },
      }),
    );
  }, 30_000);

  afterAll(async () => {
    await relay?.close();
    await web?.close();
    await mxs?.close();
    await dns?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const deliver = async (to: string): Promise<DeliveryRecord> => {
    const id = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: [to] }));
    const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === id), 15_000);
    return records.find((x) => x.queueId === id)!;
  };

  it('CA-signed MX under verification ca: verified, and every TLS fact is the receiver’s', async () => {
    const record = await deliver('pat@verified.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'tls', decision: { mode: 'forced', verification: 'ca' }, mx: { host: 'mx.verified.test', preference: 10 } });
    const verdict = expectRecordAgrees(record, witness(mxs.byName('mx.verified.test'), 'pat@verified.test'));
    expect(verdict).toMatchObject({ ok: true, error: null });
    expect(record.tls).toMatchObject({ authorized: true, authorizationError: null });
  });

  it('self-signed MX under opportunistic: delivered over TLS, recorded as unverified with OpenSSL’s reason', async () => {
    const record = await deliver('pat@selfsigned.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'tls', decision: { mode: 'opportunistic', verification: 'none' }, mx: { host: 'mx.selfsigned.test' } });
    const w = witness(mxs.byName('mx.selfsigned.test'), 'pat@selfsigned.test');
    const verdict = expectRecordAgrees(record, w);
    // X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT (18): the same verdict under the same name.
    expect(verdict).toMatchObject({ ok: false, error: 18 });
    expect(record.tls).toMatchObject({ authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT', bits: 128 });
    // What the receiver served is its own issuer, signed by its own key.
    const served = new X509Certificate(w.mx.certPem!);
    expect(served.issuer).toBe(served.subject);
    expect(served.verify(served.publicKey)).toBe(true);
  });

  it('next-MX fallback: the preferred MX refused, the backup received it, and the record names the backup', async () => {
    const refusedBefore = busyRefusals;
    const record = await deliver('pat@fallback.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'tls', mx: { host: 'mx.backup.test', preference: 20 } });
    expectRecordAgrees(record, witness(mxs.byName('mx.backup.test'), 'pat@fallback.test'));
    // The preferred MX was tried first and took nothing.
    expect(busyRefusals).toBeGreaterThan(refusedBefore);
    expect(mxs.byName('mx.busy.test').received).toHaveLength(0);
    expect(record.mx!.ip).not.toBe(mxs.byName('mx.busy.test').host);
  });

  it('implicit MX: no MX record, the domain’s A record received it, and the record says so', async () => {
    const record = await deliver('pat@implicit.test');
    // RFC 5321 §5.1: the implicit MX counts as preference 0 (resolve-mx.ts).
    expect(record).toMatchObject({ outcome: 'delivered', method: 'tls', mx: { host: 'implicit.test', preference: 0 } });
    const verdict = expectRecordAgrees(record, witness(mxs.byName('implicit.test'), 'pat@implicit.test'));
    expect(verdict.ok).toBe(true);
    expect(dns.queries.some((q) => q.name.toLowerCase() === 'implicit.test' && q.type === 'MX')).toBe(true);
  });

  it('MTA-STS enforce: the receiver that got it is the policy’s MX, with a certificate that verifies', async () => {
    const record = await deliver('pat@sts.test');
    expect(record).toMatchObject({
      outcome: 'delivered',
      method: 'tls',
      decision: { verification: 'mta-sts' },
      mtaSts: { mode: 'enforce', id: 'ev1', result: 'pass' },
      mx: { host: 'mx.sts.test', preference: 20 },
    });
    const w = witness(mxs.byName('mx.sts.test'), 'pat@sts.test');
    expect(STS_POLICY_MX).toContain(w.mx.name);
    expect(expectRecordAgrees(record, w).ok).toBe(true);
    expect(record.tls).toMatchObject({ authorized: true, authorizationError: null });
    // The preferred MX the policy does not list never even saw a connection.
    expect(mxs.byName('mx.unlisted.test').sessions).toHaveLength(0);
  });
});

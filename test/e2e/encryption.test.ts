// End-to-end encryption through the whole relay: the fallback chain of `forced`
// against an MX without STARTTLS (PGP key → PGP; only an S/MIME certificate →
// S/MIME; neither → deferred, nothing in the clear), the pgp/smime modes on top of
// TLS ("double encryption"), a pgp recipient without a key (bounce, DSN without
// body), and a key discovered through WKD. What the receiving MX got is opened
// with gpg and `openssl cms`, the independent tools recipients use.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKeyFile } from '../../src/crypto/keys.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { createGpgHome, type GpgHome, type GpgKey } from '../helpers/gpg.ts';
import { startMxSet, type MxSet, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';
import { writeTemp } from '../helpers/test-ca.ts';
import { issueSmimeCert, type SmimeCert } from '../helpers/smime-certs.ts';
import { startWkdServer, advancedPath, type WkdServer } from '../helpers/wkd-server.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { dkimKeygen } from '../../src/crypto/dkim.ts';
import { wkdHash } from '../../src/crypto/wkd.ts';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import dns from 'node:dns';

const CONTENT = [
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="outer-b"',
  '',
  '--outer-b',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: 8bit',
  '',
  'Your lab results are attached. Glucose: 5.4 mmol/L — normal.',
  '--outer-b',
  'Content-Type: application/octet-stream; name="results.bin"',
  'Content-Transfer-Encoding: base64',
  'Content-Disposition: attachment; filename="results.bin"',
  '',
  // Deterministic "binary" attachment: every byte value, several times.
  ...Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256))
    .toString('base64')
    .match(/.{1,76}/g)!,
  '--outer-b--',
  '',
].join('\r\n');
/** The MIME entity the recipient must get back: the content headers and the body, byte for byte. */
const ENTITY = CONTENT.replace('MIME-Version: 1.0\r\n', '');

const message = (to: string) => `From: <lab@clinic.test>\r\nTo: <${to}>\r\nSubject: Lab results\r\n${CONTENT}`;

let gpg: GpgHome;
let pgpKey: GpgKey;
let smime: SmimeCert;
let smimeTls: SmimeCert;
let smimeFallback: SmimeCert;
let mxs: MxSet;
let relay: TestRelay;
let work: string;

const plainMx = () => mxs.byName('mx.plain.test');
const tlsMx = () => mxs.byName('mx.tls.test');
/** Messages the MX received for one recipient. */
const receivedBy = (mx: StartedMx, rcpt: string) => mx.received.filter((m) => m.envelope.to.includes(rcpt));

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'sealrelay-e2e-crypto-'));
  gpg = createGpgHome();
  pgpKey = await gpg.generateKey({ uid: 'Pat <pat@plain.test>' });
  const pgpTls = await gpg.generateKey({ uid: 'Pat <pat@tls.test>' });
  const pgpUntrusted = await gpg.generateKey({ uid: 'Pat <pat@untrusted.test>' });
  const pgpWeak = await gpg.generateKey({ uid: 'Pat <pat@weak.test>' });
  smime = issueSmimeCert({ email: 'sam@plain.test' });
  smimeTls = issueSmimeCert({ email: 'sam@tls.test' });
  smimeFallback = issueSmimeCert({ email: 'fallback@tls.test' });
  mxs = await startMxSet([
    { kind: 'plain', name: 'mx.plain.test' },
    { kind: 'tls13', name: 'mx.tls.test' },
    { kind: 'selfsigned', name: 'mx.untrusted.test' },
    { kind: 'weak', name: 'mx.weak.test' },
  ]);
  const at = (n: string) => `${mxs.byName(n).host}:${mxs.port}`;
  const config = testConfig({
    // Bounces to the sender's domain land on the TLS MX, where the test reads them.
    delivery: {
      routes: { 'plain.test': at('mx.plain.test'), 'tls.test': at('mx.tls.test'), 'clinic.test': at('mx.tls.test'), 'untrusted.test': at('mx.untrusted.test'), 'weak.test': at('mx.weak.test') },
      retry: { first_seconds: 3600 },
    },
    policies: {
      default: { mode: 'forced' },
      domains: { 'untrusted.test': { mode: 'forced', verification: 'ca' } },
      rules: [
        { name: 'pgp-tls', match: { recipient: 'pat@tls.test' }, mode: 'pgp' },
        { name: 'pgp-only', match: { recipient: 'nokey@tls.test' }, mode: 'pgp' },
        { name: 'smime-tls', match: { recipient: 'sam@tls.test' }, mode: 'smime' },
        { name: 'pgp-or-smime', match: { recipient: 'fallback@tls.test' }, mode: 'pgp', fallback: ['smime'] },
      ],
    },
    crypto: { wkd: { enabled: false } },
  });
  // Keys go into the relay's store before it starts, as `sealrelay keys import` would put them.
  const store = new SqliteStore(config.store.path);
  const keyFiles = [pgpKey.publicArmored, pgpTls.publicArmored, pgpUntrusted.publicArmored, pgpWeak.publicArmored, smime.certPem, smimeTls.certPem, smimeFallback.certPem];
  for (const file of keyFiles) {
    const parsed = await parseKeyFile(Buffer.from(file), { source: 'import', now: Date.now() });
    expect(parsed.problems).toEqual([]);
    for (const key of parsed.keys) await store.putKey(key);
  }
  await store.close();
  relay = await startTestRelay(config);
}, 60_000);

afterAll(async () => {
  await relay?.close();
  await mxs?.close();
  await gpg?.close();
});

async function deliver(to: string) {
  const id = queueIdOf(await submit({ port: relay.port, from: 'lab@clinic.test', to: [to], body: message(to) }));
  const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === id && x.recipient === to));
  return { id, record: records.find((r) => r.queueId === id && r.recipient === to)! };
}

function decryptCms(raw: Buffer, cert: SmimeCert): string {
  const dir = mkdtempSync(join(work, 'cms-'));
  writeFileSync(join(dir, 'in.eml'), raw);
  writeFileSync(join(dir, 'cert.pem'), cert.certPem);
  writeFileSync(join(dir, 'key.pem'), cert.keyPem);
  return execFileSync('openssl', ['cms', '-decrypt', '-in', join(dir, 'in.eml'), '-recip', join(dir, 'cert.pem'), '-inkey', join(dir, 'key.pem')]).toString('utf8');
}

describe('forced toward an MX without STARTTLS: the fallback chain', () => {
  it('recipient with a PGP key → PGP/MIME over plaintext; gpg decrypts the original entity', async () => {
    const { record } = await deliver('pat@plain.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'pgp', decision: { mode: 'forced', fallbackChain: ['pgp', 'smime', 'portal'] }, starttlsOffered: false, tls: null });
    expect(record.encryption).toMatchObject({ method: 'pgp', keyFingerprint: pgpKey.fingerprint, keySource: 'import' });
    expect(record.fallback?.reason).toMatch(/^forced: no acceptable TLS on any MX host/);
    expect(record.fallback?.tried).toEqual([`pgp: key ${pgpKey.fingerprint} (import)`]);

    const [got] = receivedBy(plainMx(), 'pat@plain.test');
    const raw = got!.raw.toString('latin1');
    expect(raw).toMatch(/^Content-Type: multipart\/encrypted;[^]*protocol="application\/pgp-encrypted"/m);
    expect(raw).not.toContain('Glucose');
    const armored = /-----BEGIN PGP MESSAGE-----[^]*?-----END PGP MESSAGE-----/.exec(raw)![0];
    const clear = await gpg.decrypt(armored);
    expect(clear.output.toString('utf8')).toBe(ENTITY);
  });

  it('recipient with only an S/MIME certificate → S/MIME; openssl cms decrypts the original entity', async () => {
    const { record } = await deliver('sam@plain.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'smime', tls: null });
    expect(record.encryption).toMatchObject({ method: 'smime', keySource: 'import' });
    expect(record.fallback?.tried).toHaveLength(2);
    expect(record.fallback?.tried[0]).toMatch(/^pgp: no OpenPGP key for sam@plain.test/);
    expect(record.fallback?.tried[1]).toMatch(/^smime: key [0-9A-F]{64} \(import\)$/);

    const [got] = receivedBy(plainMx(), 'sam@plain.test');
    expect(got!.raw.toString('latin1')).toMatch(/^Content-Type: application\/pkcs7-mime;[^]*smime-type=enveloped-data/m);
    expect(got!.raw.toString('latin1')).not.toContain('Glucose');
    expect(decryptCms(got!.raw, smime)).toBe(ENTITY);
  });

  it('neither key nor certificate → deferred, the record says what was tried, nothing sent', async () => {
    const { record } = await deliver('nobody@plain.test');
    expect(record).toMatchObject({ outcome: 'deferred', method: 'none', decision: { mode: 'forced' } });
    expect(record.fallback?.tried.map((t) => t.split(':')[0])).toEqual(['pgp', 'smime', 'portal']);
    expect(record.smtp.response).toMatch(/fallback: pgp: no OpenPGP key for nobody@plain\.test; smime: no S\/MIME certificate[^;]*; portal: not configured \(portal\.master_keys\)$/);
    expect(receivedBy(plainMx(), 'nobody@plain.test')).toHaveLength(0);
  });
});

describe('forced toward an MX whose TLS is not acceptable: the sealed copy still goes', () => {
  it('certificate not trusted under verification ca → PGP over that TLS, unverified (the content is sealed)', async () => {
    const { record } = await deliver('pat@untrusted.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'pgp+tls', decision: { mode: 'forced', verification: 'ca' }, encryption: { method: 'pgp' } });
    expect(record.fallback?.reason).toMatch(/not trusted|certificate/);
    expect(record.tls?.authorized).toBe(false);
    const [got] = receivedBy(mxs.byName('mx.untrusted.test'), 'pat@untrusted.test');
    expect(record.tls).toMatchObject({ protocol: got!.tls!.protocol, cipher: got!.tls!.cipher });
    const armored = /-----BEGIN PGP MESSAGE-----[^]*?-----END PGP MESSAGE-----/.exec(got!.raw.toString('latin1'))![0];
    expect((await gpg.decrypt(armored)).output.toString('utf8')).toBe(ENTITY);
  });

  it('only TLS below the floor → PGP in plaintext, never over the weak TLS; the record says why', async () => {
    const { record } = await deliver('pat@weak.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'pgp', tls: null, encryption: { method: 'pgp' } });
    expect(record.fallback?.reason).toMatch(/^forced: no acceptable TLS on any MX host/);
    const [got] = receivedBy(mxs.byName('mx.weak.test'), 'pat@weak.test');
    expect(got!.tls).toBeNull();
    expect(got!.raw.toString('latin1')).not.toContain('Glucose');
  });
});

describe('pgp and smime modes: encrypted, then TLS on top', () => {
  it('pgp toward a TLS MX → pgp+tls; the record quotes the TLS of the live socket', async () => {
    const { record } = await deliver('pat@tls.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'pgp+tls', fallback: null, decision: { mode: 'pgp', rule: 'rule:pgp-tls' } });
    const [got] = receivedBy(tlsMx(), 'pat@tls.test');
    expect(record.tls).toMatchObject({ protocol: got!.tls!.protocol, cipher: got!.tls!.cipher });
    const armored = /-----BEGIN PGP MESSAGE-----[^]*?-----END PGP MESSAGE-----/.exec(got!.raw.toString('latin1'))![0];
    expect((await gpg.decrypt(armored)).output.toString('utf8')).toBe(ENTITY);
  });

  it('forced toward a TLS MX is plain TLS: nothing to fall back from', async () => {
    const { record } = await deliver('other@tls.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'tls', encryption: null, fallback: null });
  });

  it('smime toward a TLS MX → smime+tls with the TLS facts the MX saw; openssl cms decrypts the original entity', async () => {
    const { record } = await deliver('sam@tls.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'smime+tls', fallback: null, decision: { mode: 'smime', rule: 'rule:smime-tls' } });
    const [got] = receivedBy(tlsMx(), 'sam@tls.test');
    expect(record.tls).toMatchObject({ protocol: got!.tls!.protocol, cipher: got!.tls!.cipher });
    expect(got!.raw.toString('latin1')).not.toContain('Glucose');
    expect(decryptCms(got!.raw, smimeTls)).toBe(ENTITY);
  });

  it('a pgp rule with fallback smime uses S/MIME when no PGP key is held; openssl cms decrypts the original entity', async () => {
    const { record } = await deliver('fallback@tls.test');
    expect(record).toMatchObject({ outcome: 'delivered', method: 'smime+tls', encryption: { method: 'smime' } });
    expect(record.fallback?.reason).toMatch(/^pgp: no OpenPGP key/);
    const [got] = receivedBy(tlsMx(), 'fallback@tls.test');
    expect(record.tls).toMatchObject({ protocol: got!.tls!.protocol, cipher: got!.tls!.cipher });
    expect(got!.raw.toString('latin1')).not.toContain('Glucose');
    expect(decryptCms(got!.raw, smimeFallback)).toBe(ENTITY);
  });

  it('pgp without a key and no fallback bounces with 5.7.5; the DSN to the sender carries no body', async () => {
    const { record } = await deliver('nokey@tls.test');
    expect(record).toMatchObject({ outcome: 'bounced', method: 'none', smtp: { code: 554, enhanced: '5.7.5' } });
    expect(record.smtp.response).toMatch(/^pgp required: pgp: no OpenPGP key for nokey@tls\.test/);
    const [dsn] = await waitUntil(() => receivedBy(tlsMx(), 'lab@clinic.test'));
    const text = dsn!.raw.toString('latin1');
    expect(text).toMatch(/multipart\/report; report-type=delivery-status/);
    expect(text).toContain('nokey@tls.test');
    expect(text).toMatch(/5\.7\.5/);
    expect(text).not.toContain('Glucose');
  });
});

async function waitUntil<T>(get: () => T[], timeoutMs = 10_000): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = get();
    if (got.length) return got;
    if (Date.now() > deadline) throw new Error('nothing arrived');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('a key discovered through WKD, and DKIM over what is actually sent', () => {
  let dnsStub: DnsStub;
  let wkd: WkdServer;
  let wkdRelay: TestRelay;
  let wkdKey: GpgKey;

  beforeAll(async () => {
    dnsStub = await startDnsStub();
    wkd = await startWkdServer();
    wkdKey = await gpg.generateKey({ uid: 'Kim <kim@wkd.test>' });
    const binary = (await gpg.run(['--export', wkdKey.fingerprint])).output;
    wkd.serve('openpgpkey.wkd.test', advancedPath('wkd.test', wkdHash('kim')), new Uint8Array(binary));
    dnsStub.set('openpgpkey.wkd.test', 'A', [wkd.host]);
    const dkim = dkimKeygen('clinic.test', { selector: 'sealrelay', type: 'rsa' });
    dnsStub.set(dkim.dnsName, 'TXT', [dkim.dnsTxt]);
    const keyFile = join(work, 'dkim-clinic.test.key');
    writeFileSync(keyFile, dkim.privateKeyPem, { mode: 0o600 });
    wkdRelay = await startTestRelay(
      testConfig({
        delivery: { routes: { 'wkd.test': `${tlsMx().host}:${mxs.port}` }, dns: { servers: [dnsStub.server], timeout_ms: 2000 }, retry: { first_seconds: 3600 } },
        policies: { rules: [{ name: 'wkd-pgp', match: { recipient_domain: 'wkd.test' }, mode: 'pgp' }] },
        crypto: { wkd: { enabled: true, ca_file: writeTemp('wkd-ca.pem', wkd.caPem), https_port: wkd.port, timeout_ms: 3000 } },
        dkim: { domains: { 'clinic.test': { selector: 'sealrelay', key_file: keyFile } } },
      }),
    );
  }, 60_000);

  afterAll(async () => {
    await wkdRelay?.close();
    await wkd?.close();
    await dnsStub?.close();
  });

  const verifyDkim = async (raw: Buffer) => {
    const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([dnsStub.server]);
    return (await dkimVerify(raw, { resolver: (name: string, rrtype: string) => resolver.resolve(name, rrtype) as Promise<string[][]> })).results;
  };

  it('a pgp recipient without a stored key: WKD finds it, the copy is encrypted to it, the store keeps it', async () => {
    const id = queueIdOf(await submit({ port: wkdRelay.port, from: 'lab@clinic.test', to: ['kim@wkd.test'], body: message('kim@wkd.test') }));
    const [record] = (await wkdRelay.waitForRecords((r) => r.some((x) => x.queueId === id))).filter((x) => x.queueId === id);
    expect(record).toMatchObject({ outcome: 'delivered', method: 'pgp+tls', encryption: { method: 'pgp', keyFingerprint: wkdKey.fingerprint, keySource: 'wkd' } });
    expect(wkd.requests.map((r) => r.host)).toEqual(['openpgpkey.wkd.test']);

    const [got] = receivedBy(tlsMx(), 'kim@wkd.test');
    const armored = /-----BEGIN PGP MESSAGE-----[^]*?-----END PGP MESSAGE-----/.exec(got!.raw.toString('latin1'))![0];
    expect((await gpg.decrypt(armored)).output.toString('utf8')).toBe(ENTITY);

    // DKIM signed the encrypted message as delivered: an independent verifier agrees.
    const [result] = await verifyDkim(got!.raw);
    expect(result?.status.result).toBe('pass');
    expect(result?.signingDomain).toBe('clinic.test');
    // Tampering with what was delivered breaks it (the check can fail).
    const tampered = Buffer.from(got!.raw.toString('latin1').replace('Subject: Lab results', 'Subject: Lab resultz'), 'latin1');
    expect((await verifyDkim(tampered))[0]?.status.result).not.toBe('pass');

    // A second message to the same recipient uses the stored key: no new lookup.
    const again = queueIdOf(await submit({ port: wkdRelay.port, from: 'lab@clinic.test', to: ['kim@wkd.test'], body: message('kim@wkd.test') }));
    await wkdRelay.waitForRecords((r) => r.some((x) => x.queueId === again && x.outcome === 'delivered'));
    expect(wkd.requests).toHaveLength(1);
  });
});

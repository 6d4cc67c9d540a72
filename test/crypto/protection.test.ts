// loadProtection with configs made the way the relay makes them (testConfig), key
// files written to a temp dir: every bad file is refused at load with its setting
// named, and what the loaded Protection sends is read back by the tools recipients
// run — gpg for PGP/MIME, openssl cms for S/MIME, mailauth over the DNS stub for DKIM.
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import dns from 'node:dns';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.ts';
import { ByteBudget } from '../../src/crypto/byte-budget.ts';
import { parseKeyFile } from '../../src/crypto/keys.ts';
import { loadProtection, ProtectionConfigError, type Encrypted } from '../../src/crypto/protection.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { createGpgHome, type GpgHome, type GpgKey } from '../helpers/gpg.ts';
import { testConfig } from '../helpers/relay.ts';
import { issueSmimeCert, sharedSmimeCa, type SmimeCert } from '../helpers/smime-certs.ts';

const PASSPHRASE = 'correct horse battery staple';
const SENDER_DOMAIN = 'sender.example';
const SELECTOR = 'sel2026';
const ENTITY = 'Content-Type: text/plain; charset=utf-8\r\n\r\nLab results: confidential\r\n';

/** A queued message (CRLF lines) to `to`, from `from`. */
function message(to: string, from = `results@${SENDER_DOMAIN}`): Buffer {
  return Buffer.from(`From: <${from}>\r\nTo: <${to}>\r\nSubject: results\r\nDate: Thu, 01 Jan 2026 10:00:00 +0000\r\nMessage-ID: <m1@${SENDER_DOMAIN}>\r\nMIME-Version: 1.0\r\n${ENTITY}`);
}

/** Recipient, archive holder and relay each have a GnuPG home of their own: a decryption proves that party's key. */
let recipientHome: GpgHome;
let archiveHome: GpgHome;
let relayHome: GpgHome;
let recipient: GpgKey;
let archive: GpgKey;
let lockedSigner: { fingerprint: string; armoredSecret: string; publicArmored: string };
let smimeRecipient: SmimeCert;
let smimeArchive: SmimeCert;
let smimeSigner: SmimeCert;
let dkimPem: string;
let dnsStub: DnsStub;
let resolver: dns.promises.Resolver;
let dir: string;
const stores: SqliteStore[] = [];
const configs: Config[] = [];
let serial = 0;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealrelay-protection-'));
  [recipientHome, archiveHome, relayHome] = [createGpgHome(), createGpgHome(), createGpgHome()];
  recipient = await recipientHome.generateKey({ uid: 'Patient <patient@clinic.invalid>' });
  archive = await archiveHome.generateKey({ uid: 'Archive <archive@sender.example>', algo: 'rsa3072' });
  lockedSigner = await passphraseSignOnlyKey(relayHome, 'Relay <relay@sender.example>', PASSPHRASE);
  smimeRecipient = issueSmimeCert({ email: 'patient@clinic.invalid' });
  smimeArchive = issueSmimeCert({ email: 'archive@sender.example' });
  smimeSigner = issueSmimeCert({ email: 'relay@sender.example' });
  dkimPem = execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']).toString();
  dnsStub = await startDnsStub();
  resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([dnsStub.server]);
}, 120_000);

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await Promise.all([recipientHome, archiveHome, relayHome].map((h) => h?.close()));
  await dnsStub?.close();
  // testConfig makes a directory per config for its store; nothing is written there.
  for (const config of configs) fs.rmSync(path.dirname(config.store.path), { recursive: true, force: true });
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** A sign-only key (no encryption subkey) protected by `passphrase`, made by gpg; its armored secret key. */
async function passphraseSignOnlyKey(home: GpgHome, uid: string, passphrase: string): Promise<{ fingerprint: string; armoredSecret: string; publicArmored: string }> {
  // gpg takes the last --passphrase given: this one, not the helper's empty one.
  const made = await home.run(['--passphrase', passphrase, '--quick-gen-key', uid, 'ed25519', 'cert,sign', 'never']);
  const fingerprint = /^KEY_CREATED P ([0-9A-F]{40})/m.exec(made.status.join('\n'))?.[1];
  if (made.code !== 0 || !fingerprint) throw new Error(`gpg made no key:\n${made.log}`);
  const exported = await home.run(['--passphrase', passphrase, '--armor', '--export-secret-keys', fingerprint]);
  if (exported.code !== 0) throw new Error(`gpg exported no key:\n${exported.log}`);
  return { fingerprint, armoredSecret: exported.output.toString(), publicArmored: await home.exportPublic(fingerprint) };
}

function writeFile(name: string, content: string | Buffer): string {
  const file = path.join(dir, `${++serial}-${name}`);
  fs.writeFileSync(file, content);
  return file;
}

const missing = (name: string) => path.join(dir, `absent-${++serial}-${name}`);

/** A config as the relay loads it, WKD off (no lookups leave these tests). */
function config(over: { crypto?: Record<string, unknown>; dkim?: Record<string, unknown> }): Config {
  const made = testConfig({ ...over, crypto: { wkd: { enabled: false }, ...over.crypto } });
  configs.push(made);
  return made;
}

function freshStore(): SqliteStore {
  const store = new SqliteStore(path.join(dir, `store-${++serial}.db`));
  stores.push(store);
  return store;
}

async function importInto(store: SqliteStore, text: string): Promise<void> {
  const parsed = await parseKeyFile(Buffer.from(text), { source: 'import', now: Date.now(), known: (f) => store.getKey(f) });
  expect(parsed.problems).toEqual([]);
  for (const key of parsed.keys) await store.putKey(key);
}

async function loadError(made: Config): Promise<ProtectionConfigError> {
  const error = await loadProtection(made, freshStore()).then(
    () => null,
    (err: unknown) => err,
  );
  if (!(error instanceof ProtectionConfigError)) throw new Error(`expected a ProtectionConfigError, got ${String(error)}`);
  return error;
}

function encrypted(result: Encrypted): Buffer {
  if (!result.ok) throw new Error(`not encrypted: ${result.why}`);
  return result.message;
}

function armoredPayload(pgpMime: Buffer): string {
  const armor = /-----BEGIN PGP MESSAGE-----[\s\S]*?-----END PGP MESSAGE-----/.exec(pgpMime.toString('latin1'))?.[0];
  if (!armor) throw new Error('no armored OpenPGP message in the PGP/MIME message');
  return armor;
}

function openssl(args: string[]): { status: number | null; stdout: Buffer; stderr: string } {
  const result = spawnSync('openssl', args);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.toString() };
}

describe('a bad key file is refused at load, naming its setting and the file', () => {
  const pgp = (files: Record<string, string>) => ({ crypto: { pgp: files } });
  const smime = (files: Record<string, string>) => ({ crypto: { smime: files } });
  const dkim = (keyFile: string) => ({ dkim: { domains: { [SENDER_DOMAIN]: { selector: SELECTOR, key_file: keyFile } } } });
  const signerCert = () => writeFile('signer.crt', smimeSigner.certPem);
  const signerKey = () => writeFile('signer.key', smimeSigner.keyPem);

  const missingFiles: [string, (file: string) => Parameters<typeof config>[0]][] = [
    ['crypto.pgp.archive_key_file', (file) => pgp({ archive_key_file: file })],
    ['crypto.pgp.signing_key_file', (file) => pgp({ signing_key_file: file })],
    ['crypto.pgp.signing_passphrase_file', (file) => pgp({ signing_key_file: writeFile('signer.asc', lockedSigner.armoredSecret), signing_passphrase_file: file })],
    ['crypto.smime.archive_cert_file', (file) => smime({ archive_cert_file: file })],
    ['crypto.smime.signing_cert_file', (file) => smime({ signing_cert_file: file, signing_key_file: signerKey() })],
    ['crypto.smime.signing_key_file', (file) => smime({ signing_cert_file: signerCert(), signing_key_file: file })],
    [`dkim.domains.${SENDER_DOMAIN}.key_file`, (file) => dkim(file)],
  ];
  it.each(missingFiles)('a missing file: %s', async (setting, over) => {
    const file = missing('key');
    const error = await loadError(config(over(file)));
    expect(error).toMatchObject({ setting, file, message: `${setting}: ${file}: no such file` });
  });

  const badFiles: [string, string, () => Parameters<typeof config>[0], RegExp][] = [
    ['a DKIM key that is not PEM', `dkim.domains.${SENDER_DOMAIN}.key_file`, () => dkim(writeFile('dkim.pem', 'not a key\n')), /not an unencrypted PEM private key/],
    [
      'a DKIM key under a passphrase',
      `dkim.domains.${SENDER_DOMAIN}.key_file`,
      () => dkim(writeFile('dkim.pem', crypto.createPrivateKey(dkimPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASSPHRASE }))),
      /not an unencrypted PEM private key/,
    ],
    [
      'an EC DKIM key',
      `dkim.domains.${SENDER_DOMAIN}.key_file`,
      () => dkim(writeFile('dkim.pem', crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }))),
      /ec keys cannot sign DKIM \(use RSA or Ed25519\)/,
    ],
    ['a PGP archive key that is not a key', 'crypto.pgp.archive_key_file', () => pgp({ archive_key_file: writeFile('archive.asc', 'hello\n') }), /is not a readable OpenPGP key/],
    [
      'a sign-only PGP archive key',
      'crypto.pgp.archive_key_file',
      () => pgp({ archive_key_file: writeFile('archive.asc', lockedSigner.publicArmored) }),
      /has no usable encryption subkey/,
    ],
    [
      'a passphrase-protected PGP signing key without its passphrase file',
      'crypto.pgp.signing_key_file',
      () => pgp({ signing_key_file: writeFile('signer.asc', lockedSigner.armoredSecret) }),
      /is passphrase-protected and no passphrase was given/,
    ],
    [
      'a PGP signing key with the wrong passphrase',
      'crypto.pgp.signing_key_file',
      () => pgp({ signing_key_file: writeFile('signer.asc', lockedSigner.armoredSecret), signing_passphrase_file: writeFile('pass', 'wrong\n') }),
      /could not be unlocked/,
    ],
    ['a PGP signing key that is only a public key', 'crypto.pgp.signing_key_file', () => pgp({ signing_key_file: writeFile('signer.asc', recipient.publicArmored) }), /is not a readable OpenPGP private key/],
    [
      'an S/MIME signing certificate with the key of another certificate',
      'crypto.smime.signing_cert_file',
      () => smime({ signing_cert_file: signerCert(), signing_key_file: writeFile('other.key', smimeRecipient.keyPem) }),
      /signer key does not belong to the signer certificate/,
    ],
    ['an S/MIME signing certificate that is garbage', 'crypto.smime.signing_cert_file', () => smime({ signing_cert_file: writeFile('signer.crt', 'garbage\n'), signing_key_file: signerKey() }), /expected one PEM CERTIFICATE block, found 0/],
    ['an S/MIME signing key that is garbage', 'crypto.smime.signing_key_file', () => smime({ signing_cert_file: signerCert(), signing_key_file: writeFile('signer.key', 'garbage\n') }), /not an unencrypted private key in PEM/],
    [
      'an S/MIME signing key under a passphrase',
      'crypto.smime.signing_key_file',
      () => smime({ signing_cert_file: signerCert(), signing_key_file: writeFile('signer.key', crypto.createPrivateKey(smimeSigner.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASSPHRASE })) }),
      /not an unencrypted private key in PEM/,
    ],
    [
      'an S/MIME signing key that is not RSA',
      'crypto.smime.signing_key_file',
      () => smime({ signing_cert_file: signerCert(), signing_key_file: writeFile('signer.key', crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' })) }),
      /ec key; S\/MIME signing \(node-forge\) needs an RSA key/,
    ],
    ['an S/MIME archive certificate that is garbage', 'crypto.smime.archive_cert_file', () => smime({ archive_cert_file: writeFile('archive.crt', 'garbage\n') }), /expected one PEM CERTIFICATE block, found 0/],
  ];
  it.each(badFiles)('%s', async (_name, setting, over, reason) => {
    const made = config(over());
    const error = await loadError(made);
    expect(error.setting).toBe(setting);
    const file = setting.startsWith('dkim.') ? made.dkim.domains[SENDER_DOMAIN]!.key_file : (setting.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], made) as string);
    expect(error.file).toBe(file);
    expect(error.message.startsWith(`${setting}: ${file}: `)).toBe(true);
    expect(error.message).toMatch(reason);
  });
});

describe('a loaded Protection', () => {
  const dkimConfig = () => ({ domains: { [SENDER_DOMAIN]: { selector: SELECTOR, key_file: writeFile('dkim.pem', dkimPem) } } });

  it('accepts a sign-only PGP signing key with its passphrase file, and signs with it (gpg verifies)', async () => {
    const store = freshStore();
    await importInto(store, recipient.publicArmored);
    const protection = await loadProtection(
      config({ crypto: { pgp: { signing_key_file: writeFile('signer.asc', lockedSigner.armoredSecret), signing_passphrase_file: writeFile('pass', `${PASSPHRASE}\n`) } } }),
      store,
    );
    const result = await protection.encrypt('pgp', 'patient@clinic.invalid', message('patient@clinic.invalid'));
    expect(result).toMatchObject({ ok: true, signed: true, keyFingerprint: recipient.fingerprint, keySource: 'import' });
    await recipientHome.importKey(lockedSigner.publicArmored);
    const read = await recipientHome.decrypt(armoredPayload(encrypted(result)));
    expect(read.output.toString('latin1')).toBe(ENTITY);
    expect(read.status.some((line) => line.startsWith(`VALIDSIG ${lockedSigner.fingerprint} `))).toBe(true);
  });

  it('pgp with the archive key configured: the recipient and the archive holder each decrypt it with gpg', async () => {
    const store = freshStore();
    await importInto(store, recipient.publicArmored);
    const withArchive = await loadProtection(config({ crypto: { pgp: { archive_key_file: writeFile('archive.asc', archive.publicArmored) } } }), store);
    const result = await withArchive.encrypt('pgp', 'Patient@Clinic.Invalid', message('patient@clinic.invalid'));
    expect(result).toMatchObject({ ok: true, signed: false, keyFingerprint: recipient.fingerprint, keySource: 'import' });
    const armor = armoredPayload(encrypted(result));
    for (const home of [recipientHome, archiveHome]) expect((await home.decrypt(armor)).output.toString('latin1')).toBe(ENTITY);

    // Without the setting the archive holder cannot read it: the key above came from the config.
    const without = await loadProtection(config({}), store);
    const plain = armoredPayload(encrypted(await without.encrypt('pgp', 'patient@clinic.invalid', message('patient@clinic.invalid'))));
    expect((await archiveHome.run(['--decrypt'], plain)).code).not.toBe(0);
  });

  it('a sealed copy counts against the byte budget from its encryption until it is delivered', async () => {
    /** A budget that remembers how many copies it ever had in work at once. */
    class WatchedBudget extends ByteBudget {
      peak = 0;
      override run<T>(bytes: number, work: () => Promise<T> | T): Promise<T> {
        return super.run(bytes, () => {
          this.peak = Math.max(this.peak, this.usage.running);
          return work();
        });
      }
    }
    const store = freshStore();
    await importInto(store, recipient.publicArmored);
    // 700 KB of body: two do not fit in 1 MiB.
    const big = Buffer.concat([message('patient@clinic.invalid'), Buffer.from(`${'x'.repeat(998)}\r\n`.repeat(700))]);
    const sealSix = async (budgetBytes: number) => {
      const budget = new WatchedBudget(budgetBytes);
      const protection = await loadProtection(config({ crypto: { encryption_budget_bytes: budgetBytes } }), store, { budget });
      const delivered: Encrypted[] = [];
      await Promise.all(
        Array.from({ length: 6 }, () =>
          protection.seal('pgp', 'patient@clinic.invalid', big, async (copy) => {
            // "Delivery" takes a while; the copy is still held, and still counted.
            expect(budget.usage.running).toBeGreaterThan(0);
            await new Promise((r) => setTimeout(r, 30));
            delivered.push(copy);
          }),
        ),
      );
      expect(delivered.every((c) => c.ok)).toBe(true);
      return { peak: budget.peak, first: delivered[0]!, budget, protection };
    };
    const tight = await sealSix(1024 * 1024);
    expect(tight.peak).toBe(1);
    // Waiting changed nothing in what comes out.
    expect((await recipientHome.decrypt(armoredPayload(encrypted(tight.first)))).output.length).toBeGreaterThan(700_000);
    expect((await sealSix(16 * 1024 * 1024)).peak).toBeGreaterThan(1);
    // No key: nothing to encrypt, so nothing is counted while `use` learns why.
    await tight.protection.seal('pgp', 'stranger@clinic.invalid', big, async (copy) => {
      expect(copy.ok).toBe(false);
      expect(tight.budget.usage.running).toBe(0);
    });
  });

  it('pgp for a recipient with no key: not encrypted, and why says so', async () => {
    const protection = await loadProtection(config({}), freshStore());
    expect(await protection.encrypt('pgp', 'stranger@clinic.invalid', message('stranger@clinic.invalid'))).toEqual({
      ok: false,
      why: 'no OpenPGP key for stranger@clinic.invalid',
      temporary: false,
    });
  });

  it('smime with signing (and an archive certificate) configured: openssl cms decrypts, then verifies the signed entity', async () => {
    const store = freshStore();
    await importInto(store, smimeRecipient.certPem);
    const protection = await loadProtection(
      config({
        crypto: {
          smime: {
            archive_cert_file: writeFile('archive.crt', smimeArchive.certPem),
            signing_cert_file: writeFile('signer.crt', smimeSigner.certPem),
            signing_key_file: writeFile('signer.key', smimeSigner.keyPem),
          },
        },
      }),
      store,
    );
    const result = await protection.encrypt('smime', 'patient@clinic.invalid', message('patient@clinic.invalid'));
    expect(result).toMatchObject({ ok: true, signed: true, keySource: 'import' });
    const sent = writeFile('sent.eml', encrypted(result));
    const caFile = writeFile('ca.pem', sharedSmimeCa().certPem);
    for (const who of [smimeRecipient, smimeArchive]) {
      const inner = openssl(['cms', '-decrypt', '-in', sent, '-recip', writeFile('who.crt', who.certPem), '-inkey', writeFile('who.key', who.keyPem)]);
      expect(inner.status, inner.stderr).toBe(0);
      expect(inner.stdout.toString('latin1')).toMatch(/^Content-Type: multipart\/signed; protocol="application\/pkcs7-signature";/);
      const verified = openssl(['cms', '-verify', '-in', writeFile('inner.eml', inner.stdout), '-CAfile', caFile]);
      expect(verified.stderr).toContain('Verification successful');
      expect(verified.stdout.toString('latin1')).toBe(ENTITY);
    }
  });

  it('sign() adds a DKIM-Signature for a configured From domain only; mailauth verifies it over the DNS stub', async () => {
    const spki = execFileSync('openssl', ['pkey', '-pubout', '-outform', 'DER'], { input: dkimPem });
    dnsStub.set(`${SELECTOR}._domainkey.${SENDER_DOMAIN}`, 'TXT', [`v=DKIM1; k=rsa; p=${spki.toString('base64')}`]);
    const protection = await loadProtection(config({ dkim: dkimConfig() }), freshStore());

    const ours = message('patient@clinic.invalid');
    const signed = await protection.sign(ours);
    expect(signed.toString('latin1')).toMatch(/^DKIM-Signature: /);
    expect(signed.subarray(signed.length - ours.length).equals(ours)).toBe(true);
    const { results } = await dkimVerify(signed, { resolver: (name, rrtype) => resolver.resolve(name, rrtype) as Promise<string[][]> });
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ signingDomain: SENDER_DOMAIN, selector: SELECTOR, status: { result: 'pass' } });

    const theirs = message('patient@clinic.invalid', 'someone@other.example');
    expect((await protection.sign(theirs)).equals(theirs)).toBe(true);
    // No DKIM configured at all: nothing is signed.
    const none = await loadProtection(config({}), freshStore());
    expect((await none.sign(ours)).equals(ours)).toBe(true);
  });
});

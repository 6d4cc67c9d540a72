// Reading key files: OpenPGP keys made by gpg (RSA, ed25519/cv25519, expired, revoked,
// sign-only; armored and binary; several per file) and S/MIME certificates made by
// node-forge and openssl (good, expired, not yet valid, wrong key usage, EC, DER,
// several per file), plus what is not a key at all. Then chooseKey over the results.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseKey } from '../../src/crypto/choose-key.ts';
import { keyProblem } from '../../src/crypto/choose-key.ts';
import { parseKeyFile, type ParsedKeys } from '../../src/crypto/keys.ts';
import type { RecipientKey } from '../../src/store/store.ts';
import { gpgHome, openssl, opensslFingerprint, rsaCertificate, type GpgHome } from './key-fixtures.ts';

const DAY = 24 * 60 * 60 * 1000;
/** gpg's clock for the expired key: it was made on this day and lived for one. */
const EXPIRED_AT = '20200101T000000';

let home: GpgHome;
let dir: string;
const fpr = { rsa: '', ed: '', expired: '', signOnly: '', shortSub: '', revoked: '' };

beforeAll(() => {
  home = gpgHome();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealrelay-keys-'));
  fpr.rsa = home.makeKey('Rita RSA <Rita@Example.org>', [['rsa2048', 'sign,cert', '2y'], ['rsa2048', 'encr', '2y']]);
  fpr.ed = home.makeKey('Bob <Bob@Bücher.example>', [['ed25519', 'sign,cert'], ['cv25519', 'encr']]);
  home.gpg(['--quick-add-uid', fpr.ed, 'Robert <robert@second.example>']);
  fpr.expired = home.makeKey('Old <old@example.org>', [['ed25519', 'sign,cert', '1d'], ['cv25519', 'encr', '1d']], { faketime: EXPIRED_AT });
  fpr.signOnly = home.makeKey('Signer <signer@example.org>', [['ed25519', 'sign,cert']]);
  // The primary never expires, its only encryption subkey does: encrypting ends with the subkey.
  fpr.shortSub = home.makeKey('Short <short@example.org>', [['ed25519', 'sign,cert'], ['cv25519', 'encr', '30d']]);
  fpr.revoked = home.makeKey('Rev <rev@example.org>', [['ed25519', 'sign,cert'], ['cv25519', 'encr']]);
}, 120_000);

afterAll(() => {
  home?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const parse = (bytes: string | Uint8Array, opts: { known?: (f: string) => Promise<RecipientKey | null>; now?: number } = {}) =>
  parseKeyFile(typeof bytes === 'string' ? Buffer.from(bytes) : bytes, { source: 'import', now: opts.now ?? Date.now(), known: opts.known });

function only(parsed: ParsedKeys): RecipientKey {
  expect(parsed.problems).toEqual([]);
  expect(parsed.keys).toHaveLength(1);
  return parsed.keys[0]!;
}

/** A lookup over keys "already in the store". */
const storeOf = (...keys: RecipientKey[]) => async (f: string) => keys.find((k) => k.fingerprint === f) ?? null;

describe('OpenPGP keys (made by gpg)', () => {
  it('an RSA key with an encryption subkey: fingerprint, address, expiry as gpg says, public data only', async () => {
    const now = Date.now();
    const key = only(await parse(home.exportArmored(fpr.rsa), { now }));
    expect(key).toMatchObject({ fingerprint: fpr.rsa, kind: 'pgp', addresses: ['rita@example.org'], label: 'Rita RSA <Rita@Example.org>', revoked: false, unusable: null, source: 'import', importedAt: now });
    expect(key.expiresAt).toBe(home.expiry(fpr.rsa, 'pub'));
    expect(key.expiresAt).toBeGreaterThan(now + 700 * DAY);
    expect(keyProblem(key, now)).toBeNull();
    const stored = await openpgp.readKey({ armoredKey: key.data });
    expect(stored.isPrivate()).toBe(false);
    expect(stored.getFingerprint().toUpperCase()).toBe(fpr.rsa);
  });

  it('ed25519/cv25519 in binary: every valid user ID gives an address, the IDNA domain as A-label; no expiry', async () => {
    const key = only(await parse(home.exportBinary(fpr.ed)));
    expect(key.fingerprint).toBe(fpr.ed);
    expect([...key.addresses].sort()).toEqual(['bob@xn--bcher-kva.example', 'robert@second.example']);
    expect(key.expiresAt).toBeNull();
    expect(key.unusable).toBeNull();
  });

  it('a revoked user ID no longer gives its address', async () => {
    const h = gpgHome();
    try {
      // Made an hour ago, revoked now: openpgp judges a user ID revocation by its date.
      const anHourAgo = { faketime: String(Math.floor(Date.now() / 1000) - 3600) };
      const f = h.makeKey('Two <two@example.org>', [['ed25519', 'sign,cert'], ['cv25519', 'encr']], anHourAgo);
      h.gpg(['--quick-add-uid', f, 'Gone <gone@example.org>'], anHourAgo);
      expect([...only(await parse(h.exportArmored(f))).addresses].sort()).toEqual(['gone@example.org', 'two@example.org']);
      h.gpg(['--quick-revoke-uid', f, 'Gone <gone@example.org>']);
      expect(only(await parse(h.exportArmored(f))).addresses).toEqual(['two@example.org']);
    } finally {
      h.close();
    }
  });

  it('an expired key is read, and keyProblem says since when', async () => {
    const key = only(await parse(home.exportArmored(fpr.expired)));
    expect(key.unusable).toBeNull();
    expect(key.expiresAt).toBe(Date.parse('2020-01-02T00:00:00Z'));
    expect(keyProblem(key, Date.now())).toBe('expired 2020-01-02');
    // Judged on a day it was still valid, it was fine.
    expect(keyProblem(key, Date.parse('2020-01-01T12:00:00Z'))).toBeNull();
  });

  it('the expiry is the encryption subkey’s when it ends before the primary key', async () => {
    const key = only(await parse(home.exportArmored(fpr.shortSub)));
    expect(home.expiry(fpr.shortSub, 'pub')).toBeNull();
    expect(key.expiresAt).toBe(home.expiry(fpr.shortSub, 'sub'));
    expect(keyProblem(key, key.expiresAt! + 1000)).toMatch(/^expired \d{4}-\d{2}-\d{2}$/);
  });

  it('a sign-only key is unusable, and says why', async () => {
    const key = only(await parse(home.exportArmored(fpr.signOnly)));
    expect(key.unusable).toBe('no encryption subkey (sign-only key)');
    expect(keyProblem(key, Date.now())).toBe('no encryption subkey (sign-only key)');
  });

  it('several keys in one armored block, in concatenated blocks, and in one binary export', async () => {
    const want = [fpr.rsa, fpr.ed, fpr.signOnly].sort();
    for (const file of [
      home.exportArmored(fpr.rsa, fpr.ed, fpr.signOnly),
      [fpr.rsa, fpr.ed, fpr.signOnly].map((f) => home.exportArmored(f)).join('\nsome text between blocks\n'),
      home.exportBinary(fpr.rsa, fpr.ed, fpr.signOnly),
    ]) {
      const parsed = await parse(file);
      expect(parsed.problems).toEqual([]);
      expect(parsed.keys.map((k) => k.fingerprint).sort()).toEqual(want);
    }
  });

  it('a secret key: only its public part is kept, and the caller is told', async () => {
    const secret = home.gpg(['--armor', '--export-secret-keys', fpr.rsa]).toString();
    expect(secret).toContain('PRIVATE KEY BLOCK');
    const parsed = await parse(secret);
    const key = only(parsed);
    expect(parsed.notes).toEqual([`key ${fpr.rsa}: a secret key was given; only its public part is kept`]);
    expect(key.data).toContain('-----BEGIN PGP PUBLIC KEY BLOCK-----');
    expect(key.data).not.toContain('PRIVATE');
    const back = await openpgp.readKey({ armoredKey: key.data });
    expect(back.isPrivate()).toBe(false);
    expect(back.getKeys().every((k) => k.keyPacket.constructor.name.startsWith('Public'))).toBe(true);
  });

  describe('revocation', () => {
    let stored: RecipientKey;
    beforeAll(async () => {
      stored = only(await parse(home.exportArmored(fpr.revoked)));
      expect(stored.revoked).toBe(false);
    });

    it('gpg’s revocation certificate, applied to the stored key, revokes it and keeps its origin', async () => {
      const later = Date.now() + 1000;
      const updated = only(await parse(home.revocationCertificate(fpr.revoked), { known: storeOf(stored), now: later }));
      expect(updated).toMatchObject({ fingerprint: fpr.revoked, revoked: true, addresses: ['rev@example.org'], importedAt: stored.importedAt });
      expect(keyProblem(updated, later)).toBe('revoked');
      // What is stored carries the revocation itself.
      expect(await (await openpgp.readKey({ armoredKey: updated.data })).isRevoked()).toBe(true);
    });

    it('a revocation certificate for a key that is not stored is a problem naming the key', async () => {
      const parsed = await parse(home.revocationCertificate(fpr.revoked), { known: storeOf() });
      expect(parsed.keys).toEqual([]);
      expect(parsed.problems).toEqual([`PGP PUBLIC KEY BLOCK: revocation certificate for key ${fpr.revoked}, which is neither stored nor in this file`]);
    });

    it('gpg’s defused certificate (":-----BEGIN") is not read as one', async () => {
      const parsed = await parse(home.revocationCertificate(fpr.revoked, { defused: true }), { known: storeOf(stored) });
      expect(parsed.keys).toEqual([]);
      expect(parsed.problems[0]).toMatch(/^neither an OpenPGP key nor an X\.509 certificate/);
    });

    it('a revoked key exported by gpg revokes the stored copy; an old unrevoked copy cannot undo it', async () => {
      const h = gpgHome();
      try {
        const f = h.makeKey('Undo <undo@example.org>', [['ed25519', 'sign,cert'], ['cv25519', 'encr']]);
        const before = only(await parse(h.exportArmored(f)));
        const oldCopy = h.exportArmored(f);
        h.revoke(f);
        const revokedExport = h.exportArmored(f);
        const revoked = only(await parse(revokedExport, { known: storeOf(before) }));
        expect(revoked.revoked).toBe(true);
        const again = only(await parse(oldCopy, { known: storeOf(revoked) }));
        expect(again.revoked).toBe(true);
        // Without the stored copy to merge with, the old export alone looks fine: the merge is what protects.
        expect(only(await parse(oldCopy)).revoked).toBe(false);
      } finally {
        h.close();
      }
    });
  });
});

describe('S/MIME certificates', () => {
  const good = () =>
    rsaCertificate({
      commonName: 'Carol',
      emails: ['Carol@Example.org', 'c2@bücher.example'],
      subjectEmail: 'carol@example.org',
      keyUsage: { digitalSignature: true, keyEncipherment: true },
      extKeyUsage: { emailProtection: true },
    });

  it('a good certificate: SHA-256 fingerprint as openssl computes it, addresses from SAN and subject, validity window', async () => {
    const pem = good();
    fs.writeFileSync(path.join(dir, 'good.pem'), pem);
    const key = only(await parse(pem));
    expect(key.fingerprint).toBe(opensslFingerprint(dir, 'good.pem'));
    expect(key).toMatchObject({ kind: 'smime', addresses: ['carol@example.org', 'c2@xn--bcher-kva.example'], revoked: false, unusable: null, source: 'import' });
    expect(key.label).toBe('CN=Carol, E=carol@example.org');
    expect(key.data.trim()).toBe(pem.replace(/\r\n/g, '\n').trim());
    expect(key.expiresAt! - Date.now()).toBeGreaterThan(360 * DAY);
    expect(keyProblem(key, Date.now())).toBeNull();
  });

  it('DER gives the same key as PEM', async () => {
    fs.writeFileSync(path.join(dir, 'der-src.pem'), good());
    openssl(dir, ['x509', '-in', 'der-src.pem', '-outform', 'DER', '-out', 'cert.der']);
    const key = only(await parse(fs.readFileSync(path.join(dir, 'cert.der'))));
    expect(key.fingerprint).toBe(opensslFingerprint(dir, 'cert.der', 'DER'));
    expect(key.fingerprint).toBe(only(await parse(fs.readFileSync(path.join(dir, 'der-src.pem')))).fingerprint);
  });

  it('several certificates in one PEM file; a private key block beside them is ignored, with a note', async () => {
    const [a, b] = [good(), rsaCertificate({ commonName: 'Dan', emails: ['dan@example.org'] })];
    const privateKey = openssl(dir, ['genpkey', '-algorithm', 'ed25519']).toString();
    const parsed = await parse(`${a}\n${privateKey}${b}`);
    expect(parsed.problems).toEqual([]);
    expect(parsed.keys.map((k) => k.addresses[0])).toEqual(['carol@example.org', 'dan@example.org']);
    expect(parsed.notes).toEqual(['block 2 (PRIVATE KEY): a private key, ignored (private keys are never stored)']);
    expect(parsed.keys.every((k) => !k.data.includes('PRIVATE'))).toBe(true);
  });

  it.each([
    ['expired', { notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') }, 'expired 2021-01-01', null],
    ['not yet valid', { notBefore: new Date(Date.now() + 30 * DAY), notAfter: new Date(Date.now() + 60 * DAY) }, /^not valid before \d{4}-\d{2}-\d{2}$/, null],
    ['keyUsage without keyEncipherment', { keyUsage: { digitalSignature: true } }, 'keyUsage does not allow keyEncipherment', 'keyUsage does not allow keyEncipherment'],
    ['extKeyUsage without emailProtection', { extKeyUsage: { serverAuth: true } }, 'extKeyUsage does not include emailProtection', 'extKeyUsage does not include emailProtection'],
    ['a weak RSA key', { bits: 1024 }, 'RSA key of 1024 bits is too weak (at least 2048)', 'RSA key of 1024 bits is too weak (at least 2048)'],
  ])('%s', async (_name, opts, problem, unusable) => {
    const key = only(await parse(rsaCertificate({ commonName: 'X', emails: ['x@example.org'], ...opts })));
    expect(key.unusable).toBe(unusable);
    expect(keyProblem(key, Date.now())).toEqual(typeof problem === 'string' ? problem : expect.stringMatching(problem));
  });

  it('an EC certificate (openssl) is read with node:crypto and stored as unusable', async () => {
    openssl(dir, [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ec.key', '-out', 'ec.pem', '-days', '30',
      '-subj', '/CN=Eve/emailAddress=eve2@example.org', '-addext', 'subjectAltName=email:Eve@Example.org,DNS:mail.example.org',
    ]);
    const key = only(await parse(fs.readFileSync(path.join(dir, 'ec.pem'))));
    expect(key).toMatchObject({ kind: 'smime', addresses: ['eve@example.org', 'eve2@example.org'], label: 'CN=Eve, emailAddress=eve2@example.org' });
    expect(key.fingerprint).toBe(opensslFingerprint(dir, 'ec.pem'));
    expect(key.unusable).toBe('EC keys are not supported by node-forge for S/MIME encryption');
    expect(key.expiresAt! - Date.now()).toBeGreaterThan(29 * DAY);
  });
});

describe('what is not a key', () => {
  it.each([
    ['empty', '', 'the file is empty'],
    ['plain text', 'hello, this is not a key\n', /^neither an OpenPGP key nor an X\.509 certificate/],
    ['a broken armored key', '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n', /^PGP PUBLIC KEY BLOCK: .+/],
    ['random binary with bit 7 set', Buffer.from([0x99, 0x01, 0x02, 0x03, 0xff, 0x00]), /^binary OpenPGP data: .+/],
    ['a broken certificate', '-----BEGIN CERTIFICATE-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END CERTIFICATE-----\n', /^CERTIFICATE: not an X\.509 certificate: .+/],
    ['truncated DER', Buffer.from([0x30, 0x82, 0x05, 0x00, 0x01]), /^DER certificate: not an X\.509 certificate: .+/],
    ['an OpenPGP message', '-----BEGIN PGP MESSAGE-----\n\nwV4D\n-----END PGP MESSAGE-----\n', 'PGP MESSAGE: not a key or certificate block (PGP MESSAGE)'],
  ])('%s is a problem naming the part', async (_name, bytes, problem) => {
    const parsed = await parse(bytes);
    expect(parsed.keys).toEqual([]);
    expect(parsed.problems).toEqual([typeof problem === 'string' ? problem : expect.stringMatching(problem)]);
  });

  it('a bad block does not hide the good ones beside it', async () => {
    const parsed = await parse(`-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n${home.exportArmored(fpr.ed)}`);
    expect(parsed.keys.map((k) => k.fingerprint)).toEqual([fpr.ed]);
    expect(parsed.problems).toEqual([expect.stringMatching(/^block 1 \(CERTIFICATE\): not an X\.509 certificate/)]);
  });
});

describe('chooseKey', () => {
  const key = (over: Partial<RecipientKey>): RecipientKey => ({
    fingerprint: 'AA', kind: 'pgp', addresses: ['a@example.org'], data: '', label: '', createdAt: 1000, expiresAt: null,
    revoked: false, unusable: null, source: 'import', importedAt: 1000, ...over,
  });
  const now = 1_000_000;

  it('takes the newest key that works now, of the kind asked for', () => {
    const keys = [
      key({ fingerprint: 'OLD', createdAt: 10 }),
      key({ fingerprint: 'NEW', createdAt: 500 }),
      key({ fingerprint: 'NEWER-EXPIRED', createdAt: 600, expiresAt: now }),
      key({ fingerprint: 'NEWER-REVOKED', createdAt: 700, revoked: true }),
      key({ fingerprint: 'NEWER-UNUSABLE', createdAt: 800, unusable: 'no encryption subkey' }),
      key({ fingerprint: 'FUTURE', createdAt: now + 1 }),
      key({ fingerprint: 'SMIME', kind: 'smime', createdAt: 900 }),
    ];
    expect(chooseKey(keys, 'pgp', now)?.fingerprint).toBe('NEW');
    expect(chooseKey(keys, 'smime', now)?.fingerprint).toBe('SMIME');
    expect(chooseKey(keys.slice(2, 5), 'pgp', now)).toBeNull();
    expect(chooseKey([], 'pgp', now)).toBeNull();
  });

  it('unknown creation sorts last; equal creation goes to the latest imported', () => {
    expect(chooseKey([key({ fingerprint: 'UNKNOWN', createdAt: null }), key({ fingerprint: 'KNOWN', createdAt: 1 })], 'pgp', now)?.fingerprint).toBe('KNOWN');
    expect(chooseKey([key({ fingerprint: 'FIRST', importedAt: 1 }), key({ fingerprint: 'SECOND', importedAt: 2 })], 'pgp', now)?.fingerprint).toBe('SECOND');
  });

  it('chooses among real keys read from a file', async () => {
    const parsed = await parse(home.exportArmored(fpr.rsa, fpr.expired, fpr.signOnly));
    expect(chooseKey(parsed.keys, 'pgp', Date.now())?.fingerprint).toBe(fpr.rsa);
  });
});

// `sealrelay keys`: import (what is stored, what is refused and why, revocations
// reaching a stored key), list (table, --json, --address), show (prefixes, --json)
// and remove, each run as the real command and checked in the store afterwards.
// Keys come from gpg in a throwaway home; certificates from node-forge.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RecipientKey } from '../../src/store/store.ts';
import { gpgHome, rsaCertificate, type GpgHome } from '../crypto/key-fixtures.ts';
import { lines, makeSandbox, runCli, withStore, type Sandbox } from './harness.ts';

let home: GpgHome;
let box: Sandbox;
/** Key files by name, written into each sandbox. */
const files: Record<string, string | Buffer> = {};
const fpr = { ann: '', expired: '', signOnly: '', noMail: '', rev: '', revokedElsewhere: '' };

beforeAll(() => {
  home = gpgHome();
  fpr.ann = home.makeKey('Ann <Ann@Example.org>', [['ed25519', 'sign,cert'], ['cv25519', 'encr']]);
  fpr.expired = home.makeKey('Old <old@example.org>', [['ed25519', 'sign,cert', '1d'], ['cv25519', 'encr', '1d']], { faketime: '20200101T000000' });
  fpr.signOnly = home.makeKey('Signer <signer@example.org>', [['ed25519', 'sign,cert']]);
  fpr.noMail = home.makeKey('Nobody In Particular', [['ed25519', 'sign,cert'], ['cv25519', 'encr']]);
  fpr.rev = home.makeKey('Rev <rev@example.org>', [['ed25519', 'sign,cert'], ['cv25519', 'encr']]);
  fpr.revokedElsewhere = home.makeKey('Gone <gone@example.org>', [['ed25519', 'sign,cert'], ['cv25519', 'encr']]);
  Object.assign(files, {
    'ann.asc': home.exportArmored(fpr.ann),
    'ann.gpg': home.exportBinary(fpr.ann),
    'ann-secret.asc': home.gpg(['--armor', '--export-secret-keys', fpr.ann]),
    'expired.asc': home.exportArmored(fpr.expired),
    'sign-only.asc': home.exportArmored(fpr.signOnly),
    'no-mail.asc': home.exportArmored(fpr.noMail),
    'rev.asc': home.exportArmored(fpr.rev),
    'rev-certificate.asc': home.revocationCertificate(fpr.rev),
    'carol.pem': rsaCertificate({ commonName: 'Carol', emails: ['carol@bücher.example'], keyUsage: { keyEncipherment: true }, extKeyUsage: { emailProtection: true } }),
    'sign-cert.pem': rsaCertificate({ commonName: 'Sig', emails: ['sig@example.org'], keyUsage: { digitalSignature: true } }),
    'garbage.txt': 'this is not a key\n',
  });
  home.revoke(fpr.revokedElsewhere);
  files['gone-revoked.asc'] = home.exportArmored(fpr.revokedElsewhere);
}, 120_000);

afterAll(() => home?.close());

beforeEach(() => {
  box = makeSandbox();
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(box.dir, name), content);
});

afterEach(() => box.cleanup());

const keys = (...args: string[]) => runCli(['-c', box.configFile, 'keys', ...args]);
const file = (name: string) => path.join(box.dir, name);
const stored = (fingerprint: string) => withStore(box.storePath, (s) => s.getKey(fingerprint));

describe('sealrelay keys import', () => {
  it('creates the store, stores OpenPGP keys and certificates, one line per key', async () => {
    expect(fs.existsSync(box.storePath)).toBe(false);
    const res = await keys('import', file('ann.asc'), file('carol.pem'));
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const [annLine, carolLine, ...rest] = lines(res.stdout);
    expect(rest).toEqual([]);
    expect(annLine).toBe(`imported ${fpr.ann} pgp ann@example.org expires never`);
    expect(carolLine).toMatch(/^imported [0-9A-F]{64} smime carol@xn--bcher-kva\.example expires \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(await stored(fpr.ann)).toMatchObject({ kind: 'pgp', addresses: ['ann@example.org'], source: 'import', revoked: false, unusable: null });
    // The same key again, binary this time: an update of the stored one.
    const again = await keys('import', file('ann.gpg'));
    expect([again.code, again.stdout.trim()]).toEqual([0, `updated ${fpr.ann} pgp ann@example.org expires never`]);
  });

  it('refuses expired, revoked, unusable and address-less keys, naming file, key and reason; stores the rest; exits 1', async () => {
    const res = await keys('import', file('expired.asc'), file('sign-only.asc'), file('no-mail.asc'), file('gone-revoked.asc'), file('sign-cert.pem'), file('ann.asc'));
    expect(res.code).toBe(1);
    expect(lines(res.stdout)).toEqual([`imported ${fpr.ann} pgp ann@example.org expires never`]);
    const errors = lines(res.stderr);
    expect(errors).toEqual([
      `${file('expired.asc')}: OpenPGP public key ${fpr.expired} (Old <old@example.org>): not imported: expired 2020-01-02`,
      `${file('sign-only.asc')}: OpenPGP public key ${fpr.signOnly} (Signer <signer@example.org>): not imported: no encryption subkey (sign-only key)`,
      `${file('no-mail.asc')}: OpenPGP public key ${fpr.noMail} (Nobody In Particular): not imported: it carries no email address`,
      `${file('gone-revoked.asc')}: OpenPGP public key ${fpr.revokedElsewhere} (Gone <gone@example.org>): not imported: revoked`,
      expect.stringMatching(new RegExp(`^${escape(file('sign-cert.pem'))}: S/MIME certificate [0-9A-F]{64} \\(CN=Sig\\): not imported: keyUsage does not allow keyEncipherment$`)),
      'sealrelay: 5 problems: not everything was imported',
    ]);
    const all = await withStore(box.storePath, (s) => s.listKeys());
    expect(all.map((k) => k.fingerprint)).toEqual([fpr.ann]);
  });

  it('a malformed file and a missing one are errors naming the file', async () => {
    const res = await keys('import', file('garbage.txt'), file('missing.asc'));
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    expect(lines(res.stderr)).toEqual([
      `${file('garbage.txt')}: neither an OpenPGP key nor an X.509 certificate (no armored or PEM block, not binary OpenPGP, not DER)`,
      expect.stringMatching(new RegExp(`^${escape(file('missing.asc'))}: cannot read: ENOENT`)),
      'sealrelay: 2 problems: not everything was imported',
    ]);
  });

  it('a revocation certificate revokes the stored key; an old copy imported later cannot undo it', async () => {
    expect((await keys('import', file('rev.asc'))).code).toBe(0);
    const revoke = await keys('import', file('rev-certificate.asc'));
    expect(revoke.stderr).toBe('');
    expect([revoke.code, revoke.stdout.trim()]).toEqual([0, `updated ${fpr.rev} pgp rev@example.org expires never (revoked)`]);
    expect((await stored(fpr.rev))?.revoked).toBe(true);
    const old = await keys('import', file('rev.asc'));
    expect([old.code, old.stdout.trim()]).toEqual([0, `updated ${fpr.rev} pgp rev@example.org expires never (revoked)`]);
    expect((await stored(fpr.rev))?.revoked).toBe(true);
    expect(lines((await keys('list')).stdout)[1]).toMatch(new RegExp(`^${fpr.rev}\\s+pgp\\s+rev@example\\.org\\s+never\\s+revoked\\s+import$`));
  });

  it('a revocation certificate for a key that is not stored is an error', async () => {
    const res = await keys('import', file('rev-certificate.asc'));
    expect(res.code).toBe(1);
    expect(lines(res.stderr)[0]).toBe(`${file('rev-certificate.asc')}: PGP PUBLIC KEY BLOCK: revocation certificate for key ${fpr.rev}, which is neither stored nor in this file`);
    expect(fs.existsSync(box.storePath) ? await stored(fpr.rev) : null).toBeNull();
  });

  it('a secret key: its public part is stored, and the operator is told', async () => {
    const res = await keys('import', file('ann-secret.asc'));
    expect(res.code).toBe(0);
    expect(res.stderr.trim()).toBe(`${file('ann-secret.asc')}: note: key ${fpr.ann}: a secret key was given; only its public part is kept`);
    const key = await stored(fpr.ann);
    expect(key?.data).toContain('-----BEGIN PGP PUBLIC KEY BLOCK-----');
    expect(key?.data).not.toContain('PRIVATE');
  });
});

describe('sealrelay keys list, show, remove', () => {
  beforeEach(async () => {
    expect((await keys('import', file('ann.asc'), file('carol.pem'))).code).toBe(0);
    // Unusable keys cannot be imported, but a stored key can become one (e.g. merged); seed one directly.
    await withStore(box.storePath, async (s) => {
      await s.putKey(seeded({ fingerprint: 'ABCDEF0111111111111111111111111111111111', unusable: 'no encryption subkey' }));
      await s.putKey(seeded({ fingerprint: 'ABCDEF0122222222222222222222222222222222', expiresAt: Date.parse('2021-03-04T05:06:07Z') }));
    });
  });

  it('list: a table of every key with its state', async () => {
    const res = await keys('list');
    expect(res.code).toBe(0);
    const [header, ...rows] = lines(res.stdout);
    expect(header?.split(/\s{2,}/)).toEqual(['FINGERPRINT', 'KIND', 'ADDRESSES', 'EXPIRES', 'STATE', 'SOURCE']);
    expect(rows).toHaveLength(4);
    expect(rows).toContainEqual(expect.stringMatching(new RegExp(`^${fpr.ann}\\s+pgp\\s+ann@example\\.org\\s+never\\s+ok\\s+import$`)));
    expect(rows).toContainEqual(expect.stringMatching(/^[0-9A-F]{64}\s+smime\s+carol@xn--bcher-kva\.example\s+\d{4}-\d\d-\d\dT[\d:]+Z\s+ok\s+import$/));
    expect(rows).toContainEqual(expect.stringMatching(/^ABCDEF01111\d+\s+pgp\s+zed@example\.org\s+never\s+unusable: no encryption subkey\s+wkd$/));
    expect(rows).toContainEqual(expect.stringMatching(/^ABCDEF01222\d+\s+pgp\s+zed@example\.org\s+2021-03-04T05:06:07Z\s+expired 2021-03-04\s+wkd$/));
  });

  it('list --address (any case, Unicode domain) and --json', async () => {
    const res = await keys('list', '--address', 'CAROL@Bücher.example', '--json');
    expect(res.code).toBe(0);
    const rows = lines(res.stdout).map((l) => JSON.parse(l) as RecipientKey & { state: string });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ kind: 'smime', addresses: ['carol@xn--bcher-kva.example'], state: 'ok', source: 'import' });
    expect(rows[0]).not.toHaveProperty('data');
    expect((await keys('list', '--address', 'nobody@example.org')).stdout.trim()).toBe('no keys for nobody@example.org');
  });

  it('show: by a prefix (any case, gpg-style spaces), with the key data; --json', async () => {
    const res = await keys('show', `${fpr.ann.slice(0, 4).toLowerCase()} ${fpr.ann.slice(4, 12).toLowerCase()}`);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`fingerprint: ${fpr.ann}\nkind:        OpenPGP public key\nlabel:       Ann <Ann@Example.org>\naddresses:   ann@example.org\n`);
    expect(res.stdout).toContain('state:       ok\n');
    expect(res.stdout).toContain('-----BEGIN PGP PUBLIC KEY BLOCK-----');
    const json = JSON.parse((await keys('show', fpr.ann, '--json')).stdout) as RecipientKey & { state: string };
    expect(json).toMatchObject({ fingerprint: fpr.ann, state: 'ok' });
    expect(json.data).toBe((await stored(fpr.ann))?.data);
  });

  it('show: an ambiguous prefix, an unknown key and a too-short prefix are refused', async () => {
    const ambiguous = await keys('show', 'abcdef01');
    expect([ambiguous.code, ambiguous.stderr.trim()]).toEqual([1, 'sealrelay: abcdef01 is ambiguous: it starts ABCDEF0111111111111111111111111111111111, ABCDEF0122222222222222222222222222222222']);
    expect((await keys('show', 'abcdef0111')).code).toBe(0);
    const unknown = await keys('show', '0123456789');
    expect([unknown.code, unknown.stderr.trim()]).toEqual([1, 'sealrelay: no key 0123456789 in the store']);
    const short = await keys('show', 'abc');
    expect([short.code, short.stderr.trim()]).toEqual([64, 'sealrelay: "abc" is not a fingerprint (at least 8 hex digits)']);
  });

  it('remove: forgets the key and its addresses; a second time it is not there', async () => {
    const res = await keys('remove', fpr.ann);
    expect([res.code, res.stdout.trim()]).toEqual([0, `removed ${fpr.ann} pgp ann@example.org`]);
    expect(await stored(fpr.ann)).toBeNull();
    expect(await withStore(box.storePath, (s) => s.keysFor('ann@example.org'))).toEqual([]);
    expect((await keys('remove', fpr.ann)).code).toBe(1);
  });

  it('list says so when the store holds no keys', async () => {
    await withStore(box.storePath, async (s) => {
      for (const k of await s.listKeys()) await s.removeKey(k.fingerprint);
    });
    expect((await keys()).stdout.trim()).toBe('no keys stored');
  });
});

function seeded(over: Partial<RecipientKey>): RecipientKey {
  return {
    fingerprint: '',
    kind: 'pgp',
    addresses: ['zed@example.org'],
    data: '-----BEGIN PGP PUBLIC KEY BLOCK-----\n(seeded)\n-----END PGP PUBLIC KEY BLOCK-----\n',
    label: 'Zed <zed@example.org>',
    createdAt: Date.parse('2020-01-01T00:00:00Z'),
    expiresAt: null,
    revoked: false,
    unusable: null,
    source: 'wkd',
    importedAt: Date.now(),
    ...over,
  };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

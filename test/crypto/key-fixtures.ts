// Key material for the key store tests, made by the real tools: OpenPGP keys by gpg
// in a throwaway GNUPGHOME, S/MIME certificates by node-forge (any validity window)
// or openssl (EC keys, DER). Nothing here is kept: every run makes its own.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';

/** A GNUPGHOME of its own, with batch-mode gpg and an empty passphrase. */
export interface GpgHome {
  readonly dir: string;
  /** Runs gpg; returns stdout. `faketime` is gpg's --faked-system-time (20200101T000000, or seconds since the epoch), frozen: keys made in several calls share one time. */
  gpg(args: readonly string[], opts?: { faketime?: string }): Buffer;
  /** Makes a key from `[algo, usage]` parts: the first is the primary, the rest subkeys. Returns its fingerprint. */
  makeKey(uid: string, parts: readonly (readonly [string, string, string?])[], opts?: { faketime?: string }): string;
  exportArmored(...who: string[]): string;
  exportBinary(...who: string[]): Buffer;
  /** gpg's own revocation certificate for the key, with the colon that defuses it removed (as its text tells the user to). */
  revocationCertificate(fingerprint: string, opts?: { defused?: boolean }): string;
  /** Imports that revocation certificate, so that exports carry the revocation. */
  revoke(fingerprint: string): void;
  /** The key's expiry (field 7 of --with-colons), in ms; null for none. */
  expiry(fingerprint: string, which: 'pub' | 'sub'): number | null;
  close(): void;
}

export function gpgHome(): GpgHome {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealrelay-keys-gpg-'));
  fs.chmodSync(dir, 0o700);
  const gpg = (args: readonly string[], opts: { faketime?: string } = {}) =>
    execFileSync('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...(opts.faketime ? ['--faked-system-time', `${opts.faketime}!`] : []), ...args], {
      env: { ...process.env, GNUPGHOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const fingerprintOf = (uid: string) => {
    const colons = gpg(['--with-colons', '--list-keys', '--', uid]).toString();
    const fpr = /^fpr:+([0-9A-F]+):/m.exec(colons)?.[1];
    if (!fpr) throw new Error(`gpg made no key for ${uid}`);
    return fpr;
  };
  return {
    dir,
    gpg,
    makeKey(uid, [primary, ...subkeys], opts = {}) {
      if (!primary) throw new Error('a key needs a primary part');
      const [algo, usage, expire = 'never'] = primary;
      gpg(['--quick-gen-key', uid, algo, usage, expire], opts);
      const fpr = fingerprintOf(uid);
      for (const [subAlgo, subUsage, subExpire = 'never'] of subkeys) gpg(['--quick-add-key', fpr, subAlgo, subUsage, subExpire], opts);
      return fpr;
    },
    exportArmored: (...who) => gpg(['--armor', '--export', ...who]).toString(),
    exportBinary: (...who) => gpg(['--export', ...who]),
    revocationCertificate(fpr, opts = {}) {
      const text = fs.readFileSync(path.join(dir, 'openpgp-revocs.d', `${fpr}.rev`), 'utf8');
      return opts.defused ? text : text.replace(/^:-----BEGIN/m, '-----BEGIN');
    },
    revoke(fpr) {
      const file = path.join(dir, `${fpr}.rev.asc`);
      fs.writeFileSync(file, this.revocationCertificate(fpr));
      gpg(['--import', file]);
    },
    expiry(fpr, which) {
      const colons = gpg(['--with-colons', '--list-keys', fpr]).toString();
      const field = colons.split('\n').find((l) => l.startsWith(`${which}:`))?.split(':')[6];
      return field ? Number(field) * 1000 : null;
    },
    close() {
      try {
        execFileSync('gpgconf', ['--kill', 'gpg-agent'], { env: { ...process.env, GNUPGHOME: dir }, stdio: 'ignore' });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export interface CertOptions {
  readonly commonName: string;
  /** rfc822Name entries of subjectAltName. */
  readonly emails?: readonly string[];
  /** emailAddress in the subject. */
  readonly subjectEmail?: string;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** keyUsage bits; absent: no keyUsage extension. */
  readonly keyUsage?: { digitalSignature?: boolean; keyEncipherment?: boolean };
  /** extKeyUsage purposes; absent: no extKeyUsage extension. */
  readonly extKeyUsage?: { emailProtection?: boolean; serverAuth?: boolean };
  readonly bits?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** A self-signed RSA certificate as an S/MIME recipient would hand over, in PEM. */
export function rsaCertificate(opts: CertOptions): string {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: opts.bits ?? 2048 });
  const key = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = `01${crypto.randomBytes(8).toString('hex')}`;
  cert.validity.notBefore = opts.notBefore ?? new Date(Date.now() - DAY_MS);
  cert.validity.notAfter = opts.notAfter ?? new Date(Date.now() + 365 * DAY_MS);
  const subject = [{ name: 'commonName', value: opts.commonName }, ...(opts.subjectEmail ? [{ name: 'emailAddress', value: opts.subjectEmail }] : [])];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    ...(opts.keyUsage ? [{ name: 'keyUsage', critical: true, ...opts.keyUsage }] : []),
    ...(opts.extKeyUsage ? [{ name: 'extKeyUsage', ...opts.extKeyUsage }] : []),
    ...(opts.emails?.length ? [{ name: 'subjectAltName', altNames: opts.emails.map((value) => ({ type: 1, value })) }] : []),
  ]);
  cert.sign(key, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** Runs openssl in `dir`; returns stdout. */
export function openssl(dir: string, args: readonly string[]): Buffer {
  return execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** openssl's SHA-256 fingerprint of a certificate file, as hex without colons. */
export function opensslFingerprint(dir: string, file: string, inform: 'PEM' | 'DER' = 'PEM'): string {
  const out = openssl(dir, ['x509', '-inform', inform, '-in', file, '-noout', '-fingerprint', '-sha256']).toString();
  const hex = /Fingerprint=([0-9A-F:]+)/i.exec(out)?.[1];
  if (!hex) throw new Error(`openssl printed no fingerprint: ${out}`);
  return hex.replace(/:/g, '').toUpperCase();
}

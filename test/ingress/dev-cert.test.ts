import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CertificateFileError, certificateExpiry, certificateProblems, ensureDevCertificate, generateSelfSigned, serverCertificate } from '../../src/ingress/dev-cert.ts';
import { selfSigned } from '../helpers/test-ca.ts';

const paths = () => {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-devcert-'));
  return { dir, cert: join(dir, 'certs', 'dev.crt'), key: join(dir, 'certs', 'dev.key') };
};

describe('ensureDevCertificate', () => {
  test('both missing: generates a self-signed pair, key mode 0600, SAN hostname + loopback, 1 year', () => {
    const p = paths();
    const made = ensureDevCertificate(p.cert, p.key, 'relay.example.test');
    expect(made.generated).toBe(true);
    expect(statSync(p.key).mode & 0o777).toBe(0o600);
    const x509 = new X509Certificate(made.cert);
    expect(x509.subject).toContain('CN=relay.example.test');
    expect(x509.subjectAltName).toBe('DNS:relay.example.test, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    const days = (Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / 86_400_000;
    expect(days).toBeGreaterThan(365);
    expect(days).toBeLessThan(366.1);
    expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(x509.verify(x509.publicKey)).toBe(true); // self-signed
    expect(x509.ca).toBe(false);
  });

  test('both present and matching: reused, not regenerated', () => {
    const p = paths();
    const first = ensureDevCertificate(p.cert, p.key, 'relay.example.test');
    const again = ensureDevCertificate(p.cert, p.key, 'relay.example.test');
    expect(again).toEqual({ cert: first.cert, key: first.key, generated: false, renewed: false, notAfter: first.notAfter });
  });

  test('only the key present: error naming the missing certificate file', () => {
    const p = paths();
    ensureDevCertificate(p.cert, p.key, 'h.test');
    unlinkSync(p.cert);
    expect(() => ensureDevCertificate(p.cert, p.key, 'h.test')).toThrow(new RegExp(`^ingress.cert_file: ${p.cert}: no such file, but its key`));
  });

  test('only the certificate present: error naming the missing key file', () => {
    const p = paths();
    ensureDevCertificate(p.cert, p.key, 'h.test');
    unlinkSync(p.key);
    expect(() => ensureDevCertificate(p.cert, p.key, 'h.test')).toThrow(new RegExp(`^ingress.key_file: ${p.key}: no such file, but its certificate`));
  });

  test('unparsable certificate or key: error naming the file', () => {
    const p = paths();
    ensureDevCertificate(p.cert, p.key, 'h.test');
    const { key } = ensureDevCertificate(p.cert, p.key, 'h.test');
    writeFileSync(p.cert, 'not a certificate');
    expect(() => ensureDevCertificate(p.cert, p.key, 'h.test')).toThrow(new RegExp(`^ingress.cert_file: ${p.cert}: not a PEM certificate`));
    const q = paths();
    ensureDevCertificate(q.cert, q.key, 'h.test');
    writeFileSync(q.key, 'garbage');
    expect(() => ensureDevCertificate(q.cert, q.key, 'h.test')).toThrow(new RegExp(`^ingress.key_file: ${q.key}: not a PEM private key`));
    expect(key).toContain('PRIVATE KEY');
  });

  test('a key that does not belong to the certificate: error naming both', () => {
    const p = paths();
    ensureDevCertificate(p.cert, p.key, 'h.test');
    writeFileSync(p.key, generateSelfSigned('other.test').key);
    expect(() => ensureDevCertificate(p.cert, p.key, 'h.test')).toThrow(new RegExp(`^ingress.key_file: ${p.key}: does not match the certificate in ${p.cert}`));
  });

  test('an IP address as hostname goes into the SAN as an IP', () => {
    const x509 = new X509Certificate(generateSelfSigned('192.0.2.25').cert);
    expect(x509.subjectAltName).toContain('IP Address:192.0.2.25');
  });
});

describe('serverCertificate: a missing pair is generated only under the development names, or when asked', () => {
  const named = (dir: string, cert: string, key: string) => ({ cert: join(dir, 'certs', cert), key: join(dir, 'certs', key) });

  test('sealrelay-dev.crt / sealrelay-dev.key (the shipped default): generated, and config check finds nothing to say', () => {
    const p = named(paths().dir, 'sealrelay-dev.crt', 'sealrelay-dev.key');
    expect(certificateProblems(p.cert, p.key)).toEqual([]);
    expect(existsSync(p.cert)).toBe(false); // checking writes nothing
    expect(serverCertificate(p.cert, p.key, 'h.test').generated).toBe(true);
    expect(existsSync(p.cert) && existsSync(p.key)).toBe(true);
  });

  test('any other name (a mistyped production path): refused, naming the setting and the file; nothing written', () => {
    const p = named(paths().dir, 'relay.example.crt', 'relay.example.key');
    let thrown: unknown;
    try {
      serverCertificate(p.cert, p.key, 'h.test');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(CertificateFileError);
    expect(thrown).toMatchObject({ setting: 'ingress.cert_file', file: p.cert, message: expect.stringMatching(/^ingress\.cert_file: .*relay\.example\.crt: no such file .*--dev-cert/) });
    expect(certificateProblems(p.cert, p.key).map((e) => [e.setting, e.file])).toEqual([
      ['ingress.cert_file', p.cert],
      ['ingress.key_file', p.key],
    ]);
    expect(existsSync(p.cert) || existsSync(p.key)).toBe(false);
  });

  test('only one development name is not the development pair', () => {
    const p = named(paths().dir, 'sealrelay-dev.crt', 'production.key');
    expect(() => serverCertificate(p.cert, p.key, 'h.test')).toThrow(CertificateFileError);
  });

  test('anyPath (start --dev-cert): generated at the configured paths, whatever their names', () => {
    const p = named(paths().dir, 'relay.example.crt', 'relay.example.key');
    expect(certificateProblems(p.cert, p.key, { anyPath: true })).toEqual([]);
    expect(serverCertificate(p.cert, p.key, 'h.test', { anyPath: true }).generated).toBe(true);
    // Once there, the pair is used without asking again.
    expect(serverCertificate(p.cert, p.key, 'h.test').generated).toBe(false);
  });

  test('an existing pair under any name is used; a broken one is a problem of the right setting', () => {
    const p = named(paths().dir, 'relay.example.crt', 'relay.example.key');
    serverCertificate(p.cert, p.key, 'h.test', { anyPath: true });
    writeFileSync(p.key, 'garbage');
    expect(certificateProblems(p.cert, p.key).map((e) => [e.setting, e.file])).toEqual([['ingress.key_file', p.key]]);
  });
});

const DAY = 86_400_000;

describe('expiry', () => {
  /** Our own pair as generateSelfSigned made it `daysAgo` days ago (so it has 365 − daysAgo days left). */
  const devPairMade = (daysAgo: number) => {
    const p = paths();
    const old = generateSelfSigned('relay.example.test', new Date(Date.now() - daysAgo * DAY));
    ensureDevCertificate(p.cert, p.key, 'relay.example.test'); // creates the directory and both files
    writeFileSync(p.cert, old.cert);
    writeFileSync(p.key, old.key);
    return { ...p, old };
  };

  test('our development pair is renewed once it is expired, or in its last 30 days, and the new pair is on disk', () => {
    for (const daysAgo of [400, 340]) {
      const p = devPairMade(daysAgo);
      const renewed = ensureDevCertificate(p.cert, p.key, 'relay.example.test');
      expect(renewed).toMatchObject({ generated: false, renewed: true });
      expect(renewed.cert).not.toBe(p.old.cert);
      expect(readFileSync(p.cert, 'utf8')).toBe(renewed.cert);
      expect(readFileSync(p.key, 'utf8')).toBe(renewed.key);
      expect(statSync(p.key).mode & 0o777).toBe(0o600);
      expect(renewed.notAfter.getTime()).toBeGreaterThan(Date.now() + 364 * DAY);
      expect(new X509Certificate(renewed.cert).checkPrivateKey(createPrivateKey(renewed.key))).toBe(true);
    }
  });

  test('our development pair with more than 30 days left is kept', () => {
    const p = devPairMade(300);
    const kept = ensureDevCertificate(p.cert, p.key, 'relay.example.test');
    expect(kept).toMatchObject({ cert: p.old.cert, generated: false, renewed: false });
    expect(certificateExpiry(kept.notAfter)).toEqual({ daysLeft: 64, state: 'ok' });
  });

  test("an operator's certificate is never replaced, however expired: its expiry is reported", () => {
    const p = paths();
    ensureDevCertificate(p.cert, p.key, 'relay.example.test');
    const theirs = selfSigned({ commonName: 'relay.example.test', notBefore: new Date(Date.now() - 100 * DAY), notAfter: new Date(Date.now() - DAY) });
    writeFileSync(p.cert, theirs.certPem);
    writeFileSync(p.key, theirs.keyPem);
    const loaded = ensureDevCertificate(p.cert, p.key, 'relay.example.test');
    expect(loaded).toMatchObject({ cert: theirs.certPem, generated: false, renewed: false });
    expect(readFileSync(p.cert, 'utf8')).toBe(theirs.certPem);
    expect(certificateExpiry(loaded.notAfter).state).toBe('expired');
  });

  test('certificateExpiry: ok, expiring under 30 days, expired from notAfter on', () => {
    const now = new Date('2026-11-24T12:00:00Z');
    const at = (days: number) => new Date(now.getTime() + days * DAY);
    expect(certificateExpiry(at(45), now)).toEqual({ daysLeft: 45, state: 'ok' });
    expect(certificateExpiry(at(30), now)).toEqual({ daysLeft: 30, state: 'ok' });
    expect(certificateExpiry(at(29.5), now)).toEqual({ daysLeft: 29, state: 'expiring' });
    expect(certificateExpiry(at(0.01), now)).toEqual({ daysLeft: 0, state: 'expiring' });
    expect(certificateExpiry(now, now).state).toBe('expired');
    expect(certificateExpiry(at(-3), now)).toEqual({ daysLeft: -3, state: 'expired' });
  });
});

import { X509Certificate } from 'node:crypto';
import { mkdtempSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ensureDevCertificate, generateSelfSigned } from '../../src/ingress/dev-cert.ts';

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
    expect(again).toEqual({ cert: first.cert, key: first.key, generated: false });
  });

  test('only the key present: error naming the missing certificate file', () => {
    const p = paths();
    ensureDevCertificate(p.cert, p.key, 'h.test');
    unlinkSync(p.cert);
    expect(() => ensureDevCertificate(p.cert, p.key, 'h.test')).toThrow(new RegExp(`certificate file ${p.cert} is missing`));
  });

  test('only the certificate present: error naming the missing key file', () => {
    const p = paths();
    ensureDevCertificate(p.cert, p.key, 'h.test');
    unlinkSync(p.key);
    expect(() => ensureDevCertificate(p.cert, p.key, 'h.test')).toThrow(new RegExp(`key file ${p.key} is missing`));
  });

  test('unparsable certificate or key: error naming the file', () => {
    const p = paths();
    ensureDevCertificate(p.cert, p.key, 'h.test');
    const { key } = ensureDevCertificate(p.cert, p.key, 'h.test');
    writeFileSync(p.cert, 'not a certificate');
    expect(() => ensureDevCertificate(p.cert, p.key, 'h.test')).toThrow(new RegExp(`${p.cert} is not a PEM certificate`));
    const q = paths();
    ensureDevCertificate(q.cert, q.key, 'h.test');
    writeFileSync(q.key, 'garbage');
    expect(() => ensureDevCertificate(q.cert, q.key, 'h.test')).toThrow(new RegExp(`${q.key} is not a PEM private key`));
    expect(key).toContain('PRIVATE KEY');
  });

  test('a key that does not belong to the certificate: error naming both', () => {
    const p = paths();
    ensureDevCertificate(p.cert, p.key, 'h.test');
    writeFileSync(p.key, generateSelfSigned('other.test').key);
    expect(() => ensureDevCertificate(p.cert, p.key, 'h.test')).toThrow(new RegExp(`${p.key} does not match the certificate in ${p.cert}`));
  });

  test('an IP address as hostname goes into the SAN as an IP', () => {
    const x509 = new X509Certificate(generateSelfSigned('192.0.2.25').cert);
    expect(x509.subjectAltName).toContain('IP Address:192.0.2.25');
  });
});

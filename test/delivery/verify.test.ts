import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import type { TlsFacts } from '../../src/delivery/record.ts';
import { NoAcceptableTls, verifyPeer } from '../../src/delivery/verify.ts';
import { SmtpError } from '../../src/smtp-error.ts';
import { sharedTestCa } from '../helpers/test-ca.ts';

const facts = (authorized: boolean, authorizationError: string | null = null): TlsFacts => ({
  protocol: 'TLSv1.3',
  cipher: 'TLS_AES_256_GCM_SHA384',
  bits: 256,
  authorized,
  authorizationError,
  peerCertSubject: 'CN=mx1.example.test',
  peerCertFingerprint256: null,
});

/** The parts of a PeerCertificate that tls.checkServerIdentity reads, from a real certificate. */
function peerCert(pem: string): tls.PeerCertificate {
  const x509 = new X509Certificate(pem);
  const subject = Object.fromEntries(x509.subject.split('\n').map((line) => line.split('=') as [string, string]));
  return { subject, subjectaltname: x509.subjectAltName ?? '' } as unknown as tls.PeerCertificate;
}

describe('verifyPeer', () => {
  const cert = peerCert(sharedTestCa().issue({ commonName: 'mx1.example.test', altNames: ['mx1.example.test'] }).certPem);

  it('none accepts anything, even no certificate', () => {
    expect(verifyPeer('none', facts(false, 'DEPTH_ZERO_SELF_SIGNED_CERT'), null, 'mx1.example.test')).toBeNull();
  });

  it('ca accepts a trusted chain that names the MX', () => {
    expect(verifyPeer('ca', facts(true), cert, 'mx1.example.test')).toBeNull();
    expect(verifyPeer('ca', facts(true), cert, 'MX1.Example.Test')).toBeNull();
  });

  it('ca refuses an untrusted chain', () => {
    const err = verifyPeer('ca', facts(false, 'DEPTH_ZERO_SELF_SIGNED_CERT'), cert, 'mx1.example.test');
    expect(err).toBeInstanceOf(SmtpError);
    expect(err).toMatchObject({ code: 451, enhanced: '4.7.5', stage: 'tls-policy', temporary: true });
    expect(err!.reason).toContain('DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('ca refuses a trusted certificate for another name', () => {
    const err = verifyPeer('ca', facts(true), cert, 'mx2.example.test');
    expect(err).toMatchObject({ enhanced: '4.7.5' });
    expect(err!.reason).toMatch(/does not name mx2\.example\.test/);
  });

  it('ca refuses a session without a certificate', () => {
    expect(verifyPeer('ca', facts(true), null, 'mx1.example.test')?.reason).toMatch(/no certificate/);
  });

  it('mta-sts judges the certificate like ca (chain + MX name; the MX match is checked before connecting)', () => {
    expect(verifyPeer('mta-sts', facts(true), cert, 'mx1.example.test')).toBeNull();
    expect(verifyPeer('mta-sts', facts(true), cert, 'mx2.example.test')?.reason).toMatch(/does not name mx2\.example\.test/);
    expect(verifyPeer('mta-sts', facts(false, 'DEPTH_ZERO_SELF_SIGNED_CERT'), cert, 'mx1.example.test')?.temporary).toBe(true);
  });

  it.each(['dane', 'dane-only'] as const)('%s without the host\'s TLSA set: a temporary refusal (DANE is judged by verifyDane)', (verification) => {
    const err = verifyPeer(verification, facts(true), cert, 'mx1.example.test');
    expect(err).toMatchObject({ code: 451, enhanced: '4.7.5', temporary: true });
    expect(err!.message).toMatch(/without a usable TLSA set/);
  });

  it('auto where DANE does not apply is none: any certificate', () => {
    expect(verifyPeer('auto', facts(false, 'DEPTH_ZERO_SELF_SIGNED_CERT'), cert, 'mx2.example.test')).toBeNull();
  });
});

describe('NoAcceptableTls', () => {
  const mx = { host: 'mx1.example.test', ip: '127.0.0.1', port: 25, preference: 10 };
  it.each([
    ['no-starttls', '4.7.4', 'tls-policy'],
    ['handshake-failed', '4.7.5', 'starttls'],
    ['below-floor', '4.7.4', 'tls-policy'],
    ['verify-failed', '4.7.5', 'tls-policy'],
  ] as const)('%s is a temporary %s at stage %s', (kind, enhanced, stage) => {
    const err = new NoAcceptableTls(kind, { mx, starttlsOffered: kind !== 'no-starttls', tls: null, reason: 'why' });
    expect(err).toBeInstanceOf(SmtpError);
    expect(err).toMatchObject({ kind, code: 451, enhanced, stage, temporary: true, mx, reason: 'why', name: 'NoAcceptableTls' });
  });
});

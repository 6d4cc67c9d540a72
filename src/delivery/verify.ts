// Certificate verification, one small checker per `verification`, run on the facts
// of a finished handshake (maddy's remote/security.go does the same per policy).
// The handshake itself never rejects a certificate (tls-facts.ts), so a refusal
// here still leaves the negotiated TLS in the record. Every refusal is temporary
// (4.7.x): the peer may fix its certificate, and trouble.ts decides what the
// attempt does next. NoAcceptableTls is the one error that means "this host gave
// us no TLS we accept", whatever the reason.
import tls from 'node:tls';
import type { Verification } from '../config/schema.ts';
import { SmtpError, type SmtpStage } from '../smtp-error.ts';
import { matchDane, type DaneMatch } from '../tls/dane.ts';
import type { DaneRequirement } from './dane-target.ts';
import type { MxFacts, TlsFacts } from './record.ts';

/** Why a host's TLS was not acceptable, in the order a session finds out. */
export type NoTlsKind = 'no-starttls' | 'handshake-failed' | 'below-floor' | 'verify-failed';

/** RFC 3463: X.7.4 "security features not supported", X.7.5 "cryptographic failure" (also RFC 7672 §2.2). */
const STATUS_BY_KIND: Readonly<Record<NoTlsKind, { enhanced: string; stage: SmtpStage }>> = {
  'no-starttls': { enhanced: '4.7.4', stage: 'tls-policy' },
  'handshake-failed': { enhanced: '4.7.5', stage: 'starttls' },
  'below-floor': { enhanced: '4.7.4', stage: 'tls-policy' },
  'verify-failed': { enhanced: '4.7.5', stage: 'tls-policy' },
};

/** Local temporary failure: nothing the peer said, our own verdict on its TLS. */
const TLS_POLICY_CODE = 451;

/** This host gave us no TLS we accept. Always temporary; `tls` holds what was negotiated, if anything. */
export class NoAcceptableTls extends SmtpError {
  readonly kind: NoTlsKind;
  readonly mx: MxFacts;
  readonly starttlsOffered: boolean;
  readonly tls: TlsFacts | null;

  constructor(kind: NoTlsKind, detail: { mx: MxFacts; starttlsOffered: boolean; tls: TlsFacts | null; reason: string }) {
    const { enhanced, stage } = STATUS_BY_KIND[kind];
    super(TLS_POLICY_CODE, enhanced, stage, `No acceptable TLS with ${detail.mx.host}: ${detail.reason}`, detail.reason);
    this.name = 'NoAcceptableTls';
    this.kind = kind;
    this.mx = detail.mx;
    this.starttlsOffered = detail.starttlsOffered;
    this.tls = detail.tls;
  }
}

function refuse(reason: string): SmtpError {
  return new SmtpError(TLS_POLICY_CODE, '4.7.5', 'tls-policy', `certificate verification failed: ${reason}`, reason);
}

/**
 * null when the peer's certificate satisfies `verification`, else a 4.7.5 SmtpError.
 * `peerCert` is the socket's getPeerCertificate() (the leaf is enough for the name
 * check); `mxHost` is the MX name from DNS or the route (RFC 7817 §3: the name the
 * certificate must carry is the MX host name, not the recipient domain).
 */
export function verifyPeer(
  verification: Verification,
  facts: TlsFacts,
  peerCert: tls.PeerCertificate | null,
  mxHost: string,
): SmtpError | null {
  switch (verification) {
    // auto where DANE does not apply is none (policy/verification.ts).
    case 'auto':
    case 'none':
      // Encrypt only: any certificate, or none at all.
      return null;
    // MTA-STS (RFC 8461 §4.2): a chain we trust and a certificate naming the MX host;
    // that the host is one the policy lists was checked before connecting (attempt.ts).
    case 'mta-sts':
    case 'ca': {
      if (!peerCert || !Object.keys(peerCert).length) return refuse(`${mxHost} presented no certificate`);
      // `authorized` already covers the SNI name; checked here first so that the reason
      // names the real problem, and so that a resumed session is not waved through.
      const mismatch = tls.checkServerIdentity(mxHost, peerCert);
      if (mismatch) return refuse(`certificate does not name ${mxHost} (${mismatch.message})`);
      if (!facts.authorized) return refuse(`chain of ${mxHost} not trusted (${facts.authorizationError ?? 'unknown reason'})`);
      return null;
    }
    case 'dane':
    case 'dane-only':
      // DANE is judged by verifyDane with the host's TLSA set; without one nothing is sent under it.
      return refuse(`verification ${verification} without a usable TLSA set for ${mxHost}`);
  }
}

/** Most certificates of a presented chain handed to matchDane (real chains have 2–4). */
const MAX_CHAIN = 10;

/**
 * The peer's chain as DER, leaf first, from getPeerCertificate(true): each
 * certificate's issuerCertificate link, stopping at a self-issued one or a repeat.
 */
export function presentedChain(peerCert: tls.DetailedPeerCertificate | null): Buffer[] {
  const chain: Buffer[] = [];
  const seen = new Set<tls.DetailedPeerCertificate>();
  for (let cert = peerCert; cert && Buffer.isBuffer(cert.raw) && !seen.has(cert) && chain.length < MAX_CHAIN; cert = cert.issuerCertificate) {
    seen.add(cert);
    chain.push(cert.raw);
  }
  return chain;
}

/** DANE (RFC 7672 §3): the certificate against the host's usable TLSA set; no CA store is consulted. */
export function verifyDane(dane: DaneRequirement, peerCert: tls.DetailedPeerCertificate | null): DaneMatch {
  const chain = presentedChain(peerCert);
  if (!chain.length) return { ok: false, reason: 'no certificate presented' };
  return matchDane(dane.usable, chain, dane.names);
}

// The DeliveryRecord: the evidence of how one attempt went for one recipient.
// Its `tls` block is copied from the live socket of that attempt (tls-facts.ts),
// never from configuration.
import type { Decision } from '../policy/decision.ts';
import type { PortalFacts } from '../portal/handoff.ts';

export type Method = 'tls' | 'plaintext' | 'pgp+tls' | 'pgp' | 'smime+tls' | 'smime' | 'portal' | 'none';
/** `suppressed`: nothing was sent, the recipient unsubscribed from the sender's domain (reporting/tracking/suppression.ts). */
export type Outcome = 'delivered' | 'deferred' | 'bounced' | 'dropped' | 'portal-notified' | 'suppressed';
export const OUTCOMES: readonly Outcome[] = ['delivered', 'deferred', 'bounced', 'dropped', 'portal-notified', 'suppressed'];

export interface TlsFacts {
  readonly protocol: string;
  readonly cipher: string;
  /** Symmetric key strength of the negotiated cipher. */
  readonly bits: number;
  /** Did the chain verify against our trust store (the socket's `authorized`). */
  readonly authorized: boolean;
  readonly authorizationError: string | null;
  readonly peerCertSubject: string | null;
  readonly peerCertFingerprint256: string | null;
  /** The peer certificate's notAfter (ISO 8601); absent in records written before it was read. */
  readonly peerCertNotAfter?: string | null;
}

export interface MxFacts {
  readonly host: string;
  readonly ip: string | null;
  readonly port: number;
  /** MX preference; 0 for the implicit MX (the domain itself, RFC 5321 §5.1), null for static routes. */
  readonly preference: number | null;
}

export interface DeliveryRecord {
  readonly queueId: string;
  /** Recipient item within the message: `${queueId}.${seq}` names it. */
  readonly seq: number;
  readonly messageId: string | null;
  readonly attempt: number;
  /** ISO 8601 time the attempt started. */
  readonly at: string;
  readonly sender: string;
  readonly recipient: string;
  /** The recipient's domain, lower case; empty when the address has none. */
  readonly domain: string;
  readonly decision: { rule: string; mode: Decision['mode']; verification: Decision['verification']; fallbackChain: readonly string[]; reasons: readonly string[] };
  /** How the message travelled, or would have: `none` when nothing was sent. */
  readonly method: Method;
  readonly outcome: Outcome;
  readonly mx: MxFacts | null;
  /** Did the MX advertise STARTTLS (null when we never got that far). */
  readonly starttlsOffered: boolean | null;
  readonly tls: TlsFacts | null;
  readonly smtp: { code: number | null; enhanced: string | null; response: string };
  /** The recipient domain's MTA-STS policy at this attempt and how the attempt fared against it. */
  readonly mtaSts?: MtaStsVerdict | null;
  /** DANE (RFC 7672) for the MX host of this attempt: null when no DANE lookup was made. */
  readonly dane?: DaneFacts | null;
  /** The end-to-end encryption of this recipient's copy (methods pgp*, smime*). */
  readonly encryption?: EncryptionFacts | null;
  /** When TLS was not enough or a key was missing: why, and every step of the chain tried. */
  readonly fallback?: FallbackFacts | null;
  /** Method portal: the item kept for the recipient and the notification queued to them. */
  readonly portal?: PortalFacts | null;
  readonly durationMs: number;
}

export interface EncryptionFacts {
  readonly method: 'pgp' | 'smime';
  /** The recipient key or certificate used (fingerprint as `sealrelay keys` shows it). */
  readonly keyFingerprint: string;
  /** Imported by an operator or discovered through WKD. */
  readonly keySource: 'import' | 'wkd';
  /** Was the encrypted message also signed by the relay's own key. */
  readonly signed: boolean;
}

export interface FallbackFacts {
  /** What was tried first and why it was not enough, e.g. "forced: no acceptable TLS (...)". */
  readonly reason: string;
  /** Each step in order with its result: "pgp: no OpenPGP key for a@b", "smime: used". */
  readonly tried: readonly string[];
}

export interface MtaStsVerdict {
  readonly mode: 'enforce' | 'testing';
  readonly id: string | null;
  /** "pass", or why it failed (enforce: nothing was sent) or would have failed (testing). */
  readonly result: string;
}

export interface DaneFacts {
  /** matched: a usable TLSA set and the certificate matched; mismatch: usable set, no match (deferred);
      no-usable-tlsa: none published/usable, the policy's other verification applied; insecure: MX or address records not DNSSEC-secure (DANE does not apply, RFC 7672 §2.2);
      bogus / indeterminate: lookup failed validation / could not be answered (deferred). */
  readonly status: 'matched' | 'mismatch' | 'no-usable-tlsa' | 'insecure' | 'bogus' | 'indeterminate';
  /** formatTlsa of the usable set ("3 1 1 ab12…"). */
  readonly tlsa: readonly string[];
  /** The record that matched (formatTlsa), when one did. */
  readonly matched: string | null;
  readonly reason: string;
}

export function makeRecord(r: DeliveryRecord): DeliveryRecord {
  for (const key of ['queueId', 'recipient', 'at'] as const) {
    if (!r[key]) throw new TypeError(`DeliveryRecord needs ${key}`);
  }
  // Empty for a recipient without a domain (a bare "postmaster"): its failure is recorded like any other.
  if (typeof r.domain !== 'string') throw new TypeError('DeliveryRecord needs domain');
  if (!OUTCOMES.includes(r.outcome)) throw new TypeError(`unknown outcome ${r.outcome}`);
  if (r.outcome === 'delivered' && r.method === 'none') throw new TypeError('a delivered record must name its method');
  if ((r.outcome === 'portal-notified') !== (r.method === 'portal') || (r.outcome === 'portal-notified' && !r.portal)) {
    throw new TypeError('method portal goes with outcome portal-notified and the item it made');
  }
  if (r.outcome === 'suppressed' && (r.method !== 'none' || r.mx !== null)) throw new TypeError('a suppressed record sent nothing: method none, no MX');
  if (r.method === 'tls' && !r.tls) throw new TypeError('method tls without the negotiated TLS facts');
  if (!r.smtp.response) throw new TypeError('DeliveryRecord needs a response or reason');
  return Object.freeze(r);
}

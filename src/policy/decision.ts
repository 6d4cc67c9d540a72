// The policy's verdict for one recipient. A Decision is made once, before
// delivery, and travels unchanged with the attempt; the DeliveryRecord quotes it.
import type { FALLBACK_STEPS, Mode, TlsVersion, Verification } from '../config/schema.ts';

export interface Floor {
  /** Lowest protocol accepted; SSLv2/v3, TLSv1.0 and TLSv1.1 are never accepted. */
  readonly minVersion: TlsVersion;
  /** Weakest symmetric cipher strength accepted, in bits. */
  readonly minCipherBits: number;
}

/**
 * A step of the fallback chain: what may be tried when the recipient's MX offers no
 * acceptable TLS, or a pgp/smime recipient has no usable key — an encryption, TLS at
 * the floor (`forced`, a step after pgp/smime), or the portal.
 */
export type FallbackStep = (typeof FALLBACK_STEPS)[number];

/** How a portal item made under this decision is kept (config: portal.* and a rule's `portal:`). */
export interface PortalTerms {
  readonly expiryDays: number;
  /** Part of the item's key lives only in the link's #fragment. */
  readonly keyInLink: boolean;
  /** The notification may name the subject. */
  readonly showSubject: boolean;
  /** Asked of the recipient after the code; null: none. */
  readonly passphrase: string | null;
}

/** What a rule's `tracking:` turns on for its recipients (reporting/tracking/): all off unless a rule asks. */
export interface TrackingTerms {
  /** A 1×1 image in HTML parts whose fetch records `opened`. */
  readonly opens: boolean;
  /** http(s) links in HTML parts go through the signed redirector, which records `clicked`. */
  readonly clicks: boolean;
  /** List-Unsubscribe and List-Unsubscribe-Post (RFC 8058) headers with a signed link. */
  readonly unsubscribe: boolean;
}

/** Whether the terms ask for any tracking at all. */
export function wantsTracking(t: TrackingTerms): boolean {
  return t.opens || t.clicks || t.unsubscribe;
}

export const NO_TRACKING: TrackingTerms = Object.freeze({ opens: false, clicks: false, unsubscribe: false });

export interface Decision {
  readonly mode: Mode;
  readonly floor: Floor;
  readonly verification: Verification;
  readonly fallbackChain: readonly FallbackStep[];
  /** How a portal item is kept, should this recipient's message go to the portal. */
  readonly portal: PortalTerms;
  /**
   * Domain knowledge says this domain has TLS (it delivered over TLS before): a
   * missing STARTTLS or a failed handshake is a possible downgrade, never plaintext.
   */
  readonly tlsExpected: boolean;
  /** Opens, clicks and the unsubscribe link, per the matching rules. */
  readonly tracking: TrackingTerms;
  /** A rule marks the message transactional: sent even to a recipient who unsubscribed from the sender's domain. */
  readonly transactional: boolean;
  /** REQUIRETLS (RFC 8689 §4.2.1): verified TLS to a next hop that advertises it, or a bounce; no fallback (delivery/require-tls.ts). Absent: false. */
  readonly requireTls?: boolean;
  /** An authenticated sender's `TLS-Required: No` (RFC 8689 §4.2.2), honoured because a rule allows it: TLS policy set aside. Absent: false. */
  readonly tlsRequiredNo?: boolean;
  /** Name of the rule that produced this decision ("default" or "domain:example.com"). */
  readonly rule: string;
  /** Why, in words an auditor can read. */
  readonly reasons: readonly string[];
}

/** A Decision to make: tracking and transactional default to off. */
export type DecisionInput = Omit<Decision, 'tracking' | 'transactional'> & Partial<Pick<Decision, 'tracking' | 'transactional'>>;

export function makeDecision(d: DecisionInput): Decision {
  if (!d.rule) throw new TypeError('Decision needs the rule that produced it');
  if (!d.reasons.length) throw new TypeError('Decision needs at least one reason');
  if (d.floor.minCipherBits < 128) throw new RangeError('the floor never accepts ciphers under 128 bits');
  if (d.mode === 'tls-exclusive' && d.fallbackChain.length) throw new TypeError('tls-exclusive has no fallback: it drops');
  if (!(d.portal.expiryDays >= 1)) throw new RangeError('a portal item lives at least a day');
  return Object.freeze({
    ...d,
    fallbackChain: Object.freeze([...d.fallbackChain]),
    reasons: Object.freeze([...d.reasons]),
    portal: Object.freeze({ ...d.portal }),
    tracking: Object.freeze({ ...(d.tracking ?? NO_TRACKING) }),
    transactional: d.transactional ?? false,
  });
}

/** The decision raised by what we know of the domain; reasons say why. Never lowers anything. */
export function expectTls(d: Decision, why: string): Decision {
  if (d.tlsExpected) return d;
  return makeDecision({ ...d, tlsExpected: true, reasons: [...d.reasons, why] });
}

/** Modes that must never put the message on the wire in plaintext. */
export function requiresTls(mode: Mode): boolean {
  return mode === 'forced' || mode === 'tls-exclusive';
}

// Suppressions: a recipient address that must get no more mail from one sender
// domain. An unsubscribe (one-click link, RFC 8058) or an operator (`sealrelay
// suppression add`) makes one; delivery checks them per recipient before sending
// and records `suppressed` (nothing sent) unless the decision marks the message
// transactional (a rule's `transactional: true`: receipts, password resets, lab
// results — mail a person cannot opt out of by unsubscribing from newsletters).
//
// The sender domain is the envelope sender's (MAIL FROM): what the relay is told
// and what its events and records name. The null sender (bounces) and the mail the
// portal makes are never suppressed.
import { domainToASCII } from 'node:url';
import { normaliseAddress } from '../../store/store.ts';

export const SUPPRESSION_SOURCES = ['unsubscribe', 'manual'] as const;
export type SuppressionSource = (typeof SUPPRESSION_SOURCES)[number];

export interface Suppression {
  /** Lower case, IDNA A-labels. */
  readonly senderDomain: string;
  /** Normalised as the key store does (store.ts normaliseAddress). */
  readonly recipient: string;
  readonly source: SuppressionSource;
  /** ms since the epoch. */
  readonly createdAt: number;
  /** For an unsubscribe: the message whose link was used; null otherwise. */
  readonly queueId: string | null;
  readonly seq: number | null;
}

export interface SuppressionFilter {
  readonly senderDomain?: string;
  readonly recipient?: string;
  /** The newest `limit` (returned newest first). */
  readonly limit?: number;
}

/** What a one-click unsubscribe came to: the suppression (made now or before); null when the link names no message the relay knows. */
export interface Unsubscribed {
  readonly suppression: Suppression;
  /** False when the address was already suppressed for that domain (nothing changed). */
  readonly created: boolean;
}

/** The recipient a tracking link names, as its `queued` event tells, and when it was last delivered. */
export interface TrackedRecipient {
  readonly queueId: string;
  readonly seq: number;
  readonly sender: string;
  readonly recipient: string;
  readonly domain: string;
  /** ms since the epoch; null when no delivery is recorded (yet). */
  readonly deliveredAt: number | null;
}

/** A sender domain as suppressions are keyed: lower case A-labels; null when it is not a domain. */
export function normaliseSenderDomain(domain: string): string | null {
  const lower = domain.trim().toLowerCase().replace(/\.$/, '');
  if (!lower || lower.length > 253 || /[\s@/\\]/.test(lower)) return null;
  const ascii = domainToASCII(lower);
  return ascii && /^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(ascii) ? ascii : null;
}

/** The key of a suppression, both halves normalised; throws a TypeError naming the bad half. */
export function suppressionKey(senderDomain: string, recipient: string): { senderDomain: string; recipient: string } {
  const domain = normaliseSenderDomain(senderDomain);
  if (!domain) throw new TypeError(`"${senderDomain.slice(0, 100)}" is not a sender domain`);
  const address = normaliseAddress(recipient);
  if (!address || address.length > 320) throw new TypeError(`"${recipient.slice(0, 100)}" is not an email address`);
  return { senderDomain: domain, recipient: address };
}

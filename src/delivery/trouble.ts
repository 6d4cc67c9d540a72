// What a failure means: the one place that turns "what happened on this host" into
// the next action, in the manner of Postfix's smtp_trouble.c. Pure: no I/O, no
// clock, tested as a table (test/delivery/trouble.test.ts).
//
// Policy:
// - connection trouble (refused, timed out, bad greeting, 421) → the next MX; after
//   the last, defer. A host that is down says nothing about TLS.
// - plaintext is reachable only from `none` and from the opportunistic family
//   (`opportunistic`, and `pgp`/`smime`/`portal`, which travel with opportunistic TLS on
//   top), and there only when the host did not offer STARTTLS at all. A host that
//   offered TLS and then failed the handshake, the floor or the certificate check is
//   not retried in plaintext (next host, then defer) — save for a sealed copy:
// - a sealed copy (`pgp`/`smime`) that asks no certificate check, to a domain where
//   TLS is not expected: a host that offered TLS but gave none at the floor gets the
//   copy in plaintext over a new connection (its content is encrypted end to end; a
//   man in the middle could have stripped STARTTLS to the same effect).
// - `forced`: no acceptable TLS → next host; when no host of the attempt gave
//   acceptable TLS, the fallback chain if there is one, else defer.
// - `tls-exclusive`: when every host of the attempt refused for a TLS reason, drop.
//   Any host that failed for another reason (down, 421) might have had TLS: defer.
// - a reply to the transaction: 2xx delivered, 4xx defer, 5xx bounce (RFC 5321 §4.2.1).
import type { Mode, Verification } from '../config/schema.ts';
import type { FallbackStep } from '../policy/decision.ts';
import { isKeyKind } from '../store/store.ts';
import type { NoTlsKind } from './verify.ts';

/** What happened with one host. */
export type HostEvent =
  /** TCP, greeting or EHLO failed (nothing about TLS is known). */
  | { readonly kind: 'connect-failed' }
  /** The host gave no TLS we accept (connection.ts NoAcceptableTls). */
  | { readonly kind: 'no-acceptable-tls'; readonly tls: NoTlsKind }
  /** The session is up; `secure` when it runs over acceptable TLS. */
  | { readonly kind: 'ok'; readonly secure: boolean }
  /** The server's reply for a recipient or the message; `connectionLevel` for a lost connection. */
  | { readonly kind: 'reply'; readonly code: number; readonly connectionLevel?: boolean };

/** The events that end the use of a host before any mail is sent. */
export type HostFailure = Extract<HostEvent, { kind: 'connect-failed' | 'no-acceptable-tls' }>;

export type NextAction =
  /** Send over this session (TLS acceptable). */
  | 'deliver'
  /** Send over this session in plaintext (the mode allows it). */
  | 'deliver-plain'
  /** The server accepted it. */
  | 'delivered'
  | 'next-host'
  /** A sealed copy and a host without TLS at the floor: connect again without STARTTLS, send in plaintext. */
  | 'retry-plain'
  | 'defer'
  | 'bounce'
  /** tls-exclusive without acceptable TLS: recorded as dropped, never sent. */
  | 'drop'
  /** forced without acceptable TLS: hand over to the decision's fallback chain. */
  | 'fallback';

export interface TroublePolicy {
  readonly mode: Mode;
  readonly fallbackChain: readonly FallbackStep[];
  /** Domain knowledge: the domain offered TLS before or has MTA-STS enforce (DESIGN.md) — no plaintext. */
  readonly tlsExpected?: boolean;
  /** The certificate check asked for; absent means none. */
  readonly verification?: Verification;
}

/** Modes that take plaintext from a host without STARTTLS. */
function plaintextAllowed(policy: TroublePolicy): boolean {
  if (policy.mode === 'none') return true;
  const opportunisticFamily = policy.mode === 'opportunistic' || policy.mode === 'pgp' || policy.mode === 'smime' || policy.mode === 'portal';
  return opportunisticFamily && !policy.tlsExpected;
}

/** A sealed copy that asks no certificate check, where TLS is not expected: plaintext even from a host that offered TLS. */
function sealedPlaintextAllowed(policy: TroublePolicy): boolean {
  return isKeyKind(policy.mode) && (policy.verification ?? 'none') === 'none' && !policy.tlsExpected;
}

/** The end of the host list with no acceptable TLS. */
function noTlsAnywhere(policy: TroublePolicy, history: readonly HostEvent[]): NextAction {
  const everyHostRefusedTls = history.length > 0 && history.every((e) => e.kind === 'no-acceptable-tls');
  if (!everyHostRefusedTls) return 'defer';
  if (policy.mode === 'tls-exclusive') return 'drop';
  if (policy.mode === 'forced' && policy.fallbackChain.length) return 'fallback';
  return 'defer';
}

/**
 * The next action after `event` on a host.
 * `history`: the events of every host tried in this attempt so far, this one included
 * (it is added when missing); it decides whether "no TLS anywhere" really was everywhere.
 */
export function afterHostEvent(policy: TroublePolicy, event: HostEvent, isLastHost: boolean, history: readonly HostEvent[] = [event]): NextAction {
  const all = history.includes(event) ? history : [...history, event];
  const moveOn = (atEnd: () => NextAction): NextAction => (isLastHost ? atEnd() : 'next-host');

  switch (event.kind) {
    case 'connect-failed':
      return moveOn(() => 'defer');
    case 'ok':
      if (event.secure) return 'deliver';
      if (plaintextAllowed(policy)) return 'deliver-plain';
      // A plaintext session where plaintext is not allowed: as if STARTTLS was not offered.
      return afterHostEvent(policy, { kind: 'no-acceptable-tls', tls: 'no-starttls' }, isLastHost, all.map((e) => (e === event ? { kind: 'no-acceptable-tls', tls: 'no-starttls' } : e)));
    case 'no-acceptable-tls':
      if (event.tls === 'no-starttls' && plaintextAllowed(policy)) return 'deliver-plain';
      if (event.tls !== 'no-starttls' && sealedPlaintextAllowed(policy)) return 'retry-plain';
      return moveOn(() => noTlsAnywhere(policy, all));
    case 'reply':
      if (event.code >= 200 && event.code < 300) return 'delivered';
      // RFC 5321 §3.8: 421 closes the session; like a lost connection it is about the host.
      if (event.code === 421 || event.connectionLevel) return moveOn(() => 'defer');
      if (event.code >= 500) return 'bounce';
      return 'defer';
  }
}

/**
 * Shorthand for a failure before any mail was sent (see afterHostEvent).
 * `failures`: every failure of this attempt so far, this one included.
 */
export function afterHostFailure(
  policy: TroublePolicy,
  failure: HostFailure,
  isLastHost: boolean,
  failures: readonly HostFailure[] = [failure],
): Exclude<NextAction, 'deliver' | 'delivered'> {
  return afterHostEvent(policy, failure, isLastHost, failures) as Exclude<NextAction, 'deliver' | 'delivered'>;
}

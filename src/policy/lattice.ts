// The escalation lattice: how two requirements for one recipient combine. The
// join of two decisions is never weaker than either, in any dimension, so no
// combination of rules and escalations can lower protection.
//
//   mode:          none < opportunistic < forced = tls-exclusive < pgp = smime < portal
//                  (forced ⊔ tls-exclusive = forced: both demand TLS, and forced keeps
//                  the message rather than dropping it; pgp ⊔ smime keeps the earlier)
//   verification:  none < auto, none < ca < mta-sts < dane < dane-only
//                  (mta-sts is ca plus the policy's MX match; dane pins the key where
//                  the MX publishes TLSA, else mta-sts; dane-only defers instead;
//                  auto is DANE where published, else none — so auto ⊔ ca = auto ⊔
//                  mta-sts = dane: DANE where published, else at least ca)
//   floor:         the higher min_version and the higher min_cipher_bits
//   tlsExpected:   or
//   portal terms:  the shorter expiry; key in link if either asks; the subject
//                  shown only if both allow; the stronger decision's passphrase, else the other's
//   tracking:      each of opens, clicks, unsubscribe on if any matching rule asks (opt-in per rule)
//   transactional: or (a rule that marks the message transactional sends it past suppressions)
//   fallback:      the stronger mode's chain; for equal modes both chains, the
//                  stronger decision's steps first, no repeats (a pgp rule without a
//                  fallback stays without one, whatever a forced rule would allow)
import type { Mode, TlsVersion, Verification } from '../config/schema.ts';
import { makeDecision, type Decision, type Floor, type PortalTerms } from './decision.ts';

export const MODE_RANK: Readonly<Record<Mode, number>> = {
  none: 0,
  opportunistic: 1,
  forced: 2,
  'tls-exclusive': 2,
  pgp: 3,
  smime: 3,
  portal: 4,
};

/** A total order for atLeast(); auto and ca are incomparable, and joinVerification knows it. */
export const VERIFICATION_RANK: Readonly<Record<Verification, number>> = { none: 0, auto: 1, ca: 2, 'mta-sts': 3, dane: 4, 'dane-only': 5 };

const VERSION_RANK: Readonly<Record<TlsVersion, number>> = { 'TLSv1.2': 0, 'TLSv1.3': 1 };

export function joinMode(a: Mode, b: Mode): Mode {
  if (MODE_RANK[a] !== MODE_RANK[b]) return MODE_RANK[a] > MODE_RANK[b] ? a : b;
  // Equal rank: forced over tls-exclusive (keep the message); otherwise the first.
  return a === 'tls-exclusive' && b === 'forced' ? b : a;
}

export function joinVerification(a: Verification, b: Verification): Verification {
  // DANE where published (auto) and a CA-checked certificate elsewhere (ca, mta-sts): dane.
  const checked = (v: Verification) => v === 'ca' || v === 'mta-sts';
  if ((a === 'auto' && checked(b)) || (b === 'auto' && checked(a))) return 'dane';
  return VERIFICATION_RANK[b] > VERIFICATION_RANK[a] ? b : a;
}

export function joinFloor(a: Floor, b: Floor): Floor {
  return {
    minVersion: VERSION_RANK[b.minVersion] > VERSION_RANK[a.minVersion] ? b.minVersion : a.minVersion,
    minCipherBits: Math.max(a.minCipherBits, b.minCipherBits),
  };
}

/** `a` raised by `b`: the rule that set the (strictly) stronger mode names the result. */
export function joinDecisions(a: Decision, b: Decision): Decision {
  const mode = joinMode(a.mode, b.mode);
  const stronger = mode === a.mode ? a : b;
  const weaker = stronger === a ? b : a;
  return makeDecision({
    mode,
    verification: joinVerification(a.verification, b.verification),
    floor: joinFloor(a.floor, b.floor),
    tlsExpected: a.tlsExpected || b.tlsExpected,
    // tls-exclusive drops instead of falling back.
    fallbackChain:
      mode === 'tls-exclusive' ? [] : MODE_RANK[a.mode] === MODE_RANK[b.mode] ? [...new Set([...stronger.fallbackChain, ...weaker.fallbackChain])] : stronger.fallbackChain,
    portal: joinPortalTerms(stronger.portal, weaker.portal),
    tracking: { opens: a.tracking.opens || b.tracking.opens, clicks: a.tracking.clicks || b.tracking.clicks, unsubscribe: a.tracking.unsubscribe || b.tracking.unsubscribe },
    transactional: a.transactional || b.transactional,
    rule: stronger.rule,
    reasons: [...a.reasons, ...b.reasons],
  });
}

export function joinPortalTerms(a: PortalTerms, b: PortalTerms): PortalTerms {
  return {
    expiryDays: Math.min(a.expiryDays, b.expiryDays),
    keyInLink: a.keyInLink || b.keyInLink,
    showSubject: a.showSubject && b.showSubject,
    passphrase: a.passphrase ?? b.passphrase,
  };
}

/** Is `a` at least as strong as `b` in every dimension? */
export function atLeast(a: Decision, b: Decision): boolean {
  return (
    MODE_RANK[a.mode] >= MODE_RANK[b.mode] &&
    joinVerification(a.verification, b.verification) === a.verification &&
    VERSION_RANK[a.floor.minVersion] >= VERSION_RANK[b.floor.minVersion] &&
    a.floor.minCipherBits >= b.floor.minCipherBits &&
    (a.tlsExpected || !b.tlsExpected)
  );
}

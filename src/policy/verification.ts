// What a decision's `verification` asks of one MX host, once DNS has said whether
// DANE (RFC 7672) applies there. The decision keeps the value the policy chose
// (auto, dane, dane-only…); the attempt asks this module what to check per host.
//
//   auto       DANE where the host has a usable TLSA set, else none (the default;
//              without delivery.dns.dnssec it is resolved to none at decide time)
//   dane       DANE where usable, else mta-sts (= ca, plus the MTA-STS MX match where
//              the domain has a policy): the lattice puts dane above mta-sts, so the
//              fallback keeps everything a weaker rule asked
//   dane-only  DANE where usable, else defer (Postfix smtp_tls_security_level = dane-only)
//   none, ca, mta-sts  no DANE lookups at all
import type { Mode, Verification } from '../config/schema.ts';

/** The verification a policy entry means under this config: `auto` is plain `none` without a validating resolver. */
export function configuredVerification(v: Verification, dnssec: boolean): Verification {
  return v === 'auto' && !dnssec ? 'none' : v;
}

/** Should the attempt look up TLSA records (RFC 7672 §2.2) for this decision? Never for mode none: plaintext was asked for. */
export function wantsDane(v: Verification, mode: Mode, dnssec: boolean): boolean {
  return dnssec && mode !== 'none' && (v === 'auto' || v === 'dane' || v === 'dane-only');
}

/** What is checked on a host where DANE does not apply (no usable TLSA, insecure DNS): null = defer (dane-only). */
export function withoutDane(v: Verification): Exclude<Verification, 'auto' | 'dane' | 'dane-only'> | null {
  switch (v) {
    case 'auto':
      return 'none';
    case 'dane':
      return 'mta-sts';
    case 'dane-only':
      return null;
    default:
      return v;
  }
}

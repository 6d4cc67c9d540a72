// Does DANE apply to one MX host, and with which TLSA records (RFC 7672 §2.2)?
// Asked per host before connecting, when the decision wants DANE and the
// destination came through the DNSSEC resolver (resolve-mx.ts):
//
// - an MX RRset that is not DNSSEC-secure: DANE does not apply to the domain (§2.2.1);
// - address records that are not secure: no TLSA lookup for that host (§2.2.2);
// - TLSA at `_<port>._tcp.<base>`, where the base is the fully CNAME-expanded host
//   name when the address came through a secure CNAME chain, and the MX host name
//   when there is none there (§2.2.3);
// - an insecure TLSA answer, none published, or none usable (§3.1.3: only
//   DANE-TA/DANE-EE): DANE does not apply, the policy's other verification does;
// - a bogus or indeterminate TLSA answer: this host is not used (§2.2, defer).
// The certificate is matched later, on the live session (connection.ts).
import { DnssecLookupError, type DnssecResolver, type TlsaRecord } from '../net/dnssec.ts';
import { SmtpError } from '../smtp-error.ts';
import { formatTlsa, usableTlsa } from '../tls/dane.ts';
import type { DaneFacts } from './record.ts';
import type { MxTarget } from './resolve-mx.ts';

/** What the session must check: the usable set and the reference names for DANE-TA (§3.2.2). */
export interface DaneRequirement {
  readonly usable: readonly TlsaRecord[];
  /** The TLSA base domain, then the MX host name when different. */
  readonly names: readonly string[];
}

export type DaneTarget =
  /** Usable TLSA records: TLS is mandatory and the certificate must match them. */
  | { readonly kind: 'usable'; readonly requirement: DaneRequirement; readonly tlsa: readonly string[]; /** "_25._tcp.<base>" */ readonly owner: string }
  /** DANE does not apply here (insecure DNS, no usable TLSA): the policy's other verification does. */
  | { readonly kind: 'not-applicable'; readonly facts: DaneFacts }
  /** The TLSA lookup could not be trusted or answered: this host is not used. */
  | { readonly kind: 'failed'; readonly facts: DaneFacts; readonly error: SmtpError };

const notApplicable = (status: 'insecure' | 'no-usable-tlsa', reason: string): DaneTarget => ({ kind: 'not-applicable', facts: { status, tlsa: [], matched: null, reason } });

/** The DANE facts of a host whose usable set was matched against its certificate (or never got that far). */
export function daneVerdict(target: Extract<DaneTarget, { kind: 'usable' }>, outcome: { matched: string } | { failed: string }): DaneFacts {
  return 'matched' in outcome
    ? { status: 'matched', tlsa: target.tlsa, matched: outcome.matched, reason: `certificate matched TLSA ${outcome.matched} at ${target.owner}` }
    : { status: 'mismatch', tlsa: target.tlsa, matched: null, reason: outcome.failed };
}

export async function daneTargetOf(domain: string, target: MxTarget, resolver: DnssecResolver): Promise<DaneTarget> {
  const names = target.dnssec;
  if (!names) return notApplicable('insecure', `${target.host} is a static route (delivery.routes): no DNSSEC answers, DANE does not apply`);
  if (!names.mxSecure) return notApplicable('insecure', `the MX records of ${domain} are not DNSSEC-signed: DANE does not apply (RFC 7672 §2.2.1)`);
  if (!names.addressSecure) return notApplicable('insecure', `the address records of ${target.host} are not DNSSEC-signed: no TLSA lookup (RFC 7672 §2.2.2)`);

  const bases = names.expandedName && names.expandedName !== target.host ? [names.expandedName, target.host] : [target.host];
  for (const base of bases) {
    const owner = `_${target.port}._tcp.${base}`;
    let rr;
    try {
      rr = await resolver.tlsa(base, target.port);
    } catch (err) {
      const kind = err instanceof DnssecLookupError ? err.kind : 'indeterminate';
      const reason = `TLSA lookup of ${owner}: ${(err as Error).message} (${kind}, RFC 7672 §2.2)`;
      // RFC 3463: X.7.5 for an answer that failed validation, X.4.3 for a resolver that gave none.
      const error = new SmtpError(451, kind === 'bogus' ? '4.7.5' : '4.4.3', 'dns', `TLSA lookup for ${target.host} failed, will retry`, reason);
      return { kind: 'failed', facts: { status: kind, tlsa: [], matched: null, reason }, error };
    }
    if (rr.status !== 'secure') return notApplicable('insecure', `the TLSA records at ${owner} are not DNSSEC-signed: DANE does not apply`);
    // None at the expanded name: try the MX host name (§2.2.3).
    if (!rr.records.length) continue;
    const usable = usableTlsa(rr.records);
    if (!usable.length) {
      return notApplicable('no-usable-tlsa', `${rr.records.length} TLSA record(s) at ${owner}, none usable (only DANE-TA(2)/DANE-EE(3), RFC 7672 §3.1.3): ${rr.records.map(formatTlsa).join('; ')}`);
    }
    return {
      kind: 'usable',
      requirement: { usable, names: [...new Set([base, target.host])] },
      tlsa: usable.map(formatTlsa),
      owner,
    };
  }
  return notApplicable('no-usable-tlsa', `no TLSA records at _${target.port}._tcp.${bases.join(' or ')}`);
}

// REQUIRETLS and the TLS-Required header field (RFC 8689), the parts that decide.
// Pure: no I/O, no clock; attempt.ts and scheduler.ts call these with the facts.
//
// REQUIRETLS is the sender's demand, given on MAIL FROM (ingress keeps it with the
// message). Such a message goes out only when, for the next hop (§4.2.1):
//   - the MX is authenticated: MTA-STS (a policy in force lists it — a policy in
//     `testing` mode counts as `enforce` here) or DANE (a usable TLSA set matched);
//   - the session runs over TLS with the certificate verified that way;
//   - the EHLO after STARTTLS advertises REQUIRETLS, and MAIL FROM passes it on.
// A host that fails any of these is left (QUIT) and the next MX is tried. When every
// host failed that way the message is not delivered: it bounces with 5.7.30
// "REQUIRETLS support required" (§5), at once rather than after the queue lifetime —
// retrying would not make a hop that lacks REQUIRETLS grow it, and the sender asked
// for a clear answer over delivery. A host that could not be reached at all (refused,
// timed out, 421) said nothing about REQUIRETLS: with such a host among them, the
// message is deferred as usual. The policy's fallback chain (pgp, smime, portal)
// never applies: it would deliver the message some other way than the sender demanded.
//
// TLS-Required: No (§3, §4.2.2) asks the opposite: deliver even where TLS policy
// (MTA-STS, DANE, the mode's TLS demand, domain knowledge) would refuse. Anyone can
// write a header, so it is honoured only for an authenticated sender and only for
// recipients of a rule with `allow_tls_required_no: true`; STARTTLS is still used
// where offered. With REQUIRETLS on the same message the header is ignored (§3).
import type { MtaStsState } from '../domains/mta-sts-cache.ts';
import { makeDecision, type Decision } from '../policy/decision.ts';
import { joinVerification } from '../policy/lattice.ts';
import { SmtpError } from '../smtp-error.ts';
import type { DaneFacts, MtaStsVerdict, MxFacts, TlsFacts } from './record.ts';

/** RFC 8689 §5 / RFC 5248 registry: X.7.30 "REQUIRETLS support required". */
export const REQUIRETLS_STATUS = '5.7.30';

/** Does the header block say `TLS-Required: No`? The field's only value (§3); any other is not this field's and is ignored. */
export function asksTlsOptional(headers: ReadonlyMap<string, readonly string[]>): boolean {
  return (headers.get('tls-required') ?? []).some((v) => v.trim().toLowerCase() === 'no');
}

export interface MessageTlsDemands {
  /** REQUIRETLS given on MAIL FROM. */
  readonly requireTls: boolean;
  /** The message carries `TLS-Required: No`. */
  readonly tlsOptional: boolean;
  /** The ingress AUTH user; null when not authenticated. */
  readonly authUser: string | null;
  /** The rule that allows the header for this recipient (Policy.tlsRequiredNoRule), or null. */
  readonly allowedBy: string | null;
  /** The domain's MTA-STS policy, when it has one in force. */
  readonly sts: MtaStsState | null;
}

/** The decision as the message's own TLS demands leave it; the reasons say what was done with them. */
export function withTlsDemands(d: Decision, m: MessageTlsDemands): Decision {
  if (m.requireTls) {
    const reasons = [...d.reasons, 'REQUIRETLS (RFC 8689): only over TLS verified by MTA-STS or DANE, to a next hop that advertises REQUIRETLS; no fallback; otherwise a bounce (5.7.30)'];
    if (m.tlsOptional) reasons.push('TLS-Required: No ignored: the message came with REQUIRETLS, which wins (RFC 8689 §3)');
    // A testing-mode policy counts as enforce for REQUIRETLS (§4.2.1): its MX list and the certificate are checked.
    const stsInForce = m.sts?.mode === 'enforce' || m.sts?.mode === 'testing';
    return makeDecision({
      ...d,
      verification: stsInForce ? joinVerification(d.verification, 'mta-sts') : d.verification,
      fallbackChain: [],
      tlsExpected: true,
      requireTls: true,
      reasons,
    });
  }
  if (!m.tlsOptional) return d;
  if (m.authUser === null) return makeDecision({ ...d, reasons: [...d.reasons, 'TLS-Required: No ignored: only an authenticated sender may set TLS policy aside'] });
  if (m.allowedBy === null) return makeDecision({ ...d, reasons: [...d.reasons, 'TLS-Required: No ignored: no rule for this recipient allows it (allow_tls_required_no)'] });
  // The mode's TLS demand goes; encryption modes and the portal are not TLS policy and stay.
  const mode = d.mode === 'forced' || d.mode === 'tls-exclusive' ? 'opportunistic' : d.mode;
  return makeDecision({
    ...d,
    mode,
    verification: 'none',
    tlsExpected: false,
    fallbackChain: mode === 'opportunistic' || mode === 'none' ? [] : d.fallbackChain,
    tlsRequiredNo: true,
    reasons: [
      ...d.reasons,
      `TLS-Required: No from ${m.authUser} honoured (rule ${m.allowedBy} allows it): MTA-STS, DANE and the mode's TLS demand set aside for this message; STARTTLS still used where offered (RFC 8689 §4.2.2)`,
    ],
  });
}

/** Can a REQUIRETLS message to this destination be sent at all: null, or why not (nothing can authenticate its MX). */
export function requireTlsUnreachable(domain: string, sts: MtaStsState | null, verification: Decision['verification'], routed: boolean): string | null {
  if (sts?.mode === 'enforce' || sts?.mode === 'testing') return null;
  // DANE is looked up per host where the verification asks for it (dane, dane-only, auto with a validating resolver).
  if (verification === 'dane' || verification === 'dane-only' || verification === 'auto') return null;
  return routed
    ? `${domain} goes by a static route (delivery.routes): no MTA-STS, and DANE is not asked for, so its host cannot be authenticated for REQUIRETLS (RFC 8689 §4.2.1)`
    : `${domain} has no MTA-STS policy and DANE is not asked for: its MX cannot be authenticated for REQUIRETLS (RFC 8689 §4.2.1)`;
}

/** What one open session to one host showed, as REQUIRETLS judges it. */
export interface RequireTlsFacts {
  readonly host: string;
  readonly tls: TlsFacts | null;
  /** The EHLO after STARTTLS listed REQUIRETLS. */
  readonly requiretlsOffered: boolean;
  /** The attempt's MTA-STS verdict for this host; null when the domain has no policy in force. */
  readonly mtaSts: MtaStsVerdict | null;
  /** DANE for this host (record.dane); only `matched` counts. */
  readonly dane: Pick<DaneFacts, 'status'> | null;
}

export type RequireTlsVerdict = { readonly ok: true; readonly via: 'mta-sts' | 'dane' } | { readonly ok: false; readonly reason: string };

/** May a REQUIRETLS message go over this session (RFC 8689 §4.2.1)? */
export function requireTlsVerdict(f: RequireTlsFacts): RequireTlsVerdict {
  if (!f.tls) return { ok: false, reason: `no TLS with ${f.host}` };
  let via: 'mta-sts' | 'dane' | null = null;
  if (f.dane?.status === 'matched') via = 'dane';
  // A testing policy's "would fail: …" is a failure here: testing counts as enforce.
  else if (f.mtaSts?.result === 'pass' && f.tls.authorized) via = 'mta-sts';
  if (!via) {
    const why = f.mtaSts ? `MTA-STS ${f.mtaSts.mode}: ${f.mtaSts.result}` : f.dane ? `DANE: ${f.dane.status}` : 'neither MTA-STS nor DANE covers it';
    return { ok: false, reason: `the certificate of ${f.host} is not verified by MTA-STS or DANE (${why})` };
  }
  if (!f.requiretlsOffered) return { ok: false, reason: `${f.host} does not advertise REQUIRETLS` };
  return { ok: true, via };
}

/** A host that could not carry a REQUIRETLS message: the session is left with QUIT, the next MX is tried. */
export class RequireTlsUnmet extends SmtpError {
  readonly mx: MxFacts;
  readonly starttlsOffered: boolean | null;
  readonly tls: TlsFacts | null;
  /** The TLSA record the certificate matched, when the session was opened under DANE. */
  readonly daneMatched: string | null;

  constructor(detail: { mx: MxFacts; starttlsOffered: boolean | null; tls: TlsFacts | null; daneMatched?: string | null; reason: string }) {
    super(550, REQUIRETLS_STATUS, 'tls-policy', 'REQUIRETLS support required', `REQUIRETLS: ${detail.reason}`);
    this.name = 'RequireTlsUnmet';
    this.mx = detail.mx;
    this.starttlsOffered = detail.starttlsOffered;
    this.tls = detail.tls;
    this.daneMatched = detail.daneMatched ?? null;
  }
}

/** How one host failed a REQUIRETLS message: a REQUIRETLS reason (TLS, its verification, the extension), or unreachable. */
export type RequireTlsHostFailure = { readonly kind: 'requiretls'; readonly reason: string } | { readonly kind: 'unreachable'; readonly reason: string };

/**
 * After the last host: bounce with 5.7.30 when every host failed for a REQUIRETLS
 * reason; defer (and retry) when any could not be reached, since it might have done.
 */
export function afterRequireTlsFailures(failures: readonly RequireTlsHostFailure[]): 'bounce' | 'defer' {
  return failures.length > 0 && failures.every((f) => f.kind === 'requiretls') ? 'bounce' : 'defer';
}

/** The bounce of a REQUIRETLS message: 550 5.7.30, naming what each host lacked. */
export function requireTlsBounce(domain: string, reasons: readonly string[]): SmtpError {
  return new SmtpError(550, REQUIRETLS_STATUS, 'tls-policy', 'REQUIRETLS support required', `REQUIRETLS support required: no mail host of ${domain} met the sender's demand (RFC 8689): ${reasons.join('; ')}`);
}

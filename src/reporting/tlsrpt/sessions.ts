// From DeliveryRecords to TLS sessions and their RFC 8460 results. The records are
// the only source: what the report says of TLS is what each attempt read from its
// socket (record.ts), never what configuration expected.
//
// Policy:
// - one session is one (queueId, attempt, MX host, MX address): the records of the
//   recipients that went through it count once. An attempt that never reached TLS
//   negotiation (DNS failure, connection refused: no STARTTLS answer) is not a session,
//   except when a policy stopped it before connecting (MTA-STS: no MX matches; DANE:
//   a DNSSEC lookup was bogus or unanswered, or dane-only found no DANE) — a failure
//   the domain needs to hear about.
// - the policy (§4.2, agreed in issue 16): "tlsa" when DANE applied (a usable TLSA set
//   matched or not, or the lookup was bogus), else "sts" when an MTA-STS policy was in
//   force (testing included), else "no-policy-found".
// - a session fails (§4.3) when no TLS was established, when the certificate was
//   refused, when an MTA-STS policy failed (or, in testing mode, would have), or when
//   DANE failed; the result type says why, from the record's facts. A recipient refused
//   by the server (550 user unknown) is not a TLS failure.
import type { DeliveryRecord } from '../../delivery/record.ts';

/** RFC 8460 §4.3 result types. */
export type ResultType =
  | 'starttls-not-supported'
  | 'certificate-host-mismatch'
  | 'certificate-expired'
  | 'certificate-not-trusted'
  | 'validation-failure'
  | 'tlsa-invalid'
  | 'dnssec-invalid'
  | 'dane-required'
  | 'sts-policy-fetch-error'
  | 'sts-policy-invalid'
  | 'sts-webpki-invalid';

/** Which policy a session was judged under (one entry of the report's `policies`). */
export type PolicyRef =
  | { readonly type: 'sts'; readonly id: string | null; readonly mode: 'enforce' | 'testing' }
  | { readonly type: 'tlsa'; readonly mxHost: string | null; readonly tlsa: readonly string[] }
  | { readonly type: 'no-policy-found' };

export interface SessionFailure {
  readonly resultType: ResultType;
  readonly receivingMxHostname: string | null;
  readonly receivingIp: string | null;
  /** Our own short reason (never a server's reply, which may name a recipient). */
  readonly reason: string;
}

export interface Session {
  readonly key: string;
  readonly policy: PolicyRef;
  readonly failure: SessionFailure | null;
}

export function policyOf(r: DeliveryRecord): PolicyRef {
  const dane = r.dane ?? null;
  if (dane && (dane.status === 'matched' || dane.status === 'mismatch' || dane.status === 'bogus')) {
    return { type: 'tlsa', mxHost: r.mx?.host.toLowerCase() ?? null, tlsa: [...dane.tlsa].sort() };
  }
  if (r.mtaSts) return { type: 'sts', id: r.mtaSts.id, mode: r.mtaSts.mode };
  return { type: 'no-policy-found' };
}

/** Node's verify error codes (the socket's authorizationError) by the §4.3.1 type they are. */
const HOST_MISMATCH_CODES = new Set(['ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH']);
const EXPIRED_CODES = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** The certificate's fault, from what the socket said and the reason we refused it. */
function certificateResult(r: DeliveryRecord, why: string): ResultType {
  const code = r.tls?.authorizationError ?? '';
  if (/does not name|not valid for|altname|hostname/i.test(why) || HOST_MISMATCH_CODES.has(code)) return 'certificate-host-mismatch';
  if (EXPIRED_CODES.has(code) || /expired/i.test(why)) return 'certificate-expired';
  const notAfter = r.tls?.peerCertNotAfter ? Date.parse(r.tls.peerCertNotAfter) : NaN;
  if (notAfter < Date.parse(r.at)) return 'certificate-expired';
  if (code || /not trusted|self.signed|issuer/i.test(why)) return 'certificate-not-trusted';
  return 'validation-failure';
}

/** Our refusal of a certificate (delivery/verify.ts), told by its reason. */
const REFUSED_CERTIFICATE = /certificate verification failed|certificate does not name|chain of .* not trusted|presented no certificate/i;

/** verification dane-only where DANE did not apply (RFC 8460 §4.3.2.2 dane-required). */
const daneRequired = (r: DeliveryRecord): boolean =>
  (r.dane?.status === 'no-usable-tlsa' || r.dane?.status === 'insecure') && (r.decision.verification as string) === 'dane-only';

/** A DANE failure found before any TLS: a DNSSEC lookup that failed validation or went unanswered, or dane-only without DANE. */
const daneStopped = (r: DeliveryRecord): boolean => r.dane?.status === 'bogus' || r.dane?.status === 'indeterminate' || daneRequired(r);

/** What failed in this record's session, or null when its TLS was all right. */
function failureOf(r: DeliveryRecord, policy: PolicyRef): Omit<SessionFailure, 'receivingMxHostname' | 'receivingIp'> | null {
  const dane = r.dane ?? null;
  if (dane?.status === 'bogus' || dane?.status === 'indeterminate') return { resultType: 'dnssec-invalid', reason: dane.reason };
  if (dane && daneRequired(r)) return { resultType: 'dane-required', reason: dane.reason };
  if (!r.tls) {
    if (r.mx && r.starttlsOffered === false) return { resultType: 'starttls-not-supported', reason: `${r.mx.host} did not offer STARTTLS` };
    if (!r.mx) return { resultType: 'validation-failure', reason: r.mtaSts?.result ?? dane?.reason ?? 'no MX host allowed' };
    return { resultType: 'validation-failure', reason: `no TLS established with ${r.mx.host}` };
  }
  if (dane?.status === 'mismatch') return { resultType: 'validation-failure', reason: dane.reason || 'no TLSA record matched the certificate' };
  const refused = REFUSED_CERTIFICATE.exec(r.smtp.response) ? r.smtp.response : null;
  if (refused) return { resultType: certificateResult(r, refused), reason: reasonText(refused) };
  if (policy.type === 'sts' && r.mtaSts && r.mtaSts.result !== 'pass') {
    const why = r.mtaSts.result;
    if (/does not match the MTA-STS policy/.test(why)) return { resultType: 'validation-failure', reason: why };
    return { resultType: /certificate/.test(why) ? certificateResult(r, why) : 'validation-failure', reason: why };
  }
  return null;
}

/** One line of ASCII, bounded: failure-reason-code is free text for people. */
function reasonText(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim().slice(0, 200);
}

/** The session of one record, or null when the attempt never came to TLS. */
export function sessionOf(r: DeliveryRecord): Session | null {
  const policy = policyOf(r);
  const preConnect = r.mx === null;
  if (preConnect) {
    // Only a policy's refusal before connecting counts; other failures without a host are not TLS sessions.
    const stopped = (policy.type === 'sts' && r.mtaSts?.result !== 'pass') || policy.type === 'tlsa' || daneStopped(r);
    if (!stopped || r.method !== 'none') return null;
  } else if (r.starttlsOffered === null && r.tls === null && !daneStopped(r)) {
    return null;
  }
  const failure = failureOf(r, policy);
  return {
    key: `${r.queueId}|${r.attempt}|${r.mx?.host.toLowerCase() ?? ''}|${r.mx?.ip ?? ''}`,
    policy,
    failure: failure && { ...failure, reason: reasonText(failure.reason), receivingMxHostname: r.mx?.host.toLowerCase() ?? null, receivingIp: r.mx?.ip ?? null },
  };
}

/** The sessions of a set of records: one per session key; a session with any failed record failed. */
export function sessionsOf(records: readonly DeliveryRecord[]): Session[] {
  const sessions = new Map<string, Session>();
  addSessions(sessions, records);
  return [...sessions.values()];
}

/** Adds the sessions of `records` to `sessions` (by key), for records read a batch at a time. */
export function addSessions(sessions: Map<string, Session>, records: readonly DeliveryRecord[]): void {
  for (const r of records) {
    const s = sessionOf(r);
    if (!s) continue;
    const seen = sessions.get(s.key);
    if (!seen || (!seen.failure && s.failure)) sessions.set(s.key, s);
  }
}

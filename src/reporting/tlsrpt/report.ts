// The RFC 8460 aggregate report (§4.4) of one policy domain for one UTC day, made
// from that day's DeliveryRecords (sessions.ts), and its file name (§5.3).
//
// Policy:
// - date-range is the whole UTC day (§4.1: reports cover 00:00 to 24:00 UTC), given
//   as 00:00:00Z to 23:59:59Z as the RFC's example does;
// - one `policies` entry per policy applied (an MTA-STS policy id, a TLSA set per MX,
//   or no-policy-found), each with its session counts and failure details grouped by
//   (result type, MX host, MX address, reason); the MTA-STS policy-string is the policy
//   as the relay's cache holds it (lines as the policy file has them, §4.4), mx-host its
//   patterns; TLSA policy-string is the usable TLSA records of the MX;
// - the report-id is made of day, domain and submitter, so the report previewed is
//   the one sent and a second run of a day cannot make a second report;
// - sending-mta-ip is left out: records do not keep the relay's own source address.
import type { DeliveryRecord } from '../../delivery/record.ts';
import type { MtaStsPolicy } from '../../domains/mta-sts.ts';
import { sessionsOf, type PolicyRef, type ResultType, type Session } from './sessions.ts';

export interface TlsReportPolicy {
  readonly policy: {
    readonly 'policy-type': 'sts' | 'tlsa' | 'no-policy-found';
    readonly 'policy-string'?: readonly string[];
    readonly 'policy-domain': string;
    readonly 'mx-host'?: readonly string[];
  };
  readonly summary: { readonly 'total-successful-session-count': number; readonly 'total-failure-session-count': number };
  readonly 'failure-details'?: readonly FailureDetail[];
}

export interface FailureDetail {
  readonly 'result-type': ResultType;
  readonly 'receiving-mx-hostname'?: string;
  readonly 'receiving-ip'?: string;
  readonly 'failed-session-count': number;
  readonly 'failure-reason-code'?: string;
}

export interface TlsReport {
  readonly 'organization-name': string;
  readonly 'date-range': { readonly 'start-datetime': string; readonly 'end-datetime': string };
  readonly 'contact-info': string;
  readonly 'report-id': string;
  readonly policies: readonly TlsReportPolicy[];
}

/** Who reports: config tlsrpt with its defaults filled in (job.ts `reporterOf`). */
export interface Reporter {
  readonly organizationName: string;
  readonly contactInfo: string;
  /** The reporting domain. */
  readonly submitter: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** The UTC day "YYYY-MM-DD" as [start, end) in ms since the epoch; throws for anything else. */
export function dayRange(day: string): { start: number; end: number } {
  const m = DAY.exec(day);
  const start = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
  if (!m || Number.isNaN(start) || new Date(start).toISOString().slice(0, 10) !== day) throw new RangeError(`not a day (YYYY-MM-DD): ${day}`);
  return { start, end: start + DAY_MS };
}

/** The UTC day of a time, "YYYY-MM-DD". */
export const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** The day before the UTC day of `ms`. */
export const previousDay = (ms: number): string => dayOf(ms - DAY_MS);

export const reportIdOf = (domain: string, day: string, submitter: string): string => `${day}_${domain}@${submitter}`;

/** §4.4 sts policy-string: the policy file's lines as the cache keeps the policy. */
export function stsPolicyString(policy: Pick<MtaStsPolicy, 'mode' | 'mx' | 'maxAge'>): string[] {
  return ['version: STSv1', `mode: ${policy.mode}`, ...policy.mx.map((p) => `mx: ${p}`), `max_age: ${policy.maxAge}`];
}

const policyKey = (p: PolicyRef): string =>
  p.type === 'sts' ? `sts|${p.id ?? ''}|${p.mode}` : p.type === 'tlsa' ? `tlsa|${p.mxHost ?? ''}|${p.tlsa.join(',')}` : 'none';

function policyEntry(domain: string, ref: PolicyRef, sts: MtaStsPolicy | null): TlsReportPolicy['policy'] {
  if (ref.type === 'sts') {
    // The cached policy is the one applied only when its id is the record's.
    const known = sts && sts.id === ref.id ? sts : null;
    return {
      'policy-type': 'sts',
      'policy-string': known ? stsPolicyString(known) : ['version: STSv1', `mode: ${ref.mode}`],
      'policy-domain': domain,
      ...(known ? { 'mx-host': [...known.mx] } : {}),
    };
  }
  if (ref.type === 'tlsa') {
    return { 'policy-type': 'tlsa', 'policy-string': [...ref.tlsa], 'policy-domain': domain, ...(ref.mxHost ? { 'mx-host': [ref.mxHost] } : {}) };
  }
  return { 'policy-type': 'no-policy-found', 'policy-domain': domain };
}

function failureDetails(sessions: readonly Session[]): FailureDetail[] {
  const groups = new Map<string, { detail: Omit<FailureDetail, 'failed-session-count'>; count: number }>();
  for (const { failure: f } of sessions) {
    if (!f) continue;
    const key = [f.resultType, f.receivingMxHostname, f.receivingIp, f.reason].join('|');
    const group = groups.get(key);
    if (group) group.count += 1;
    else
      groups.set(key, {
        detail: {
          'result-type': f.resultType,
          ...(f.receivingMxHostname ? { 'receiving-mx-hostname': f.receivingMxHostname } : {}),
          ...(f.receivingIp ? { 'receiving-ip': f.receivingIp } : {}),
          ...(f.reason ? { 'failure-reason-code': f.reason } : {}),
        },
        count: 1,
      });
  }
  return [...groups.values()].map((g) => ({ ...g.detail, 'failed-session-count': g.count }));
}

/**
 * The report of `domain` for `day` from the records of that domain on that day
 * (others are ignored), or null when there was no TLS session to report.
 * `sts`: the domain's MTA-STS policy as cached (null: none known).
 */
export function buildTlsReport(opts: { domain: string; day: string; records: readonly DeliveryRecord[]; reporter: Reporter; sts: MtaStsPolicy | null }): TlsReport | null {
  const { start, end } = dayRange(opts.day);
  const domain = opts.domain.toLowerCase();
  const records = opts.records.filter((r) => r.domain === domain && Date.parse(r.at) >= start && Date.parse(r.at) < end);
  return reportFromSessions({ ...opts, sessions: sessionsOf(records) });
}

/** The same from the day's sessions of the domain (job.ts reads the records a batch at a time). */
export function reportFromSessions(opts: { domain: string; day: string; sessions: readonly Session[]; reporter: Reporter; sts: MtaStsPolicy | null }): TlsReport | null {
  const domain = opts.domain.toLowerCase();
  const byPolicy = new Map<string, { ref: PolicyRef; sessions: Session[] }>();
  for (const s of opts.sessions) {
    const key = policyKey(s.policy);
    const entry = byPolicy.get(key) ?? { ref: s.policy, sessions: [] };
    entry.sessions.push(s);
    byPolicy.set(key, entry);
  }
  if (!byPolicy.size) return null;
  const policies = [...byPolicy.keys()].sort().map((key): TlsReportPolicy => {
    const { ref, sessions } = byPolicy.get(key)!;
    const failed = sessions.filter((s) => s.failure).length;
    const details = failureDetails(sessions);
    return {
      policy: policyEntry(domain, ref, opts.sts),
      summary: { 'total-successful-session-count': sessions.length - failed, 'total-failure-session-count': failed },
      ...(details.length ? { 'failure-details': details } : {}),
    };
  });
  return {
    'organization-name': opts.reporter.organizationName,
    'date-range': { 'start-datetime': `${opts.day}T00:00:00Z`, 'end-datetime': `${opts.day}T23:59:59Z` },
    'contact-info': opts.reporter.contactInfo,
    'report-id': reportIdOf(domain, opts.day, opts.reporter.submitter),
    policies,
  };
}

/** §5.3: `<submitter>!<policy-domain>!<begin-timestamp>!<end-timestamp>.json.gz`, timestamps in seconds. */
export function reportFileName(submitter: string, domain: string, day: string): string {
  const { start, end } = dayRange(day);
  return `${submitter}!${domain}!${start / 1000}!${end / 1000 - 1}.json.gz`;
}

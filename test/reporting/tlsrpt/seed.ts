// A day of TLS sessions written as real DeliveryRecords through the Store API, small
// enough to count by hand. DAY is 2026-11-02 (UTC); times are DAY 00:00 + hours.
//
// sts.test (MTA-STS enforce, id "pol1", cached in the store)
//   Q1 attempt 1  mx1.sts.test 192.0.2.1  3 recipients delivered over verified TLS   → 1 success
//   Q2 attempt 1  mx1.sts.test 192.0.2.1  1 recipient delivered at 00:30              → 1 success
//   Q3 attempt 1  mx1.sts.test 192.0.2.1  2 recipients deferred: certificate expired  → 1 certificate-expired
//   Q3 attempt 2  mx2.backup.sts.test 192.0.2.2  STARTTLS not offered                 → 1 starttls-not-supported
//   Q4 attempt 1  no MX matches the policy (nothing sent, no host)                    → 1 validation-failure
//   Q5 (the day before and the day after)                                             → not in the report
// plain.test (no policy)
//   Q6 attempt 1  mx.plain.test 192.0.2.3  self-signed TLS, opportunistic: delivered + one 550 over it → 1 success
//   Q7 attempt 1  mx.plain.test 192.0.2.3  no STARTTLS, delivered in plaintext        → 1 starttls-not-supported
//   Q8 attempt 1  mx.plain.test 192.0.2.3  connection refused (never reached EHLO)    → not a session
// dane.test (DANE)
//   Q9 attempt 1  mx.dane.test 192.0.2.4  TLSA 3 1 1 matched                          → 1 success
//   Q10 attempt 1 mx.dane.test 192.0.2.4  no TLSA record matched                      → 1 validation-failure
// dnssec.test (DANE failures before any TLS)
//   Q11 attempt 1 mx.dnssec.test 192.0.2.5  TLSA answer bogus: not connected          → 1 dnssec-invalid (tlsa)
//   Q12 attempt 1 mx.dnssec.test 192.0.2.5  dane-only, no usable TLSA: not connected  → 1 dane-required (no-policy-found)
import { makeRecord, type DeliveryRecord, type TlsFacts } from '../../../src/delivery/record.ts';
import type { MtaStsPolicy } from '../../../src/domains/mta-sts.ts';
import type { Store } from '../../../src/store/store.ts';

export const DAY = '2026-11-02';
export const T0 = Date.UTC(2026, 10, 2);
export const HOUR = 3_600_000;

export const STS_POLICY: MtaStsPolicy = { kind: 'policy', id: 'pol1', mode: 'enforce', mx: ['mx1.sts.test', '*.backup.sts.test'], maxAge: 86400, fetchedAt: T0 };

const TLS_OK: TlsFacts = {
  protocol: 'TLSv1.3',
  cipher: 'TLS_AES_256_GCM_SHA384',
  bits: 256,
  authorized: true,
  authorizationError: null,
  peerCertSubject: 'CN=mx',
  peerCertFingerprint256: 'AA:BB',
  peerCertNotAfter: '2027-01-01T00:00:00.000Z',
};

type Over = Partial<DeliveryRecord>;

let seq = 0;
export function tlsRecordAt(queueId: string, recipient: string, hours: number, over: Over = {}, t0 = T0): DeliveryRecord {
  const domain = recipient.slice(recipient.indexOf('@') + 1);
  return makeRecord({
    queueId,
    seq: seq++,
    messageId: `<${queueId}@app.test>`,
    attempt: 1,
    at: new Date(t0 + hours * HOUR).toISOString(),
    sender: 'app@clinic.test',
    recipient,
    domain,
    decision: { rule: 'default', mode: 'opportunistic', verification: 'none', fallbackChain: [], reasons: ['test'] },
    method: 'tls',
    outcome: 'delivered',
    mx: { host: `mx.${domain}`, ip: '192.0.2.9', port: 25, preference: 10 },
    starttlsOffered: true,
    tls: TLS_OK,
    smtp: { code: 250, enhanced: '2.0.0', response: '250 2.0.0 ok' },
    durationMs: 5,
    ...over,
  } as DeliveryRecord);
}

const stsPass = { mode: 'enforce' as const, id: 'pol1', result: 'pass' };
const mx1 = { host: 'mx1.sts.test', ip: '192.0.2.1', port: 25, preference: 10 };
const mx2 = { host: 'mx2.backup.sts.test', ip: '192.0.2.2', port: 25, preference: 20 };
const mxPlain = { host: 'mx.plain.test', ip: '192.0.2.3', port: 25, preference: 10 };
const mxDane = { host: 'mx.dane.test', ip: '192.0.2.4', port: 25, preference: 10 };
const mxDnssec = { host: 'mx.dnssec.test', ip: '192.0.2.5', port: 25, preference: 10 };
const TLSA = '3 1 1 0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6';

/** The day's records; `t0`: the day's 00:00 UTC (ms), DAY's by default. */
export function dayRecords(t0 = T0): DeliveryRecord[] {
  const tlsRecord = (queueId: string, recipient: string, hours: number, over: Over = {}) => tlsRecordAt(queueId, recipient, hours, over, t0);
  const expired: TlsFacts = { ...TLS_OK, authorized: false, authorizationError: 'CERT_HAS_EXPIRED', peerCertNotAfter: null };
  const certRefused = { code: 451, enhanced: '4.7.5', response: 'No acceptable TLS with mx1.sts.test: certificate verification failed: chain of mx1.sts.test not trusted (CERT_HAS_EXPIRED)' };
  const selfSigned: TlsFacts = { ...TLS_OK, authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' };
  return [
    ...['a', 'b', 'c'].map((who) => tlsRecord('Q1', `${who}@sts.test`, 1, { mx: mx1, mtaSts: stsPass })),
    tlsRecord('Q2', 'd@sts.test', 0.5, { mx: mx1, mtaSts: stsPass }),
    ...['e', 'f'].map((who) =>
      tlsRecord('Q3', `${who}@sts.test`, 3, { mx: mx1, tls: expired, method: 'none', outcome: 'deferred', smtp: certRefused, mtaSts: { ...stsPass, result: 'certificate of mx1.sts.test not valid (CERT_HAS_EXPIRED)' } }),
    ),
    tlsRecord('Q3', 'e@sts.test', 4, {
      attempt: 2,
      mx: mx2,
      tls: null,
      starttlsOffered: false,
      method: 'none',
      outcome: 'deferred',
      smtp: { code: 451, enhanced: '4.7.4', response: 'No acceptable TLS with mx2.backup.sts.test: STARTTLS not offered' },
      mtaSts: { ...stsPass, result: 'no TLS with mx2.backup.sts.test (STARTTLS not offered)' },
    }),
    tlsRecord('Q4', 'g@sts.test', 5, {
      mx: null,
      tls: null,
      starttlsOffered: null,
      method: 'none',
      outcome: 'deferred',
      smtp: { code: 451, enhanced: '4.7.5', response: 'no MX host of sts.test matches its MTA-STS policy (mx: mx1.sts.test, *.backup.sts.test)' },
      mtaSts: { ...stsPass, result: 'no MX host of sts.test matches its MTA-STS policy (mx: mx1.sts.test, *.backup.sts.test)' },
    }),
    // Outside the day: the evening before and the first second of the next day.
    tlsRecord('Q5', 'h@sts.test', -1, { mx: mx1, tls: null, starttlsOffered: false, method: 'plaintext', mtaSts: stsPass }),
    tlsRecord('Q5', 'h@sts.test', 24, { attempt: 2, mx: mx1, tls: null, starttlsOffered: false, method: 'plaintext', mtaSts: stsPass }),
    tlsRecord('Q6', 'i@plain.test', 6, { mx: mxPlain, tls: selfSigned }),
    tlsRecord('Q6', 'j@plain.test', 6, { mx: mxPlain, tls: selfSigned, method: 'tls', outcome: 'bounced', smtp: { code: 550, enhanced: '5.1.1', response: '550 5.1.1 <j@plain.test>: user unknown' } }),
    tlsRecord('Q7', 'k@plain.test', 7, { mx: mxPlain, tls: null, starttlsOffered: false, method: 'plaintext' }),
    tlsRecord('Q8', 'l@plain.test', 8, { mx: mxPlain, tls: null, starttlsOffered: null, method: 'none', outcome: 'deferred', smtp: { code: null, enhanced: null, response: 'connect ECONNREFUSED 192.0.2.3:25' } }),
    tlsRecord('Q9', 'm@dane.test', 9, { mx: mxDane, dane: { status: 'matched', tlsa: [TLSA], matched: TLSA, reason: 'matched' } }),
    tlsRecord('Q10', 'n@dane.test', 10, {
      mx: mxDane,
      method: 'none',
      outcome: 'deferred',
      smtp: { code: 451, enhanced: '4.7.5', response: 'No acceptable TLS with mx.dane.test: no TLSA record matched the certificate' },
      dane: { status: 'mismatch', tlsa: [TLSA], matched: null, reason: 'no TLSA record matched the certificate' },
    }),
    tlsRecord('Q11', 'o@dnssec.test', 11, {
      mx: mxDnssec,
      tls: null,
      starttlsOffered: null,
      method: 'none',
      outcome: 'deferred',
      smtp: { code: 451, enhanced: '4.7.5', response: 'DNSSEC validation failed for _25._tcp.mx.dnssec.test TLSA' },
      dane: { status: 'bogus', tlsa: [], matched: null, reason: 'TLSA lookup of _25._tcp.mx.dnssec.test: bogus (SERVFAIL)' },
    }),
    tlsRecord('Q12', 'p@dnssec.test', 12, {
      mx: mxDnssec,
      tls: null,
      starttlsOffered: null,
      method: 'none',
      outcome: 'deferred',
      decision: { rule: 'dane', mode: 'forced', verification: 'dane-only' as DeliveryRecord['decision']['verification'], fallbackChain: [], reasons: ['test'] },
      smtp: { code: 451, enhanced: '4.7.5', response: 'No DANE for mx.dnssec.test' },
      dane: { status: 'no-usable-tlsa', tlsa: [], matched: null, reason: 'no TLSA records at _25._tcp.mx.dnssec.test' },
    }),
  ];
}

export const TLSA_RECORD = TLSA;

/** Writes the day's records (and the cached MTA-STS policy of sts.test) into `store`. */
export async function seedTlsDay(store: Store, t0 = T0): Promise<void> {
  await store.finish(dayRecords(t0), []);
  await store.setMtaStsPolicy('sts.test', JSON.stringify(STS_POLICY));
}

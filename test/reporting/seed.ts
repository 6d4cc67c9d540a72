// A store seeded through the Store API for report tests, small enough to count by
// hand. T0 is Monday 2026-11-02 00:00 UTC; every time below is T0 + hours.
//
//   M1  a@s1.test  subject "Invoice"  campaign "nov"  custom "x"   queued +1h
//       r1@big.test    delivered +2h  tls TLSv1.3
//                      opened +4h by a machine, +5h by a person, +27h again; clicked +5h, +6h
//       r2@big.test    deferred +2h and +3h, delivered +26h pgp+tls (TLSv1.2)
//       r3@small.test  delivered +2h plaintext; opened +4h; clicked +4h by a machine
//   M2  b@s2.test  subject HOSTILE  no campaign, no custom            queued +25h
//       r4@big.test    portal-notified +26h (method portal)
//       r5@other.test  bounced +26h
//   M3  a@s1.test  subject "Invoice"  campaign "dec"  no custom       queued +2h
//       r6@big.test    dropped +3h
//       r7@small.test  delivered +3h smime+tls
//       r8@big.test    delivered +3h tls TLSv1.2; unsubscribed +30h
import { expect } from 'vitest';
import type { DeliveryRecord } from '../../src/delivery/record.ts';
import type { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { QueueItem } from '../../src/store/store.ts';
import { message, portalFacts, record } from '../store/contract.ts';

export const HOUR = 3_600_000;
export const T0 = Date.UTC(2026, 10, 2);
/** A subject a spreadsheet would run as a formula, with a comma, a quote and a newline for the CSV writer. */
export const HOSTILE = '=HYPERLINK("http://evil.example/?x=1","click"),\nsecond line';

const TLS = (protocol: string): DeliveryRecord['tls'] => ({
  protocol,
  cipher: 'TLS_AES_256_GCM_SHA384',
  bits: 256,
  authorized: true,
  authorizationError: null,
  peerCertSubject: null,
  peerCertFingerprint256: null,
});

export async function seedReportStore(store: SqliteStore): Promise<void> {
  const m1 = message({ sender: 'a@s1.test', recipients: ['r1@big.test', 'r2@big.test', 'r3@small.test'], subject: 'Invoice', campaign: 'nov', custom: 'x', receivedAt: T0 + HOUR });
  const m2 = message({ sender: 'b@s2.test', recipients: ['r4@big.test', 'r5@other.test'], subject: HOSTILE, receivedAt: T0 + 25 * HOUR });
  const m3 = message({ sender: 'a@s1.test', recipients: ['r6@big.test', 'r7@small.test', 'r8@big.test'], subject: 'Invoice', campaign: 'dec', receivedAt: T0 + 2 * HOUR });
  for (const m of [m1, m2, m3]) await store.enqueue(m);
  const items = await store.claim({ owner: 'seed', limit: 100, leaseMs: HOUR });
  const item = (recipient: string): QueueItem => items.find((i) => i.recipient === recipient)!;
  const attempt = (recipient: string, hours: number, over: Partial<DeliveryRecord>): DeliveryRecord =>
    record(item(recipient), { at: new Date(T0 + hours * HOUR).toISOString(), durationMs: 0, ...over });
  const delivered = (recipient: string, hours: number, method: DeliveryRecord['method'], tls: string | null) =>
    attempt(recipient, hours, { outcome: 'delivered', method, tls: tls ? TLS(tls) : null, starttlsOffered: tls !== null });
  const deferred = (recipient: string, hours: number) => attempt(recipient, hours, { outcome: 'deferred', method: 'none', tls: null, starttlsOffered: null });

  await store.finish(
    [delivered('r1@big.test', 2, 'tls', 'TLSv1.3'), deferred('r2@big.test', 2), delivered('r3@small.test', 2, 'plaintext', null)],
    [
      { queueId: m1.queueId, seq: 0, outcome: 'delivered', error: null },
      { queueId: m1.queueId, seq: 2, outcome: 'delivered', error: null },
    ],
  );
  await store.finish(
    [
      deferred('r2@big.test', 3),
      attempt('r6@big.test', 3, { outcome: 'dropped', method: 'none', tls: null }),
      delivered('r7@small.test', 3, 'smime+tls', 'TLSv1.3'),
      delivered('r8@big.test', 3, 'tls', 'TLSv1.2'),
    ],
    [
      { queueId: m3.queueId, seq: 0, outcome: 'dropped', error: 'no TLS' },
      { queueId: m3.queueId, seq: 1, outcome: 'delivered', error: null },
      { queueId: m3.queueId, seq: 2, outcome: 'delivered', error: null },
    ],
  );
  await store.finish(
    [
      delivered('r2@big.test', 26, 'pgp+tls', 'TLSv1.2'),
      attempt('r4@big.test', 26, { outcome: 'portal-notified', method: 'portal', tls: TLS('TLSv1.3'), portal: portalFacts('item-r4', 'NOTICE-R4') }),
      attempt('r5@other.test', 26, { outcome: 'bounced', method: 'tls', tls: TLS('TLSv1.3') }),
    ],
    [
      { queueId: m1.queueId, seq: 1, outcome: 'delivered', error: null },
      { queueId: m2.queueId, seq: 0, outcome: 'portal-notified', error: null },
      { queueId: m2.queueId, seq: 1, outcome: 'bounced', error: '550 no such user' },
    ],
  );
  const track = async (recipient: string, type: 'opened' | 'clicked', hours: number, automated: boolean) => {
    expect(await store.recordTracking(item(recipient).queueId, item(recipient).seq, type, { at: T0 + hours * HOUR, automated })).toBe(true);
  };
  await track('r1@big.test', 'opened', 4, true);
  await track('r1@big.test', 'opened', 5, false);
  await track('r1@big.test', 'opened', 27, false);
  await track('r1@big.test', 'clicked', 5, false);
  await track('r1@big.test', 'clicked', 6, false);
  await track('r3@small.test', 'opened', 4, false);
  await track('r3@small.test', 'clicked', 4, true);
  expect(await store.unsubscribe(item('r8@big.test').queueId, item('r8@big.test').seq, T0 + 30 * HOUR)).not.toBeNull();
}

/** Counts with every figure 0 but those given. */
export function counts(given: Partial<Record<CountName, number>>): Record<CountName, number> {
  return { ...ZERO, ...given };
}
type CountName = 'queued' | 'delivered' | 'deferred' | 'bounced' | 'dropped' | 'secured' | 'tls13' | 'tls12' | 'tlsOther' | 'pgp' | 'smime' | 'portal' | 'plaintext' | 'opened' | 'clicked' | 'unsubscribed';
const ZERO: Record<CountName, number> = {
  queued: 0, delivered: 0, deferred: 0, bounced: 0, dropped: 0, secured: 0, tls13: 0, tls12: 0, tlsOther: 0,
  pgp: 0, smime: 0, portal: 0, plaintext: 0, opened: 0, clicked: 0, unsubscribed: 0,
};

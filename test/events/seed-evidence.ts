// A real SQLite store holding one message whose three recipients travelled three
// ways, for the evidence tests: ann over TLS after a deferred first attempt (with
// MTA-STS), bob PGP-encrypted after TLS failed (fallback), pat through the portal
// (with the portal's events, one from a visitor whose user agent is markup). Its
// subject and body carry markers that evidence must never contain.
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { DeliveryRecord } from '../../src/delivery/record.ts';
import type { QueueItem } from '../../src/store/store.ts';
import { message, portalFacts, portalItem, record } from '../store/contract.ts';

export const SECRET_SUBJECT = 'SUBJECT-MARKER-lab-results';
export const SECRET_BODY = 'BODY-MARKER-diagnosis';
export const HOSTILE_AGENT = '<script>alert(1)</script> "Evil" & Co';
export const CERT_FP = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89';
export const PGP_FP = 'A1B2C3D4E5F60718293A4B5C6D7E8F9012345678';

const TLS = { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', bits: 256, authorized: true, authorizationError: null, peerCertSubject: 'CN=mx.tls.example', peerCertFingerprint256: CERT_FP, peerCertNotAfter: '2027-01-01T00:00:00.000Z' };

export interface Seeded {
  readonly queueId: string;
  readonly messageId: string;
  readonly itemId: string;
}

export async function seedEvidenceStore(path: string): Promise<Seeded> {
  const store = new SqliteStore(path);
  try {
    const now = Date.now();
    const msg = message({
      recipients: ['ann@tls.example', 'bob@pgp.example', 'pat@patient.test'],
      subject: SECRET_SUBJECT,
      body: Buffer.from(`Subject: ${SECRET_SUBJECT}\r\n\r\n${SECRET_BODY}\r\n`),
      receivedAt: now - 60_000,
    });
    await store.enqueue(msg);
    const first = await store.claim({ owner: 'test', limit: 10, leaseMs: 60_000, now });
    const by = (items: QueueItem[], r: string) => items.find((i) => i.recipient === r)!;
    const ann1 = record(by(first, 'ann@tls.example'), {
      at: new Date(now - 50_000).toISOString(),
      decision: { rule: 'clinics', mode: 'forced', verification: 'mta-sts', fallbackChain: ['pgp', 'portal'], reasons: ['recipient domain tls.example in rule clinics'] },
      method: 'none',
      outcome: 'deferred',
      mx: { host: 'mx.tls.example', ip: '127.0.0.1', port: 25, preference: 10 },
      starttlsOffered: false,
      smtp: { code: 451, enhanced: '4.7.5', response: 'no acceptable TLS: STARTTLS not offered' },
      mtaSts: { mode: 'enforce', id: '20260101', result: 'STARTTLS not offered' },
    });
    const bob: DeliveryRecord = record(by(first, 'bob@pgp.example'), {
      at: new Date(now - 49_000).toISOString(),
      decision: { rule: 'clinics', mode: 'forced', verification: 'ca', fallbackChain: ['pgp', 'portal'], reasons: ['rule clinics'] },
      method: 'pgp',
      outcome: 'delivered',
      mx: { host: 'mx.pgp.example', ip: '127.0.0.2', port: 25, preference: 5 },
      starttlsOffered: false,
      smtp: { code: 250, enhanced: '2.0.0', response: '250 2.0.0 Ok: queued as 77' },
      encryption: { method: 'pgp', keyFingerprint: PGP_FP, keySource: 'wkd', signed: true },
      fallback: { reason: 'forced: no acceptable TLS (STARTTLS not offered)', tried: ['pgp: used'] },
    });
    const patItem = by(first, 'pat@patient.test');
    const item = portalItem({ queueId: msg.queueId, seq: patItem.seq, messageId: msg.messageId, sender: msg.sender, recipient: 'pat@patient.test' });
    const pat = record(patItem, {
      at: new Date(now - 48_000).toISOString(),
      decision: { rule: 'patients', mode: 'portal', verification: 'none', fallbackChain: [], reasons: ['recipient is a patient'] },
      method: 'portal',
      outcome: 'portal-notified',
      mx: null,
      smtp: { code: null, enhanced: null, response: 'portal item made; notification queued' },
      portal: portalFacts(item.id, 'NOTIFYQID'),
    });
    await store.finish(
      [ann1, bob, pat],
      [
        { queueId: msg.queueId, seq: ann1.seq, outcome: 'deferred', error: '451 no TLS', nextAttemptAt: now - 1 },
        { queueId: msg.queueId, seq: bob.seq, outcome: 'delivered', error: null },
        { queueId: msg.queueId, seq: pat.seq, outcome: 'portal-notified', error: null },
      ],
      [],
      [item],
    );
    const second = await store.claim({ owner: 'test', limit: 10, leaseMs: 60_000, now });
    const ann2 = record(by(second, 'ann@tls.example'), {
      at: new Date(now - 40_000).toISOString(),
      decision: ann1.decision,
      method: 'tls',
      outcome: 'delivered',
      mx: { host: 'mx.tls.example', ip: '127.0.0.1', port: 25, preference: 10 },
      starttlsOffered: true,
      tls: TLS,
      smtp: { code: 250, enhanced: '2.0.0', response: '250 2.0.0 Ok: queued as 88' },
      mtaSts: { mode: 'enforce', id: '20260101', result: 'pass' },
    });
    await store.finish([ann2], [{ queueId: msg.queueId, seq: ann2.seq, outcome: 'delivered', error: null }]);
    await store.recordPortalEvent(item.id, 'portal-viewed', { at: now - 30_000, ip: '203.0.113.7', userAgent: HOSTILE_AGENT, detail: 'possibly automated' });
    await store.recordPortalEvent(item.id, 'portal-opened', { at: now - 20_000, ip: '203.0.113.8', userAgent: 'Mozilla/5.0 (X11)' });
    return { queueId: msg.queueId, messageId: msg.messageId!, itemId: item.id };
  } finally {
    await store.close();
  }
}

// A delivery job that throws ends like any failed attempt: a deferred record with the
// error, the usual backoff, and at the end of the queue lifetime a bounce with one DSN.
// Before, a recipient without a domain made every attempt throw ("DeliveryRecord needs
// domain"): no record, no bounce, leased again every lease period, queued forever.
import { afterEach, expect, it } from 'vitest';
import { startMxSet, type MxSet } from '../helpers/mx.ts';
import { startTestRelay, testConfig, type TestRelay } from '../helpers/relay.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { newQueueId } from '../../src/store/queue-id.ts';

let mxs: MxSet | undefined;
let relay: TestRelay | undefined;
afterEach(async () => {
  await relay?.close();
  await mxs?.close();
  relay = mxs = undefined;
});

it('a recipient without a domain: deferred with the reason, bounced at the queue lifetime with one DSN, the queue ends empty', async () => {
  mxs = await startMxSet([{ kind: 'tls13', name: 'mx.clinic.test' }]);
  const config = testConfig({
    delivery: {
      routes: { 'clinic.test': `${mxs.mxs[0]!.host}:${mxs.port}` },
      retry: { first_seconds: 0.2, max_seconds: 0.3, factor: 1, lifetime_seconds: 1.5 },
    },
  });
  relay = await startTestRelay(config);
  // Queued the way an older ingress queued RCPT TO:<postmaster>: a bare local part (written
  // as the CLI writes, beside the running relay, so the lifetime starts now).
  const queueId = newQueueId();
  const writer = new SqliteStore(config.store.path);
  await writer.enqueue({
    queueId,
    sender: 'app@clinic.test',
    recipients: ['postmaster'],
    body: Buffer.from('From: <app@clinic.test>\r\nTo: <postmaster>\r\nSubject: hello postmaster\r\n\r\nhello\r\n'),
    messageId: null,
    subject: 'hello postmaster',
    clientIp: '127.0.0.1',
    authUser: null,
    receivedAt: Date.now(),
  });
  await writer.close();

  const records = await relay.waitForRecords((r) => r.some((x) => x.recipient === 'postmaster' && x.outcome === 'bounced'), 15_000);
  const mine = records.filter((r) => r.recipient === 'postmaster');
  expect(mine.length).toBeGreaterThanOrEqual(2);
  for (const r of mine.slice(0, -1)) {
    expect(r).toMatchObject({ queueId, domain: '', outcome: 'deferred', method: 'none', smtp: { code: 451, enhanced: '4.1.3' } });
    expect(r.smtp.response).toContain('<postmaster>: recipient address has no domain');
  }
  expect(mine.at(-1)!.smtp.response).toMatch(/no domain[\s\S]*delivery time expired/);

  const dsns = await mxs.mxs[0]!.waitFor(1);
  expect(dsns[0]!.envelope).toEqual({ from: '', to: ['app@clinic.test'] });
  expect(dsns[0]!.raw.toString()).toMatch(/Final-Recipient: rfc822; ?postmaster\r\n/);
  await relay.waitForRecords((r) => r.some((x) => x.sender === '' && x.outcome === 'delivered'));
  expect(mxs.mxs[0]!.received).toHaveLength(1);

  const reader = new SqliteStore(config.store.path);
  try {
    expect(await reader.listQueue()).toEqual([]);
  } finally {
    await reader.close();
  }
}, 30_000);

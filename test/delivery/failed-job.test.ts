// The delivery worker (scheduler.ts) when a job throws: here the DKIM signer fails for one
// message, as a bug or a broken key would. Its recipient gets a deferred record naming the
// error, the normal backoff, and a bounce with a DSN at the queue lifetime; other mail is
// not held up, and nothing is left under lease. Real store file, real MX, real policy.
import { afterEach, expect, it } from 'vitest';
import { loadProtection, type Protection } from '../../src/crypto/protection.ts';
import { startDelivery, type DeliveryWorker } from '../../src/delivery/scheduler.ts';
import { createLogger } from '../../src/log.ts';
import { createPolicy } from '../../src/policy/decide.ts';
import { newQueueId } from '../../src/store/queue-id.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startMxSet, type MxSet } from '../helpers/mx.ts';
import { logCapture, testConfig } from '../helpers/relay.ts';

let mxs: MxSet | undefined;
let worker: DeliveryWorker | undefined;
let store: SqliteStore | undefined;
afterEach(async () => {
  await worker?.stop(1000);
  await store?.close();
  await mxs?.close();
  worker = store = mxs = undefined;
});

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const message = (to: string, text: string) => Buffer.from(`From: <app@clinic.test>\r\nTo: <${to}>\r\nSubject: s\r\n\r\n${text}\r\n`);

it('a job that throws: deferred with the error, retried, bounced with one DSN at the queue lifetime; other jobs go on', async () => {
  mxs = await startMxSet([
    { kind: 'tls13', name: 'mx.clinic.test' },
    { kind: 'tls13', name: 'mx.far.test' },
  ]);
  const at = (name: string) => `${mxs!.byName(name).host}:${mxs!.port}`;
  const config = testConfig({
    delivery: {
      routes: { 'clinic.test': at('mx.clinic.test'), 'far.test': at('mx.far.test') },
      retry: { first_seconds: 0.2, max_seconds: 0.3, factor: 1, lifetime_seconds: 1.5 },
    },
  });
  store = new SqliteStore(config.store.path);
  const real = await loadProtection(config, store);
  // The signer breaks on one message only (its body is never in a DSN, so the bounce goes out).
  const protection: Protection = { ...real, sign: async (bytes) => (bytes.includes('trigger-the-bug') ? Promise.reject(new TypeError('signer exploded')) : real.sign(bytes)) };
  const log = logCapture();
  worker = startDelivery({ config, store, logger: createLogger('info', log.stream), policy: createPolicy(config), protection });

  const broken = newQueueId();
  const fine = newQueueId();
  const base = { sender: 'app@clinic.test', messageId: null, subject: 's', clientIp: '127.0.0.1', authUser: null, receivedAt: Date.now() };
  await store.enqueue({ ...base, queueId: broken, recipients: ['pat@far.test'], body: message('pat@far.test', 'trigger-the-bug') });
  await store.enqueue({ ...base, queueId: fine, recipients: ['lee@far.test'], body: message('lee@far.test', 'all good') });
  worker.kick();

  await until(async () => (await store!.queryRecords({})).some((r) => r.queueId === broken && r.outcome === 'bounced'), 'the broken job bounces');
  const records = await store.queryRecords({});
  const mine = records.filter((r) => r.queueId === broken).sort((a, b) => a.attempt - b.attempt);
  expect(mine.length).toBeGreaterThanOrEqual(2);
  for (const r of mine.slice(0, -1)) {
    expect(r).toMatchObject({ recipient: 'pat@far.test', outcome: 'deferred', method: 'none', smtp: { code: 451, enhanced: '4.3.0', response: 'delivery failed: signer exploded' } });
  }
  expect(mine.map((r) => r.attempt)).toEqual(mine.map((_, i) => i + 1));
  expect(mine.at(-1)).toMatchObject({ outcome: 'bounced', smtp: { enhanced: '4.3.0' } });
  expect(mine.at(-1)!.smtp.response).toMatch(/^delivery failed: signer exploded \(delivery time expired/);
  expect(records.find((r) => r.queueId === fine)).toMatchObject({ outcome: 'delivered' });

  const dsns = await mxs.byName('mx.clinic.test').waitFor(1);
  expect(dsns[0]!.envelope).toEqual({ from: '', to: ['app@clinic.test'] });
  expect(dsns[0]!.raw.toString()).toMatch(/Final-Recipient: rfc822; ?pat@far\.test/);
  expect(mxs.byName('mx.far.test').received.map((m) => m.envelope.to)).toEqual([['lee@far.test']]);
  await until(async () => (await store!.listQueue()).length === 0, 'the queue empties');
  expect(mxs.byName('mx.clinic.test').received).toHaveLength(1);
  expect(log.lines.some((l) => l.event === 'delivery.error' && l.queueId === broken)).toBe(true);
  // The error is logged, never the body.
  expect(log.text()).not.toContain('trigger-the-bug');
}, 30_000);

// The dispatcher against a real store and a real HTTP receiver, with its clock in the
// test's hands where time matters: an event is given up only after give_up_hours
// (retried until then), redirects are failures and never followed, a receiver that
// does not answer is timed out and retried, stop() cuts requests off and the next
// start sends them again; the logs name failures but never a secret or a body.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { webhooksSchema } from '../../../src/config/webhooks.ts';
import { startWebhookDispatcher } from '../../../src/events/webhooks/dispatcher.ts';
import { loadWebhookSigners } from '../../../src/events/webhooks/signing.ts';
import { createLogger } from '../../../src/log.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { logCapture } from '../../helpers/relay.ts';
import { message } from '../../store/contract.ts';
import { independentlyVerified, payloadOf, startReceiver, type Receiver } from './receiver.ts';

const SECRET = 'dispatcher-test-secret-0123456789abcdef';
const HOUR = 3600_000;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(endpoint: Record<string, unknown>, opts: { now?: () => number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-dispatch-'));
  const store = new SqliteStore(join(dir, 'store.db'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => store.close());
  const config = webhooksSchema.parse({
    endpoints: [{ name: 'crm', secrets: [{ id: 'k1', env: 'HOOK_SECRET' }], timeout_seconds: 0.5, ...endpoint }],
    poll_interval_ms: 20,
    retry: { first_seconds: 0.05, max_seconds: 0.1 },
  });
  const logs = logCapture();
  const start = () => {
    const d = startWebhookDispatcher({ store, logger: createLogger('info', logs.stream), config, signers: loadWebhookSigners(config, { HOOK_SECRET: SECRET }), ...opts });
    cleanups.push(() => d.stop());
    return d;
  };
  const dispatcher = start();
  // The endpoint's cursor is made at the first turn: mail after it is sent.
  await waitUntil(async () => (await store.webhookStatus()).length === 1, 'the endpoint’s cursor');
  return { store, dispatcher, logs, start };
}

async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function receiver(): Promise<Receiver> {
  const r = await startReceiver();
  cleanups.push(() => r.stop());
  return r;
}

it('retries a failing receiver until give_up_hours have passed, then gives the event up (visible), and the message’s next event is tried', async () => {
  const hooks = await receiver();
  hooks.answer = () => 503;
  // The relay's clock, moved on by the test: hours pass in an instant.
  let skipped = 0;
  const { store, dispatcher, logs } = await setup({ url: hooks.url }, { now: () => Date.now() + skipped });
  const m = message({ recipients: ['a@one.test', 'b@one.test'] });
  await store.enqueue(m);
  await hooks.waitFor((r) => r.length >= 3, 30_000, 'three tries of the first event');
  // Every try is the same event (same id and body), signed anew.
  expect(new Set(hooks.requests.map((r) => r.body)).size).toBe(1);
  expect(hooks.requests.every((r) => independentlyVerified(r, SECRET).ok)).toBe(true);
  const first = payloadOf(hooks.requests[0]!);
  expect((await store.webhookStatus())[0]).toMatchObject({ pending: 2, failed: 0, lastStatus: 503, lastError: 'HTTP 503' });

  // 71 hours on: still retried, not given up.
  skipped += 71 * HOUR;
  dispatcher.kick();
  const tried = hooks.requests.length;
  await hooks.waitFor((r) => r.length > tried, 30_000, 'a try at 71 hours');
  expect((await store.webhookStatus())[0]).toMatchObject({ failed: 0, gaveUpTotal: 0 });

  // Past 72 hours: the next failure gives it up, and the message's second event is sent.
  skipped += 2 * HOUR;
  dispatcher.kick();
  await waitUntil(async () => (await store.webhookStatus())[0]!.failed >= 1, 'the give-up');
  await hooks.waitFor((r) => r.some((q) => payloadOf(q).id !== first.id), 30_000, 'the next event');
  // It has waited as long (the clock runs from when it was queued): its first failure gives it up too.
  await waitUntil(async () => (await store.webhookStatus())[0]!.failed === 2, 'the second give-up');
  expect((await store.webhookStatus())[0]).toMatchObject({ failed: 2, gaveUpTotal: 2, pending: 0 });
  expect(await store.troubledWebhookDeliveries('crm', 10)).toContainEqual(expect.objectContaining({ eventId: first.id, state: 'failed', lastError: 'HTTP 503' }));
  const gaveUp = logs.lines.find((l) => l.event === 'webhooks.gave_up');
  expect(gaveUp).toMatchObject({ endpoint: 'crm', eventId: first.id, status: 503 });
  expect(logs.text()).not.toContain(SECRET);
  expect(logs.text()).not.toContain('a@one.test');
  expect(logs.text()).not.toContain('not now');
}, 60_000);

it('never follows a redirect: a 3xx is a failure to retry, and the other address is never asked', async () => {
  const elsewhere = await receiver();
  const hooks = await receiver();
  // A 307 that names another receiver: following it would send the signed body there.
  hooks.answer = (_req, i) => (i === 0 ? { status: 307, location: elsewhere.url } : 200);
  const { store } = await setup({ url: hooks.url });
  await store.enqueue(message({ recipients: ['a@one.test'] }));
  await hooks.waitFor((r) => r.some((q) => q.status === 200), 30_000, 'the retry after the 307');
  expect(hooks.requests.map((r) => r.status)).toEqual([307, 200]);
  expect(elsewhere.requests).toEqual([]);
  await waitUntil(async () => (await store.webhookStatus())[0]!.pending === 0, 'the delivery settled');
  expect((await store.webhookStatus())[0]).toMatchObject({ failedAttemptsTotal: 1, deliveredTotal: 1, lastStatus: 307, lastError: 'HTTP 307' });
}, 60_000);

it('times out a receiver that does not answer and sends the event again', async () => {
  const hooks = await receiver();
  hooks.answer = (_req, i) => (i === 0 ? 'hold' : 200);
  const { store } = await setup({ url: hooks.url, timeout_seconds: 0.3 });
  await store.enqueue(message({ recipients: ['a@one.test'] }));
  await hooks.waitFor((r) => r.some((q) => q.status === 200), 30_000, 'the retry after the timeout');
  expect(hooks.requests).toHaveLength(2);
  expect(hooks.requests[1]!.body).toBe(hooks.requests[0]!.body);
  await waitUntil(async () => (await store.webhookStatus())[0]!.pending === 0, 'the delivery settled');
  expect(await store.troubledWebhookDeliveries('crm', 10)).toEqual([]);
  expect((await store.webhookStatus())[0]).toMatchObject({ lastError: 'no answer within 0.3 s', lastStatus: null, deliveredTotal: 1 });
  hooks.release();
}, 60_000);

it('stop() cuts a request off unsettled; the next start sends it again', async () => {
  const hooks = await receiver();
  hooks.answer = () => 'hold';
  const { store, dispatcher, start } = await setup({ url: hooks.url, timeout_seconds: 30 });
  await store.enqueue(message({ recipients: ['a@one.test'] }));
  await hooks.waitFor((r) => r.length === 1, 30_000, 'the request in flight');
  await dispatcher.stop();
  expect((await store.webhookStatus())[0]).toMatchObject({ pending: 1, failedAttemptsTotal: 0 });
  hooks.answer = () => 200;
  start();
  await hooks.waitFor((r) => r.some((q) => q.status === 200), 30_000, 'the request sent again');
  expect(hooks.requests[1]!.body).toBe(hooks.requests[0]!.body);
  await waitUntil(async () => (await store.webhookStatus())[0]!.pending === 0, 'the delivery settled');
  expect((await store.webhookStatus())[0]).toMatchObject({ deliveredTotal: 1, failedAttemptsTotal: 0 });
}, 60_000);

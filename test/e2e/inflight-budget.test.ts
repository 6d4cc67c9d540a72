// delivery.inflight_budget_bytes: jobs wait for their message's bytes. Two 700 KB
// messages to a receiver that takes its time over DATA are delivered one after the
// other under a 1 MiB budget, and side by side under the default one; one still
// waiting for its bytes when the relay stops goes back to the queue untried.
import { afterEach, expect, it, vi } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

let mx: StartedMx | undefined;
let relay: TestRelay | undefined;
afterEach(async () => {
  // A receiver still holding a reply would keep the relay's stop waiting for its grace period.
  mx?.releaseData();
  await relay?.close();
  await mx?.close();
});

/** Two large messages (~700 KB each) submitted at once; their queue ids. */
async function submitTwoLarge(port: number): Promise<string[]> {
  const body = `${'0123456789abcdef'.repeat(62)}\r\n`.repeat(700); // ~700 KB
  return Promise.all(['a', 'b'].map(async (who) => queueIdOf(await submit({ port, from: 'lab@clinic.test', to: [`${who}@big.test`], body: `Subject: big\r\n\r\n${body}` }))));
}

const allDelivered = (ids: string[]) => relay!.waitForRecords((r) => ids.every((id) => r.some((x) => x.queueId === id && x.outcome === 'delivered')), 20_000);

it('under a 1 MiB budget two 700 KB messages go one at a time', async () => {
  // What must not happen has a window to happen in: each DATA reply comes 700 ms late.
  mx = await startMx('tls13', { name: 'mx.big.test', dataDelayMs: 700 });
  relay = await startTestRelay(testConfig({ delivery: { routes: { 'big.test': `127.0.0.1:${mx.port}` }, inflight_budget_bytes: 1024 * 1024 } }));
  await allDelivered(await submitTwoLarge(relay.port));
  expect(mx.data.mostAtOnce).toBe(1);
}, 30_000);

it('under the default budget they go side by side', async () => {
  // The receiver answers neither until both DATA transfers are under way at once (the relay
  // waits for a reply far longer than this test: no attempt gives up meanwhile).
  mx = await startMx('tls13', { name: 'mx.big.test', holdData: true });
  relay = await startTestRelay(testConfig({ delivery: { routes: { 'big.test': `127.0.0.1:${mx.port}` }, socket_timeout_ms: 120_000 } }));
  const ids = await submitTwoLarge(relay.port);
  await vi.waitFor(() => expect(mx!.data.begun).toBe(2), { timeout: 20_000, interval: 50 });
  expect(await relay.records()).toEqual([]);
  mx.releaseData();
  await allDelivered(ids);
  expect((await relay.records()).map((r) => [r.attempt, r.outcome])).toEqual([
    [1, 'delivered'],
    [1, 'delivered'],
  ]);
  expect(mx.data.mostAtOnce).toBe(2);
}, 30_000);

it('a job still waiting for its bytes when the relay stops is given back untried, not started', async () => {
  // The receiver holds the first message's DATA reply until the stop has reached the delivery thread.
  // Leases of 2 s: a stopping worker no longer renews them, so their lapse is the sign it is stopping.
  mx = await startMx('tls13', { name: 'mx.big.test', holdData: true });
  const delivery = { routes: { 'big.test': `127.0.0.1:${mx.port}` }, inflight_budget_bytes: 1024 * 1024, lease_seconds: 2, shutdown_grace_seconds: 30, socket_timeout_ms: 120_000 };
  relay = await startTestRelay(testConfig({ delivery }));
  const ids = await submitTwoLarge(relay.port);
  const reader = new SqliteStore(relay.config.store.path);
  const firstRecipients = async () => (await Promise.all(ids.map((id) => reader.getQueueEntry(id)))).map((e) => e?.recipients[0]);
  try {
    // One is in DATA; the other is claimed (a claim counts the attempt) and waits for the budget.
    await vi.waitFor(
      async () => {
        expect(mx!.data.begun).toBe(1);
        expect((await firstRecipients()).map((r) => r?.attempts)).toEqual([1, 1]);
      },
      { timeout: 20_000, interval: 50 },
    );
    const closing = relay.close();
    await vi.waitFor(async () => expect((await firstRecipients()).map((r) => r?.leasedUntil)).toEqual([null, null]), { timeout: 20_000, interval: 50 });
    // Stopping: the one under way may finish now; the waiting one must not start.
    mx.releaseData();
    await closing;
    const records = await reader.queryRecords({});
    // The one under way finished; the waiting one was never tried and is queued as it was.
    expect(records.map((r) => r.outcome)).toEqual(['delivered']);
    const waiting = ids.find((id) => id !== records[0]!.queueId)!;
    expect((await reader.getQueueEntry(waiting))?.recipients.map((r) => [r.state, r.attempts])).toEqual([['queued', 0]]);
    expect(mx.data.begun).toBe(1);
  } finally {
    await reader.close();
  }
  relay = undefined;
}, 60_000);

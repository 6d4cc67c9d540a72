// delivery.inflight_budget_bytes: jobs wait for their message's bytes. Two 700 KB
// messages to a receiver that takes its time over DATA are delivered one after the
// other under a 1 MiB budget, and side by side under the default one; one still
// waiting for its bytes when the relay stops goes back to the queue untried.
import { afterEach, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

let mx: StartedMx | undefined;
let relay: TestRelay | undefined;
afterEach(async () => {
  await relay?.close();
  await mx?.close();
});

/** Delivers two large messages through a relay with `budget`; the most DATA transfers the receiver had at once. */
async function mostAtOnce(budget: number | undefined): Promise<number> {
  mx = await startMx('tls13', { name: 'mx.big.test', dataDelayMs: 700 });
  relay = await startTestRelay(testConfig({ delivery: { routes: { 'big.test': `127.0.0.1:${mx.port}` }, ...(budget ? { inflight_budget_bytes: budget } : {}) } }));
  const body = `${'0123456789abcdef'.repeat(62)}\r\n`.repeat(700); // ~700 KB
  const ids = await Promise.all(['a', 'b'].map(async (who) => queueIdOf(await submit({ port: relay!.port, from: 'lab@clinic.test', to: [`${who}@big.test`], body: `Subject: big\r\n\r\n${body}` }))));
  await relay.waitForRecords((r) => ids.every((id) => r.some((x) => x.queueId === id && x.outcome === 'delivered')), 20_000);
  return mx.data.mostAtOnce;
}

it('under a 1 MiB budget two 700 KB messages go one at a time', async () => {
  expect(await mostAtOnce(1024 * 1024)).toBe(1);
}, 30_000);

it('under the default budget they go side by side', async () => {
  expect(await mostAtOnce(undefined)).toBe(2);
}, 30_000);

it('a job still waiting for its bytes when the relay stops is given back untried, not started', async () => {
  mx = await startMx('tls13', { name: 'mx.big.test', dataDelayMs: 1500 });
  relay = await startTestRelay(testConfig({ delivery: { routes: { 'big.test': `127.0.0.1:${mx.port}` }, inflight_budget_bytes: 1024 * 1024 } }));
  const body = `${'0123456789abcdef'.repeat(62)}\r\n`.repeat(700);
  const ids = await Promise.all(['a', 'b'].map(async (who) => queueIdOf(await submit({ port: relay!.port, from: 'lab@clinic.test', to: [`${who}@big.test`], body: `Subject: big\r\n\r\n${body}` }))));
  // One is in DATA, the other waits for the budget: now stop.
  const deadline = Date.now() + 10_000;
  while (mx.data.begun < 1) {
    if (Date.now() > deadline) throw new Error('no delivery started');
    await new Promise((r) => setTimeout(r, 20));
  }
  await relay.close();
  const reader = new SqliteStore(relay.config.store.path);
  try {
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
}, 30_000);

// delivery.inflight_budget_bytes: jobs wait for their message's bytes. Two 700 KB
// messages to a receiver that takes its time over DATA are delivered one after the
// other under a 1 MiB budget, and side by side under the default one.
import { afterEach, expect, it } from 'vitest';
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

// A delivery that outlasts its lease (here: a receiver that takes 3.5 s over DATA,
// with leases of 1 s) keeps its claim, renewed while it runs: the message is sent
// once and recorded once, never claimed and sent a second time meanwhile.
import { afterAll, expect, it } from 'vitest';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

let mx: StartedMx | undefined;
let relay: TestRelay | undefined;
afterAll(async () => {
  await relay?.close();
  await mx?.close();
});

it('a job longer than its lease is renewed, not claimed twice', async () => {
  mx = await startMx('tls13', { name: 'mx.slow.test', dataDelayMs: 3500 });
  relay = await startTestRelay(testConfig({ delivery: { routes: { 'slow.test': `127.0.0.1:${mx.port}` }, lease_seconds: 1, poll_interval_ms: 100 } }));
  const id = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@slow.test'] }));
  await relay.waitForRecords((r) => r.some((x) => x.queueId === id && x.outcome === 'delivered'), 15_000);
  // Give a second claim every chance to have happened and finished.
  await new Promise((r) => setTimeout(r, 1500));
  expect((await relay.records({ message: id })).map((r) => [r.attempt, r.outcome])).toEqual([[1, 'delivered']]);
  // The receiver was sent the message once.
  expect(mx.data.begun).toBe(1);
}, 30_000);

// A delivery that outlasts its lease (here: a receiver that holds its DATA reply until
// the job has outlived two leases of 1 s) keeps its claim, renewed while it runs: the
// message is sent once and recorded once, never claimed and sent a second time meanwhile.
import { afterAll, expect, it, vi } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

let mx: StartedMx | undefined;
let relay: TestRelay | undefined;
afterAll(async () => {
  mx?.releaseData();
  await relay?.close();
  await mx?.close();
});

it('a job longer than its lease is renewed, not claimed twice', async () => {
  mx = await startMx('tls13', { name: 'mx.slow.test', holdData: true });
  relay = await startTestRelay(testConfig({ delivery: { routes: { 'slow.test': `127.0.0.1:${mx.port}` }, lease_seconds: 1, poll_interval_ms: 100, socket_timeout_ms: 120_000 } }));
  const id = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@slow.test'] }));
  const reader = new SqliteStore(relay.config.store.path);
  const recipient = async () => (await reader.getQueueEntry(id))?.recipients[0];
  try {
    await vi.waitFor(() => expect(mx!.data.begun).toBe(1), { timeout: 15_000, interval: 50 });
    const began = Date.now();
    // A lease runs 1 s from its last renewal: one that ends 2.5 s after DATA began was renewed well past the first.
    await vi.waitFor(async () => expect((await recipient())?.leasedUntil).toBeGreaterThan(began + 2500), { timeout: 15_000, interval: 100 });
    // Meanwhile nothing claimed it again (a claim counts an attempt), nor sent it again.
    expect((await recipient())?.attempts).toBe(1);
    expect(mx.sessions).toHaveLength(1);
    mx.releaseData();
    await relay.waitForRecords((r) => r.some((x) => x.queueId === id && x.outcome === 'delivered'), 15_000);
    expect((await relay.records({ message: id })).map((r) => [r.attempt, r.outcome])).toEqual([[1, 'delivered']]);
    // The receiver was sent the message once.
    expect(mx.data.begun).toBe(1);
  } finally {
    await reader.close();
  }
}, 30_000);

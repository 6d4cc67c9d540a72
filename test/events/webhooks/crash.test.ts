// No event is lost across a kill -9: the relay runs as a real process, mail flows,
// and it is killed while webhook requests are in flight (the receiver holds its
// answers). After a restart every event in the store reaches the receiver with a
// 2xx at least once, those cut off mid-request included, in order per message.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { startMx, type StartedMx } from '../../helpers/mx.ts';
import { killIfRunning, spawnRelay, writeConfigFile, type RelayProcess } from '../../helpers/relay-process.ts';
import { queueIdOf, submit, testConfig } from '../../helpers/relay.ts';
import { independentlyVerified, payloadOf, startReceiver, type Receiver } from './receiver.ts';

const SECRET = 'crash-test-secret-0123456789abcdefghij';

let mx: StartedMx | undefined;
let hooks: Receiver | undefined;
let reader: SqliteStore | undefined;
const relays: RelayProcess[] = [];
afterAll(async () => {
  for (const r of relays) await killIfRunning(r);
  await reader?.close();
  await hooks?.stop();
  await mx?.close();
});

it('every event reaches the endpoint at least once across a kill -9 mid-request', async () => {
  mx = await startMx('tls13', { name: 'mx.crash.test' });
  hooks = await startReceiver();
  hooks.answer = () => 'hold';
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-hooks-crash-'));
  const secretFile = join(dir, 'hook.secret');
  writeFileSync(secretFile, SECRET);
  chmodSync(secretFile, 0o600);
  const config = testConfig({
    store: { path: join(dir, 'queue.db') },
    delivery: { routes: { 'crash.test': `127.0.0.1:${mx.port}` } },
    webhooks: {
      endpoints: [{ name: 'crm', url: hooks.url, secrets: [{ id: 'k1', file: secretFile }], timeout_seconds: 30, concurrency: 2 }],
      poll_interval_ms: 50,
      retry: { first_seconds: 0.05, max_seconds: 0.2 },
    },
    logging: { level: 'info' },
  });
  const file = writeConfigFile(dir, config);
  let relay = await spawnRelay(file);
  relays.push(relay);
  reader = new SqliteStore(config.store.path);
  await until(async () => (await reader!.webhookStatus()).length === 1, 'the endpoint’s cursor');

  const queueIds: string[] = [];
  for (let i = 0; i < 4; i++) queueIds.push(queueIdOf(await submit({ port: relay.ports.starttls!, from: 'app@clinic.test', to: [`a${i}@crash.test`, `b${i}@crash.test`] })));
  // Two requests in flight (the endpoint's concurrency), none answered: then the kill.
  await hooks.waitFor((r) => r.length >= 2, 20_000, 'requests in flight');
  const cutOff = hooks.requests.map((r) => payloadOf(r).id);
  relay.proc.kill('SIGKILL');
  expect(await relay.exited).toBe('SIGKILL');
  expect(hooks.accepted()).toEqual([]);

  hooks.answer = () => 200;
  relay = await spawnRelay(file);
  relays.push(relay);
  await mx.waitFor(4, 30_000);
  // Every recipient delivered (with `secured`, in the same commit): no more events come.
  let events = await reader.listEvents({ limit: 1000 });
  await until(async () => (events = await reader!.listEvents({ limit: 1000 })).filter((e) => e.type === 'secured').length === 8, 'eight deliveries');
  const want = events.map((e) => e.id);
  await hooks.waitFor(() => want.every((id) => hooks!.accepted().some((r) => payloadOf(r).id === id)), 30_000, 'every event accepted');
  for (const id of cutOff) expect(hooks.accepted().some((r) => payloadOf(r).id === id)).toBe(true);
  expect(hooks.requests.every((r) => independentlyVerified(r, SECRET).ok)).toBe(true);
  // In order per message among what was accepted (the first 2xx of each event).
  const firstAccepted = [...new Map(hooks.accepted().map((r) => [payloadOf(r).id, payloadOf(r)])).values()];
  for (const q of queueIds) {
    const ids = firstAccepted.filter((p) => p.queue_id === q).map((p) => p.id);
    expect(ids).toEqual(events.filter((e) => e.queueId === q).map((e) => e.id));
  }
  await until(async () => (await reader!.webhookStatus())[0]!.pending === 0, 'the outbox settled');
  relay.proc.kill('SIGTERM');
  expect(await relay.exited).toBe(0);
}, 120_000);

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

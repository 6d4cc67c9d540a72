// Endpoints change with a reload (SIGHUP): an added endpoint starts at the current
// end of the events (it gets what happens from then on; `webhooks replay` backfills),
// a removed one is sent nothing more, and a reload whose secret cannot be read is
// refused whole, the running endpoints going on as before.
import { afterAll, expect, it } from 'vitest';
import { configSchema, type Config } from '../../../src/config/schema.ts';
import { createLogger } from '../../../src/log.ts';
import { startRelay, type Relay } from '../../../src/relay.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { startMx, type StartedMx } from '../../helpers/mx.ts';
import { queueIdOf, submit, testConfig } from '../../helpers/relay.ts';
import { payloadOf, startReceiver, type Receiver } from './receiver.ts';

const SECRET = 'reload-test-secret-0123456789abcdefghij';

let mx: StartedMx | undefined;
let relay: Relay | undefined;
let reader: SqliteStore | undefined;
const receivers: Receiver[] = [];
afterAll(async () => {
  await relay?.close();
  await reader?.close();
  for (const r of receivers) await r.stop();
  await mx?.close();
});

it('adds and removes endpoints on reload, and refuses a reload with a secret it cannot read', async () => {
  mx = await startMx('tls13', { name: 'mx.reload.test' });
  const a = await startReceiver();
  const b = await startReceiver();
  receivers.push(a, b);
  const endpoint = (name: string, r: Receiver, env = 'HOOK_SECRET') => ({ name, url: r.url, events: ['queued'], secrets: [{ id: 'k1', env }] });
  const base = testConfig({ delivery: { routes: { 'reload.test': `127.0.0.1:${mx.port}` } }, webhooks: { endpoints: [endpoint('a', a)], poll_interval_ms: 50 } });
  const withEndpoints = (endpoints: unknown[]): Config => configSchema.parse({ ...base, webhooks: { ...base.webhooks, endpoints } });
  relay = await startRelay({ config: base, logger: createLogger('silent'), env: { HOOK_SECRET: SECRET } });
  reader = new SqliteStore(base.store.path);
  const port = relay.listeners[0]!.port;
  const send = async (to: string) => queueIdOf(await submit({ port, from: 'app@clinic.test', to: [to] }));
  const queuedFor = (r: Receiver) => r.accepted().map((q) => payloadOf(q).queue_id);

  const first = await send('one@reload.test');
  await a.waitFor(() => queuedFor(a).includes(first));

  // A secret that is not set: refused, nothing changes.
  await expect(relay.reload(withEndpoints([endpoint('a', a), endpoint('b', b, 'HOOK_UNSET')]))).rejects.toThrow(/webhooks\.endpoints\[b\]\.secrets\[k1\]\.env: environment variable HOOK_UNSET is not set/);
  expect((await reader.webhookStatus()).map((s) => s.endpoint)).toEqual(['a']);

  await relay.reload(withEndpoints([endpoint('a', a), endpoint('b', b)]));
  await until(async () => (await reader!.webhookStatus()).length === 2, 'b’s cursor');
  const second = await send('two@reload.test');
  await b.waitFor(() => queuedFor(b).includes(second));
  await a.waitFor(() => queuedFor(a).includes(second));
  // b starts at the end: the first message was before it.
  expect(queuedFor(b)).toEqual([second]);

  await relay.reload(withEndpoints([endpoint('b', b)]));
  const third = await send('three@reload.test');
  await b.waitFor(() => queuedFor(b).includes(third));
  expect(queuedFor(a)).toEqual([first, second]);
}, 60_000);

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

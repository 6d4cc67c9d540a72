// The delivery thread's supervisor (src/delivery/thread.ts): a thread that dies is
// started again and takes work; a thread that cannot start fails the relay's start
// with its reason.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { startDeliveryThread } from '../../src/delivery/thread.ts';
import { createLogger } from '../../src/log.ts';
import { startRelay } from '../../src/relay.ts';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';
import { startMx } from '../helpers/mx.ts';
import { logCapture, submit, testConfig } from '../helpers/relay.ts';

const dir = () => mkdtempSync(join(tmpdir(), 'sealrelay-thread-'));
let store: ThreadedSqliteStore | undefined;
afterEach(async () => {
  await store?.close();
  store = undefined;
});

async function until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

it('a delivery thread that dies is started again and takes work; stop still ends it', async () => {
  process.env.SEALRELAY_TEST_CRASH_MARKER = join(dir(), 'crashed');
  const config = testConfig();
  store = await ThreadedSqliteStore.open(config.store.path);
  const log = logCapture();
  const thread = await startDeliveryThread({
    config,
    store,
    logger: createLogger('info', log.stream),
    entry: new URL('../helpers/crashing-delivery-entry.ts', import.meta.url),
  });
  const events = () => log.lines.map((l) => l.event);
  expect(thread.health()).toEqual({ alive: true, restarts: 0 });
  thread.kick(); // the first kick kills the thread
  // Between its death and the restart (a second later) the thread is not alive: `sealrelay status` says so.
  await until(() => !thread.health().alive, 'the thread was seen dead');
  await until(() => events().includes('delivery.restarted'), 'the thread was started again');
  expect(thread.health()).toEqual({ alive: true, restarts: 1 });
  expect(log.lines.find((l) => l.event === 'delivery.error' && JSON.stringify(l).includes('simulated delivery thread crash'))).toBeDefined();
  thread.kick();
  await until(() => events().includes('fixture.kicked'), 'the new thread took a kick');
  await thread.reload(config);
  await thread.stop(1000);
});

it('a delivery thread that cannot start fails the relay start, naming the setting, and frees the store', async () => {
  const config = testConfig({ dkim: { domains: { 'clinic.test': { selector: 's1', key_file: join(dir(), 'missing.key') } } } });
  await expect(startRelay({ config, logger: createLogger('silent') })).rejects.toThrow(/dkim\.domains\.clinic\.test\.key_file: .*missing\.key: no such file/);
  // Nothing was left holding the store: a relay with a good config starts on it.
  const relay = await startRelay({ config: { ...config, dkim: { domains: {} } }, logger: createLogger('silent') });
  await relay.close();
});

it('a reload whose policy cannot be built is answered reload-failed; the thread keeps running on the old one', async () => {
  const config = testConfig();
  store = await ThreadedSqliteStore.open(config.store.path);
  const log = logCapture();
  const thread = await startDeliveryThread({ config, store, logger: createLogger('info', log.stream) });
  const broken = { ...config, policies: { ...config.policies, rules: [{ name: 'lists', match: { recipient_domains_file: join(dir(), 'missing-domains.txt') }, mode: 'forced' as const }] } };
  await expect(thread.reload(broken as typeof config)).rejects.toThrow(/missing-domains\.txt/);
  // Answered, not crashed: no restart, and the thread still takes a good reload.
  expect(log.lines.some((l) => l.event === 'delivery.restarted' || l.event === 'delivery.error')).toBe(false);
  await thread.reload(config);
  await thread.stop(1000);
});

it('a reload the ingress cannot take (a listener change) changes nothing anywhere: delivery keeps the old policy', async () => {
  const mx = await startMx('plain', { name: 'mx.keep.test' });
  const config = testConfig({ delivery: { routes: { 'keep.test': `127.0.0.1:${mx.port}` } } });
  const relay = await startRelay({ config, logger: createLogger('silent') });
  try {
    const next = {
      ...config,
      ingress: { ...config.ingress, listeners: { ...config.ingress.listeners, extra: { host: '127.0.0.1', port: 0, tls: 'starttls' as const, greeting_delay_ms: 0, reverse_dns: false, reverse_dns_timeout_ms: 1500 } } },
      policies: { ...config.policies, domains: { 'keep.test': { mode: 'tls-exclusive' as const, verification: 'none' as const } } },
    };
    await expect(relay.reload(next as typeof config)).rejects.toThrow(/listener changes need a restart/);
    // Under the old (opportunistic) policy the plain MX still gets the message; tls-exclusive would drop it.
    await submit({ port: relay.listeners[0]!.port, from: 'a@x.test', to: ['u@keep.test'] });
    await mx.waitFor(1, 10_000);
  } finally {
    await relay.close();
    await mx.close();
  }
}, 30_000);

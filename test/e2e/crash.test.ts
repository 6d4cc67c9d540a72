// Durability: SIGKILL the relay while a client streams messages. After a restart,
// every message that was answered 250 is delivered; nothing lives only in memory.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { spawnRelay, writeConfigFile, type RelayProcess } from '../helpers/relay-process.ts';
import { queueIdOf, submit, testConfig } from '../helpers/relay.ts';

let mx: StartedMx | undefined;
const relays: RelayProcess[] = [];
afterAll(async () => {
  for (const r of relays) r.proc.kill('SIGKILL');
  await mx?.close();
});

it('every message answered 250 before a SIGKILL is delivered after restart', async () => {
  mx = await startMx('tls13', { name: 'mx.durable.test' });
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-crash-'));
  const config = testConfig({
    store: { path: join(dir, 'queue.db') },
    delivery: { routes: { 'durable.test': `127.0.0.1:${mx.port}` } },
    logging: { level: 'info' },
  });
  const file = writeConfigFile(dir, config);

  let relay = await spawnRelay(file);
  relays.push(relay);
  const accepted = new Map<string, string>(); // Message-ID → queue id
  let stop = false;
  // Four clients stream messages until the relay dies under them.
  const client = async (n: number) => {
    for (let i = 0; !stop; i++) {
      const messageId = `<c${n}-${i}@crash.test>`;
      const body = `Message-ID: ${messageId}\r\nSubject: crash ${n}/${i}\r\n\r\n${'x'.repeat(76).concat('\r\n').repeat(26)}\r\n`;
      try {
        const reply = await submit({ port: relay.ports.starttls!, from: 'app@crash.test', to: [`u${i % 3}@durable.test`], body });
        accepted.set(messageId, queueIdOf(reply));
      } catch (err) {
        if (!stop) console.log('submit failed before the kill:', err);
        return; // the relay died mid-conversation: this one was never acknowledged
      }
    }
  };
  const clients = [1, 2, 3, 4].map(client);
  // Killed once twenty were answered 250, with the four clients still streaming.
  await vi.waitFor(() => expect(accepted.size).toBeGreaterThanOrEqual(20), { timeout: 30_000, interval: 20 });
  relay.proc.kill('SIGKILL');
  stop = true;
  await Promise.all(clients);
  expect(await relay.exited).toBe('SIGKILL');

  relay = await spawnRelay(file);
  relays.push(relay);
  const want = [...accepted.keys()];
  const deadline = Date.now() + 30_000;
  const landed = () => new Set(mx!.received.map((m) => /Message-ID: (<[^>]+>)/i.exec(m.raw.toString())?.[1]));
  while (want.some((id) => !landed().has(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const missing = want.filter((id) => !landed().has(id));
  expect(missing).toEqual([]);
  relay.proc.kill('SIGTERM');
  expect(await relay.exited).toBe(0);
}, 90_000);

it('deferred work survives a restart: queued while the MX is down, delivered by the next process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-deferred-'));
  // The route points at a port nothing listens on yet: every attempt is deferred.
  const down = await startMx('plain', { name: 'mx.later.test' });
  const port = down.port;
  await down.close();
  const config = testConfig({
    store: { path: join(dir, 'queue.db') },
    delivery: { routes: { 'later.test': `127.0.0.1:${port}` }, retry: { first_seconds: 0.2, max_seconds: 0.3 } },
    logging: { level: 'info' },
  });
  const file = writeConfigFile(dir, config);
  let relay = await spawnRelay(file);
  relays.push(relay);
  const id = queueIdOf(await submit({ port: relay.ports.starttls!, from: 'app@crash.test', to: ['pat@later.test'] }));
  await relay.waitForLine((l) => l.event === 'delivery.record' && (l.record as { outcome: string }).outcome === 'deferred');
  relay.proc.kill('SIGKILL');
  await relay.exited;

  const up = await startMx('tls13', { name: 'mx.later.test', port });
  try {
    relay = await spawnRelay(file);
    relays.push(relay);
    const [msg] = await up.waitFor(1, 15_000);
    expect(msg!.envelope.to).toEqual(['pat@later.test']);
    const delivered = await relay.waitForLine((l) => l.event === 'delivery.record' && (l.record as { outcome: string }).outcome === 'delivered');
    expect(delivered.queueId).toBe(id);
    relay.proc.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  } finally {
    await up.close();
  }
}, 60_000);

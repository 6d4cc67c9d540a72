// A large message through the real relay and its SQLite store: written in parts
// while it arrives (the store file holds it as several body_parts rows), delivered
// byte for byte, and — when the relay dies mid-DATA — its parts are gone after the
// restart, with nothing queued and no 250 given.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, expect, it, vi } from 'vitest';
import { PART_BYTES } from '../../src/ingress/data-reader.ts';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { spawnRelay, writeConfigFile, type RelayProcess } from '../helpers/relay-process.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';
import { RawClient, runSteps } from '../ingress/harness.ts';

const LINE = `${'L'.repeat(76)}\r\n`;
const bigBody = (bytes: number, id: string) =>
  `From: <app@clinic.test>\r\nTo: <pat@large.test>\r\nSubject: large\r\nMessage-ID: <${id}@clinic.test>\r\n\r\n${LINE.repeat(Math.ceil(bytes / LINE.length))}`;

/** Reads the relay's store file beside it, as the CLI does. */
function bodyRows(storePath: string): { queueId: string; part: number; bytes: number; queued: number }[] {
  const db = new Database(storePath, { readonly: true });
  try {
    return db
      .prepare(
        `SELECT queue_id AS queueId, part, length(data) AS bytes, EXISTS (SELECT 1 FROM messages m WHERE m.queue_id = p.queue_id) AS queued
         FROM body_parts p ORDER BY queue_id, part`,
      )
      .all() as { queueId: string; part: number; bytes: number; queued: number }[];
  } finally {
    db.close();
  }
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const undo of cleanups.reverse()) await undo();
});

it('a 6 MiB message is stored in parts and delivered byte for byte', async () => {
  const mx: StartedMx = await startMx('tls13', { name: 'mx.large.test' });
  cleanups.push(() => mx.close());
  // Held first (the route goes nowhere), so the store can be looked at; then delivered.
  const closed = await startMx('plain', { name: 'mx.nowhere.test' });
  const nowhere = closed.port;
  await closed.close();
  const config = testConfig({
    ingress: { max_message_bytes: 16 * 1024 * 1024 },
    delivery: { routes: { 'large.test': `127.0.0.1:${nowhere}` } },
  });
  let relay: TestRelay = await startTestRelay(config);
  const body = bigBody(6 * PART_BYTES, 'six');
  const queueId = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@large.test'], body }));
  await relay.waitForRecords((r) => r.some((x) => x.queueId === queueId && x.outcome === 'deferred'));
  const rows = bodyRows(config.store.path).filter((r) => r.queueId === queueId);
  expect(rows.length).toBeGreaterThanOrEqual(6);
  expect(rows.map((r) => r.part)).toEqual(rows.map((_r, i) => i));
  expect(rows.slice(1, -1).every((r) => r.bytes === PART_BYTES)).toBe(true);
  expect(rows.every((r) => r.queued === 1)).toBe(true);
  await relay.close();

  relay = await startTestRelay({ ...config, delivery: { ...config.delivery, routes: { 'large.test': `127.0.0.1:${mx.port}` } } });
  cleanups.push(() => relay.close());
  const [got] = await mx.waitFor(1, 30_000);
  const raw = got!.raw.toString('latin1');
  expect(raw.slice(raw.indexOf('From: <app@clinic.test>'))).toBe(body);
  await relay.waitForRecords((r) => r.some((x) => x.queueId === queueId && x.outcome === 'delivered'));
  // Delivered: its parts go with it.
  await vi.waitFor(() => expect(bodyRows(config.store.path).filter((r) => r.queueId === queueId)).toEqual([]), { timeout: 10_000 });
}, 90_000);

it('killed mid-DATA: no 250, and the parts written so far are gone after the restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-large-crash-'));
  const config = testConfig({ store: { path: join(dir, 'queue.db') }, ingress: { max_message_bytes: 16 * 1024 * 1024 }, logging: { level: 'info' } });
  const file = writeConfigFile(dir, config);
  let relay: RelayProcess = await spawnRelay(file);
  cleanups.push(() => relay.proc.kill('SIGKILL'));
  const client = await RawClient.open(relay.ports.starttls!);
  await runSteps(client, [['EHLO app.test', 250], ['MAIL FROM:<app@clinic.test>', 250], ['RCPT TO:<pat@large.test>', 250], ['DATA', 354]]);
  client.write(bigBody(4 * PART_BYTES, 'cut'));
  // Parts of a message not yet queued are in the store file.
  await vi.waitFor(() => expect(bodyRows(config.store.path).filter((r) => r.queued === 0).length).toBeGreaterThanOrEqual(2), { timeout: 30_000, interval: 50 });
  relay.proc.kill('SIGKILL');
  expect(await relay.exited).toBe('SIGKILL');
  await expect(client.reply(5000)).rejects.toThrow(/closed=true|no reply/);

  relay = await spawnRelay(file);
  await relay.waitForLine((l) => l.event === 'relay.started' || l.event === 'ingress.listening');
  expect(bodyRows(config.store.path)).toEqual([]);
  relay.proc.kill('SIGTERM');
  expect(await relay.exited).toBe(0);
}, 90_000);

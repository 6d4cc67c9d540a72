// The REQUIRETLS flag (RFC 8689) kept with a queued message (schema 21): what ingress
// stored comes back on every claimed recipient and in the queue entry; a message
// queued without it, or before the column existed, reads as false.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { message } from './contract.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const storePath = () => {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-requiretls-'));
  dirs.push(dir);
  return join(dir, 'queue.db');
};

it('the flag comes back on each claimed recipient and in the queue entry; absent is false', async () => {
  const store = new SqliteStore(storePath());
  try {
    const demanded = message({ recipients: ['a@one.test', 'b@one.test'], requireTls: true });
    const plain = message({ recipients: ['c@two.test'] });
    await store.enqueue(demanded);
    await store.enqueue(plain);
    const items = await store.claim({ owner: 'w1', limit: 10, leaseMs: 60_000 });
    expect(items.map((i) => [i.recipient, i.requireTls])).toEqual(
      expect.arrayContaining([
        ['a@one.test', true],
        ['b@one.test', true],
        ['c@two.test', false],
      ]),
    );
    expect((await store.getQueueEntry(demanded.queueId))?.requireTls).toBe(true);
    expect((await store.getQueueEntry(plain.queueId))?.requireTls).toBeUndefined();
  } finally {
    await store.close();
  }
});

it('a message queued before schema 21 reads as without REQUIRETLS', async () => {
  const path = storePath();
  const old = message({ recipients: ['a@one.test'] });
  let store = new SqliteStore(path);
  await store.enqueue(old);
  await store.close();
  // Back to schema 20: the column goes (and schema 22's tables), as if the message had been queued by the previous release.
  const raw = new Database(path);
  raw.exec('ALTER TABLE messages DROP COLUMN require_tls');
  const later = raw.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'tlsrpt_%'`).pluck().all() as string[];
  for (const t of later) raw.exec(`DROP TABLE ${t}`);
  raw.pragma('user_version = 20');
  raw.close();
  store = new SqliteStore(path);
  try {
    const [item] = await store.claim({ owner: 'w1', limit: 10, leaseMs: 60_000 });
    expect(item).toMatchObject({ queueId: old.queueId, requireTls: false });
  } finally {
    await store.close();
  }
});

import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';
import { message, record, storeContract } from './contract.ts';

const tempDb = () => join(mkdtempSync(join(tmpdir(), 'sealrelay-store-')), 'nested', 'queue.db');

storeContract('sqlite', { newPlace: tempDb, open: async (path) => new SqliteStore(path), singleNode: true });
// The relay's form: the same store in its own thread, behind messages.
storeContract('sqlite in a worker thread', { newPlace: tempDb, open: (path) => ThreadedSqliteStore.open(path), singleNode: true });

it('the threaded store reports a database it cannot open, and a closed store refuses work', async () => {
  const path = tempDb();
  await new SqliteStore(path).close();
  const raw = new Database(path);
  raw.pragma('user_version = 99');
  raw.close();
  await expect(ThreadedSqliteStore.open(path)).rejects.toThrow(/newer than this SealRelay/);
  const s = await ThreadedSqliteStore.open(tempDb());
  await s.close();
  await expect(s.enqueue(message())).rejects.toThrow(/store thread exited|closed/);
});

// Which commits fsync, and that they do before they resolve, is observed in sqlite-fsync.test.ts.
it('runs in WAL mode, and a reopened file keeps the queue', async () => {
  const path = tempDb();
  const s = new SqliteStore(path);
  const m = message();
  await s.enqueue(m);
  await s.close();
  const raw = new Database(path, { readonly: true });
  expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
  raw.close();
  const again = new SqliteStore(path);
  expect((await again.getQueueEntry(m.queueId))?.recipients).toHaveLength(3);
  await again.close();
});

it('refuses a database from a newer SealRelay', async () => {
  const path = tempDb();
  await new SqliteStore(path).close();
  const raw = new Database(path);
  raw.pragma('user_version = 99');
  raw.close();
  expect(() => new SqliteStore(path)).toThrow(/newer than this SealRelay/);
});

it('checkpoints apart: the store never checkpoints itself; the checkpoint thread does once the store is quiet', async () => {
  const path = tempDb();
  const s = new SqliteStore(path, { checkpointsApart: true });
  const before = statSync(path).size;
  await Promise.all(Array.from({ length: 300 }, () => s.enqueue(message({ body: Buffer.alloc(20_000, 'x') }))));
  // Right after the commits everything still sits in the WAL: the store's connection does not checkpoint.
  expect(statSync(path).size).toBe(before);
  expect(statSync(`${path}-wal`).size).toBeGreaterThan(300 * 20_000);
  // After a quiet moment the checkpoint thread has copied the pages into the database file.
  for (let i = 0; i < 40 && statSync(path).size < 300 * 20_000; i++) await new Promise((r) => setTimeout(r, 100));
  expect(statSync(path).size).toBeGreaterThan(300 * 20_000);
  await s.close();
  expect(existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0).toBe(0);
});

it('group commit: an enqueue and a finish of the same turn share a commit; a write at fault fails alone', async () => {
  const s = new SqliteStore(tempDb());
  const first = message();
  await s.enqueue(first);
  const [item] = await s.claim({ owner: 'w', limit: 1, leaseMs: 60_000 });
  const fresh = message();
  // Same turn: a good enqueue, a duplicate queue id (primary key violation), and a finish.
  const results = await Promise.allSettled([
    s.enqueue(fresh),
    s.enqueue({ ...message(), queueId: first.queueId }),
    s.finish([record(item!, { outcome: 'delivered', method: 'plaintext' })], [{ queueId: item!.queueId, seq: item!.seq, outcome: 'delivered', error: null }]),
  ]);
  expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  expect(await s.getQueueEntry(fresh.queueId)).not.toBeNull();
  expect((await s.queryRecords({ message: first.queueId })).map((r) => r.outcome)).toEqual(['delivered']);
  await s.close();
});

it('a claim lets the writes already waiting commit first, and sees what they queued', async () => {
  const s = new SqliteStore(tempDb());
  const order: string[] = [];
  const m = message();
  // Same turn: the enqueue waits for the group commit when the claim arrives.
  const enqueued = s.enqueue(m).then(() => order.push('enqueue'));
  const claimed = s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 }).then((items) => {
    order.push('claim');
    return items;
  });
  const items = await claimed;
  await enqueued;
  expect(order).toEqual(['enqueue', 'claim']);
  expect(items.map((i) => i.queueId)).toEqual(m.recipients.map(() => m.queueId));
  await s.close();
});

it('a large body moves to the store thread and back to the reader instead of being copied', async () => {
  const store = await ThreadedSqliteStore.open(tempDb());
  try {
    const content = Buffer.alloc(1024 * 1024, 'x');
    const body = Buffer.allocUnsafe(content.length);
    content.copy(body);
    const m = message({ body });
    await store.enqueue(m);
    // Moved, not copied: the caller's buffer is detached (Store.enqueue says not to read it afterwards).
    expect(body.buffer.byteLength).toBe(0);
    const read = await store.readBody(m.queueId);
    expect(read?.equals(content)).toBe(true);
    // A small body is copied: the caller keeps it.
    const small = message({ body: Buffer.from('Subject: s\r\n\r\nsmall\r\n') });
    await store.enqueue(small);
    expect(small.body.toString()).toBe('Subject: s\r\n\r\nsmall\r\n');
  } finally {
    await store.close();
  }
});

// The queue selection contract (queue-selection-contract.ts) on both forms of the
// SQLite store: on the calling thread (the CLI's) and in its own thread (the relay's).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { QueueSelectionTable } from '../../src/store/sqlite/queue-selection.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';
import { queueSelectionContract } from './queue-selection-contract.ts';

const tempDb = () => join(mkdtempSync(join(tmpdir(), 'sealrelay-select-')), 'queue.db');

queueSelectionContract('sqlite', { newPlace: tempDb, open: async (path) => new SqliteStore(path), singleNode: true });
queueSelectionContract('sqlite in a worker thread', { newPlace: tempDb, open: (path) => ThreadedSqliteStore.open(path), singleNode: true });


it("every selection statement finds a message's recipients by the primary key, never by walking recipients_due", async () => {
  const path = tempDb();
  await new SqliteStore(path).close();
  const db = new Database(path);
  try {
    const statements: string[] = [];
    const prepare = db.prepare.bind(db);
    db.prepare = ((sql: string) => (statements.push(sql), prepare(sql))) as typeof db.prepare;
    const table = new QueueSelectionTable(db);
    const select = { states: ['deferred', 'held'], domain: 'one.test', sender: { domain: 'clinic.test' }, idPrefix: 'ab', receivedBefore: 1, receivedAfter: 0 } as const;
    table.list(select, 10, 0);
    table.count(select, 0);
    table.nextBatch(select, '', 10, 0);
    for (const action of ['hold', 'release', 'flush', 'delete'] as const) table.changer(action, select, 0)('ab1');
    expect(statements.length).toBeGreaterThanOrEqual(7);
    for (const sql of statements) {
      const params = Object.fromEntries([...sql.matchAll(/@(\w+)/g)].map(([, name]) => [name, 0]));
      const plan = (prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as { detail: string }[]).map((p) => p.detail).join(' | ');
      expect(plan, sql).not.toContain('recipients_due');
      // The per-message lookups use the primary key (queue_id, seq).
      if (/EXISTS|rowid IN/.test(sql)) expect(plan, sql).toMatch(/SEARCH (r|recipients) .*sqlite_autoindex_recipients_1 \(queue_id=\?\)/);
    }
  } finally {
    db.close();
  }
});

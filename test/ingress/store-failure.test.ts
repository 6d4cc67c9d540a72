// A commit that fails for want of room is 452 4.3.1; any other failure 451 4.3.0.
// The errors here are SQLite's own (better-sqlite3), not made up: a database made
// "full" by max_page_count on this connection, and a constraint violation.
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { replies } from '../../src/ingress/replies.ts';

function sqliteError(run: (db: Database.Database) => void): unknown {
  const db = new Database(join(mkdtempSync(join(tmpdir(), 'sealrelay-full-')), 'x.db'));
  try {
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)');
    run(db);
  } catch (err) {
    return err;
  } finally {
    db.close();
  }
  throw new Error('no error');
}

const reply = (err: unknown) => {
  const r = replies.storeFailed(err);
  return `${r.code} ${r.enhanced} ${r.message}`;
};

it('SQLITE_FULL is 452 4.3.1 Insufficient system storage', () => {
  const full = sqliteError((db) => {
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true })}`);
    db.prepare('INSERT INTO t (data) VALUES (?)').run(Buffer.alloc(64 * 1024));
  });
  expect((full as { code: string }).code).toBe('SQLITE_FULL');
  expect(reply(full)).toBe('452 4.3.1 Insufficient system storage');
});

it('a full file system (ENOSPC) is 452 4.3.1 too; anything else is 451 4.3.0', () => {
  expect(reply(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }))).toBe('452 4.3.1 Insufficient system storage');
  const constraint = sqliteError((db) => db.prepare('INSERT INTO t (id) VALUES (1), (1)').run());
  expect((constraint as { code: string }).code).toMatch(/^SQLITE_CONSTRAINT/);
  expect(reply(constraint)).toBe('451 4.3.0 Temporary failure queueing the message, try again later');
  expect(reply(new Error('store thread exited (code 1)'))).toBe('451 4.3.0 Temporary failure queueing the message, try again later');
  expect(reply(null)).toBe('451 4.3.0 Temporary failure queueing the message, try again later');
});

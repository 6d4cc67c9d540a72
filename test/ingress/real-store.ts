/**
 * Ingress on the relay's own store — the SQLite file in its own thread
 * (ThreadedSqliteStore) — for the tests that must see what a commit really left
 * behind, where harness.ts's recording stub cannot say.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startIngress, type Ingress } from '../../src/ingress/index.ts';
import { createLogger } from '../../src/log.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';
import { ingressConfig, testCertificate, type LogLine } from './harness.ts';

export interface SqliteIngress {
  ingress: Ingress;
  store: ThreadedSqliteStore;
  /** The store file. */
  path: string;
  logs: LogLine[];
  port(): number;
  close(): Promise<void>;
}

/**
 * A real ingress on a new store file. `refuseSender`: a trigger installed in the file
 * makes SQLite abort the commit of any message from that sender — a commit that
 * fails for a reason other than lack of space, with nothing of the store mocked.
 */
export async function startSqliteIngress(opts: { refuseSender?: string } = {}): Promise<SqliteIngress> {
  const path = join(mkdtempSync(join(tmpdir(), 'sealrelay-ingress-store-')), 'queue.db');
  // The schema first (migrations), then the trigger on its messages table.
  await new SqliteStore(path).close();
  if (opts.refuseSender) {
    const raw = new Database(path);
    raw.exec(
      `CREATE TRIGGER test_refuse_sender BEFORE INSERT ON messages WHEN NEW.sender = '${opts.refuseSender.replace(/'/g, "''")}'
       BEGIN SELECT RAISE(ABORT, 'commit refused by the test trigger'); END;`,
    );
    raw.close();
  }
  const store = await ThreadedSqliteStore.open(path);
  const logs: LogLine[] = [];
  const logger = createLogger('debug', { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  let ingress: Ingress;
  try {
    ingress = await startIngress({ config: ingressConfig(), store, logger, tlsCredentials: testCertificate(), users: new Map(), drainTimeoutMs: 2000 });
  } catch (err) {
    await store.close();
    throw err;
  }
  return {
    ingress,
    store,
    path,
    logs,
    port: () => ingress.listeners[0]!.port,
    async close() {
      await ingress.close();
      await store.close();
    },
  };
}

/**
 * Rows of every table with a queue_id column (messages, recipients, bodies or body
 * parts, records, whatever the schema has now): in all, and those of `queueId`.
 */
export function queueRows(path: string, queueId = ''): { all: Record<string, number>; of: Record<string, number> } {
  const db = new Database(path, { readonly: true });
  try {
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[]).filter((t) =>
      (db.prepare(`SELECT name FROM pragma_table_info(?)`).pluck().all(t) as string[]).includes('queue_id'),
    );
    const all: Record<string, number> = {};
    const of: Record<string, number> = {};
    for (const t of tables) {
      all[t] = db.prepare(`SELECT count(*) FROM "${t}"`).pluck().get() as number;
      of[t] = db.prepare(`SELECT count(*) FROM "${t}" WHERE queue_id = ?`).pluck().get(queueId) as number;
    }
    return { all, of };
  } finally {
    db.close();
  }
}

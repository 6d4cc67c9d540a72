// Schema 14 (the report counts) on an existing store: the events already there are
// counted by the migration exactly as EventTable.write counts new ones, so a
// report covers the time before the upgrade; a version 12 store (events without
// the message facts) upgrades and its old events are in the reports.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { runReport } from '../../src/reporting/report.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { QueueItem } from '../../src/store/store.ts';
import { message, record } from '../store/contract.ts';
import { counts, HOUR, seedReportStore, T0 } from './seed.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function storePath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-report-migrate-'));
  dirs.push(dir);
  return join(dir, 'queue.db');
}

/** The tables of schema versions 12 and 13 (13 only added columns). */
const V13_TABLES = new Set(['messages', 'body_parts', 'recipients', 'records', 'domains', 'mta_sts_policies', 'counters', 'recipient_keys', 'recipient_key_addresses', 'key_lookups', 'portal_items', 'portal_content', 'events']);

/** Columns later versions added to the tables of version 13. */
const LATER_COLUMNS = [['body_parts', 'key_id'], ['body_parts', 'nonce'], ['messages', 'require_tls']] as const;

/** Takes a store file back to schema `version` (13 or 12): every later table and column dropped, for 12 version 13's columns too. */
function downgrade(path: string, version: 12 | 13): void {
  const raw = new Database(path);
  const tables = raw.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).pluck().all() as string[];
  for (const t of tables) if (!V13_TABLES.has(t)) raw.exec(`DROP TABLE ${t}`);
  for (const [table, column] of LATER_COLUMNS) raw.exec(`ALTER TABLE ${table} DROP COLUMN ${column}`);
  if (version === 12) {
    raw.exec(`ALTER TABLE messages DROP COLUMN campaign;
              ALTER TABLE messages DROP COLUMN custom;
              ALTER TABLE events DROP COLUMN subject;
              ALTER TABLE events DROP COLUMN custom;
              ALTER TABLE events DROP COLUMN automated;
              ALTER TABLE events DROP COLUMN tls;`);
  }
  raw.pragma(`user_version = ${version}`);
  raw.close();
}

const reportCounts = (path: string): unknown[] => {
  const raw = new Database(path, { readonly: true });
  try {
    return raw.prepare(`SELECT * FROM report_counts ORDER BY dimension, slot, value`).all();
  } finally {
    raw.close();
  }
};

it('a version 13 store gets the same counts from the migration as the live writes made', async () => {
  const path = storePath();
  const store = new SqliteStore(path);
  await seedReportStore(store);
  await store.close();
  const live = reportCounts(path);
  expect(live.length).toBeGreaterThan(20);
  downgrade(path, 13);
  expect(new Database(path).prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'report_counts'`).pluck().get()).toBe(0);
  await new SqliteStore(path).close();
  expect(reportCounts(path)).toEqual(live);
});

it('a version 12 store upgrades: its events are reported, and later ones count on from them', async () => {
  const path = storePath();
  await new SqliteStore(path).close();
  downgrade(path, 12);
  const v12 = new Database(path);
  const insert = v12.prepare(`INSERT INTO events (id, queue_id, seq, at, type, sender, recipient, domain, method, campaign) VALUES (?, 'OLD1', ?, ?, ?, 'a@s.test', ?, 'old.test', ?, 'spring')`);
  let id = 0;
  const event = (seq: number, hours: number, type: string, method: string | null = null) =>
    insert.run(String(++id).padStart(32, '0'), seq, T0 + hours * HOUR, type, `r${seq}@old.test`, method);
  event(0, 0, 'queued');
  event(1, 0, 'queued');
  event(0, 1, 'deferred');
  event(0, 2, 'deferred');
  event(0, 3, 'delivered', 'tls');
  event(0, 3, 'secured', 'tls');
  event(1, 1, 'bounced');
  v12.close();

  const store = new SqliteStore(path);
  try {
    const window = { since: T0, until: T0 + 24 * HOUR, split: 'campaign', bucket: 'none', timeZone: 'UTC', includeAutomated: false } as const;
    // Version 12 kept no TLS version: the delivery is TLS of no known version.
    const before = counts({ queued: 2, delivered: 1, deferred: 1, bounced: 1, secured: 1, tlsOther: 1 });
    expect((await runReport(store, window)).rows).toMatchObject([{ key: 'spring', counts: before }]);
    // After the upgrade: another deferral of r0 is not a new deferred recipient; a new message counts.
    const r0 = { queueId: 'OLD1', seq: 0, messageId: null, attempt: 3, sender: 'a@s.test', recipient: 'r0@old.test', domain: 'old.test' } as QueueItem;
    await store.finish([record(r0, { at: new Date(T0 + 4 * HOUR).toISOString(), outcome: 'deferred', method: 'none' })], []);
    await store.enqueue(message({ recipients: ['n@new.test'], campaign: 'spring', receivedAt: T0 + 5 * HOUR }));
    expect((await runReport(store, window)).rows).toMatchObject([{ key: 'spring', counts: { ...before, queued: 3 } }]);
  } finally {
    await store.close();
  }
});

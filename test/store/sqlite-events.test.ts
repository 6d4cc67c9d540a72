// Events commit with their fact or not at all (an outbox, not a side channel): with
// every event write made to fail (a trigger on the events table), each fact that
// writes events fails whole — nothing of it is left committed. This is what would
// catch an event written in a transaction of its own, before or after the fact's.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { message, portalFacts, portalItem, record } from './contract.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function storePath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-events-'));
  dirs.push(dir);
  return join(dir, 'queue.db');
}

/** From now on every event insert on the file fails, as a full disk or a bug would make it. */
function breakEventWrites(path: string): void {
  const raw = new Database(path);
  raw.exec(`CREATE TRIGGER no_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'event write failed'); END;`);
  raw.close();
}

it('an enqueue whose events cannot be written is not queued', async () => {
  const path = storePath();
  await new SqliteStore(path).close();
  breakEventWrites(path);
  const s = new SqliteStore(path);
  try {
    const m = message();
    await expect(s.enqueue(m)).rejects.toThrow(/event write failed/);
    expect(await s.getQueueEntry(m.queueId)).toBeNull();
    expect(await s.readBody(m.queueId)).toBeNull();
  } finally {
    await s.close();
  }
});

it('a finish whose events cannot be written leaves no record, settlement, bounce or portal item', async () => {
  const path = storePath();
  const m = message({ recipients: ['pat@patient.test', 'x@one.test'] });
  const made = portalItem({ queueId: m.queueId, seq: 0, messageId: m.messageId });
  const notification = message({ recipients: ['pat@patient.test'] });
  let s = new SqliteStore(path);
  await s.enqueue(m);
  const [pat, x] = (await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 })).sort((a, b) => a.seq - b.seq);
  await s.close();
  breakEventWrites(path);
  s = new SqliteStore(path);
  try {
    // The attempt's own events alone (no bounce or notification queued with them).
    await expect(s.finish([record(x!)], [{ queueId: m.queueId, seq: 1, outcome: 'delivered', error: null }])).rejects.toThrow(/event write failed/);
    expect(await s.queryRecords({ message: m.queueId })).toEqual([]);
    expect((await s.getQueueEntry(m.queueId))?.recipients.map((r) => r.state)).toEqual(['queued', 'queued']);
    await expect(
      s.finish(
        [record(pat!, { outcome: 'portal-notified', method: 'portal', portal: portalFacts(made.id, notification.queueId) }), record(x!)],
        [
          { queueId: m.queueId, seq: 0, outcome: 'portal-notified', error: null },
          { queueId: m.queueId, seq: 1, outcome: 'delivered', error: null },
        ],
        [notification],
        [made],
      ),
    ).rejects.toThrow(/event write failed/);
    expect(await s.queryRecords({ message: m.queueId })).toEqual([]);
    expect((await s.getQueueEntry(m.queueId))?.recipients.map((r) => r.state)).toEqual(['queued', 'queued']);
    expect(await s.getQueueEntry(notification.queueId)).toBeNull();
    expect(await s.getPortalItem(made.id)).toBeNull();
  } finally {
    await s.close();
  }
});

it('portal facts whose events cannot be written fail whole: no record, and recall or expiry erases nothing', async () => {
  const path = storePath();
  const item = portalItem();
  const due = portalItem({ createdAt: 1_000, expiresAt: 2_000 });
  let s = new SqliteStore(path);
  await s.putPortalItem(item);
  await s.putPortalItem(due);
  await s.close();
  breakEventWrites(path);
  s = new SqliteStore(path);
  try {
    await expect(s.recordPortalEvent(item.id, 'portal-opened', {})).rejects.toThrow(/event write failed/);
    await expect(s.recordPortalEvent(item.id, 'portal-replied', {})).rejects.toThrow(/event write failed/);
    expect(await s.queryLog({ message: item.queueId })).toEqual([]);
    await expect(s.recallPortalItems(item.queueId, 'alice')).rejects.toThrow(/event write failed/);
    expect((await s.getPortalItem(item.id))?.sealed).toEqual(item.sealed);
    await expect(s.expirePortalItems(Date.now(), 10)).rejects.toThrow(/event write failed/);
    expect((await s.getPortalItem(due.id))?.sealed).toEqual(due.sealed);
    // Portal steps that are not events still work.
    expect(await s.recordPortalEvent(item.id, 'portal-viewed', {})).toBe(true);
  } finally {
    await s.close();
  }
});

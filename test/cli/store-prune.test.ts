// `sealrelay store prune [--dry-run]`, run as an operator runs it: counts per kind,
// a dry run that changes nothing, a prune that keeps queued mail and leaves an
// audit entry naming the OS user; a kind set to null is kept.
import { appendFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { DAY_MS, deferredMessage, finishedMessage, heldMessage, portalMessage } from '../store/retention-seed.ts';
import { lines, makeSandbox, runCli, type Sandbox } from './harness.ts';

/** Rows per table, read beside the CLI (readonly): what a run changed. */
function tableCounts(path: string): Record<string, number> {
  const db = new Database(path, { readonly: true });
  try {
    const count = (table: string) => db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
    return Object.fromEntries(['messages', 'recipients', 'body_parts', 'records', 'events', 'portal_items', 'audit_trail', 'report_counts'].map((t) => [t, count(t)]));
  } finally {
    db.close();
  }
}

describe('sealrelay store prune', () => {
  let box: Sandbox;
  const now = Date.now();
  const ago = (days: number) => now - days * DAY_MS;
  let keptQueueIds: string[];
  let prunedQueueId: string;

  beforeEach(async () => {
    box = makeSandbox();
    const s = new SqliteStore(box.storePath);
    try {
      prunedQueueId = (await finishedMessage(s, ago(500))).queueId;
      await finishedMessage(s, ago(420));
      await portalMessage(s, ago(450), { erased: true });
      keptQueueIds = [
        (await finishedMessage(s, ago(3))).queueId,
        (await deferredMessage(s, ago(600))).queueId,
        (await heldMessage(s, ago(600))).queueId,
        (await portalMessage(s, ago(450))).message.queueId,
      ];
    } finally {
      // Closing counts the events for reports: from then on they may be pruned.
      await s.close();
    }
  });
  afterEach(() => box.cleanup());

  it('--dry-run prints what would go per kind and changes nothing; the prune deletes exactly that, keeps the queue, and is audited', async () => {
    const before = tableCounts(box.storePath);
    const dry = await runCli(['-c', box.configFile, 'store', 'prune', '--dry-run']);
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    // Three old finished messages of 3 recipients, one with an erased portal item (its expiry left a record and an event).
    expect(lines(dry.stdout)).toEqual([
      expect.stringMatching(/^records +10 {2}would be deleted: older than \d{4}-\d\d-\d\dT.*Z \(retention\.records_days: 400\)$/),
      expect.stringMatching(/^events +28 {2}would be deleted: older than .* \(retention\.events_days: 400\)$/),
      expect.stringMatching(/^portal-items +1 {2}would be deleted: older than .* \(retention\.records_days: 400\)$/),
    ]);
    expect(tableCounts(box.storePath)).toEqual(before);

    const res = await runCli(['-c', box.configFile, 'store', 'prune']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(lines(res.stdout).map((l) => l.split(/ {2,}/).slice(0, 2))).toEqual([['records', '10'], ['events', '28'], ['portal-items', '1']]);
    expect(res.stdout).toContain('deleted: older than');
    const after = tableCounts(box.storePath);
    expect(after).toEqual({ ...before, records: before.records! - 10, events: before.events! - 28, portal_items: before.portal_items! - 1, audit_trail: before.audit_trail! + 1 });

    const db = new Database(box.storePath, { readonly: true });
    try {
      const left = new Set(db.prepare('SELECT DISTINCT queue_id FROM records').pluck().all() as string[]);
      expect(keptQueueIds.filter((id) => !left.has(id))).toEqual([]);
      expect(left.has(prunedQueueId)).toBe(false);
      // The message held for 600 days: its queue rows and body are all there.
      expect(db.prepare('SELECT count(*) FROM body_parts WHERE queue_id = ?').pluck().get(keptQueueIds[2])).toBe(1);
      const entry = db.prepare(`SELECT actor_kind, actor_name, action, detail FROM audit_trail ORDER BY seq DESC LIMIT 1`).get();
      expect(entry).toEqual({ actor_kind: 'os-user', actor_name: userInfo().username, action: 'store.prune', detail: 'records 10, events 28, portal-items 1' });
    } finally {
      db.close();
    }

    // Nothing left to prune: zeros, and no second audit entry.
    const again = await runCli(['-c', box.configFile, 'store', 'prune']);
    expect(again.code).toBe(0);
    expect(lines(again.stdout).map((l) => l.split(/ {2,}/).slice(0, 2))).toEqual([['records', '0'], ['events', '0'], ['portal-items', '0']]);
    expect(tableCounts(box.storePath)).toEqual(after);
    const verify = await runCli(['-c', box.configFile, 'audit', 'verify']);
    expect(verify.code).toBe(0);
  });

  it('a kind set to null is kept, and says so', async () => {
    appendFileSync(box.configFile, ['', 'retention:', '  events_days: null', ''].join('\n'));
    const res = await runCli(['-c', box.configFile, 'store', 'prune', '--dry-run']);
    expect(res.stderr).toBe('');
    expect(lines(res.stdout)).toEqual([
      expect.stringMatching(/^records +10 {2}would be deleted/),
      expect.stringMatching(/^events +0 {2}kept \(retention\.events_days: null\)$/),
      expect.stringMatching(/^portal-items +1 {2}would be deleted/),
    ]);
  });
});

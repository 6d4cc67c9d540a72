// Retention on real SQLite files (store/retention.ts, sqlite/retention-table.ts):
// reports read the same before and after a prune, an event not yet counted for
// reports is never pruned, what was pruned is gone from the file itself, a backlog
// larger than a batch goes in batches, and the relay's sweep runs on the store's
// thread, logging and auditing counts only.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, vi } from 'vitest';
import { verifyAuditChain } from '../../src/events/audit/verify.ts';
import { createLogger } from '../../src/log.ts';
import { runReport, type ReportQuery } from '../../src/reporting/report.ts';
import { countPrunable, pruneAll, PRUNE_BATCH, retentionCutoffs, startRetentionSweep } from '../../src/store/retention.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';
import type { PruneKind, Store } from '../../src/store/store.ts';
import { logCapture, startTestRelay, testConfig } from '../helpers/relay.ts';
import { DAY_MS, deferredMessage, finishedMessage } from './retention-seed.ts';

const tempDb = () => join(mkdtempSync(join(tmpdir(), 'sealrelay-retention-')), 'sealrelay.db');
const now = Date.now();
const ago = (days: number) => now - days * DAY_MS;
const retention = { records_days: 400, events_days: 400, interval_seconds: 3600 };
const countForReports = (s: Store) => s.reportCounts({ split: 'none', pieces: [], includeAutomated: false });

it('reports read the same before and after a prune; events not yet counted for reports are kept until they are', async () => {
  const s = new SqliteStore(tempDb());
  try {
    for (let i = 0; i < 4; i++) await finishedMessage(s, ago(500 - i * 20), { sender: `lab${i}@clinic.test`, recipients: [`p${i}@one.test`, `q${i}@two.test`] });
    await finishedMessage(s, ago(5), { recipients: ['new@one.test'] });
    await deferredMessage(s, ago(480));
    const cutoffs = retentionCutoffs(retention, now);
    // Nothing has read a report yet: the counts have not caught up, so no event may go.
    expect(await countPrunable(s, cutoffs)).toEqual({ records: 8, events: 0, 'portal-items': 0 });
    expect((await pruneAll(s, { records: null, events: cutoffs.events, 'portal-items': null })).events).toBe(0);

    const reports: ReportQuery[] = [
      { since: ago(520), until: ago(400), split: 'domain', bucket: 'day', timeZone: 'UTC', includeAutomated: false },
      { since: ago(520), until: ago(400), split: 'sender', bucket: 'none', timeZone: 'Europe/Berlin', includeAutomated: true },
      { since: ago(30), until: now + DAY_MS, split: 'none', bucket: 'day', timeZone: 'UTC', includeAutomated: false },
    ];
    const before = await Promise.all(reports.map((q) => runReport(s, q)));
    expect(before[0]!.total.counts).toMatchObject({ queued: 11, delivered: 8, deferred: 3 });
    expect(before[2]!.total.counts).toMatchObject({ queued: 1, delivered: 1 });

    // 8 old delivered recipients: a record and queued, delivered, secured events each.
    expect(await pruneAll(s, cutoffs)).toEqual({ records: 8, events: 24, 'portal-items': 0 });
    expect(await Promise.all(reports.map((q) => runReport(s, q)))).toEqual(before);
  } finally {
    await s.close();
  }
});

it('what was pruned is gone from the database file, not only from its tables', async () => {
  const path = tempDb();
  const pruned = 'Receipt-Zebrafinch-8842';
  const kept = 'Receipt-Kingfisher-1177';
  let s = new SqliteStore(path);
  // Enough records to fill pages of their own: freed whole, those are what secure_delete must zero.
  await finishedMessage(s, ago(500), { marker: pruned, recipients: Array.from({ length: 40 }, (_, i) => `p${i}@one.test`) });
  await finishedMessage(s, ago(1), { marker: kept });
  await s.close();
  const file = () => readFileSync(path).toString('latin1');
  expect(file()).toContain(pruned);

  s = new SqliteStore(path);
  expect((await pruneAll(s, retentionCutoffs(retention, now))).records).toBe(40);
  await s.close();
  expect(file()).toContain(kept);
  expect(file()).not.toContain(pruned);
});

it('a backlog larger than one batch is pruned batch by batch, each a transaction of at most PRUNE_BATCH rows', async () => {
  const s = new SqliteStore(tempDb());
  try {
    const recipients = Array.from({ length: 100 }, (_, i) => `r${i}@one.test`);
    for (let i = 0; i < 6; i++) await finishedMessage(s, ago(450 + i), { recipients });
    await finishedMessage(s, ago(1));
    await countForReports(s);
    const batches: [PruneKind, number][] = [];
    const watched = {
      async pruneOld(kind: PruneKind, before: number, limit: number) {
        const n = await s.pruneOld(kind, before, limit);
        batches.push([kind, n]);
        return n;
      },
    };
    expect(await pruneAll(watched, retentionCutoffs(retention, now))).toEqual({ records: 600, events: 1800, 'portal-items': 0 });
    expect(PRUNE_BATCH).toBe(500);
    expect(batches).toEqual([['records', 500], ['records', 100], ['events', 500], ['events', 500], ['events', 500], ['events', 300], ['portal-items', 0]]);
    expect(await s.queryRecords({})).toHaveLength(3);
  } finally {
    await s.close();
  }
});

it('the relay\'s sweep prunes on the store\'s thread, logs counts and never addresses, and leaves a verifiable audit entry', async () => {
  const s = await ThreadedSqliteStore.open(tempDb());
  const capture = logCapture();
  try {
    const old = await finishedMessage(s, ago(500), { subject: 'Biopsy result Quetzal' });
    await finishedMessage(s, ago(1));
    await countForReports(s);
    const sweep = startRetentionSweep({ store: s, logger: createLogger('info', capture.stream), retention });
    await vi.waitFor(() => expect(capture.lines.find((l) => l.event === 'store.pruned')).toBeDefined(), { timeout: 10_000, interval: 20 });
    await sweep.stop();
    expect(capture.lines.find((l) => l.event === 'store.pruned')).toMatchObject({ component: 'retention', records: 3, events: 9, 'portal-items': 0 });
    for (const secret of [...old.recipients, old.queueId, 'Biopsy', old.sender]) expect(capture.text()).not.toContain(secret);
    expect(await s.queryLog({ message: old.queueId })).toEqual([]);

    const audit = await s.listAudit({ limit: 100 });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actorKind: 'relay', actorName: 'retention', action: 'store.prune', detail: 'records 3, events 9, portal-items 0' });
    expect(audit[0]!.target).toMatch(/^records before \d{4}-.*; events before .*; portal-items before /);
    expect(await verifyAuditChain((afterSeq, limit) => s.listAudit({ afterSeq, limit }))).toMatchObject({ ok: true, entries: 1 });
  } finally {
    await s.close();
  }
});

it('a sweep that prunes nothing logs and audits nothing; null keeps a kind whatever its age', async () => {
  const s = new SqliteStore(tempDb());
  const capture = logCapture();
  try {
    await finishedMessage(s, ago(5000));
    await finishedMessage(s, ago(1));
    await countForReports(s);
    const keepAll = { records_days: null, events_days: null, interval_seconds: 3600 };
    expect(await countPrunable(s, retentionCutoffs(keepAll, now))).toEqual({ records: 0, events: 0, 'portal-items': 0 });
    const sweep = startRetentionSweep({ store: s, logger: createLogger('info', capture.stream), retention: keepAll });
    await vi.waitFor(() => expect(sweep.runs).toBe(1), { timeout: 10_000, interval: 20 });
    await sweep.stop();
    expect(capture.lines).toEqual([]);
    expect(await s.listAudit({ limit: 10 })).toEqual([]);
    expect(await s.queryRecords({})).toHaveLength(6);
    // Events only: records stay.
    expect(await pruneAll(s, retentionCutoffs({ ...keepAll, events_days: 400 }, now))).toEqual({ records: 0, events: 9, 'portal-items': 0 });
  } finally {
    await s.close();
  }
});

it('the running relay prunes at start, by its config, and audits it', async () => {
  const config = testConfig({ retention: { records_days: 30, events_days: 30 } });
  const seeded = new SqliteStore(config.store.path);
  const old = await finishedMessage(seeded, ago(40));
  await finishedMessage(seeded, ago(1));
  await seeded.close();
  const relay = await startTestRelay(config);
  try {
    const left = await relay.waitForRecords((records) => records.every((r) => r.queueId !== old.queueId));
    expect(left).toHaveLength(3);
  } finally {
    await relay.close();
  }
  const reader = new SqliteStore(config.store.path);
  try {
    expect((await reader.listAudit({ action: 'store.prune', limit: 10 })).map((e) => [e.actorName, e.detail])).toEqual([['retention', 'records 3, events 9, portal-items 0']]);
  } finally {
    await reader.close();
  }
});

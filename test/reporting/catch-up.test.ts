// The report counts follow the events (report-table.ts catchUp, schema 20): each
// event is counted exactly once whoever catches up — the relay's store thread on
// its timer, a report before it reads, another process at the same time — and a
// connection that wrote events counts them before it closes.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import type { NewEvent } from '../../src/events/event.ts';
import { runReport } from '../../src/reporting/report.ts';
import { EventTable } from '../../src/store/sqlite/event-table.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';
import { message } from '../store/contract.ts';
import { HOUR, T0 } from './seed.ts';

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  // A failed test must not leave its counting process behind.
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function storePath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-report-catchup-'));
  dirs.push(dir);
  return join(dir, 'queue.db');
}

/** Recipient `n`'s events: queued, and delivered over TLS 1.3 (twice for every tenth: a duplicate delivery). */
function recipientEvents(n: number): NewEvent[] {
  const base = { queueId: `Q${n}`, seq: 0, sender: 'a@s.test', recipient: `r${n}@d${n % 7}.test`, domain: `d${n % 7}.test`, campaign: 'c', custom: null, subject: 'S' };
  const at = T0 + (n % 48) * HOUR;
  const events: NewEvent[] = [
    { ...base, at, type: 'queued', method: null },
    { ...base, at: at + 60_000, type: 'delivered', method: 'tls', tls: 'TLSv1.3' },
  ];
  if (n % 10 === 0) events.push({ ...base, at: at + 120_000, type: 'delivered', method: 'tls', tls: 'TLSv1.3' });
  return events;
}

const progress = (path: string): { through: string | null; last: string | null } => {
  const raw = new Database(path, { readonly: true });
  try {
    return {
      through: raw.prepare(`SELECT through_id FROM report_progress`).pluck().get() as string | null,
      last: raw.prepare(`SELECT max(id) FROM events`).pluck().get() as string | null,
    };
  } finally {
    raw.close();
  }
};

const window = { since: T0, until: T0 + 72 * HOUR, split: 'none', bucket: 'none', timeZone: 'UTC', includeAutomated: false } as const;

it('two processes catching up while events are written count each event once', async () => {
  const path = storePath();
  await new SqliteStore(path).close();
  const RECIPIENTS = 6000;
  // Another process catching up in a loop, as the relay's store thread does while the CLI reports.
  const script = join(path, '..', 'catch-up.mts');
  writeFileSync(
    script,
    `import { SqliteStore } from ${JSON.stringify(resolve('src/store/sqlite/sqlite-store.ts'))};
     const store = new SqliteStore(process.argv[2]);
     const q = { split: 'none', pieces: [{ grain: 1440, fromSlot: 0, toSlot: 1e9, bucket: 0 }], includeAutomated: false };
     let rounds = 0;
     const deadline = Date.now() + 90_000;
     for (;;) {
       if (Date.now() > deadline) process.exit(2);
       const [row] = await store.reportCounts(q);
       rounds++;
       if (row && row.counts.queued === ${RECIPIENTS}) break;
       await new Promise((r) => setImmediate(r));
     }
     await store.close();
     console.log(rounds);`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((done) => child.on('exit', done));

  // This process writes the events in small transactions, as commits of facts do, and catches up too.
  const writer = new Database(path);
  writer.pragma('busy_timeout = 5000');
  const events = new EventTable(writer);
  const reader = new SqliteStore(path);
  for (let n = 0; n < RECIPIENTS; n += 20) {
    // IMMEDIATE, as the store's own commits are.
    writer.transaction(() => {
      for (let i = n; i < n + 20; i++) events.write(recipientEvents(i));
    }).immediate();
    if (n % 400 === 0) await runReport(reader, window);
  }
  writer.close();
  const report = await runReport(reader, window);
  await reader.close();
  expect(await exited).toBe(0);
  expect(Number(out.trim())).toBeGreaterThan(1);

  // Counted once each: the duplicate deliveries are not counted again, and nothing twice by the two counters.
  expect(report.total.counts.queued).toBe(RECIPIENTS);
  expect(report.total.counts.delivered).toBe(RECIPIENTS);
  expect(report.total.counts.tls13).toBe(RECIPIENTS);
  const raw = new Database(path, { readonly: true });
  for (const grain of [15, 60, 1440]) {
    const sums = raw.prepare(`SELECT dimension, sum(queued) AS queued, sum(delivered) AS delivered FROM report_counts WHERE grain = ? GROUP BY dimension`).all(grain);
    for (const dimension of ['domain', 'sender', 'subject', 'campaign', 'custom']) {
      expect(sums).toContainEqual({ dimension, queued: RECIPIENTS, delivered: RECIPIENTS });
    }
  }
  raw.close();
  const { through, last } = progress(path);
  expect(through).toBe(last);
}, 120_000);

it("the relay's store thread counts new events without a report asking", async () => {
  const path = storePath();
  const store = await ThreadedSqliteStore.open(path);
  try {
    const m = message({ sender: 'a@s.test', recipients: ['r1@big.test', 'r2@big.test'], receivedAt: T0 });
    await store.enqueue(m);
    const { last } = progress(path);
    expect(last).not.toBeNull();
    // The store thread's timer (once a second) moves the mark to the last event.
    await expect.poll(() => progress(path).through, { timeout: 10_000, interval: 100 }).toBe(last);
    const raw = new Database(path, { readonly: true });
    expect(raw.prepare(`SELECT sum(queued) FROM report_counts WHERE dimension = 'sender' AND grain = 1440`).pluck().get()).toBe(2);
    raw.close();
  } finally {
    await store.close();
  }
});

it('a connection that wrote events counts them before it closes; one that only read writes nothing', async () => {
  const path = storePath();
  const store = new SqliteStore(path);
  await store.enqueue(message({ sender: 'a@s.test', recipients: ['r1@big.test'], receivedAt: T0 }));
  expect(progress(path).through).toBeNull();
  await store.close();
  const { through, last } = progress(path);
  expect(last).not.toBeNull();
  expect(through).toBe(last);

  // Events written by another connection stay for whoever counts next: a reader's close leaves them.
  const writer = new Database(path);
  const table = new EventTable(writer);
  writer.transaction(() => table.write(recipientEvents(1))).immediate();
  writer.close();
  const reader = new SqliteStore(path);
  await reader.listEvents({ limit: 10 });
  await reader.close();
  expect(progress(path).through).toBe(through);
  const counter = new SqliteStore(path);
  const report = await runReport(counter, window);
  await counter.close();
  expect(report.total.counts.queued).toBe(2);
  expect(progress(path).through).toBe(progress(path).last);
});

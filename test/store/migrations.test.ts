// An older data/ upgrades in place: a store file at schema version 4 (before probe
// results and the possible-duplicates total) opens with its queue and domain
// knowledge intact and the new facts empty; one at version 5 learns, where its
// rows still tell, whether each domain's last probe saw STARTTLS.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { message, record } from './contract.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const LATEST = 22;

/** The tables of schema version 12; later versions' tables are dropped to make an older store. */
const V12_TABLES = new Set(['messages', 'body_parts', 'recipients', 'records', 'domains', 'mta_sts_policies', 'counters', 'recipient_keys', 'recipient_key_addresses', 'key_lookups', 'portal_items', 'portal_content', 'events']);

/** A store file as SealRelay with schema version 12 left it: version 13's columns and every later table taken off again. */
async function version12Store(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-migrate-'));
  dirs.push(dir);
  const path = join(dir, 'queue.db');
  await new SqliteStore(path).close();
  const raw = new Database(path);
  const tables = raw.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).pluck().all() as string[];
  for (const t of tables) if (!V12_TABLES.has(t)) raw.exec(`DROP TABLE ${t}`);
  raw.exec(`ALTER TABLE messages DROP COLUMN campaign;
            ALTER TABLE messages DROP COLUMN custom;
            ALTER TABLE events DROP COLUMN subject;
            ALTER TABLE events DROP COLUMN custom;
            ALTER TABLE events DROP COLUMN automated;
            ALTER TABLE events DROP COLUMN tls;
            ALTER TABLE body_parts DROP COLUMN key_id;
            ALTER TABLE body_parts DROP COLUMN nonce;
            ALTER TABLE messages DROP COLUMN require_tls;`);
  raw.pragma('user_version = 12');
  raw.close();
  return path;
}

/** A store file as SealRelay with schema version 11 left it: version 12's events taken off again. */
async function version11Store(): Promise<string> {
  const path = await version12Store();
  const raw = new Database(path);
  raw.exec(`DROP TABLE events;`);
  raw.pragma('user_version = 11');
  raw.close();
  return path;
}

/** A store file as SealRelay with schema version 10 left it: version 11's message origin and item passphrase taken off again. */
async function version10Store(): Promise<string> {
  const path = await version11Store();
  const raw = new Database(path);
  raw.exec(`ALTER TABLE messages DROP COLUMN origin;
            ALTER TABLE portal_items DROP COLUMN passphrase_hash;`);
  raw.pragma('user_version = 10');
  raw.close();
  return path;
}

/** A store file as SealRelay with schema version 9 left it: version 10's portal items taken off again. */
async function version9Store(): Promise<string> {
  const path = await version10Store();
  const raw = new Database(path);
  raw.exec(`DROP TABLE portal_content;
            DROP TABLE portal_items;`);
  raw.pragma('user_version = 9');
  raw.close();
  return path;
}

/** A store file as SealRelay with schema version 5 left it: version 6's to 10's additions taken off again. */
async function version5Store(): Promise<string> {
  const path = await version9Store();
  const raw = new Database(path);
  raw.exec(`DROP TRIGGER messages_body_parts;
            DROP TABLE body_parts;
            CREATE TABLE bodies (
              queue_id TEXT PRIMARY KEY REFERENCES messages(queue_id) ON DELETE CASCADE,
              body     BLOB NOT NULL
            );
            ALTER TABLE messages DROP COLUMN dsn_envid;
            ALTER TABLE recipients DROP COLUMN dsn_notify;
            ALTER TABLE recipients DROP COLUMN dsn_orcpt;
            ALTER TABLE records DROP COLUMN kind;
            ALTER TABLE domains DROP COLUMN last_probe_starttls;`);
  raw.pragma('user_version = 5');
  raw.close();
  return path;
}

/** A store file as SealRelay with schema version 4 left it: version 5's additions taken off too. */
async function version4Store(): Promise<string> {
  const path = await version5Store();
  const raw = new Database(path);
  raw.exec(`ALTER TABLE domains DROP COLUMN last_probe_at;
            ALTER TABLE domains DROP COLUMN last_probe_tls_ok;
            DROP TABLE counters;`);
  raw.pragma('user_version = 4');
  raw.close();
  return path;
}

it('a version 4 store upgrades to the latest in place, keeping its queue and domain knowledge', async () => {
  const path = await version4Store();
  const m = message({ recipients: ['x@old.test', 'y@old.test'] });
  // A store opened on the old file would migrate it first: the old relay's rows are written by hand.
  const v4 = new Database(path);
  v4.prepare(
    `INSERT INTO domains (domain, tls_known_since, last_tls_at, last_starttls_at, last_no_starttls_at, last_attempt_at, attempts)
     VALUES ('old.test', 1000, 2000, 2000, NULL, 2000, 3)`,
  ).run();
  v4.prepare(`INSERT INTO messages (queue_id, sender, message_id, subject, size, received_at) VALUES (?, ?, ?, ?, ?, ?)`).run(
    m.queueId, m.sender, m.messageId, m.subject, m.body.length, m.receivedAt,
  );
  v4.prepare(`INSERT INTO bodies (queue_id, body) VALUES (?, ?)`).run(m.queueId, m.body);
  // x was mid-attempt when the old relay died; y waits.
  v4.prepare(`INSERT INTO recipients (queue_id, seq, recipient, domain, attempts, next_attempt_at, lease_owner, lease_until) VALUES (?, 0, 'x@old.test', 'old.test', 1, ?, 'dead', ?)`).run(
    m.queueId, m.receivedAt, Date.now() + 600_000,
  );
  v4.prepare(`INSERT INTO recipients (queue_id, seq, recipient, domain, next_attempt_at) VALUES (?, 1, 'y@old.test', 'old.test', ?)`).run(m.queueId, m.receivedAt);
  v4.close();

  const s = new SqliteStore(path);
  try {
    expect(await s.getDomain('old.test')).toEqual({
      domain: 'old.test', tlsKnownSince: 1000, lastTlsAt: 2000, lastStarttlsAt: 2000, lastNoStarttlsAt: null, lastAttemptAt: 2000, attempts: 3,
      lastProbeAt: null, lastProbeStarttlsOffered: null, lastProbeTlsOk: null,
    });
    expect(await s.queueStats()).toEqual({ messages: 1, recipients: 2, held: 0, bytes: m.body.length, oldestReceivedAt: m.receivedAt, possibleDuplicates: 0 });
    expect(await s.recoverInterrupted()).toBe(1);
    expect((await s.queueStats()).possibleDuplicates).toBe(1);
    await s.recordProbe('old.test', { at: 3000, starttlsOffered: true, tlsOk: true });
    expect(await s.getDomain('old.test')).toMatchObject({ tlsKnownSince: 1000, attempts: 3, lastProbeAt: 3000, lastProbeTlsOk: true });
    expect((await s.readBody(m.queueId))?.equals(m.body)).toBe(true);
    // Its body moved to body_parts, and still goes with its message.
    await s.deleteEntry(m.queueId, 'test');
    expect(await s.readBody(m.queueId)).toBeNull();
  } finally {
    await s.close();
  }
  const after = new Database(path, { readonly: true });
  expect(after.pragma('user_version', { simple: true })).toBe(LATEST);
  after.close();
});

it('a version 5 store reads back what each last probe saw of STARTTLS, where its rows still tell', async () => {
  const path = await version5Store();
  const v5 = new Database(path);
  const row = v5.prepare(
    `INSERT INTO domains (domain, tls_known_since, last_tls_at, last_starttls_at, last_no_starttls_at, last_attempt_at, attempts, last_probe_at, last_probe_tls_ok)
     VALUES (?, NULL, NULL, ?, ?, ?, 0, ?, ?)`,
  );
  row.run('ok.test', 100, null, 100, 100, 1); // handshake succeeded
  row.run('none.test', null, 100, 100, 100, 0); // STARTTLS not offered
  row.run('failed.test', 100, null, 100, 100, 0); // offered, handshake failed
  row.run('blurred.test', 200, 150, 200, 100, 0); // later attempts overwrote both stamps: no longer telling
  row.run('never.test', 100, null, 100, null, null); // no probe ran
  v5.close();

  const s = new SqliteStore(path);
  try {
    const seen = async (domain: string) => {
      const d = await s.getDomain(domain);
      return [d?.lastProbeStarttlsOffered, d?.lastProbeTlsOk];
    };
    expect(await seen('ok.test')).toEqual([true, true]);
    expect(await seen('none.test')).toEqual([false, false]);
    expect(await seen('failed.test')).toEqual([true, false]);
    expect(await seen('blurred.test')).toEqual([null, false]);
    expect(await seen('never.test')).toEqual([null, null]);
  } finally {
    await s.close();
  }
});

it("a version 6 store's records are read as attempts after the upgrade, beside the operator records that follow", async () => {
  const path = await version5Store();
  // Up to version 6 only, as that SealRelay left it, with one delivery record.
  const v6 = new Database(path);
  v6.exec(`ALTER TABLE domains ADD COLUMN last_probe_starttls INTEGER;`);
  v6.pragma('user_version = 6');
  const m = message({ recipients: ['x@old.test'] });
  const old = { queueId: m.queueId, seq: 0, messageId: m.messageId, attempt: 1, at: '2026-01-01T00:00:00.000Z', sender: m.sender, recipient: 'x@old.test', domain: 'old.test', outcome: 'deferred', method: 'none' };
  v6.prepare(
    `INSERT INTO records (queue_id, seq, message_id, attempt, at, sender, recipient, domain, outcome, method, json) VALUES (?, 0, ?, 1, ?, ?, 'x@old.test', 'old.test', 'deferred', 'none', ?)`,
  ).run(m.queueId, m.messageId, Date.parse(old.at), m.sender, JSON.stringify(old));
  v6.close();

  const s = new SqliteStore(path);
  try {
    await s.enqueue(m);
    expect(await s.deleteEntry(m.queueId, 'alice')).toBe(1);
    expect((await s.queryRecords({ message: m.queueId })).map((r) => r.outcome)).toEqual(['deferred']);
    expect((await s.queryLog({ message: m.queueId })).map((r) => r.outcome)).toEqual(['deferred', 'deleted']);
  } finally {
    await s.close();
  }
});

it('a version 9 store gains the portal tables, empty, and keeps its queue and records', async () => {
  const path = await version9Store();
  const s = new SqliteStore(path);
  const m = message({ recipients: ['x@old.test'] });
  try {
    await s.enqueue(m);
    expect(await s.listPortalItems()).toEqual([]);
    expect(await s.expirePortalItems(Date.now(), 10)).toBe(0);
    expect((await s.readBody(m.queueId))?.equals(m.body)).toBe(true);
  } finally {
    await s.close();
  }
  const after = new Database(path, { readonly: true });
  expect(after.pragma('user_version', { simple: true })).toBe(LATEST);
  after.close();
});

it('a version 10 store gains the message origin and the item passphrase; what it queued reads as submitted mail', async () => {
  const path = await version10Store();
  const old = message({ recipients: ['x@old.test'] });
  const v10 = new Database(path);
  v10.prepare(`INSERT INTO messages (queue_id, sender, message_id, subject, size, received_at, client_ip, auth_user) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(
    old.queueId, old.sender, old.messageId, old.subject, old.body.length, old.receivedAt, old.clientIp, old.authUser,
  );
  v10.prepare(`INSERT INTO body_parts (queue_id, part, data) VALUES (?, 0, ?)`).run(old.queueId, old.body);
  v10.prepare(`INSERT INTO recipients (queue_id, seq, recipient, domain, next_attempt_at) VALUES (?, 0, ?, ?, ?)`).run(old.queueId, 'x@old.test', 'old.test', old.receivedAt);
  v10.close();
  const s = new SqliteStore(path);
  try {
    const reply = message({ recipients: ['lab@clinic.test'], origin: 'portal-reply' });
    await s.enqueue(reply);
    const claimed = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
    expect(Object.fromEntries(claimed.map((i) => [i.queueId, i.origin]))).toEqual({ [old.queueId]: null, [reply.queueId]: 'portal-reply' });
  } finally {
    await s.close();
  }
  const after = new Database(path, { readonly: true });
  expect(after.pragma('user_version', { simple: true })).toBe(LATEST);
  after.close();
});

it('a version 11 store gains the events table, empty (what it did before has no events), and writes events from then on', async () => {
  const path = await version11Store();
  const old = message({ recipients: ['x@old.test'] });
  const v11 = new Database(path);
  expect(v11.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'events'`).pluck().get()).toBe(0);
  v11.prepare(`INSERT INTO messages (queue_id, sender, message_id, subject, size, received_at, client_ip, auth_user) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(
    old.queueId, old.sender, old.messageId, old.subject, old.body.length, old.receivedAt, old.clientIp, old.authUser,
  );
  v11.prepare(`INSERT INTO body_parts (queue_id, part, data) VALUES (?, 0, ?)`).run(old.queueId, old.body);
  v11.prepare(`INSERT INTO recipients (queue_id, seq, recipient, domain, next_attempt_at) VALUES (?, 0, ?, ?, ?)`).run(old.queueId, 'x@old.test', 'old.test', old.receivedAt);
  v11.close();
  const s = new SqliteStore(path);
  try {
    expect(await s.listEvents({ limit: 100 })).toEqual([]);
    const fresh = message({ recipients: ['y@new.test'] });
    await s.enqueue(fresh);
    // The message queued before the upgrade is still there to deliver; its settling writes its outcome.
    const claimed = await s.claim({ owner: 'w', limit: 10, leaseMs: 60_000 });
    expect(claimed.map((i) => i.queueId).sort()).toEqual([old.queueId, fresh.queueId].sort());
    const item = claimed.find((i) => i.queueId === old.queueId)!;
    await s.finish([record(item)], [{ queueId: old.queueId, seq: 0, outcome: 'delivered', error: null }]);
    expect((await s.listEvents({ limit: 100 })).map((e) => [e.type, e.recipient])).toEqual([['queued', 'y@new.test'], ['delivered', 'x@old.test']]);
  } finally {
    await s.close();
  }
  const after = new Database(path, { readonly: true });
  expect(after.pragma('user_version', { simple: true })).toBe(LATEST);
  expect(after.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name`).pluck().all()).toEqual(['events_at', 'events_queue_id', 'events_type_at']);
  after.close();
});

it('a version 12 store gains the API token and Idempotency-Key tables (schema 15), empty, and uses them', async () => {
  const path = await version12Store();
  const store = new SqliteStore(path);
  expect(await store.listApiTokens()).toEqual([]);
  await store.createApiToken({ id: '0123456789abcdef', name: 'app', scopes: ['send'], createdAt: 1, expiresAt: null, secretHash: Buffer.alloc(32, 1) });
  const key = { tokenId: '0123456789abcdef', key: 'k', requestHash: Buffer.alloc(32, 2), createdAt: 2, expiredBefore: 0 };
  const first = message();
  expect(await store.enqueueIdempotent(first, key)).toEqual({ result: 'queued' });
  expect(await store.enqueueIdempotent(message(), key)).toMatchObject({ result: 'repeat', queueId: first.queueId });
  expect((await store.listQueue()).map((q) => q.queueId)).toEqual([first.queueId]);
  await store.close();
  const after = new Database(path, { readonly: true });
  expect(after.pragma('user_version', { simple: true })).toBe(LATEST);
  expect(after.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE 'api_%' AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all()).toEqual(['api_idempotency_keys_created_at', 'api_tokens_live_name']);
  after.close();
});

it('a version 12 store gains the suppressions table (schema 18), empty, and uses it', async () => {
  const path = await version12Store();
  const store = new SqliteStore(path);
  expect(await store.listSuppressions()).toEqual([]);
  const first = message();
  await store.enqueue(first);
  expect(await store.addSuppression({ senderDomain: 'clinic.example', recipient: 'ann@patient.example', source: 'manual' })).toBe(true);
  expect(await store.suppressedAmong('clinic.example', ['ann@patient.example'])).toEqual(['ann@patient.example']);
  expect((await store.listQueue()).map((q) => q.queueId)).toContain(first.queueId);
  await store.close();
  const after = new Database(path, { readonly: true });
  expect(after.pragma('user_version', { simple: true })).toBe(LATEST);
  expect(after.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'suppressions' AND name NOT LIKE 'sqlite_%'`).pluck().all()).toEqual(['suppressions_recipient']);
  after.close();
});

it('a version 12 store gains the webhook outbox (schema 16), empty; its events stay behind a new endpoint’s cursor', async () => {
  const path = await version12Store();
  const store = new SqliteStore(path);
  expect(await store.webhookStatus()).toEqual([]);
  await store.enqueue(message({ recipients: ['a@one.test'] }));
  // A new endpoint starts at the end: the event written before it is not copied.
  expect(await store.copyWebhookEvents('crm', null, 100)).toBe(0);
  await store.enqueue(message({ recipients: ['b@one.test'] }));
  expect(await store.copyWebhookEvents('crm', null, 100)).toBe(1);
  expect(await store.claimWebhookDeliveries('crm', 10, 60_000)).toMatchObject([{ endpoint: 'crm', type: 'queued', attempts: 0 }]);
  await store.close();
  const after = new Database(path, { readonly: true });
  expect(after.pragma('user_version', { simple: true })).toBe(LATEST);
  expect(after.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE 'webhook_%' AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all()).toEqual([
    'webhook_deliveries_due',
    'webhook_deliveries_message',
    'webhook_deliveries_settled',
  ]);
  after.close();
});

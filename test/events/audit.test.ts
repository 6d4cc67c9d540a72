// The audit trail (src/events/audit/) on a real SQLite file: entries chain by hash;
// `verifyAuditChain` names the first entry that was edited, deleted, inserted or
// reordered with raw SQL on the file (as someone with the file could); a cut-off
// end or a trail rewritten with fresh hashes is caught by the head kept elsewhere;
// appends from two connections at once still make one chain; a portal open is
// audited in its own transaction, naming the recipient and IP; no message body or
// subject ever reaches the table; a config reload is audited; and a store at
// schema 12 migrates to the trail.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chainEntry, entryHash, GENESIS, type AuditEntry, type AuditInput } from '../../src/events/audit/entry.ts';
import { auditRequest } from '../../src/events/audit/request.ts';
import { parseHead, verifyAuditChain, type ChainHead } from '../../src/events/audit/verify.ts';
import { generateMasterKey, Keyring } from '../../src/portal/master-keys.ts';
import { sealPortalItem } from '../../src/portal/vault.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startTestRelay, testConfig } from '../helpers/relay.ts';

let dir: string;
let path: string;
let store: SqliteStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealrelay-audit-'));
  path = join(dir, 'store.db');
  store = new SqliteStore(path);
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const T0 = Date.parse('2026-05-01T08:00:00Z');
const alice = (n: number): AuditInput => ({ at: T0 + n * 1000, actor: { kind: 'os-user', name: 'alice' }, action: 'log.read', target: `recipient=r${n}@example.org`, detail: `${n} records` });

async function appendFive(): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for (let n = 1; n <= 5; n++) out.push(await store.appendAudit(alice(n)));
  return out;
}

const verify = (s: SqliteStore = store, head?: ChainHead) => verifyAuditChain((afterSeq, limit) => s.listAudit({ afterSeq, limit }), head);

/** Raw SQL on the file, as someone who can write it: the append-only triggers go first. */
function tamper(sql: string, params: unknown[] = []): void {
  const raw = new Database(path);
  raw.exec('DROP TRIGGER IF EXISTS audit_trail_no_update; DROP TRIGGER IF EXISTS audit_trail_no_delete;');
  raw.prepare(sql).run(...params);
  raw.close();
}

describe('the chain', () => {
  it('links each entry to the one before by hash, from GENESIS, and verifies to its head', async () => {
    const entries = await appendFive();
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(entries[0]!.prev).toBe(GENESIS);
    for (let i = 1; i < entries.length; i++) expect(entries[i]!.prev).toBe(entries[i - 1]!.hash);
    for (const e of entries) expect(entryHash(e)).toBe(e.hash);
    // What is stored is what was returned.
    expect(await store.listAudit({ limit: 100 })).toEqual(entries);
    expect(await verify()).toEqual({ ok: true, entries: 5, head: { seq: 5, hash: entries[4]!.hash } });
  });

  it('an empty trail verifies, with no head', async () => {
    expect(await verify()).toEqual({ ok: true, entries: 0, head: null });
  });

  it('hashes every field: changing any one changes the hash', () => {
    const base = chainEntry(null, { at: T0, actor: { kind: 'os-user', name: 'alice' }, ip: null, action: 'log.read', target: 'all', detail: '1 records' });
    const variants: Partial<AuditEntry>[] = [{ seq: 2 }, { at: T0 + 1 }, { actorKind: 'token' }, { actorName: 'bob' }, { ip: '10.0.0.1' }, { action: 'queue.read' }, { target: 'x' }, { detail: null }, { prev: 'f'.repeat(64) }];
    for (const v of variants) expect(entryHash({ ...base, ...v }), JSON.stringify(v)).not.toBe(base.hash);
  });

  it('filters by time, actor and action, in seq order', async () => {
    await appendFive();
    await store.appendAudit({ at: T0 + 10_000, actor: { kind: 'token', name: 'ci' }, ip: '192.0.2.7', action: 'api.request', target: 'GET /api/v1/log', detail: '→ 200' });
    expect((await store.listAudit({ since: T0 + 4000, limit: 100 })).map((e) => e.seq)).toEqual([4, 5, 6]);
    expect((await store.listAudit({ actor: 'ci', limit: 100 })).map((e) => e.seq)).toEqual([6]);
    expect((await store.listAudit({ action: 'log.read', afterSeq: 3, limit: 100 })).map((e) => e.seq)).toEqual([4, 5]);
  });

  it('refuses input that is not a short one-line fact, writing nothing', async () => {
    const bad: AuditInput[] = [
      { ...alice(1), action: 'message.read' as AuditInput['action'] },
      { ...alice(1), actor: { kind: 'admin' as AuditInput['actor']['kind'], name: 'x' } },
      { ...alice(1), actor: { kind: 'os-user', name: ' ' } },
      { ...alice(1), detail: 'two\nlines' },
      { ...alice(1), target: 'x'.repeat(257) },
    ];
    for (const input of bad) await expect(store.appendAudit(input)).rejects.toThrow(TypeError);
    expect(await store.listAudit({ limit: 100 })).toEqual([]);
  });

  it('appends from two connections at once (the relay and a CLI) make one unbroken chain', async () => {
    const other = new SqliteStore(path);
    try {
      const writes = Array.from({ length: 40 }, (_, i) => (i % 2 ? other : store).appendAudit(alice(i)));
      const entries = await Promise.all(writes);
      expect(new Set(entries.map((e) => e.seq)).size).toBe(40);
      expect(await verify()).toMatchObject({ ok: true, entries: 40 });
    } finally {
      await other.close();
    }
  });
});

describe('verify detects tampering with the file', () => {
  it('the table refuses UPDATE and DELETE while its triggers stand', async () => {
    await appendFive();
    const raw = new Database(path);
    try {
      expect(() => raw.prepare(`UPDATE audit_trail SET detail = 'x' WHERE seq = 2`).run()).toThrow(/append-only/);
      expect(() => raw.prepare(`DELETE FROM audit_trail WHERE seq = 2`).run()).toThrow(/append-only/);
    } finally {
      raw.close();
    }
  });

  it('an edited field: the first bad entry is the edited one', async () => {
    await appendFive();
    tamper(`UPDATE audit_trail SET actor_name = 'mallory' WHERE seq = 3`);
    expect(await verify()).toMatchObject({ ok: false, badSeq: 3, entries: 2, reason: expect.stringMatching(/altered/) });
  });

  it('an edited time', async () => {
    await appendFive();
    tamper(`UPDATE audit_trail SET at = at + 1 WHERE seq = 4`);
    expect(await verify()).toMatchObject({ ok: false, badSeq: 4 });
  });

  it('an edit with the hash recomputed breaks the next link', async () => {
    const entries = await appendFive();
    const forged = { ...entries[1]!, target: 'recipient=nobody@example.org' };
    tamper(`UPDATE audit_trail SET target = ?, hash = ? WHERE seq = 2`, [forged.target, entryHash(forged)]);
    expect(await verify()).toMatchObject({ ok: false, badSeq: 3, reason: expect.stringMatching(/does not follow/) });
  });

  it('a deleted entry', async () => {
    await appendFive();
    tamper(`DELETE FROM audit_trail WHERE seq = 3`);
    expect(await verify()).toMatchObject({ ok: false, badSeq: 3, reason: expect.stringMatching(/missing/) });
  });

  it('the first entry deleted', async () => {
    await appendFive();
    tamper(`DELETE FROM audit_trail WHERE seq = 1`);
    expect(await verify()).toMatchObject({ ok: false, badSeq: 1 });
  });

  it('an inserted entry (later ones renumbered, the new one hashed correctly)', async () => {
    const entries = await appendFive();
    tamper(`UPDATE audit_trail SET seq = -seq WHERE seq >= 3`);
    tamper(`UPDATE audit_trail SET seq = 1 - seq WHERE seq < 0`);
    const inserted = chainEntry(entries[1]!, { at: T0 + 2500, actor: { kind: 'os-user', name: 'mallory' }, ip: null, action: 'queue.read', target: 'list', detail: null });
    tamper(`INSERT INTO audit_trail (seq, at, actor_kind, actor_name, ip, action, target, detail, prev, hash) VALUES (@seq, @at, @actorKind, @actorName, @ip, @action, @target, @detail, @prev, @hash)`, [inserted]);
    expect((await store.listAudit({ limit: 100 })).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await verify()).toMatchObject({ ok: false, badSeq: 4 });
  });

  it('two entries swapped', async () => {
    await appendFive();
    tamper(`UPDATE audit_trail SET seq = 100 WHERE seq = 2`);
    tamper(`UPDATE audit_trail SET seq = 2 WHERE seq = 3`);
    tamper(`UPDATE audit_trail SET seq = 3 WHERE seq = 100`);
    expect(await verify()).toMatchObject({ ok: false, badSeq: 2 });
  });

  it('a forged entry appended with a wrong hash', async () => {
    const entries = await appendFive();
    tamper(`INSERT INTO audit_trail (seq, at, actor_kind, actor_name, action, prev, hash) VALUES (6, ?, 'os-user', 'mallory', 'log.read', ?, ?)`, [T0, entries[4]!.hash, 'a'.repeat(64)]);
    expect(await verify()).toMatchObject({ ok: false, badSeq: 6 });
  });

  it('the newest entries cut off: only the head kept elsewhere shows it', async () => {
    await appendFive();
    const before = await verify();
    if (!before.ok || !before.head) throw new Error('expected an intact trail');
    tamper(`DELETE FROM audit_trail WHERE seq >= 4`);
    expect(await verify()).toMatchObject({ ok: true, entries: 3 });
    expect(await verify(store, before.head)).toMatchObject({ ok: false, badSeq: 4, reason: expect.stringMatching(/ends at entry 3/) });
  });

  it('the whole trail rewritten with fresh hashes: only the head kept elsewhere shows it', async () => {
    const entries = await appendFive();
    const head = { seq: 5, hash: entries[4]!.hash };
    // Rebuild the chain with entry 2 changed, every later hash recomputed.
    let last: AuditEntry | null = null;
    const raw = new Database(path);
    raw.exec('DROP TRIGGER audit_trail_no_update; DROP TRIGGER audit_trail_no_delete; DELETE FROM audit_trail;');
    for (const e of entries) {
      const next: AuditEntry = chainEntry(last, { at: e.at, actor: { kind: e.actorKind, name: e.seq === 2 ? 'mallory' : e.actorName }, ip: e.ip, action: e.action, target: e.target, detail: e.detail });
      raw.prepare(`INSERT INTO audit_trail (seq, at, actor_kind, actor_name, ip, action, target, detail, prev, hash) VALUES (@seq, @at, @actorKind, @actorName, @ip, @action, @target, @detail, @prev, @hash)`).run(next);
      last = next;
    }
    raw.close();
    expect(await verify()).toMatchObject({ ok: true, entries: 5 });
    expect(await verify(store, head)).toMatchObject({ ok: false, badSeq: 5, reason: expect.stringMatching(/rewritten/) });
  });

  it('an intact trail passes with an earlier head; a head given wrongly is refused', async () => {
    const entries = await appendFive();
    expect(await verify(store, { seq: 3, hash: entries[2]!.hash })).toMatchObject({ ok: true, entries: 5 });
    expect(parseHead(`3:${entries[2]!.hash}`)).toEqual({ seq: 3, hash: entries[2]!.hash });
    for (const text of ['3', `0:${entries[2]!.hash}`, '3:abc', `3:${'g'.repeat(64)}`, `x:${entries[2]!.hash}`]) expect(() => parseHead(text), text).toThrow(TypeError);
  });
});

describe('what is audited, and what never is', () => {
  const BODY_MARK = 'BODY-MARK-7f3a';
  const SUBJECT_MARK = 'SUBJECT-MARK-9c2e';

  it('a portal open is audited with the open, naming the recipient and IP; no body or subject reaches the trail', async () => {
    const keyring = new Keyring([{ id: 'k1', key: generateMasterKey() }], 'k1');
    const now = Date.now();
    await store.enqueue({ queueId: 'Q1', sender: 'app@clinic.example', recipients: ['pat@example.org'], body: Buffer.from(`Subject: ${SUBJECT_MARK}\r\n\r\n${BODY_MARK}\r\n`), messageId: '<q1@clinic.example>', subject: SUBJECT_MARK, clientIp: '127.0.0.1', authUser: 'app', receivedAt: now });
    const sealed = sealPortalItem(keyring, { queueId: 'Q1', seq: 0, messageId: '<q1@clinic.example>', sender: 'app@clinic.example', recipient: 'pat@example.org', createdAt: now, expiresAt: now + 86_400_000 }, Buffer.from(`Subject: ${SUBJECT_MARK}\r\n\r\n${BODY_MARK}\r\n`));
    await store.putPortalItem(sealed.item);
    await store.recordPortalEvent(sealed.item.id, 'portal-viewed', { ip: '198.51.100.4', userAgent: 'Mozilla/5.0' });
    await store.recordPortalEvent(sealed.item.id, 'portal-opened', { ip: '198.51.100.4', userAgent: 'Mozilla/5.0' });
    await store.recordPortalEvent(sealed.item.id, 'portal-downloaded', { ip: '198.51.100.4', userAgent: 'Mozilla/5.0', detail: 'attachment 1' });
    await auditRequest(store, { token: 'ci', ip: '192.0.2.7', method: 'GET', route: '/api/v1/messages/:id', target: 'Q1', status: 200, action: 'log.read' });

    const entries = await store.listAudit({ limit: 100 });
    // A GET of the landing page shows nothing of the message: not an access.
    expect(entries.map((e) => [e.actorKind, e.actorName, e.ip, e.action])).toEqual([
      ['recipient', 'pat@example.org', '198.51.100.4', 'portal.open'],
      ['recipient', 'pat@example.org', '198.51.100.4', 'portal.download'],
      ['token', 'ci', '192.0.2.7', 'log.read'],
    ]);
    expect(entries[0]!.target).toBe(`portal item ${sealed.item.id} (Q1.0)`);
    expect(entries[2]).toMatchObject({ target: 'Q1', detail: 'GET /api/v1/messages/:id → 200' });
    const raw = new Database(path, { readonly: true });
    const dump = JSON.stringify(raw.prepare('SELECT * FROM audit_trail').all());
    raw.close();
    expect(dump).not.toContain(BODY_MARK);
    expect(dump).not.toContain(SUBJECT_MARK);
  });

  it('an API request from outside is fitted to the trail: a hostile route or token name cannot fail or forge an entry', async () => {
    const e = await auditRequest(store, { token: `evil\n2\tforged`, ip: '::1', method: 'GET', route: `/x${'y'.repeat(5000)}\r\nseq 99`, status: 404 });
    expect(e.actorName).toBe('evil 2 forged');
    expect(e.target!.length).toBeLessThanOrEqual(256);
    expect(e.target).not.toMatch(/[\r\n]/);
    const unrouted = await auditRequest(store, { token: null, ip: '::1', method: 'GET', route: null, status: 404 });
    expect(unrouted).toMatchObject({ actorName: '(none)', target: 'GET (no route)', detail: '→ 404' });
    expect(await verify()).toMatchObject({ ok: true, entries: 2 });
  });
});

it('a config reload of the running relay is audited as the relay, on SIGHUP', async () => {
  const config = testConfig();
  const relay = await startTestRelay(config);
  try {
    await relay.relay.reload(config);
  } finally {
    await relay.close();
  }
  const reader = new SqliteStore(config.store.path);
  try {
    expect(await reader.listAudit({ limit: 10 })).toMatchObject([{ seq: 1, actorKind: 'relay', actorName: 'SIGHUP', action: 'policy.reload', detail: 'config reloaded' }]);
  } finally {
    await reader.close();
  }
});

it('a store at schema 12 migrates to an empty, working audit trail', async () => {
  await store.close();
  // As test/store/migrations.test.ts version12Store: every later table and column taken off again.
  const raw = new Database(path);
  const v12 = new Set(['messages', 'body_parts', 'recipients', 'records', 'domains', 'mta_sts_policies', 'counters', 'recipient_keys', 'recipient_key_addresses', 'key_lookups', 'portal_items', 'portal_content', 'events']);
  const tables = raw.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).pluck().all() as string[];
  for (const t of tables) if (!v12.has(t)) raw.exec(`DROP TABLE ${t}`);
  raw.exec(`ALTER TABLE messages DROP COLUMN campaign; ALTER TABLE messages DROP COLUMN custom;
            ALTER TABLE events DROP COLUMN subject; ALTER TABLE events DROP COLUMN custom;
            ALTER TABLE events DROP COLUMN automated; ALTER TABLE events DROP COLUMN tls;
            ALTER TABLE body_parts DROP COLUMN key_id; ALTER TABLE body_parts DROP COLUMN nonce;
            ALTER TABLE messages DROP COLUMN require_tls;`);
  raw.pragma('user_version = 12');
  raw.close();
  store = new SqliteStore(path);
  expect(await store.listAudit({ limit: 10 })).toEqual([]);
  await appendFive();
  expect(await verify()).toMatchObject({ ok: true, entries: 5 });
});

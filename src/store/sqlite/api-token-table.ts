// The SQLite store's API tokens and Idempotency-Keys (schema 15), for the REST API
// (src/http/api/). SqliteStore opens the transactions; this holds the SQL.
import type Database from 'better-sqlite3';
import type { ApiScope, ApiToken, ApiTokenInfo, IdempotencyKey, IdempotentEnqueue, NewApiToken } from '../store.ts';

interface TokenRow {
  id: string;
  name: string;
  secret_hash: Buffer;
  scopes: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
}

interface KeyRow {
  request_hash: Buffer;
  queue_id: string;
  message_id: string | null;
  created_at: number;
}

export class ApiTokenTable {
  private readonly stmt;

  constructor(db: Database.Database) {
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO api_tokens (id, name, secret_hash, scopes, created_at, expires_at) VALUES (@id, @name, @secretHash, @scopes, @createdAt, @expiresAt)`,
      ),
      find: db.prepare(`SELECT * FROM api_tokens WHERE id = ?`),
      list: db.prepare(`SELECT * FROM api_tokens ORDER BY created_at DESC, id`),
      revoke: db.prepare(`UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL`),
      touch: db.prepare(`UPDATE api_tokens SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?`),
      findKey: db.prepare(`SELECT request_hash, queue_id, message_id, created_at FROM api_idempotency_keys WHERE token_id = ? AND key = ?`),
      putKey: db.prepare(
        `INSERT INTO api_idempotency_keys (token_id, key, request_hash, queue_id, message_id, created_at)
         VALUES (@tokenId, @key, @requestHash, @queueId, @messageId, @createdAt)
         ON CONFLICT (token_id, key) DO UPDATE SET
           request_hash = excluded.request_hash, queue_id = excluded.queue_id, message_id = excluded.message_id, created_at = excluded.created_at`,
      ),
      prune: db.prepare(`DELETE FROM api_idempotency_keys WHERE created_at < ?`),
    };
  }

  insert(t: NewApiToken): void {
    try {
      this.stmt.insert.run({ id: t.id, name: t.name, secretHash: t.secretHash, scopes: t.scopes.join(','), createdAt: t.createdAt, expiresAt: t.expiresAt });
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new Error(`an API token named ${t.name} exists (revoke it first, or choose another name)`, { cause: err });
      throw err;
    }
  }

  find(id: string): ApiToken | null {
    const row = this.stmt.find.get(id) as TokenRow | undefined;
    return row ? { ...toInfo(row), secretHash: row.secret_hash } : null;
  }

  list(): ApiTokenInfo[] {
    return (this.stmt.list.all() as TokenRow[]).map(toInfo);
  }

  revoke(name: string, now: number): boolean {
    return this.stmt.revoke.run(now, name).changes > 0;
  }

  touch(id: string, at: number): void {
    this.stmt.touch.run(at, id);
  }

  /** What the key's first request queued, while the key is live; null when it is new (or expired). Runs in the enqueue's transaction. */
  previous(key: IdempotencyKey): IdempotentEnqueue | null {
    const row = this.stmt.findKey.get(key.tokenId, key.key) as KeyRow | undefined;
    if (!row || row.created_at < key.expiredBefore) return null;
    return { result: 'repeat', queueId: row.queue_id, messageId: row.message_id, requestHash: row.request_hash };
  }

  /** Records the key with what its request queued; replaces an expired one. Runs in the enqueue's transaction. */
  remember(key: IdempotencyKey, queued: { queueId: string; messageId: string | null }): void {
    this.stmt.putKey.run({ tokenId: key.tokenId, key: key.key, requestHash: key.requestHash, queueId: queued.queueId, messageId: queued.messageId, createdAt: key.createdAt });
  }

  prune(before: number): number {
    return this.stmt.prune.run(before).changes;
  }
}

function toInfo(row: TokenRow): ApiTokenInfo {
  return {
    id: row.id,
    name: row.name,
    scopes: row.scopes.split(',').filter(Boolean) as ApiScope[],
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
  };
}

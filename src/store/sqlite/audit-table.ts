// The SQLite store's audit trail (schema 17; events/audit/entry.ts). Append-only in
// code — there is no update or delete here — and in the schema (triggers refuse
// both, so a slip in some later code fails loudly; someone with the file can drop
// them, which is what the hash chain is for). `append` runs inside a write
// transaction the store opened (SqliteStore.appendAudit: BEGIN IMMEDIATE, or the
// transaction of the fact, as for a portal open): SQLite has one writer at a time,
// so reading the last entry and writing the next cannot interleave with another
// append, in this process or another (the CLI beside the relay).
import type Database from 'better-sqlite3';
import { chainEntry, checkAuditInput, checkAuditQuery, type AuditEntry, type AuditInput, type AuditQuery } from '../../events/audit/entry.ts';

export class AuditTable {
  private readonly stmt;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      last: db.prepare(`SELECT seq, hash FROM audit_trail ORDER BY seq DESC LIMIT 1`),
      insert: db.prepare(
        `INSERT INTO audit_trail (seq, at, actor_kind, actor_name, ip, action, target, detail, prev, hash)
         VALUES (@seq, @at, @actorKind, @actorName, @ip, @action, @target, @detail, @prev, @hash)`,
      ),
    };
  }

  /** Writes the next entry in the write transaction already open; returns it. */
  append(input: AuditInput): AuditEntry {
    if (!this.db.inTransaction) throw new Error('audit entries are appended only inside a write transaction');
    const entry = chainEntry((this.stmt.last.get() as { seq: number; hash: string } | undefined) ?? null, checkAuditInput(input));
    this.stmt.insert.run(entry);
    return entry;
  }

  /** Entries in seq order after `afterSeq`, filtered; values exactly as stored (verify must see an edit, not a repaired value). */
  list(query: AuditQuery): AuditEntry[] {
    const q = checkAuditQuery(query);
    const where = ['seq > @afterSeq'];
    const params: Record<string, unknown> = { afterSeq: q.afterSeq ?? 0, limit: q.limit };
    if (q.since !== undefined) {
      where.push('at >= @since');
      params.since = q.since;
    }
    if (q.actor !== undefined) {
      where.push('actor_name = @actor');
      params.actor = q.actor;
    }
    if (q.action !== undefined) {
      where.push('action = @action');
      params.action = q.action;
    }
    const sql = `SELECT * FROM audit_trail WHERE ${where.join(' AND ')} ORDER BY seq LIMIT @limit`;
    return (this.db.prepare(sql).all(params) as AuditRow[]).map(toEntry);
  }
}

interface AuditRow {
  seq: number;
  at: number;
  actor_kind: AuditEntry['actorKind'];
  actor_name: string;
  ip: string | null;
  action: AuditEntry['action'];
  target: string | null;
  detail: string | null;
  prev: string;
  hash: string;
}

function toEntry(r: AuditRow): AuditEntry {
  return { seq: r.seq, at: r.at, actorKind: r.actor_kind, actorName: r.actor_name, ip: r.ip, action: r.action, target: r.target, detail: r.detail, prev: r.prev, hash: r.hash };
}

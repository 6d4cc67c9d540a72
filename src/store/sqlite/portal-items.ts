// The SQLite store's portal items (schema 10): the rows, and every change to them
// with the PortalRecord it leaves in the delivery log (and, for opened, replied,
// recalled and expired, the event: event-table.ts). Each method runs inside a
// transaction SqliteStore opens (sqlite-store.ts), so a change and its record
// commit together. Nothing here decrypts: the sealed content is opaque bytes
// (portal/vault.ts seals and opens it).
//
// Erasing an item (recall, expiry) deletes its ciphertext row and clears its
// wrapped key; SqliteStore runs those with secure_delete on, so the freed pages are
// zeroed rather than left for whoever later reads the file with a master key.
import { timingSafeEqual } from 'node:crypto';
import type Database from 'better-sqlite3';
import { PORTAL_EVENT_TYPES } from '../../events/event.ts';
import type { EventTable } from './event-table.ts';
import {
  domainOf,
  portalItemState,
  type CodeCheck,
  type NewPortalItem,
  type PortalCode,
  type PortalEventInput,
  type PortalItem,
  type PortalItemHead,
  type PortalItemInfo,
  type PortalOutcome,
  type PortalRecord,
  type SetCodeResult,
  type WrappedItemKey,
} from '../store.ts';

/** SHA-256: the only token hash the vault makes (portal/vault.ts). */
const TOKEN_HASH_BYTES = 32;
/** Columns operators may see: never the token hash, code hash, wrapped key or ciphertext. */
const INFO_COLUMNS = `id, queue_id, seq, message_id, sender, recipient, domain, created_at, expires_at, recalled_at, erased_at, size, key_in_link, key_id, locked_until`;
/** The ciphertext and key of an item are cleared by these when it is erased; the pending code goes with them. */
const ERASED = `wrap_nonce = NULL, wrapped_key = NULL, key_id = NULL, code_hash = NULL, code_expires_at = NULL, code_tries_left = NULL`;

export class PortalItemTable {
  private readonly stmt;

  constructor(db: Database.Database, private readonly events: EventTable) {
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO portal_items (id, queue_id, seq, message_id, sender, recipient, domain, created_at, expires_at, size, key_in_link, key_id, wrap_nonce, wrapped_key, token_hash, passphrase_hash)
         VALUES (@id, @queueId, @seq, @messageId, @sender, @recipient, @domain, @createdAt, @expiresAt, @size, @keyInLink, @keyId, @wrapNonce, @wrappedKey, @tokenHash, @passphraseHash)`,
      ),
      insertContent: db.prepare(`INSERT INTO portal_content (item_id, nonce, content) VALUES (?, ?, ?)`),
      get: db.prepare(`SELECT i.*, c.nonce AS content_nonce, c.content FROM portal_items i LEFT JOIN portal_content c ON c.item_id = i.id WHERE i.id = ?`),
      find: db.prepare(`SELECT i.*, c.nonce AS content_nonce, c.content FROM portal_items i LEFT JOIN portal_content c ON c.item_id = i.id WHERE i.token_hash = ?`),
      findHead: db.prepare(`SELECT * FROM portal_items WHERE token_hash = ?`),
      row: db.prepare(`SELECT * FROM portal_items WHERE id = ?`),
      info: db.prepare(`SELECT ${INFO_COLUMNS} FROM portal_items WHERE id = ?`),
      list: db.prepare(`SELECT ${INFO_COLUMNS} FROM portal_items ORDER BY created_at DESC, id LIMIT ?`),
      listOf: db.prepare(
        `SELECT ${INFO_COLUMNS} FROM portal_items WHERE queue_id = @message OR message_id = @message OR message_id = @bracketed
         ORDER BY created_at DESC, id LIMIT @limit`,
      ),
      toRecall: db.prepare(
        `SELECT * FROM portal_items WHERE (queue_id = @message OR message_id = @message OR message_id = @bracketed) AND recalled_at IS NULL ORDER BY seq, id`,
      ),
      recall: db.prepare(`UPDATE portal_items SET recalled_at = @now, erased_at = coalesce(erased_at, @now), locked_until = NULL, ${ERASED} WHERE id = @id`),
      toExpire: db.prepare(
        `SELECT * FROM portal_items WHERE erased_at IS NULL AND recalled_at IS NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?`,
      ),
      expire: db.prepare(`UPDATE portal_items SET erased_at = @now, locked_until = NULL, ${ERASED} WHERE id = @id`),
      deleteContent: db.prepare(`DELETE FROM portal_content WHERE item_id = ?`),
      setCode: db.prepare(
        `UPDATE portal_items SET code_hash = @hash, code_expires_at = @expiresAt, code_tries_left = @triesLeft, locked_until = NULL WHERE id = @id`,
      ),
      useTry: db.prepare(`UPDATE portal_items SET code_tries_left = ? WHERE id = ?`),
      dropCode: db.prepare(`UPDATE portal_items SET code_hash = NULL, code_expires_at = NULL, code_tries_left = NULL WHERE id = ?`),
      lock: db.prepare(`UPDATE portal_items SET locked_until = ?, code_hash = NULL, code_expires_at = NULL, code_tries_left = NULL WHERE id = ?`),
      toRewrap: db.prepare(
        `SELECT id, key_in_link, key_id, wrap_nonce, wrapped_key FROM portal_items WHERE erased_at IS NULL AND key_id <> ? AND id > ? ORDER BY id LIMIT ?`,
      ),
      rewrap: db.prepare(
        `UPDATE portal_items SET key_id = @keyId, wrap_nonce = @wrapNonce, wrapped_key = @wrappedKey WHERE id = @id AND key_id = @fromKeyId AND erased_at IS NULL`,
      ),
      insertRecord: db.prepare(
        `INSERT INTO records (queue_id, seq, message_id, attempt, at, sender, recipient, domain, outcome, method, json, kind)
         VALUES (@queueId, @seq, @messageId, 0, @atMs, @sender, @recipient, @domain, @outcome, 'portal', @json, 'portal')`,
      ),
    };
  }

  insert(item: NewPortalItem): void {
    checkNewItem(item);
    const s = item.sealed;
    this.stmt.insert.run({
      id: item.id,
      queueId: item.queueId,
      seq: item.seq,
      messageId: item.messageId,
      sender: item.sender,
      recipient: item.recipient,
      domain: domainOf(item.recipient),
      createdAt: item.createdAt,
      expiresAt: item.expiresAt,
      size: item.size,
      keyInLink: s.keyInLink ? 1 : 0,
      keyId: s.keyId,
      wrapNonce: s.wrapNonce,
      wrappedKey: s.wrappedKey,
      tokenHash: item.tokenHash,
      passphraseHash: item.passphraseHash ?? null,
    });
    this.stmt.insertContent.run(item.id, s.contentNonce, s.content);
  }

  info(id: string): PortalItemInfo | null {
    const row = this.stmt.info.get(id) as InfoRow | undefined;
    return row ? toInfo(row) : null;
  }

  get(id: string): PortalItem | null {
    const row = this.stmt.get.get(id) as FullRow | undefined;
    return row ? toItem(row) : null;
  }

  find(tokenHash: Buffer): PortalItem | null {
    if (tokenHash.length !== TOKEN_HASH_BYTES) return null;
    const row = this.stmt.find.get(tokenHash) as FullRow | undefined;
    return row ? toItem(row) : null;
  }

  findHead(tokenHash: Buffer): PortalItemHead | null {
    if (tokenHash.length !== TOKEN_HASH_BYTES) return null;
    const row = this.stmt.findHead.get(tokenHash) as ItemRow | undefined;
    return row ? toHead(row) : null;
  }

  list(opts: { message?: string; limit?: number }): PortalItemInfo[] {
    const limit = opts.limit ?? -1;
    const rows = opts.message
      ? this.stmt.listOf.all({ ...messageParams(opts.message), limit })
      : this.stmt.list.all(limit);
    return (rows as InfoRow[]).map(toInfo);
  }

  /** Writes `outcome` for the item; false when there is none. */
  event(itemId: string, outcome: PortalOutcome, event: PortalEventInput): boolean {
    const row = this.stmt.row.get(itemId) as ItemRow | undefined;
    if (!row) return false;
    this.record(row, outcome, event);
    return true;
  }

  setCode(itemId: string, code: PortalCode, event: PortalEventInput): SetCodeResult {
    if (!code.hash.length) throw new TypeError(`portal item ${itemId}: a code needs its hash`);
    if (!Number.isSafeInteger(code.triesLeft) || code.triesLeft < 1) throw new TypeError(`portal item ${itemId}: a code needs at least one try, not ${code.triesLeft}`);
    const now = event.at ?? Date.now();
    const row = this.stmt.row.get(itemId) as ItemRow | undefined;
    if (!row || portalItemState(toTimes(row), now) !== 'readable') return { result: 'gone' };
    if (row.locked_until !== null && row.locked_until > now) return { result: 'locked', until: row.locked_until };
    this.stmt.setCode.run({ id: itemId, hash: code.hash, expiresAt: code.expiresAt, triesLeft: code.triesLeft });
    this.record(row, 'portal-code-sent', { ...event, at: now });
    return { result: 'set' };
  }

  checkCode(itemId: string, hash: Buffer, opts: { lockMs: number; event: PortalEventInput }): CodeCheck {
    const now = opts.event.at ?? Date.now();
    const event = { ...opts.event, at: now };
    const row = this.stmt.row.get(itemId) as ItemRow | undefined;
    if (!row || portalItemState(toTimes(row), now) !== 'readable') return { result: 'gone' };
    if (row.locked_until !== null && row.locked_until > now) return { result: 'locked', until: row.locked_until };
    if (row.code_hash === null || row.code_expires_at === null || row.code_expires_at <= now || !row.code_tries_left) {
      if (row.code_hash !== null) this.stmt.dropCode.run(itemId);
      return { result: 'no-code' };
    }
    if (hash.length === row.code_hash.length && timingSafeEqual(hash, row.code_hash)) {
      this.stmt.dropCode.run(itemId);
      this.record(row, 'portal-verified', event);
      return { result: 'verified' };
    }
    const triesLeft = row.code_tries_left - 1;
    if (triesLeft > 0) {
      this.stmt.useTry.run(triesLeft, itemId);
      this.record(row, 'portal-code-failed', { ...event, detail: `${triesLeft} ${triesLeft === 1 ? 'try' : 'tries'} left` });
      return { result: 'wrong', triesLeft };
    }
    const until = now + opts.lockMs;
    this.stmt.lock.run(until, itemId);
    this.record(row, 'portal-code-failed', { ...event, detail: 'no tries left' });
    this.record(row, 'portal-locked', { ...event, detail: `until ${new Date(until).toISOString()}` });
    return { result: 'locked', until };
  }

  recall(message: string, operator: string, now: number): PortalItemInfo[] {
    const rows = this.stmt.toRecall.all(messageParams(message)) as ItemRow[];
    for (const row of rows) {
      this.stmt.deleteContent.run(row.id);
      this.stmt.recall.run({ id: row.id, now });
      this.record(row, 'portal-recalled', { at: now, operator });
    }
    return rows.map((r) => toInfo(this.stmt.info.get(r.id) as InfoRow));
  }

  expire(now: number, limit: number): number {
    const rows = this.stmt.toExpire.all(now, limit) as ItemRow[];
    for (const row of rows) {
      this.stmt.deleteContent.run(row.id);
      this.stmt.expire.run({ id: row.id, now });
      this.record(row, 'portal-expired', { at: now });
    }
    return rows.length;
  }

  keysToRewrap(currentKeyId: string, limit: number, afterId: string): WrappedItemKey[] {
    return (this.stmt.toRewrap.all(currentKeyId, afterId, limit) as RewrapRow[]).map((r) => ({
      id: r.id,
      keyInLink: r.key_in_link === 1,
      keyId: r.key_id,
      wrapNonce: r.wrap_nonce,
      wrappedKey: r.wrapped_key,
    }));
  }

  rewrap(rewrapped: readonly (WrappedItemKey & { fromKeyId: string })[]): number {
    return rewrapped.reduce(
      (n, r) => n + this.stmt.rewrap.run({ id: r.id, fromKeyId: r.fromKeyId, keyId: r.keyId, wrapNonce: r.wrapNonce, wrappedKey: r.wrappedKey }).changes,
      0,
    );
  }

  private record(row: ItemRow, outcome: PortalOutcome, event: PortalEventInput): void {
    const atMs = event.at ?? Date.now();
    const record: PortalRecord = {
      kind: 'portal',
      queueId: row.queue_id,
      seq: row.seq,
      messageId: row.message_id,
      at: new Date(atMs).toISOString(),
      sender: row.sender,
      recipient: row.recipient,
      domain: row.domain,
      itemId: row.id,
      outcome,
      ip: event.ip ?? null,
      userAgent: event.userAgent ?? null,
      operator: event.operator ?? null,
      detail: event.detail ?? null,
    };
    this.stmt.insertRecord.run({
      queueId: record.queueId,
      seq: record.seq,
      messageId: record.messageId,
      atMs,
      sender: record.sender,
      recipient: record.recipient,
      domain: record.domain,
      outcome,
      json: JSON.stringify(record),
    });
    const type = PORTAL_EVENT_TYPES[outcome];
    if (type) {
      this.events.write([{ queueId: row.queue_id, seq: row.seq, at: atMs, type, sender: row.sender, recipient: row.recipient, domain: row.domain, method: null }]);
    }
  }
}

/** A new item must be whole: a missing field would be an item nobody can open, found too late. */
function checkNewItem(item: NewPortalItem): void {
  const where = `portal item ${item.id || '(no id)'}`;
  if (!item.id) throw new TypeError('a portal item needs an id');
  if (!item.queueId || !Number.isInteger(item.seq) || !item.recipient) throw new TypeError(`${where}: needs the queue id, seq and recipient it was made for`);
  if (!(item.expiresAt > item.createdAt)) throw new TypeError(`${where}: expires before it is created`);
  if (item.tokenHash?.length !== TOKEN_HASH_BYTES) throw new TypeError(`${where}: the token hash must be ${TOKEN_HASH_BYTES} bytes (SHA-256)`);
  const s = item.sealed;
  if (!s?.keyId || !s.wrapNonce?.length || !s.wrappedKey?.length || !s.contentNonce?.length || !s.content?.length) {
    throw new TypeError(`${where}: sealed content incomplete (key id, wrapped key, nonces and ciphertext are all needed)`);
  }
}

function messageParams(message: string): { message: string; bracketed: string } {
  return { message, bracketed: message.startsWith('<') ? message : `<${message}>` };
}

interface InfoRow {
  id: string;
  queue_id: string;
  seq: number;
  message_id: string | null;
  sender: string;
  recipient: string;
  domain: string;
  created_at: number;
  expires_at: number;
  recalled_at: number | null;
  erased_at: number | null;
  size: number;
  key_in_link: number;
  key_id: string | null;
  locked_until: number | null;
}

interface ItemRow extends InfoRow {
  wrap_nonce: Buffer | null;
  wrapped_key: Buffer | null;
  token_hash: Buffer;
  passphrase_hash: Buffer | null;
  code_hash: Buffer | null;
  code_expires_at: number | null;
  code_tries_left: number | null;
}

interface FullRow extends ItemRow {
  content_nonce: Buffer | null;
  content: Buffer | null;
}

interface RewrapRow {
  id: string;
  key_in_link: number;
  key_id: string;
  wrap_nonce: Buffer;
  wrapped_key: Buffer;
}

function toTimes(r: InfoRow) {
  return { recalledAt: r.recalled_at, expiresAt: r.expires_at, erasedAt: r.erased_at };
}

function toInfo(r: InfoRow): PortalItemInfo {
  return {
    id: r.id,
    queueId: r.queue_id,
    seq: r.seq,
    messageId: r.message_id,
    sender: r.sender,
    recipient: r.recipient,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    recalledAt: r.recalled_at,
    erasedAt: r.erased_at,
    size: r.size,
    keyInLink: r.key_in_link === 1,
    keyId: r.key_id,
    lockedUntil: r.locked_until,
  };
}

function toHead(r: ItemRow): PortalItemHead {
  return {
    ...toInfo(r),
    tokenHash: r.token_hash,
    passphraseHash: r.passphrase_hash,
    code:
      r.code_hash !== null && r.code_expires_at !== null && r.code_tries_left !== null
        ? { hash: r.code_hash, expiresAt: r.code_expires_at, triesLeft: r.code_tries_left }
        : null,
  };
}

function toItem(r: FullRow): PortalItem {
  const readable = r.erased_at === null && r.key_id !== null && r.wrap_nonce && r.wrapped_key && r.content_nonce && r.content;
  return {
    ...toHead(r),
    sealed: readable
      ? { keyId: r.key_id!, wrapNonce: r.wrap_nonce!, wrappedKey: r.wrapped_key!, contentNonce: r.content_nonce!, content: r.content!, keyInLink: r.key_in_link === 1 }
      : null,
  };
}

// The embedded Store: one SQLite file in WAL mode.
//
// Durability: every commit that accepts mail (enqueue, and a finish that queues a
// bounce) runs with synchronous=FULL, so the WAL is fsynced before `enqueue`
// resolves and before the client hears 250. Claims and settlements without a
// bounce commit with synchronous=NORMAL: they survive a crash of the process, and
// an OS crash or power loss can only undo the latest of them — which means a
// retry, perhaps a duplicate delivery (DESIGN allows it), never a lost message.
// That keeps one fsync per accepted batch on the event loop instead of three.
//
// Bodies live in the same database as their envelope (in their own table, so
// queue scans never read them): one transaction makes message, recipients and
// body durable together, with no orphan files to sweep. A large message arrives
// in parts (stageBodyPart), each written when it is complete with a NORMAL commit;
// the enqueue's FULL commit fsyncs the WAL, which holds them all, before the 250.
//
// Group commit: writes that arrive in the same event-loop turn — enqueues from
// ingress, finishes from delivery — share one transaction (and at most one
// fsync, FULL when any of them accepts mail). Nobody is answered before that
// commit returns. Should the shared transaction fail, each write is retried on
// its own, so one bad write never fails the others. Any other transaction (a claim,
// an operator's action, a portal change) lets the waiting writes commit first.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DeliveryRecord } from '../../delivery/record.ts';
import {
  domainOf,
  normaliseAddress,
  OPERATOR_OUTCOMES,
  type DomainKnowledge,
  type KeyKind,
  type KeyLookup,
  type LogRecord,
  type MessageOrigin,
  type NewMessage,
  type OperatorAction,
  type OperatorRecord,
  type QueueBatch,
  type QueueCount,
  type QueueEntry,
  type QueueItem,
  type QueueSelection,
  type QueueStats,
  type RecipientKey,
  type RecordCursor,
  type RecordFilter,
  type Settlement,
  type Store,
  type CodeCheck,
  type NewPortalItem,
  type PortalCode,
  type PortalEventInput,
  type PortalItem,
  type PortalItemHead,
  type PortalItemInfo,
  type SetCodeResult,
  type WrappedItemKey,
} from '../store.ts';
import { attemptEvents, queuedEvents, type EventQuery, type EventType, type RelayEvent } from '../../events/event.ts';
import { fitField, type AuditEntry, type AuditInput, type AuditQuery } from '../../events/audit/entry.ts';
import { AuditTable } from './audit-table.ts';
import { QueueSelectionTable } from './queue-selection.ts';
import { Checkpointer } from './checkpointer.ts';
import { EventTable } from './event-table.ts';
import { BodyCipher, SEAL_OVERHEAD, type StoredPart } from './body-cipher.ts';
import type { Keyring } from '../../portal/master-keys.ts';
import { migrate } from './migrations.ts';
import { PortalItemTable } from './portal-items.ts';
import { ReportTable } from './report-table.ts';
import type { ReportCountsQuery, ReportCountsRow } from '../../reporting/counts.ts';
import { WebhookTable } from './webhook-table.ts';
import { TlsRptTable } from './tlsrpt-table.ts';
import type { DueTlsReport, NewTlsReport, TlsReportSend, TlsReportSettlement } from '../../reporting/tlsrpt/state.ts';
import type { WebhookDelivery, WebhookDeliveryInfo, WebhookEndpointStatus, WebhookReplay, WebhookSettlement } from '../../events/webhooks/outbox.ts';
import { SuppressionTable } from './suppression-table.ts';
import type { Suppression, SuppressionFilter, SuppressionSource, TrackedRecipient, Unsubscribed } from '../../reporting/tracking/suppression.ts';
import { ApiTokenTable } from './api-token-table.ts';
import { RetentionTable } from './retention-table.ts';
import type { PruneKind } from '../store.ts';
import type { ApiToken, ApiTokenInfo, IdempotencyKey, IdempotentEnqueue, NewApiToken } from '../store.ts';

/** A part's plaintext size in SQL: a sealed part carries its GCM tag beside the ciphertext. */
const PLAIN_BYTES = `length(data) - CASE WHEN key_id IS NULL THEN 0 ELSE ${SEAL_OVERHEAD} END`;

/** A write waiting for the next group commit. */
interface PendingWrite {
  /** Accepts mail (an enqueue, a finish that queues a bounce): the commit must be FULL. */
  readonly durable: boolean;
  apply(): void;
  resolve(): void;
  reject(err: Error): void;
}

/** Largest number of writes (enqueues, finishes) folded into one commit. */
const MAX_GROUP_COMMIT = 256;

/** What each operator action's statement returns of the recipients it changed. */
const ACTED = 'RETURNING queue_id, seq, recipient, domain, attempts';

/** Events counted into the report counts per transaction: a few tens of milliseconds of work. */
const REPORT_BATCH = 5000;

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private pending: PendingWrite[] = [];
  private flushScheduled = false;
  private closed = false;
  private sync: 'full' | 'normal' = 'full';
  private checkpointer: Checkpointer | null = null;
  private readonly stmt;
  private readonly portal: PortalItemTable;
  private readonly events: EventTable;
  private readonly bodies: BodyCipher;
  private readonly webhooks: WebhookTable;
  private readonly suppressions: SuppressionTable;
  private readonly audit: AuditTable;
  private readonly selection: QueueSelectionTable;
  /** The report counts, kept behind the events (report-table.ts). */
  private readonly reports: ReportTable;
  /** The relay's periodic catch-up of the report counts. */
  private reportTimer: NodeJS.Timeout | null = null;

  /**
   * `checkpointsApart`: for the long-running relay, WAL checkpoints run on a thread
   * of their own (checkpointer.ts); short-lived users (the CLI) keep SQLite's own.
   */
  /**
   * `bodyKeys`: store.encryption's keys; with them every body part written is sealed
   * (body-cipher.ts), and parts sealed before can be read.
   */
  /**
   * `countReportsEveryMs`: for the long-running relay, the report counts catch up
   * with the events this often (report-table.ts); others count when they read a
   * report and before they close.
   */
  constructor(path: string, opts: { checkpointsApart?: boolean; countReportsEveryMs?: number; onError?: (message: string) => void; bodyKeys?: Keyring | null } = {}) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    // Another process (the CLI) may hold the write lock briefly.
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
    if (opts.checkpointsApart && path !== ':memory:') {
      // What the migrations wrote goes into the file now, at start: from here on only the checkpoint thread copies pages.
      this.db.pragma('wal_checkpoint(TRUNCATE)');
      this.db.pragma('wal_autocheckpoint = 0');
      this.checkpointer = new Checkpointer(path, opts.onError ?? (() => undefined));
    }
    this.events = new EventTable(this.db);
    this.bodies = new BodyCipher(opts.bodyKeys ?? null);
    this.portal = new PortalItemTable(this.db, this.events);
    this.webhooks = new WebhookTable(this.db, this.events);
    this.suppressions = new SuppressionTable(this.db, this.events);
    this.audit = new AuditTable(this.db);
    this.selection = new QueueSelectionTable(this.db);
    this.reports = new ReportTable(this.db);
    if (opts.countReportsEveryMs) {
      const onError = opts.onError ?? (() => undefined);
      this.reportTimer = setInterval(() => {
        try {
          this.catchUpReports();
        } catch (err) {
          // Another process held the write lock past busy_timeout: the next tick counts them.
          onError(`report counts could not catch up: ${(err as Error).message}`);
        }
      }, opts.countReportsEveryMs);
      this.reportTimer.unref();
    }
    this.stmt = {
      insertMessage: this.db.prepare(
        `INSERT INTO messages (queue_id, sender, message_id, subject, size, received_at, client_ip, auth_user, dsn_envid, origin, campaign, custom, require_tls)
         VALUES (@queueId, @sender, @messageId, @subject, @size, @receivedAt, @clientIp, @authUser, @envid, @origin, @campaign, @custom, @requireTls)`,
      ),
      insertPart: this.db.prepare(`INSERT INTO body_parts (queue_id, part, data, key_id, nonce) VALUES (@queueId, @part, @data, @keyId, @nonce)`),
      // length() of a blob reads its size from the record header, not the blob.
      stagedParts: this.db.prepare(
        `SELECT count(*) AS parts, coalesce(sum(${PLAIN_BYTES}), 0) AS bytes, coalesce(max(part), 0) AS last FROM body_parts WHERE queue_id = ? AND part > 0`,
      ),
      discardStaged: this.db.prepare(`DELETE FROM body_parts WHERE queue_id = ? AND NOT EXISTS (SELECT 1 FROM messages WHERE queue_id = ?)`),
      discardAllStaged: this.db.prepare(`DELETE FROM body_parts WHERE queue_id NOT IN (SELECT queue_id FROM messages)`),
      insertRecipient: this.db.prepare(
        `INSERT INTO recipients (queue_id, seq, recipient, domain, next_attempt_at, dsn_notify, dsn_orcpt) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      claim: this.db.prepare(
        `UPDATE recipients SET lease_owner = @owner, lease_until = @until, attempts = attempts + 1
         WHERE rowid IN (SELECT rowid FROM recipients
                         WHERE state = 'queued' AND next_attempt_at <= @now AND lease_until <= @now
                         -- An expression, not a bare parameter: SQLite re-plans a statement whose LIMIT
                         -- is a bound parameter each time it is bound anew (~20 µs a claim, seen with perf).
                         ORDER BY next_attempt_at LIMIT (@limit + 0))
         RETURNING queue_id, seq, recipient, domain, attempts, dsn_notify, dsn_orcpt`,
      ),
      messageMeta: this.db.prepare(
        `SELECT queue_id, sender, message_id, subject, auth_user, origin, size, received_at, dsn_envid, require_tls FROM messages WHERE queue_id = ?`,
      ),
      bodySize: this.db.prepare(`SELECT count(*) AS parts, coalesce(sum(${PLAIN_BYTES}), 0) AS bytes FROM body_parts WHERE queue_id = ?`),
      bodyParts: this.db.prepare(`SELECT part, data, key_id AS keyId, nonce FROM body_parts WHERE queue_id = ? ORDER BY part`),
      bodyKeys: this.db.prepare(`SELECT key_id AS keyId, count(*) AS parts FROM body_parts GROUP BY key_id ORDER BY key_id`),
      insertRecord: this.db.prepare(
        `INSERT INTO records (queue_id, seq, message_id, attempt, at, sender, recipient, domain, outcome, method, json, kind)
         VALUES (@queueId, @seq, @messageId, @attempt, @atMs, @sender, @recipient, @domain, @outcome, @method, @json, @kind)`,
      ),
      settleFinal: this.db.prepare(
        `UPDATE recipients SET state = @outcome, last_error = @error, lease_owner = NULL, lease_until = 0
         WHERE queue_id = @queueId AND seq = @seq`,
      ),
      settleDeferred: this.db.prepare(
        `UPDATE recipients SET next_attempt_at = @nextAttemptAt, last_error = @error, lease_owner = NULL, lease_until = 0
         WHERE queue_id = @queueId AND seq = @seq`,
      ),
      deleteIfDone: this.db.prepare(
        `DELETE FROM messages WHERE queue_id = ?
           AND NOT EXISTS (SELECT 1 FROM recipients WHERE queue_id = ? AND state IN ('queued', 'held'))`,
      ),
      unclaim: this.db.prepare(
        `UPDATE recipients SET lease_owner = NULL, lease_until = 0, attempts = max(attempts - 1, 0) WHERE queue_id = ? AND seq = ?`,
      ),
      learnDomain: this.db.prepare(
        `INSERT INTO domains (domain, tls_known_since, last_tls_at, last_starttls_at, last_no_starttls_at, last_attempt_at, attempts)
         VALUES (@domain, @tls, @tls, @offered, @notOffered, @at, 1)
         ON CONFLICT (domain) DO UPDATE SET
           tls_known_since     = coalesce(tls_known_since, excluded.tls_known_since),
           last_tls_at         = coalesce(excluded.last_tls_at, last_tls_at),
           last_starttls_at    = coalesce(excluded.last_starttls_at, last_starttls_at),
           last_no_starttls_at = coalesce(excluded.last_no_starttls_at, last_no_starttls_at),
           last_attempt_at     = max(last_attempt_at, excluded.last_attempt_at),
           attempts            = attempts + 1`,
      ),
      recordProbe: this.db.prepare(
        `INSERT INTO domains (domain, tls_known_since, last_tls_at, last_starttls_at, last_no_starttls_at, last_attempt_at, attempts, last_probe_at, last_probe_starttls, last_probe_tls_ok)
         VALUES (@domain, NULL, NULL, @offered, @notOffered, @at, 0, @at, @starttls, @tlsOk)
         ON CONFLICT (domain) DO UPDATE SET
           last_starttls_at    = coalesce(excluded.last_starttls_at, last_starttls_at),
           last_no_starttls_at = coalesce(excluded.last_no_starttls_at, last_no_starttls_at),
           last_probe_at       = excluded.last_probe_at,
           last_probe_starttls = excluded.last_probe_starttls,
           last_probe_tls_ok   = excluded.last_probe_tls_ok`,
      ),
      lastRecordId: this.db.prepare(`SELECT max(id) FROM records`).pluck(),
      getDomain: this.db.prepare(`SELECT * FROM domains WHERE domain = ?`),
      listDomains: this.db.prepare(`SELECT * FROM domains ORDER BY domain`),
      forgetDomain: this.db.prepare(`DELETE FROM domains WHERE domain = ?`),
      getMtaSts: this.db.prepare(`SELECT policy FROM mta_sts_policies WHERE domain = ?`).pluck(),
      setMtaSts: this.db.prepare(
        `INSERT INTO mta_sts_policies (domain, policy) VALUES (?, ?) ON CONFLICT (domain) DO UPDATE SET policy = excluded.policy`,
      ),
      putKey: this.db.prepare(
        `INSERT INTO recipient_keys (fingerprint, kind, addresses, data, label, created_at, expires_at, revoked, unusable, source, imported_at)
         VALUES (@fingerprint, @kind, @addresses, @data, @label, @createdAt, @expiresAt, @revoked, @unusable, @source, @importedAt)
         ON CONFLICT (fingerprint) DO UPDATE SET
           kind = excluded.kind, addresses = excluded.addresses, data = excluded.data, label = excluded.label,
           created_at = excluded.created_at, expires_at = excluded.expires_at, revoked = excluded.revoked,
           unusable = excluded.unusable, source = excluded.source, imported_at = excluded.imported_at`,
      ),
      clearKeyAddresses: this.db.prepare(`DELETE FROM recipient_key_addresses WHERE fingerprint = ?`),
      addKeyAddress: this.db.prepare(`INSERT INTO recipient_key_addresses (address, fingerprint) VALUES (?, ?)`),
      keysFor: this.db.prepare(
        `SELECT k.* FROM recipient_key_addresses a JOIN recipient_keys k ON k.fingerprint = a.fingerprint
         WHERE a.address = @address AND (@kind IS NULL OR k.kind = @kind)
         ORDER BY k.created_at DESC NULLS LAST, k.imported_at DESC, k.fingerprint`,
      ),
      listKeys: this.db.prepare(
        `SELECT k.* FROM recipient_keys k
         ORDER BY (SELECT min(address) FROM recipient_key_addresses a WHERE a.fingerprint = k.fingerprint) NULLS LAST,
                  k.created_at DESC NULLS LAST, k.imported_at DESC, k.fingerprint`,
      ),
      getKey: this.db.prepare(`SELECT * FROM recipient_keys WHERE fingerprint = ?`),
      removeKey: this.db.prepare(`DELETE FROM recipient_keys WHERE fingerprint = ?`),
      getKeyLookup: this.db.prepare(`SELECT * FROM key_lookups WHERE address = ?`),
      recordKeyLookup: this.db.prepare(
        `INSERT INTO key_lookups (address, looked_up_at, found, expires_at, error) VALUES (@address, @lookedUpAt, @found, @expiresAt, @error)
         ON CONFLICT (address) DO UPDATE SET
           looked_up_at = excluded.looked_up_at, found = excluded.found, expires_at = excluded.expires_at, error = excluded.error`,
      ),
      renewLease: this.db.prepare(
        `UPDATE recipients SET lease_until = @until WHERE queue_id = @queueId AND seq = @seq AND lease_owner = @owner AND state = 'queued'`,
      ),
      recover: this.db.prepare(`UPDATE recipients SET lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL AND state = 'queued'`),
      countDuplicates: this.db.prepare(`UPDATE counters SET value = value + ? WHERE name = 'possible_duplicates'`),
      // Walks recipients_due in order and stops at the first unleased row: few rows are leased at once.
      nextDue: this.db.prepare(
        `SELECT next_attempt_at FROM recipients WHERE state = 'queued' AND lease_until <= ? ORDER BY next_attempt_at LIMIT 1`,
      ).pluck(),
      listMessages: this.db.prepare(
        `SELECT queue_id, sender, message_id, size, received_at FROM messages ORDER BY received_at LIMIT ?`,
      ),
      recipientsOf: this.db.prepare(
        `SELECT seq, recipient, state, attempts, next_attempt_at, last_error, lease_until FROM recipients WHERE queue_id = ? ORDER BY seq`,
      ),
      // Operator actions return the recipients they changed, for the records they leave.
      hold: this.db.prepare(`UPDATE recipients SET state = 'held' WHERE queue_id = ? AND state = 'queued' ${ACTED}`),
      releaseHold: this.db.prepare(`UPDATE recipients SET state = 'queued', next_attempt_at = ? WHERE queue_id = ? AND state = 'held' ${ACTED}`),
      flushOne: this.db.prepare(`UPDATE recipients SET next_attempt_at = ? WHERE queue_id = ? AND state = 'queued' AND next_attempt_at > ? ${ACTED}`),
      flushAll: this.db.prepare(`UPDATE recipients SET next_attempt_at = ? WHERE state = 'queued' AND next_attempt_at > ? ${ACTED}`),
      deleteMessage: this.db.prepare(`DELETE FROM messages WHERE queue_id = ?`),
      pendingOf: this.db.prepare(
        `SELECT queue_id, seq, recipient, domain, attempts FROM recipients WHERE queue_id = ? AND state IN ('queued', 'held') ORDER BY seq`,
      ),
      stats: this.db.prepare(
        `SELECT (SELECT count(*) FROM messages) AS messages,
                (SELECT count(*) FROM recipients WHERE state IN ('queued', 'held')) AS recipients,
                (SELECT count(*) FROM recipients WHERE state = 'held') AS held,
                (SELECT coalesce(sum(size), 0) FROM messages) AS bytes,
                (SELECT min(received_at) FROM messages) AS oldestReceivedAt,
                (SELECT value FROM counters WHERE name = 'possible_duplicates') AS possibleDuplicates`,
      ),
    };
  }

  enqueue(message: NewMessage): Promise<void> {
    if (!message.recipients.length) return Promise.reject(new TypeError('a message needs at least one recipient'));
    return this.write(true, () => this.insertMessage(message));
  }

  stageBodyPart(queueId: string, part: number, data: Buffer): Promise<void> {
    if (!Number.isInteger(part) || part < 1) return Promise.reject(new TypeError(`staged part of ${queueId}: number must be 1 or more, not ${part}`));
    return this.write(false, () => this.putPart(queueId, part, data));
  }

  discardStaged(queueId: string): Promise<void> {
    return this.write(false, () => this.stmt.discardStaged.run(queueId, queueId));
  }

  /** Queues `apply` for the next group commit; resolves once it is committed. */
  private write(durable: boolean, apply: () => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ durable, apply, resolve, reject });
      if (this.pending.length >= MAX_GROUP_COMMIT) this.flushPending();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flushPending());
      }
    });
  }

  private flushPending(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (!batch.length) return;
    const sync = (writes: readonly PendingWrite[]) => (writes.some((w) => w.durable) ? 'full' : 'normal');
    try {
      this.transaction(sync(batch), () => {
        for (const w of batch) w.apply();
      });
    } catch {
      // The whole batch rolled back: try each alone, so only the write at fault fails
      // (an enqueue that fails is a 451 to its client, who keeps the message).
      for (const w of batch) {
        try {
          this.transaction(sync([w]), () => w.apply());
        } catch (err) {
          w.reject(err as Error);
          continue;
        }
        w.resolve();
      }
      return;
    }
    for (const w of batch) w.resolve();
  }

  /**
   * Runs `fn` in one transaction, committed with the given durability (see the module
   * comment), after the writes already waiting for the group commit: everything commits
   * in the order it arrived, so a change sees what was written before it (an item stored
   * just before is there to be recalled), and an enqueue whose client waits for its 250
   * is never held back behind other work (delivery's claims overtaking the group commit
   * held enqueues back by tens of milliseconds on busy cores: README "Benchmarks").
   */
  private commit<T>(sync: 'full' | 'normal', fn: () => T): T {
    this.flushPending();
    return this.transaction(sync, fn);
  }

  private transaction<T>(sync: 'full' | 'normal', fn: () => T): T {
    if (sync !== this.sync) {
      this.db.pragma(`synchronous = ${sync.toUpperCase()}`);
      this.sync = sync;
    }
    // IMMEDIATE: the write lock is taken before the first read. Other processes write
    // too (the CLI's queue actions, a report's count catching up); a transaction that
    // read first would fail at once (SQLITE_BUSY_SNAPSHOT) when one of them committed
    // in between, where one that holds the lock from its start waits (busy_timeout).
    return this.db.transaction(fn).immediate();
  }

  private insertMessage(m: NewMessage): void {
    const staged = m.staged ?? { parts: 0, bytes: 0 };
    // Only a message that names staged parts has any (its queue id is new): the others skip the look.
    if (m.staged) {
      const found = this.stmt.stagedParts.get(m.queueId) as { parts: number; bytes: number; last: number };
      if (found.parts !== staged.parts || found.bytes !== staged.bytes || found.last !== staged.parts) {
        throw new Error(`${m.queueId}: ${staged.parts} staged part(s) of ${staged.bytes} bytes expected, ${found.parts} of ${found.bytes} found`);
      }
    }
    this.stmt.insertMessage.run({
      queueId: m.queueId,
      sender: m.sender,
      messageId: m.messageId,
      subject: m.subject,
      size: m.body.length + staged.bytes,
      receivedAt: m.receivedAt,
      clientIp: m.clientIp,
      authUser: m.authUser,
      envid: m.envid ?? null,
      origin: m.origin ?? null,
      campaign: m.campaign ?? null,
      custom: m.custom ?? null,
      requireTls: m.requireTls ? 1 : 0,
    });
    this.putPart(m.queueId, 0, m.body);
    m.recipients.forEach((rcpt, seq) => {
      const dsn = m.recipientDsn?.[seq];
      this.stmt.insertRecipient.run(m.queueId, seq, rcpt, domainOf(rcpt), m.receivedAt, dsn?.notify ?? null, dsn?.orcpt ?? null);
    });
    this.events.write(queuedEvents(m, domainOf));
  }

  async claim(opts: { owner: string; limit: number; leaseMs: number; now?: number }): Promise<QueueItem[]> {
    const now = opts.now ?? Date.now();
    return this.commit('normal', () => {
      const rows = this.stmt.claim.all({ owner: opts.owner, until: now + opts.leaseMs, now, limit: opts.limit }) as ClaimRow[];
      const metaCache = new Map<string, MessageRow | undefined>();
      const items: QueueItem[] = [];
      for (const row of rows) {
        if (!metaCache.has(row.queue_id)) metaCache.set(row.queue_id, this.stmt.messageMeta.get(row.queue_id) as MessageRow | undefined);
        const meta = metaCache.get(row.queue_id);
        if (!meta) continue;
        items.push({
          queueId: row.queue_id,
          seq: row.seq,
          recipient: row.recipient,
          domain: row.domain,
          sender: meta.sender,
          messageId: meta.message_id,
          subject: meta.subject,
          authUser: meta.auth_user,
          origin: meta.origin,
          size: meta.size,
          receivedAt: meta.received_at,
          attempt: row.attempts,
          dsn: { envid: meta.dsn_envid, notify: row.dsn_notify, orcpt: row.dsn_orcpt },
          requireTls: meta.require_tls === 1,
        });
      }
      return items;
    });
  }

  async readBody(queueId: string): Promise<Buffer | null> {
    const { parts, bytes } = this.stmt.bodySize.get(queueId) as { parts: number; bytes: number };
    if (parts === 0) return null;
    const rows = this.stmt.bodyParts.iterate(queueId) as IterableIterator<StoredPart & { part: number }>;
    if (parts === 1) {
      const row = rows.next().value!;
      rows.return?.();
      return this.bodies.open(queueId, row.part, row);
    }
    // One buffer of the exact size, filled part by part: never the parts and their concatenation at once.
    const body = Buffer.allocUnsafeSlow(bytes);
    let at = 0;
    for (const row of rows) at += this.bodies.open(queueId, row.part, row).copy(body, at);
    return body;
  }

  /** Writes one part of a body, sealed under the current key when store.encryption names one. */
  private putPart(queueId: string, part: number, data: Buffer): void {
    this.stmt.insertPart.run({ queueId, part, ...this.bodies.seal(queueId, part, data) });
  }

  async bodyKeysInUse(): Promise<{ keyId: string | null; parts: number }[]> {
    return this.stmt.bodyKeys.all() as { keyId: string | null; parts: number }[];
  }

  finish(records: readonly DeliveryRecord[], settlements: readonly Settlement[], bounces: readonly NewMessage[] = [], portalItems: readonly NewPortalItem[] = []): Promise<void> {
    // A portal item may be the only copy of its message once the message is settled: durable, as an enqueue.
    return this.write(bounces.length > 0 || portalItems.length > 0, () => {
      for (const item of portalItems) this.portal.insert(item);
      for (const r of records) {
        this.stmt.insertRecord.run({
          queueId: r.queueId,
          seq: r.seq,
          messageId: r.messageId,
          attempt: r.attempt,
          atMs: Date.parse(r.at),
          sender: r.sender,
          recipient: r.recipient,
          domain: r.domain,
          outcome: r.outcome,
          method: r.method,
          json: JSON.stringify(r),
          kind: 'attempt',
        });
        this.events.write(attemptEvents(r));
      }
      this.learn(records);
      const touched = new Set<string>();
      for (const s of settlements) {
        if (s.outcome === 'deferred') this.stmt.settleDeferred.run({ queueId: s.queueId, seq: s.seq, nextAttemptAt: s.nextAttemptAt, error: s.error });
        else this.stmt.settleFinal.run({ queueId: s.queueId, seq: s.seq, outcome: s.outcome, error: s.error });
        touched.add(s.queueId);
      }
      for (const m of bounces) this.insertMessage(m);
      for (const id of touched) this.stmt.deleteIfDone.run(id, id);
    });
  }

  /** One observation per domain and attempt (an attempt has one record per recipient). */
  private learn(records: readonly DeliveryRecord[]): void {
    const seen = new Set<string>();
    for (const r of records) {
      const key = `${r.domain}\0${r.queueId}\0${r.attempt}\0${r.mx?.host ?? ''}`;
      if (seen.has(key) || r.starttlsOffered === null) continue;
      seen.add(key);
      const at = Date.parse(r.at);
      const deliveredOverTls = r.outcome === 'delivered' && r.tls !== null;
      this.stmt.learnDomain.run({
        domain: r.domain,
        tls: deliveredOverTls ? at : null,
        offered: r.starttlsOffered ? at : null,
        notOffered: r.starttlsOffered ? null : at,
        at,
      });
    }
  }

  async getDomain(domain: string): Promise<DomainKnowledge | null> {
    const row = this.stmt.getDomain.get(domain.toLowerCase()) as DomainRow | undefined;
    return row ? toKnowledge(row) : null;
  }

  async listDomains(): Promise<DomainKnowledge[]> {
    return (this.stmt.listDomains.all() as DomainRow[]).map(toKnowledge);
  }

  async forgetDomain(domain: string): Promise<boolean> {
    return this.stmt.forgetDomain.run(domain.toLowerCase()).changes > 0;
  }

  async recordProbe(domain: string, o: { at: number; starttlsOffered: boolean; tlsOk: boolean }): Promise<void> {
    if (o.tlsOk && !o.starttlsOffered) throw new TypeError(`probe of ${domain}: a TLS handshake cannot succeed where STARTTLS was not offered`);
    this.commit('normal', () =>
      this.stmt.recordProbe.run({
        domain: domain.toLowerCase(),
        offered: o.starttlsOffered ? o.at : null,
        notOffered: o.starttlsOffered ? null : o.at,
        at: o.at,
        starttls: o.starttlsOffered ? 1 : 0,
        tlsOk: o.tlsOk ? 1 : 0,
      }),
    );
  }

  async getMtaStsPolicy(domain: string): Promise<string | null> {
    return (this.stmt.getMtaSts.get(domain.toLowerCase()) as string | undefined) ?? null;
  }

  async setMtaStsPolicy(domain: string, policyJson: string): Promise<void> {
    this.commit('normal', () => this.stmt.setMtaSts.run(domain.toLowerCase(), policyJson));
  }

  async putKey(key: RecipientKey): Promise<void> {
    const fingerprint = checkFingerprint(key.fingerprint);
    if (key.kind !== 'pgp' && key.kind !== 'smime') throw new TypeError(`key ${fingerprint}: kind must be pgp or smime, not ${String(key.kind)}`);
    const addresses = [...new Set(key.addresses.map((a) => {
      const normal = normaliseAddress(a);
      if (!normal) throw new TypeError(`key ${fingerprint}: "${a}" is not an email address`);
      return normal;
    }))];
    this.commit('normal', () => {
      this.stmt.putKey.run({
        fingerprint,
        kind: key.kind,
        addresses: JSON.stringify(addresses),
        data: key.data,
        label: key.label,
        createdAt: key.createdAt,
        expiresAt: key.expiresAt,
        revoked: key.revoked ? 1 : 0,
        unusable: key.unusable,
        source: key.source,
        importedAt: key.importedAt,
      });
      this.stmt.clearKeyAddresses.run(fingerprint);
      for (const address of addresses) this.stmt.addKeyAddress.run(address, fingerprint);
    });
  }

  async keysFor(address: string, kind?: KeyKind): Promise<RecipientKey[]> {
    const normal = normaliseAddress(address);
    if (!normal) return [];
    return (this.stmt.keysFor.all({ address: normal, kind: kind ?? null }) as KeyRow[]).map(toRecipientKey);
  }

  async listKeys(opts: { address?: string } = {}): Promise<RecipientKey[]> {
    if (opts.address !== undefined) return this.keysFor(opts.address);
    return (this.stmt.listKeys.all() as KeyRow[]).map(toRecipientKey);
  }

  async getKey(fingerprint: string): Promise<RecipientKey | null> {
    const row = this.stmt.getKey.get(fingerprint.trim().toUpperCase()) as KeyRow | undefined;
    return row ? toRecipientKey(row) : null;
  }

  async removeKey(fingerprint: string): Promise<boolean> {
    return this.commit('normal', () => this.stmt.removeKey.run(fingerprint.trim().toUpperCase()).changes > 0);
  }

  async getKeyLookup(address: string): Promise<KeyLookup | null> {
    const normal = normaliseAddress(address);
    const row = normal ? (this.stmt.getKeyLookup.get(normal) as KeyLookupRow | undefined) : undefined;
    return row ? { address: row.address, lookedUpAt: row.looked_up_at, found: row.found === 1, expiresAt: row.expires_at, error: row.error } : null;
  }

  async recordKeyLookup(lookup: KeyLookup): Promise<void> {
    const address = normaliseAddress(lookup.address);
    if (!address) throw new TypeError(`key lookup: "${lookup.address}" is not an email address`);
    this.commit('normal', () =>
      this.stmt.recordKeyLookup.run({ address, lookedUpAt: lookup.lookedUpAt, found: lookup.found ? 1 : 0, expiresAt: lookup.expiresAt, error: lookup.error }),
    );
  }

  async unclaim(items: readonly { queueId: string; seq: number }[]): Promise<void> {
    this.commit('normal', () => {
      for (const i of items) this.stmt.unclaim.run(i.queueId, i.seq);
    });
  }

  async renewLeases(owner: string, items: readonly { queueId: string; seq: number }[], leaseMs: number, now = Date.now()): Promise<number> {
    return this.commit('normal', () => items.reduce((n, i) => n + this.stmt.renewLease.run({ owner, queueId: i.queueId, seq: i.seq, until: now + leaseMs }).changes, 0));
  }

  async recoverInterrupted(): Promise<number> {
    // One relay process owns an SQLite queue, so every lease found at start is an orphan.
    // Freeing and counting commit together: a crash in between neither loses nor doubles the count.
    return this.commit('normal', () => {
      const freed = this.stmt.recover.run().changes;
      if (freed) this.stmt.countDuplicates.run(freed);
      // No DATA is in progress at start: parts without a message are from one that never finished.
      this.stmt.discardAllStaged.run();
      return freed;
    });
  }

  async nextDueAt(): Promise<number | null> {
    return (this.stmt.nextDue.get(Date.now()) as number | undefined) ?? null;
  }

  async listQueue(opts: { limit?: number; select?: QueueSelection } = {}): Promise<QueueEntry[]> {
    const rows = (opts.select ? this.selection.list(opts.select, opts.limit ?? -1, Date.now()) : this.stmt.listMessages.all(opts.limit ?? -1)) as MessageRow[];
    return rows.map((m) => this.toEntry(m));
  }

  async countQueue(select: QueueSelection): Promise<QueueCount> {
    return this.selection.count(select, Date.now());
  }

  async getQueueEntry(queueId: string): Promise<QueueEntry | null> {
    const m = this.stmt.messageMeta.get(queueId) as MessageRow | undefined;
    return m ? this.toEntry(m) : null;
  }

  private toEntry(m: MessageRow): QueueEntry {
    const now = Date.now();
    const recipients = (this.stmt.recipientsOf.all(m.queue_id) as RecipientRow[]).map((r) => ({
      seq: r.seq,
      recipient: r.recipient,
      state: r.state,
      attempts: r.attempts,
      nextAttemptAt: r.next_attempt_at,
      lastError: r.last_error,
      leasedUntil: r.lease_until > now ? r.lease_until : null,
    }));
    return { queueId: m.queue_id, sender: m.sender, messageId: m.message_id, size: m.size, receivedAt: m.received_at, recipients, ...(m.require_tls === 1 ? { requireTls: true } : {}) };
  }

  async hold(queueId: string, operator: string): Promise<number> {
    return this.operatorAction('hold', operator, () => this.stmt.hold.all(queueId) as ActedRow[]);
  }

  async releaseHold(queueId: string, operator: string): Promise<number> {
    return this.operatorAction('release', operator, (now) => this.stmt.releaseHold.all(now, queueId) as ActedRow[]);
  }

  async flush(queueId: string | null, operator: string): Promise<number> {
    return this.operatorAction('flush', operator, (now) =>
      (queueId === null ? this.stmt.flushAll.all(now, now) : this.stmt.flushOne.all(now, queueId, now)) as ActedRow[],
    );
  }

  async deleteEntry(queueId: string, operator: string): Promise<number> {
    return this.operatorAction('delete', operator, (_now, metaOf) => {
      // Read before the message and its recipients are gone: the records still name them.
      metaOf(queueId);
      const pending = this.stmt.pendingOf.all(queueId) as ActedRow[];
      return this.stmt.deleteMessage.run(queueId).changes ? pending : [];
    });
  }

  async actOnQueue(
    action: OperatorAction,
    select: QueueSelection,
    opts: { operator: string; limit: number; afterId?: string; audit?: Pick<AuditInput, 'actor' | 'action'> | null },
  ): Promise<QueueBatch> {
    if (!Number.isInteger(opts.limit) || opts.limit < 1) throw new TypeError(`queue ${action}: a batch is 1 message or more, not ${opts.limit}`);
    const acted: { queueId: string; recipients: number }[] = [];
    let selected: string[] = [];
    const recipients = this.operatorAction(action, opts.operator, (now, metaOf) => {
      // Only messages with something this action changes: a batch is never spent on the others.
      selected = this.selection.nextBatch({ ...select, changedBy: action }, opts.afterId ?? '', opts.limit, now);
      const change = this.selection.changer(action, select, now);
      return selected.flatMap((queueId) => {
        // Read before a delete removes the message: its records still name it.
        metaOf(queueId);
        const rows = change(queueId);
        if (!rows.length) return [];
        acted.push({ queueId, recipients: rows.length });
        if (opts.audit) this.audit.append({ ...opts.audit, at: now, target: fitField(queueId), detail: `${rows.length} recipients` });
        return rows;
      });
    });
    return { messages: acted.length, recipients, acted, resumeAfter: selected.length === opts.limit ? selected.at(-1)! : null };
  }

  /**
   * Makes an operator's change and writes an OperatorRecord for each recipient it
   * changed, in one transaction committed with a full fsync: once the command says
   * it is done, neither the change nor its trace can be lost. Returns how many changed.
   */
  private operatorAction(
    action: OperatorAction,
    operator: string,
    change: (now: number, metaOf: (queueId: string) => MessageRow | undefined) => ActedRow[],
  ): number {
    if (!operator.trim()) throw new TypeError(`queue ${action}: the operator who acts must be named`);
    const now = Date.now();
    const at = new Date(now).toISOString();
    return this.commit('full', () => {
      const meta = new Map<string, MessageRow | undefined>();
      const metaOf = (queueId: string) => {
        if (!meta.has(queueId)) meta.set(queueId, this.stmt.messageMeta.get(queueId) as MessageRow | undefined);
        return meta.get(queueId);
      };
      const changed = change(now, metaOf);
      for (const row of changed) {
        const m = metaOf(row.queue_id);
        const record: OperatorRecord = {
          kind: 'operator',
          queueId: row.queue_id,
          seq: row.seq,
          messageId: m?.message_id ?? null,
          at,
          sender: m?.sender ?? '',
          recipient: row.recipient,
          domain: row.domain,
          action,
          outcome: OPERATOR_OUTCOMES[action],
          operator,
          attemptsBefore: row.attempts,
        };
        this.stmt.insertRecord.run({
          queueId: record.queueId,
          seq: record.seq,
          messageId: record.messageId,
          // Not an attempt: no attempt number is taken (attempts count from 1).
          attempt: 0,
          atMs: now,
          sender: record.sender,
          recipient: record.recipient,
          domain: record.domain,
          outcome: record.outcome,
          method: 'none',
          json: JSON.stringify(record),
          kind: 'operator',
        });
      }
      return changed.length;
    });
  }

  async queueStats(): Promise<QueueStats> {
    return this.stmt.stats.get() as QueueStats;
  }

  async queryRecords(filter: RecordFilter): Promise<DeliveryRecord[]> {
    return this.selectRecords(filter, true) as DeliveryRecord[];
  }

  async queryLog(filter: RecordFilter): Promise<LogRecord[]> {
    return this.selectRecords(filter, false);
  }

  private selectRecords(filter: RecordFilter, attemptsOnly: boolean): LogRecord[] {
    const { where, params } = recordConditions(filter);
    if (attemptsOnly) where.push(`kind = 'attempt'`);
    params.limit = filter.limit ?? -1;
    // With a limit, the newest matches (what an operator wants), still returned oldest first.
    const sql = `SELECT json FROM records ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY at DESC, id DESC LIMIT @limit`;
    return (this.db.prepare(sql).pluck().all(params) as string[]).reverse().map((j) => JSON.parse(j) as LogRecord);
  }

  async logAfter(cursor: RecordCursor | null, filter: RecordFilter): Promise<{ records: LogRecord[]; cursor: RecordCursor }> {
    const { where, params } = recordConditions(filter);
    where.push('id > @cursor', 'id <= @end');
    // Rowids only grow (retention deletes old records but never the newest), so they are the write order. From the end
    // (null cursor) the newest `limit` are taken; after a cursor, everything written since.
    const limit = cursor === null ? (filter.limit ?? -1) : -1;
    const sql = `SELECT json FROM records WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT @limit`;
    // One read transaction: the records and the new cursor come from the same snapshot.
    return this.db.transaction(() => {
      const end = (this.stmt.lastRecordId.get() as number | null) ?? 0;
      const rows = this.db.prepare(sql).pluck().all({ ...params, cursor: cursor ?? 0, end, limit }) as string[];
      return { records: rows.reverse().map((j) => JSON.parse(j) as LogRecord), cursor: end };
    })();
  }

  putPortalItem(item: NewPortalItem): Promise<void> {
    return this.write(true, () => this.portal.insert(item));
  }

  async getPortalItem(id: string): Promise<PortalItem | null> {
    return this.portal.get(id);
  }

  async getPortalItemInfo(id: string): Promise<PortalItemInfo | null> {
    return this.portal.info(id);
  }

  async findPortalItem(tokenHash: Buffer): Promise<PortalItem | null> {
    return this.portal.find(tokenHash);
  }

  async findPortalItemHead(tokenHash: Buffer): Promise<PortalItemHead | null> {
    return this.portal.findHead(tokenHash);
  }

  async listPortalItems(opts: { message?: string; limit?: number } = {}): Promise<PortalItemInfo[]> {
    return this.portal.list(opts);
  }

  async recordPortalEvent(itemId: string, outcome: 'portal-viewed' | 'portal-opened' | 'portal-downloaded' | 'portal-replied', event: PortalEventInput): Promise<boolean> {
    return this.commit('full', () => {
      const found = this.portal.event(itemId, outcome, event);
      // Showing the message (or an attachment) is an access to message data: audited in the same transaction.
      const action = PORTAL_AUDIT_ACTIONS[outcome];
      const item = found && action ? this.portal.info(itemId) : null;
      if (item && action) {
        // What came from the web is fitted to the trail's fields, so an odd value never fails the open itself.
        this.audit.append({
          at: event.at,
          actor: { kind: 'recipient', name: fitField(item.recipient) },
          ip: event.ip ? fitField(event.ip, 64) : null,
          action,
          target: `portal item ${itemId} (${item.queueId}.${item.seq})`,
          detail: event.detail ? fitField(event.detail) : null,
        });
      }
      return found;
    });
  }

  async setPortalCode(itemId: string, code: PortalCode, event: PortalEventInput): Promise<SetCodeResult> {
    return this.commit('full', () => this.portal.setCode(itemId, code, event));
  }

  async checkPortalCode(itemId: string, hash: Buffer, opts: { lockMs: number; event: PortalEventInput }): Promise<CodeCheck> {
    return this.commit('full', () => this.portal.checkCode(itemId, hash, opts));
  }

  async recallPortalItems(message: string, operator: string, now = Date.now()): Promise<PortalItemInfo[]> {
    if (!operator.trim()) throw new TypeError('portal recall: the operator who acts must be named');
    return this.erasing(() => this.portal.recall(message, operator, now));
  }

  async expirePortalItems(now: number, limit: number): Promise<number> {
    return this.erasing(() => this.portal.expire(now, limit));
  }

  async portalKeysToRewrap(currentKeyId: string, limit: number, afterId = ''): Promise<WrappedItemKey[]> {
    return this.portal.keysToRewrap(currentKeyId, limit, afterId);
  }

  async rewrapPortalKeys(rewrapped: readonly (WrappedItemKey & { fromKeyId: string })[]): Promise<number> {
    return this.commit('full', () => this.portal.rewrap(rewrapped));
  }

  async listEvents(query: EventQuery): Promise<RelayEvent[]> {
    return this.events.list(query);
  }

  // reports (src/reporting/)
  async reportCounts(query: ReportCountsQuery): Promise<ReportCountsRow[]> {
    this.catchUpReports();
    return this.reports.query(query);
  }

  /**
   * Counts the events not counted yet, a bounded batch to a transaction so the
   * write lock is never held long. NORMAL commits: a batch lost to a power cut is
   * counted again from the mark, which commits with it.
   */
  private catchUpReports(): void {
    if (!this.reports.behind()) return;
    while (this.commit('normal', () => this.reports.catchUp(REPORT_BATCH)) === REPORT_BATCH);
  }

  // TLS reports (src/reporting/tlsrpt/)
  private tlsRptTable: TlsRptTable | null = null;
  /** Made on first use: its statements need schema 22, which the constructor has migrated to by then. */
  private get tlsReports(): TlsRptTable {
    return (this.tlsRptTable ??= new TlsRptTable(this.db));
  }

  async recordDomains(since: number, until: number): Promise<string[]> {
    return this.db.prepare(`SELECT DISTINCT domain FROM records WHERE at >= ? AND at < ? AND kind = 'attempt' AND domain != '' ORDER BY domain`).pluck().all(since, until) as string[];
  }

  async tlsReportDayDone(day: string): Promise<boolean> {
    return this.tlsReports.dayDone(day);
  }

  async saveTlsReports(day: string, reports: readonly NewTlsReport[], now: number, giveUpAt: number): Promise<void> {
    this.commit('full', () => this.tlsReports.saveDay(day, reports, now, giveUpAt));
  }

  async dueTlsReports(now: number, limit: number): Promise<DueTlsReport[]> {
    return this.tlsReports.due(now, limit);
  }

  async settleTlsReports(settlements: readonly TlsReportSettlement[]): Promise<void> {
    this.commit('full', () => this.tlsReports.settle(settlements));
  }

  async listTlsReports(opts: { domain?: string; limit?: number } = {}): Promise<TlsReportSend[]> {
    return this.tlsReports.list(opts);
  }

  // API tokens and idempotency (src/http/api/)
  private apiTokenTable: ApiTokenTable | null = null;
  /** Made on first use: its statements need schema 15, which the constructor has migrated to by then. */
  private get apiTokens(): ApiTokenTable {
    return (this.apiTokenTable ??= new ApiTokenTable(this.db));
  }

  async createApiToken(token: NewApiToken): Promise<void> {
    this.commit('full', () => this.apiTokens.insert(token));
  }

  async findApiToken(id: string): Promise<ApiToken | null> {
    return this.apiTokens.find(id);
  }

  async listApiTokens(): Promise<ApiTokenInfo[]> {
    return this.apiTokens.list();
  }

  async revokeApiToken(name: string, now: number): Promise<boolean> {
    return this.commit('full', () => this.apiTokens.revoke(name, now));
  }

  async touchApiToken(id: string, at: number): Promise<void> {
    this.commit('normal', () => this.apiTokens.touch(id, at));
  }

  async enqueueIdempotent(message: NewMessage, key: IdempotencyKey): Promise<IdempotentEnqueue> {
    if (!message.recipients.length) throw new TypeError('a message needs at least one recipient');
    // One transaction (better-sqlite3 runs it whole, and SQLite has one writer): a second
    // request with the key finds the first one's row, never a gap between look-up and write.
    return this.commit('full', () => {
      const previous = this.apiTokens.previous(key);
      if (previous) return previous;
      this.insertMessage(message);
      this.apiTokens.remember(key, message);
      return { result: 'queued' } as const;
    });
  }

  async pruneIdempotencyKeys(before: number): Promise<number> {
    return this.commit('normal', () => this.apiTokens.prune(before));
  }
  // retention (store/retention.ts)
  private retentionTable: RetentionTable | null = null;
  private get retention(): RetentionTable {
    return (this.retentionTable ??= new RetentionTable(this.db));
  }

  async pruneOld(kind: PruneKind, before: number, limit: number): Promise<number> {
    // A batch of its own, not part of a group commit: an enqueue never waits for a prune's
    // deletes. secure_delete: the freed pages are zeroed, so what was pruned (recipients,
    // subjects in events) is gone from the file too, not only from the tables.
    this.db.pragma('secure_delete = ON');
    try {
      return this.commit('normal', () => this.retention.prune(kind, before, limit));
    } finally {
      this.db.pragma('secure_delete = OFF');
    }
  }

  async countPrunable(kind: PruneKind, before: number): Promise<number> {
    return this.retention.count(kind, before);
  }
  // webhooks (src/events/webhooks/)
  copyWebhookEvents(endpoint: string, types: readonly EventType[] | null, limit: number, now = Date.now()): Promise<number> {
    return this.writeValue(() => this.webhooks.copy(endpoint, types, limit, now));
  }

  async claimWebhookDeliveries(endpoint: string, limit: number, leaseMs: number, now = Date.now()): Promise<WebhookDelivery[]> {
    return this.commit('normal', () => this.webhooks.claim(endpoint, limit, leaseMs, now));
  }

  settleWebhookDeliveries(settlements: readonly WebhookSettlement[]): Promise<void> {
    return this.write(false, () => settlements.forEach((s) => this.webhooks.settle(s)));
  }

  async recoverWebhookDeliveries(): Promise<number> {
    return this.commit('normal', () => this.webhooks.recover());
  }

  async replayWebhooks(endpoint: string, afterId: string, types: readonly EventType[] | null, limit: number, now = Date.now()): Promise<WebhookReplay & { resumeAfter: string | null }> {
    return this.commit('full', () => this.webhooks.replay(endpoint, afterId, types, limit, now));
  }

  async webhookStatus(): Promise<WebhookEndpointStatus[]> {
    return this.webhooks.status();
  }

  async troubledWebhookDeliveries(endpoint: string | null, limit: number): Promise<WebhookDeliveryInfo[]> {
    return this.webhooks.troubled(endpoint, limit);
  }

  pruneWebhookDeliveries(before: number): Promise<number> {
    return this.writeValue(() => this.webhooks.prune(before));
  }

  /** `write` (group commit, NORMAL) for a change whose result the caller needs. */
  private async writeValue<T>(fn: () => T): Promise<T> {
    let value!: T;
    await this.write(false, () => {
      value = fn();
    });
    return value;
  }
  // audit trail (src/events/audit/)
  async appendAudit(input: AuditInput): Promise<AuditEntry> {
    // Durably, alone: one entry, one chain link.
    return this.commit('full', () => this.audit.append(input));
  }

  async listAudit(query: AuditQuery): Promise<AuditEntry[]> {
    return this.audit.list(query);
  }
  // tracking, unsubscribes and suppressions (src/reporting/tracking/)
  async listSuppressions(filter: SuppressionFilter = {}): Promise<Suppression[]> {
    return this.suppressions.list(filter);
  }

  async addSuppression(s: { senderDomain: string; recipient: string; source: SuppressionSource; createdAt?: number }): Promise<boolean> {
    return this.commit('full', () => this.suppressions.add({ ...s, createdAt: s.createdAt ?? Date.now() }));
  }

  async removeSuppression(senderDomain: string, recipient: string): Promise<boolean> {
    return this.commit('full', () => this.suppressions.remove(senderDomain, recipient));
  }

  async suppressedAmong(senderDomain: string, recipients: readonly string[]): Promise<string[]> {
    return this.suppressions.among(senderDomain, recipients);
  }

  async trackedRecipient(queueId: string, seq: number): Promise<TrackedRecipient | null> {
    return this.suppressions.target(queueId, seq);
  }

  async recordTracking(queueId: string, seq: number, type: 'opened' | 'clicked', opts: { at?: number; automated: boolean }): Promise<boolean> {
    return this.commit('full', () => this.suppressions.observe(queueId, seq, type, opts.at ?? Date.now(), opts.automated));
  }

  async unsubscribe(queueId: string, seq: number, at = Date.now()): Promise<Unsubscribed | null> {
    return this.commit('full', () => this.suppressions.unsubscribe(queueId, seq, at));
  }


  /**
   * Runs an erasure (recall, expiry) with secure_delete on: the pages that held the
   * ciphertext and wrapped key are overwritten with zeros, not just freed, so the
   * database file (once checkpointed) no longer holds them for someone with a master key.
   */
  private erasing<T>(fn: () => T): T {
    this.db.pragma('secure_delete = ON');
    try {
      return this.commit('full', fn);
    } finally {
      this.db.pragma('secure_delete = OFF');
    }
  }

  async backup(path: string): Promise<void> {
    this.flushPending();
    await this.db.backup(path);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flushPending();
    if (this.reportTimer) clearInterval(this.reportTimer);
    // What this connection wrote is counted before it lets go (a CLI that queued mail with no relay running).
    if (this.events.written) this.catchUpReports();
    this.closed = true;
    this.db.close();
    await this.checkpointer?.stop();
  }
}

interface DomainRow {
  domain: string;
  tls_known_since: number | null;
  last_tls_at: number | null;
  last_starttls_at: number | null;
  last_no_starttls_at: number | null;
  last_attempt_at: number;
  attempts: number;
  last_probe_at: number | null;
  last_probe_starttls: number | null;
  last_probe_tls_ok: number | null;
}

function toKnowledge(r: DomainRow): DomainKnowledge {
  return {
    domain: r.domain,
    tlsKnownSince: r.tls_known_since,
    lastTlsAt: r.last_tls_at,
    lastStarttlsAt: r.last_starttls_at,
    lastNoStarttlsAt: r.last_no_starttls_at,
    lastAttemptAt: r.last_attempt_at,
    attempts: r.attempts,
    lastProbeAt: r.last_probe_at,
    lastProbeStarttlsOffered: r.last_probe_starttls === null ? null : r.last_probe_starttls === 1,
    lastProbeTlsOk: r.last_probe_tls_ok === null ? null : r.last_probe_tls_ok === 1,
  };
}

/** Fingerprints are hex; upper case is how they are stored and compared. */
function checkFingerprint(fingerprint: string): string {
  const upper = fingerprint.trim().toUpperCase();
  if (!/^[0-9A-F]+$/.test(upper)) throw new TypeError(`"${fingerprint}" is not a hex fingerprint`);
  return upper;
}

interface KeyRow {
  fingerprint: string;
  kind: KeyKind;
  addresses: string;
  data: string;
  label: string;
  created_at: number | null;
  expires_at: number | null;
  revoked: number;
  unusable: string | null;
  source: RecipientKey['source'];
  imported_at: number;
}

function toRecipientKey(r: KeyRow): RecipientKey {
  return {
    fingerprint: r.fingerprint,
    kind: r.kind,
    addresses: JSON.parse(r.addresses) as string[],
    data: r.data,
    label: r.label,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revoked: r.revoked === 1,
    unusable: r.unusable,
    source: r.source,
    importedAt: r.imported_at,
  };
}

interface KeyLookupRow {
  address: string;
  looked_up_at: number;
  found: number;
  expires_at: number;
  error: string | null;
}

/** The portal events that show message data, and the audit action each is. */
const PORTAL_AUDIT_ACTIONS: Partial<Record<string, 'portal.open' | 'portal.download'>> = { 'portal-opened': 'portal.open', 'portal-downloaded': 'portal.download' };

/** A recipient an operator action changed. */
interface ActedRow {
  queue_id: string;
  seq: number;
  recipient: string;
  domain: string;
  attempts: number;
}

interface ClaimRow extends ActedRow {
  dsn_notify: string | null;
  dsn_orcpt: string | null;
}

interface MessageRow {
  queue_id: string;
  sender: string;
  message_id: string | null;
  subject: string | null;
  auth_user: string | null;
  origin: MessageOrigin | null;
  size: number;
  received_at: number;
  dsn_envid: string | null;
  require_tls: number;
}

interface RecipientRow {
  seq: number;
  recipient: string;
  state: QueueEntry['recipients'][number]['state'];
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  lease_until: number;
}

/** The WHERE conditions of a RecordFilter (without its limit), and their parameters. */
function recordConditions(filter: RecordFilter): { where: string[]; params: Record<string, unknown> } {
  const where: string[] = [];
  const params: Record<string, unknown> = {};
  if (filter.message) {
    where.push('(queue_id = @message OR message_id = @message OR message_id = @bracketed)');
    params.message = filter.message;
    params.bracketed = filter.message.startsWith('<') ? filter.message : `<${filter.message}>`;
  }
  if (filter.recipient) {
    where.push('recipient = @recipient COLLATE NOCASE');
    params.recipient = filter.recipient;
  }
  if (filter.domain) {
    where.push('domain = @domain');
    params.domain = filter.domain.toLowerCase();
  }
  if (filter.outcome) {
    where.push('outcome = @outcome');
    params.outcome = filter.outcome;
  }
  if (filter.since !== undefined) {
    where.push('at >= @since');
    params.since = filter.since;
  }
  if (filter.until !== undefined) {
    where.push('at < @until');
    params.until = filter.until;
  }
  return { where, params };
}

// The Store: the only coupling between ingress and delivery (and the CLI).
// Ingress ends at a committed `enqueue`; delivery starts at `claim` and ends at
// `finish`. Every method is async so that SQLite and PostgreSQL share one contract;
// SQL and locking never leave the implementations.
import { domainToASCII } from 'node:url';
import type { DeliveryRecord, Outcome } from '../delivery/record.ts';
import type { EventQuery, EventType, RelayEvent } from '../events/event.ts';
import type { WebhookDelivery, WebhookDeliveryInfo, WebhookEndpointStatus, WebhookReplay, WebhookSettlement } from '../events/webhooks/outbox.ts';
import type { Suppression, SuppressionFilter, SuppressionSource, TrackedRecipient, Unsubscribed } from '../reporting/tracking/suppression.ts';
import type { AuditEntry, AuditInput, AuditQuery } from '../events/audit/entry.ts';
import type { ReportCountsQuery, ReportCountsRow } from '../reporting/counts.ts';
import type { DueTlsReport, NewTlsReport, TlsReportSend, TlsReportSettlement } from '../reporting/tlsrpt/state.ts';

export interface NewMessage {
  readonly queueId: string;
  /** Envelope sender; '' is the null sender (bounces). */
  readonly sender: string;
  readonly recipients: readonly string[];
  /**
   * The whole message as it will be sent, our Received header included — or, when
   * parts of it were staged while it arrived (`staged`), its head: the staged parts follow it.
   */
  readonly body: Buffer;
  /** Parts 1…`parts` written by stageBodyPart before this enqueue, `bytes` in all; absent: none. */
  readonly staged?: { readonly parts: number; readonly bytes: number };
  readonly messageId: string | null;
  /** Kept for reports; logged only when logging.log_subjects allows. */
  readonly subject: string | null;
  /** The campaign reports split by (reports.campaign_header, or the API's field); absent or null: none. */
  readonly campaign?: string | null;
  /** The value of reports.custom_header; absent or null: none. */
  readonly custom?: string | null;
  readonly clientIp: string | null;
  readonly authUser: string | null;
  /** ms since the epoch. */
  readonly receivedAt: number;
  /** RFC 3461 ENVID given on MAIL FROM (xtext decoded); absent or null: none. */
  readonly envid?: string | null;
  /** RFC 3461 NOTIFY and ORCPT per recipient, in `recipients` order; absent: none given. */
  readonly recipientDsn?: readonly RecipientDsn[];
  /** Mail the relay made itself for the portal; absent or null: submitted (SMTP, and bounces). */
  readonly origin?: MessageOrigin | null;
  /** REQUIRETLS (RFC 8689) given on MAIL FROM: verified TLS to a next hop that takes the demand on, or a bounce. Absent: false. */
  readonly requireTls?: boolean;
}

/**
 * Mail the portal makes, which policy decides apart (policy/decide.ts): the
 * notification of an item, a proof-of-address code, a recipient's secure reply.
 */
export const MESSAGE_ORIGINS = ['portal-notice', 'portal-code', 'portal-reply'] as const;
export type MessageOrigin = (typeof MESSAGE_ORIGINS)[number];

/** What the submitter asked of delivery status notifications for one recipient (RFC 3461 §4). */
export interface RecipientDsn {
  /** NOTIFY as given, upper case: "NEVER", or a comma list of SUCCESS, FAILURE, DELAY; null: not given. */
  readonly notify: string | null;
  /** ORCPT as given (xtext decoded), e.g. "rfc822;ann@example.org"; null: not given. */
  readonly orcpt: string | null;
}

/** The DSN parameters a claimed recipient carries, for the bounce the relay may make. */
export interface QueueItemDsn extends RecipientDsn {
  readonly envid: string | null;
}

/** One recipient of one message, claimed under a lease by one worker. */
export interface QueueItem {
  readonly queueId: string;
  readonly seq: number;
  readonly recipient: string;
  readonly domain: string;
  readonly sender: string;
  readonly messageId: string | null;
  readonly subject: string | null;
  readonly authUser: string | null;
  /** Mail the relay made for the portal; null: submitted. */
  readonly origin: MessageOrigin | null;
  readonly size: number;
  readonly receivedAt: number;
  /** This attempt's number, starting at 1. */
  readonly attempt: number;
  readonly dsn: QueueItemDsn;
  /** The message came with REQUIRETLS (RFC 8689); absent: false. */
  readonly requireTls?: boolean;
}

export type FinalOutcome = Exclude<Outcome, 'deferred'>;

export type Settlement =
  | { readonly queueId: string; readonly seq: number; readonly outcome: FinalOutcome; readonly error: string | null }
  | { readonly queueId: string; readonly seq: number; readonly outcome: 'deferred'; readonly error: string; readonly nextAttemptAt: number };

export type RecipientState = 'queued' | 'held' | FinalOutcome;

export interface QueueEntry {
  readonly queueId: string;
  readonly sender: string;
  readonly messageId: string | null;
  readonly size: number;
  readonly receivedAt: number;
  readonly recipients: readonly {
    readonly seq: number;
    readonly recipient: string;
    readonly state: RecipientState;
    readonly attempts: number;
    readonly nextAttemptAt: number;
    readonly lastError: string | null;
    /** Set while a worker holds the item. */
    readonly leasedUntil: number | null;
  }[];
  /** The message came with REQUIRETLS (RFC 8689); absent: false. */
  readonly requireTls?: boolean;
}

/** A position in the order records were written; opaque to callers. */
export type RecordCursor = number;

/** The operator's actions on the queue (`sealrelay queue ...`), and what each makes of a recipient. */
export type OperatorAction = 'delete' | 'hold' | 'release' | 'flush';
export const OPERATOR_OUTCOMES = { delete: 'deleted', hold: 'held', release: 'released', flush: 'flushed' } as const;
export type OperatorOutcome = (typeof OPERATOR_OUTCOMES)[OperatorAction];

/**
 * Where a waiting recipient is, as `sealrelay queue --state` selects it; like Postfix's
 * queues, each recipient is in exactly one: `queued` (not tried yet), `deferred` (tried,
 * waiting to be retried), `active` (a worker is trying it now), `held`.
 */
export const QUEUE_STATES = ['queued', 'deferred', 'active', 'held'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

/**
 * Which waiting recipients, and so which messages, an operator selects (`sealrelay
 * queue list|delete|hold|release|flush` with filters). Every field given must match;
 * none given selects every waiting recipient. Nothing in it is a pattern: ids,
 * addresses and domains are taken literally.
 */
export interface QueueSelection {
  /** One message by its exact queue id. */
  readonly queueId?: string;
  /** Messages whose queue id starts with this (literally: `%` and `_` are characters, not wildcards). */
  readonly idPrefix?: string;
  /** Recipients in any of these states. */
  readonly states?: readonly QueueState[];
  /** Recipients at this domain, exactly (any case; not its subdomains). */
  readonly domain?: string;
  /** Messages from this envelope sender (any case), from any address at this domain, or ('' address) with the null sender. */
  readonly sender?: { readonly address: string } | { readonly domain: string };
  /** Messages received before / after (ms since the epoch, both exclusive). */
  readonly receivedBefore?: number;
  readonly receivedAfter?: number;
  /** Only the recipients this action would change (hold: not held; release: held; flush: not yet due; delete: all). */
  readonly changedBy?: OperatorAction;
}

/** Matching messages and their matching waiting recipients. */
export interface QueueCount {
  readonly messages: number;
  readonly recipients: number;
}

/** One batch of a bulk operator action (`actOnQueue`): what it changed, and where to go on from. */
export interface QueueBatch extends QueueCount {
  /** The messages changed and how many recipients of each, in queue id order. */
  readonly acted: readonly { readonly queueId: string; readonly recipients: number }[];
  /** Pass as `afterId` for the next batch; null when the selection is exhausted. */
  readonly resumeAfter: string | null;
}

/** What every entry of the delivery log besides an attempt says of its recipient (for a portal event: the original recipient the item was made for). */
export interface LogEntryFacts {
  readonly queueId: string;
  readonly seq: number;
  readonly messageId: string | null;
  /** ISO 8601 time of the action or event. */
  readonly at: string;
  readonly sender: string;
  readonly recipient: string;
  readonly domain: string;
}

/**
 * The trace an operator action leaves, one per recipient it changed, written in the
 * transaction of the change. It is not an attempt: nothing was sent, so it has no
 * attempt number, MX, TLS or SMTP reply, never teaches domain knowledge, and
 * `queryRecords` (the attempts, what reports read) never returns it; the delivery
 * log (`queryLog`, `logAfter`) shows both.
 */
export interface OperatorRecord extends LogEntryFacts {
  readonly kind: 'operator';
  readonly action: OperatorAction;
  readonly outcome: OperatorOutcome;
  /** Who acted: the OS user that ran the command. */
  readonly operator: string;
  /** Attempts made before the action (none is counted for it). */
  readonly attemptsBefore: number;
}

/**
 * What happened to a portal item (portal/), each written as a PortalRecord in the
 * transaction of the fact. `portal-notified` is not here: it is the outcome of the
 * original recipient's attempt (a DeliveryRecord with method `portal`).
 */
export const PORTAL_OUTCOMES = [
  /** The landing page was fetched (a GET: may be a mail scanner, not the person). */
  'portal-viewed',
  'portal-code-sent',
  'portal-code-failed',
  /** Too many wrong codes: no code is accepted or sent until the lock ends. */
  'portal-locked',
  'portal-verified',
  /** The message was shown after proof of address: what reports count as opened. */
  'portal-opened',
  'portal-downloaded',
  'portal-replied',
  /** The ciphertext was deleted at expiry. */
  'portal-expired',
  /** An operator recalled the message: the ciphertext was deleted at once. */
  'portal-recalled',
] as const;
export type PortalOutcome = (typeof PORTAL_OUTCOMES)[number];
export const isPortalOutcome = (outcome: string): outcome is PortalOutcome => (PORTAL_OUTCOMES as readonly string[]).includes(outcome);

/**
 * The trace of a portal event for one item (one recipient of one message). Like an
 * OperatorRecord it is not an attempt: `queryRecords` never returns it, the delivery
 * log shows it. Never carries content, the token, the link key or a code.
 */
export interface PortalRecord extends LogEntryFacts {
  readonly kind: 'portal';
  readonly itemId: string;
  readonly outcome: PortalOutcome;
  /** Who asked, for events on the web side; null for the relay's own (expiry) and operators'. */
  readonly ip: string | null;
  readonly userAgent: string | null;
  /** The OS user, for an operator's act (recall); null otherwise. */
  readonly operator: string | null;
  /** A short, non-sensitive note ("possibly automated", "4 tries left", "attachment 2"); never content or names. */
  readonly detail: string | null;
}

/** What the caller of a portal event says about it; the store fills in the item's facts. */
export interface PortalEventInput {
  /** ms since the epoch; now when absent. */
  readonly at?: number;
  readonly ip?: string | null;
  readonly userAgent?: string | null;
  readonly operator?: string | null;
  readonly detail?: string | null;
}

/** One entry of the delivery log: an attempt's DeliveryRecord, an operator's action or a portal event. */
export type LogRecord = DeliveryRecord | OperatorRecord | PortalRecord;
export const isOperatorRecord = (r: LogRecord): r is OperatorRecord => (r as Partial<OperatorRecord>).kind === 'operator';
export const isPortalRecord = (r: LogRecord): r is PortalRecord => (r as Partial<PortalRecord>).kind === 'portal';
/** An attempt's record, as opposed to the traces operators and the portal leave beside them. */
export const isAttemptRecord = (r: LogRecord): r is DeliveryRecord => !isOperatorRecord(r) && !isPortalRecord(r);

export interface RecordFilter {
  /** Matches the queue id or the Message-ID header (with or without <>). */
  readonly message?: string;
  readonly recipient?: string;
  readonly domain?: string;
  /** An attempt's outcome, or (in the log) what an operator action made of the recipient, or a portal event. */
  readonly outcome?: Outcome | OperatorOutcome | PortalOutcome;
  /** ms since the epoch. */
  readonly since?: number;
  /** ms since the epoch, exclusive. */
  readonly until?: number;
  /** The newest `limit` matches (returned oldest first). */
  readonly limit?: number;
}

/** What the relay has learned about a recipient domain from its own deliveries. */
export interface DomainKnowledge {
  readonly domain: string;
  /** First delivery over TLS (ms since the epoch): from then on the domain is TLS-known. */
  readonly tlsKnownSince: number | null;
  readonly lastTlsAt: number | null;
  /** Last attempt whose MX advertised STARTTLS, and last whose MX did not. */
  readonly lastStarttlsAt: number | null;
  readonly lastNoStarttlsAt: number | null;
  readonly lastAttemptAt: number;
  readonly attempts: number;
  /** The last probe of the domain's MX (domains/prober.ts); null until one ran. */
  readonly lastProbeAt: number | null;
  /** Whether that probe's MX advertised STARTTLS; null until a probe ran (or, for a probe recorded before schema 6, when that can no longer be told). */
  readonly lastProbeStarttlsOffered: boolean | null;
  /** Whether that probe completed a TLS handshake meeting the floor (false also when STARTTLS was not offered); null until a probe ran. */
  readonly lastProbeTlsOk: boolean | null;
}

/**
 * What retention prunes (store/retention.ts): delivery log entries (attempts, operator
 * actions, portal events), events, and the metadata left of erased portal items.
 */
export const PRUNE_KINDS = ['records', 'events', 'portal-items'] as const;
export type PruneKind = (typeof PRUNE_KINDS)[number];

/** Totals of the whole queue. */
export interface QueueStats {
  readonly messages: number;
  /** Recipients still waiting (queued or held). */
  readonly recipients: number;
  readonly held: number;
  readonly bytes: number;
  /** When the oldest message still in the queue was received (ms since the epoch); null: the queue is empty. */
  readonly oldestReceivedAt: number | null;
  /**
   * Running total, never reset: recipients found mid-attempt when a run had died
   * (recoverInterrupted). Each was retried and may have been delivered twice.
   */
  readonly possibleDuplicates: number;
}

export type KeyKind = 'pgp' | 'smime';
/** The modes and fallback steps that are end-to-end encryption to a recipient's key. */
export const isKeyKind = (kind: string): kind is KeyKind => kind === 'pgp' || kind === 'smime';

/** A recipient's public key or certificate, as the key store holds it. */
export interface RecipientKey {
  /** OpenPGP: the primary key fingerprint (hex, upper case). S/MIME: SHA-256 of the certificate DER (hex, upper case). */
  readonly fingerprint: string;
  readonly kind: KeyKind;
  /** Every email address the key carries, normalised (trimmed, lower case; IDNA domain as A-label). */
  readonly addresses: readonly string[];
  /** Armored OpenPGP public key, or the PEM certificate. */
  readonly data: string;
  /** User ID / certificate subject, for display. */
  readonly label: string;
  readonly createdAt: number | null;
  /** When the key (or its only encryption subkey) stops being valid; null: never. ms since the epoch. */
  readonly expiresAt: number | null;
  readonly revoked: boolean;
  /** Why the key cannot encrypt (no encryption subkey, no keyEncipherment, unsupported algorithm); null when it can. */
  readonly unusable: string | null;
  /** How we got it: imported by an operator, or discovered (WKD). */
  readonly source: 'import' | 'wkd';
  readonly importedAt: number;
}

/** The last key discovery for an address (WKD): found or not, and until when the answer stands. */
export interface KeyLookup {
  readonly address: string;
  readonly lookedUpAt: number;
  readonly found: boolean;
  readonly expiresAt: number;
  readonly error: string | null;
}

/**
 * A portal item's content at rest, as portal/vault.ts seals it: the message under a
 * data key of its own (AES-256-GCM), the data key (or, with keyInLink, the server's
 * part of it) wrapped by the master key `keyId`. Opaque to the store.
 */
export interface SealedContent {
  readonly keyId: string;
  readonly wrapNonce: Buffer;
  /** The wrapped key and its GCM tag (tag last). */
  readonly wrappedKey: Buffer;
  readonly contentNonce: Buffer;
  /** The encrypted message and its GCM tag (tag last). */
  readonly content: Buffer;
  /** Part of the data key lives only in the link's #fragment: this store and the master keys cannot open the item alone. */
  readonly keyInLink: boolean;
}

/** What a portal item is made for: the recipient of a queued message, and its lifetime. */
export interface PortalItemFacts {
  /** The recipient item of the message it was made for: `${queueId}.${seq}`. */
  readonly queueId: string;
  readonly seq: number;
  readonly messageId: string | null;
  readonly sender: string;
  /** The original recipient the item was made for (whose address must be proved). */
  readonly recipient: string;
  /** ms since the epoch. */
  readonly createdAt: number;
  readonly expiresAt: number;
}

/** A portal item to store: made by portal/vault.ts `sealPortalItem`. */
export interface NewPortalItem extends PortalItemFacts {
  /** Random, unguessable; bound into the encryption as associated data. */
  readonly id: string;
  /** Bytes of the message before encryption (for operators; the ciphertext tells as much). */
  readonly size: number;
  /** SHA-256 of the link's lookup token; the token itself is never stored. */
  readonly tokenHash: Buffer;
  readonly sealed: SealedContent;
  /** The sender's passphrase for this item, hashed (portal/passphrase.ts); absent or null: none asked. */
  readonly passphraseHash?: Buffer | null;
}

/** readable: may be opened; expired / recalled: the ciphertext is gone or (past expiry, before the sweep) must be treated as gone. */
export type PortalItemState = 'readable' | 'expired' | 'recalled';

/** A portal item as operators see it (`sealrelay portal list|show`): no content, keys, token or code. */
export interface PortalItemInfo extends PortalItemFacts {
  readonly id: string;
  readonly recalledAt: number | null;
  /** When the ciphertext was deleted (by expiry or recall); null while it is kept. */
  readonly erasedAt: number | null;
  readonly size: number;
  readonly keyInLink: boolean;
  /** The master key its data key is wrapped with; null once erased. */
  readonly keyId: string | null;
  /** The end of the last proof-of-address lock (too many wrong codes; may be past); null when none since the last code. ms since the epoch. */
  readonly lockedUntil: number | null;
}

/** The one-time code of an item's proof of address (opaque hash: the web side hashes). */
export interface PortalCode {
  readonly hash: Buffer;
  /** ms since the epoch. */
  readonly expiresAt: number;
  readonly triesLeft: number;
}

/** A portal item whole, for the web side: what it needs to check a visitor and open the content. */
export interface PortalItem extends PortalItemInfo {
  readonly tokenHash: Buffer;
  /** The passphrase asked after the code, hashed (portal/passphrase.ts); null: none. */
  readonly passphraseHash: Buffer | null;
  /** null once erased (expiry, recall). */
  readonly sealed: SealedContent | null;
  /** The code last sent and not yet used up; null when none is pending. */
  readonly code: PortalCode | null;
}

/** A portal item without its ciphertext: what the pages need until one opens the message. */
export type PortalItemHead = Omit<PortalItem, 'sealed'>;

/** Whether an item may still be opened at `now`: expiry counts from expiresAt, before the sweep erases it. */
export function portalItemState(item: Pick<PortalItemInfo, 'recalledAt' | 'expiresAt' | 'erasedAt'>, now = Date.now()): PortalItemState {
  if (item.recalledAt !== null) return 'recalled';
  if (item.erasedAt !== null || item.expiresAt <= now) return 'expired';
  return 'readable';
}

/** What `setPortalCode` did: set a new code, or not because the item is locked (until when) or no longer readable. */
export type SetCodeResult = { readonly result: 'set' } | { readonly result: 'locked'; readonly until: number } | { readonly result: 'gone' };

/**
 * What `checkPortalCode` made of a code: right (the code is used up), wrong (tries
 * left), wrong for the last time or tried while locked (locked until), no code
 * pending (none sent, expired or used: send one), or the item is no longer readable.
 */
export type CodeCheck =
  | { readonly result: 'verified' }
  | { readonly result: 'wrong'; readonly triesLeft: number }
  | { readonly result: 'locked'; readonly until: number }
  | { readonly result: 'no-code' }
  | { readonly result: 'gone' };

/** An item's wrapped data key, to move to another master key (`sealrelay portal rewrap`). */
export interface WrappedItemKey {
  readonly id: string;
  readonly keyInLink: boolean;
  readonly keyId: string;
  readonly wrapNonce: Buffer;
  readonly wrappedKey: Buffer;
}

/**
 * What an API token may do: send mail, read the log and queue, act on the queue, or
 * only scrape /metrics (counts, never a recipient: what a monitoring system should hold).
 */
export const API_SCOPES = ['send', 'read', 'admin', 'metrics'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

/** An API token as operators see it (`sealrelay token list`): never its secret or hash. */
export interface ApiTokenInfo {
  /** Public id: the part of the token that finds it. */
  readonly id: string;
  readonly name: string;
  readonly scopes: readonly ApiScope[];
  /** ms since the epoch. */
  readonly createdAt: number;
  /** null: never expires. */
  readonly expiresAt: number | null;
  readonly revokedAt: number | null;
  readonly lastUsedAt: number | null;
}

/** A token to store: its secret only as SHA-256 (http/api/tokens.ts). */
export interface NewApiToken extends Omit<ApiTokenInfo, 'revokedAt' | 'lastUsedAt'> {
  readonly secretHash: Buffer;
}

export interface ApiToken extends ApiTokenInfo {
  readonly secretHash: Buffer;
}

/** An Idempotency-Key as sent with one POST, and what the request it names queued. */
export interface IdempotencyKey {
  readonly tokenId: string;
  readonly key: string;
  /** SHA-256 of the request (http/api/idempotency.ts): the same key with another request is refused. */
  readonly requestHash: Buffer;
  /** ms since the epoch. */
  readonly createdAt: number;
  /** A key written before this is forgotten (as if pruned) and may be used anew. */
  readonly expiredBefore: number;
}

/** queued: `message` was queued now; repeat: the key's first request had queued `queueId`. */
export type IdempotentEnqueue =
  | { readonly result: 'queued' }
  | { readonly result: 'repeat'; readonly queueId: string; readonly messageId: string | null; readonly requestHash: Buffer };

export interface Store {
  /**
   * Resolves only once message and envelope are durably committed. The store may
   * take the body's memory (the threaded store moves a large one to its thread
   * instead of copying it): the caller must not read `message.body` afterwards.
   */
  enqueue(message: NewMessage): Promise<void>;
  /**
   * Writes part `part` (1, 2, …) of a message still arriving, ahead of its enqueue, so
   * that ingress never holds a large message whole. A staged part is not durable by
   * itself: the enqueue that names it (NewMessage.staged) commits it with the message,
   * and fails if any part is missing. The store may take `data`'s memory, as enqueue does.
   */
  stageBodyPart(queueId: string, part: number, data: Buffer): Promise<void>;
  /** Forgets the parts staged for a message that will not be enqueued (refused, client gone). */
  discardStaged(queueId: string): Promise<void>;
  /** Takes up to `limit` due recipients under a lease; each claim counts as an attempt. */
  claim(opts: { owner: string; limit: number; leaseMs: number; now?: number }): Promise<QueueItem[]>;
  /** The message as queued, in one buffer (for a message still arriving: its staged parts so far). */
  readBody(queueId: string): Promise<Buffer | null>;
  /**
   * Ends attempts in one transaction: writes the records, learns from them what
   * each domain's MX offered (domain knowledge), settles the recipients, enqueues
   * any bounces (and other messages the relay makes, such as portal notifications),
   * stores any portal items, and removes messages with no recipient left to try. With
   * bounces or portal items the commit is durable (fsynced), as an enqueue is.
   */
  finish(records: readonly DeliveryRecord[], settlements: readonly Settlement[], bounces?: readonly NewMessage[], portalItems?: readonly NewPortalItem[]): Promise<void>;
  /** Gives claimed items back untouched (shutdown before they were tried). */
  unclaim(items: readonly { queueId: string; seq: number }[]): Promise<void>;
  /**
   * Extends the leases `owner` still holds on `items` to now + `leaseMs`: a job that
   * runs long (a large message, a slow host, a queue of sealed copies) keeps its work
   * from being claimed a second time. Returns how many leases were extended.
   */
  renewLeases(owner: string, items: readonly { queueId: string; seq: number }[], leaseMs: number, now?: number): Promise<number>;
  /**
   * At start: frees claims left by a previous run that died mid-attempt, so the work
   * is retried now rather than when the lease expires. A single-node store frees every
   * lease (no other worker can hold one); a shared store frees only expired ones.
   * Returns how many recipients were interrupted: each may be delivered twice, so the
   * same number is added to QueueStats.possibleDuplicates in the same transaction.
   * Parts staged for messages whose DATA the previous run never finished are dropped.
   */
  recoverInterrupted(): Promise<number>;
  /** Earliest time anything queued becomes due, or null when the queue is empty. */
  nextDueAt(): Promise<number | null>;

  /** Oldest first; with `select`, the messages with a waiting recipient it selects (each shown whole). */
  listQueue(opts?: { limit?: number; select?: QueueSelection }): Promise<QueueEntry[]>;
  /** How many messages and waiting recipients `select` selects (one indexed read; nothing loaded). */
  countQueue(select: QueueSelection): Promise<QueueCount>;
  getQueueEntry(queueId: string): Promise<QueueEntry | null>;
  /**
   * Operator actions, like postsuper. Each returns how many recipients it changed and,
   * in the same transaction, writes an OperatorRecord for each of them naming
   * `operator` (who acted; required, never empty).
   */
  hold(queueId: string, operator: string): Promise<number>;
  releaseHold(queueId: string, operator: string): Promise<number>;
  /** Makes waiting recipients due now: one message's, or (null) the whole queue's. */
  flush(queueId: string | null, operator: string): Promise<number>;
  /** Removes a message; its recipients still waiting are recorded as `deleted`. */
  deleteEntry(queueId: string, operator: string): Promise<number>;
  /**
   * One batch of a bulk action (`sealrelay queue delete ALL --state deferred`): in one
   * durable transaction, `action` on the recipients `select` picks of up to `limit`
   * messages after `afterId` (queue id order), an OperatorRecord for each recipient
   * changed and, with `audit`, an audit entry per message changed (target: its queue id;
   * detail: how many recipients), as the single-message actions leave. Call again from
   * `resumeAfter` until it is null: each batch holds the write lock briefly, and each
   * message is visited once. Deleting some of a message's recipients leaves the others
   * queued; the message goes when none is left waiting.
   */
  actOnQueue(
    action: OperatorAction,
    select: QueueSelection,
    opts: { operator: string; limit: number; afterId?: string; audit?: Pick<AuditInput, 'actor' | 'action'> | null },
  ): Promise<QueueBatch>;
  queueStats(): Promise<QueueStats>;

  /** The attempts' records (never an operator's action): what reports and evidence read. */
  queryRecords(filter: RecordFilter): Promise<DeliveryRecord[]>;
  /** The delivery log: attempts and operator actions together, by time. */
  queryLog(filter: RecordFilter): Promise<LogRecord[]>;
  /**
   * For following the log (attempts and operator actions): the matching records written
   * after `cursor`, in the order they were written, and the cursor to pass next time. A
   * null cursor starts at the end: the newest `filter.limit` matches (all without a
   * limit). A record written late for an early attempt is still seen once (the cursor
   * is write order, not `at`).
   */
  logAfter(cursor: RecordCursor | null, filter: RecordFilter): Promise<{ records: LogRecord[]; cursor: RecordCursor }>;

  /** Domain knowledge, learned in `finish` from the records of each attempt. */
  getDomain(domain: string): Promise<DomainKnowledge | null>;
  listDomains(): Promise<DomainKnowledge[]>;
  /** Forgets a domain (operator reset); false when it was not known. */
  forgetDomain(domain: string): Promise<boolean>;
  /**
   * What a probe saw of a domain's MX (domains/prober.ts): updates the last time
   * STARTTLS was or was not offered, and the last probe with its handshake result.
   * Never makes a domain TLS-known — only deliveries do — and does not count as an
   * attempt. Rejects tlsOk without starttlsOffered (no handshake without STARTTLS).
   */
  recordProbe(domain: string, observation: { at: number; starttlsOffered: boolean; tlsOk: boolean }): Promise<void>;
  /** The cached MTA-STS policy of a domain (opaque JSON owned by domains/mta-sts). */
  getMtaStsPolicy(domain: string): Promise<string | null>;
  setMtaStsPolicy(domain: string, policyJson: string): Promise<void>;

  /** Stores a recipient key, replacing any with the same fingerprint; its address index becomes key.addresses. */
  putKey(key: RecipientKey): Promise<void>;
  /** The keys carrying an address (normalised as in RecipientKey.addresses), newest first. */
  keysFor(address: string, kind?: KeyKind): Promise<RecipientKey[]>;
  /** Every stored key, or those carrying one address; ordered by address, newest first. */
  listKeys(opts?: { address?: string }): Promise<RecipientKey[]>;
  /** One key by its exact fingerprint (any case). */
  getKey(fingerprint: string): Promise<RecipientKey | null>;
  /** Forgets a key; false when there was none with that fingerprint. */
  removeKey(fingerprint: string): Promise<boolean>;
  /** The last key discovery for an address, or null when it was never looked up. */
  getKeyLookup(address: string): Promise<KeyLookup | null>;
  /** Replaces the last key discovery of lookup.address. */
  recordKeyLookup(lookup: KeyLookup): Promise<void>;

  /** Stores a portal item on its own, durably (delivery stores its items in `finish`). Fails on a duplicate id or token hash. */
  putPortalItem(item: NewPortalItem): Promise<void>;
  /** An item by id, whole (its sealed content while readable); null when there is none. */
  getPortalItem(id: string): Promise<PortalItem | null>;
  /** An item's metadata by id, as operators see it (content, keys and hashes are not read); null when there is none. */
  getPortalItemInfo(id: string): Promise<PortalItemInfo | null>;
  /** An item by the SHA-256 of its link's token; null when no item has it. */
  findPortalItem(tokenHash: Buffer): Promise<PortalItem | null>;
  /** The same without the ciphertext (a page that only needs the item's state reads no megabytes). */
  findPortalItemHead(tokenHash: Buffer): Promise<PortalItemHead | null>;
  /**
   * Items for operators, newest first, without content: all, or one message's
   * (`message`: queue id or Message-ID, with or without <>).
   */
  listPortalItems(opts?: { message?: string; limit?: number }): Promise<PortalItemInfo[]>;
  /**
   * Writes a PortalRecord of `outcome` for an item (viewed, opened, downloaded,
   * replied, …). The outcomes that change the item (code sent/failed, locked,
   * verified, expired, recalled) are written by the methods that change it. False
   * when there is no such item.
   */
  recordPortalEvent(itemId: string, outcome: 'portal-viewed' | 'portal-opened' | 'portal-downloaded' | 'portal-replied', event: PortalEventInput): Promise<boolean>;
  /**
   * Sets a new one-time code for a readable item that is not locked, replacing any
   * pending one, and records `portal-code-sent` in the same transaction.
   */
  setPortalCode(itemId: string, code: PortalCode, event: PortalEventInput): Promise<SetCodeResult>;
  /**
   * Checks a code's hash against the pending one in one transaction (two checks at
   * once cannot both use the last try). Right: the code is used up and
   * `portal-verified` recorded. Wrong: a try is used and `portal-code-failed`
   * recorded; the last try locks the item for `lockMs` (`portal-locked`) and drops the code.
   */
  checkPortalCode(itemId: string, hash: Buffer, opts: { lockMs: number; event: PortalEventInput }): Promise<CodeCheck>;
  /**
   * Makes every item of a message (queue id or Message-ID) unreadable at once: deletes
   * its ciphertext and wrapped key, keeps the metadata, and records `portal-recalled`
   * naming `operator` (required). Returns the items recalled (those not recalled before).
   */
  recallPortalItems(message: string, operator: string, now?: number): Promise<PortalItemInfo[]>;
  /**
   * Erases up to `limit` readable items past their expiry (ciphertext and wrapped key
   * deleted, metadata kept), recording `portal-expired` for each. Returns how many;
   * fewer than `limit` means none is left.
   */
  expirePortalItems(now: number, limit: number): Promise<number>;
  /**
   * Up to `limit` readable items whose data key is wrapped with another master key than
   * `currentKeyId`, in id order after `afterId` (a cursor past items that could not be
   * rewrapped; rewrapped ones no longer match, so a rerun resumes where one stopped).
   */
  portalKeysToRewrap(currentKeyId: string, limit: number, afterId?: string): Promise<WrappedItemKey[]>;
  /**
   * Replaces wrapped keys, each only if the item is still under `fromKeyId` and readable
   * (a recall or another rewrap in between wins). Returns how many were replaced.
   */
  rewrapPortalKeys(rewrapped: readonly (WrappedItemKey & { fromKeyId: string })[]): Promise<number>;

  /**
   * The events (events/event.ts), each written in the transaction of its fact: enqueue
   * (`queued` per recipient, bounces and portal mail queued by finish too), finish
   * (the outcome of each record, and `secured` when delivered by a secure method),
   * and the portal (opened, replied, recalled, expired). In id order, which is the
   * order they were written: pass the last id read as `afterId` to read on.
   */
  listEvents(query: EventQuery): Promise<RelayEvent[]>;

  // reports (src/reporting/)
  /**
   * What reports read (reporting/report.ts): per split value and time bucket, the
   * recipients counted from the events, each at most once per figure. One indexed read.
   */
  reportCounts(query: ReportCountsQuery): Promise<ReportCountsRow[]>;
  // TLS reports (src/reporting/tlsrpt/)
  /** The recipient domains with an attempt record in [since, until) (ms since the epoch), in order. */
  recordDomains(since: number, until: number): Promise<string[]>;
  /** Whether the reports of a UTC day ("YYYY-MM-DD") were made. */
  tlsReportDayDone(day: string): Promise<boolean>;
  /**
   * In one transaction: stores a day's reports (one per domain and day: a second is
   * ignored), each destination pending from `now` until `giveUpAt`, and marks the day done.
   */
  saveTlsReports(day: string, reports: readonly NewTlsReport[], now: number, giveUpAt: number): Promise<void>;
  /** Up to `limit` pending destinations due at `now`, earliest first, with their report. */
  dueTlsReports(now: number, limit: number): Promise<DueTlsReport[]>;
  /** Records what became of tries: sent, retry at nextAt, or failed (given up). */
  settleTlsReports(settlements: readonly TlsReportSettlement[]): Promise<void>;
  /** Every destination of the reports made (of one domain), newest day first. */
  listTlsReports(opts?: { domain?: string; limit?: number }): Promise<TlsReportSend[]>;
  // API tokens and idempotency (src/http/api/)
  /** Stores a new API token (http/api/tokens.ts makes it); fails when an unrevoked token has the same name. */
  createApiToken(token: NewApiToken): Promise<void>;
  /** A token by its public id, with its secret's hash; null when there is none. */
  findApiToken(id: string): Promise<ApiToken | null>;
  /** Every token, newest first, without secret hashes (revoked ones too: they are the trace of who could send). */
  listApiTokens(): Promise<ApiTokenInfo[]>;
  /** Revokes the unrevoked token named `name` at `now`; false when there is none. */
  revokeApiToken(name: string, now: number): Promise<boolean>;
  /** Notes a token's last use (bookkeeping, like a session's last seen: not state a GET must keep). */
  touchApiToken(id: string, at: number): Promise<void>;
  /**
   * Enqueues `message` unless `key` was used before by its token: in one durable
   * transaction the key is looked up and, when new (or older than `key.expiredBefore`),
   * written with the message, so that a crash leaves both or neither, and two requests
   * racing with one key queue one message. Returns what the key's first request queued.
   */
  enqueueIdempotent(message: NewMessage, key: IdempotencyKey): Promise<IdempotentEnqueue>;
  /** Forgets keys made before `before` (ms since the epoch); returns how many. */
  pruneIdempotencyKeys(before: number): Promise<number>;
  // retention (store/retention.ts)
  /**
   * Deletes, in one short transaction, up to `limit` of the oldest rows of `kind` dated
   * before `before` (ms since the epoch): records by `at`, events by `at`, portal items
   * by creation (only those already erased). Never a row of a message still in the queue
   * or of one whose portal item is still readable, never the newest record or event (ids
   * go on growing from them), never an event the report counts have not counted yet.
   * Returns how many; fewer than `limit`: none is left.
   */
  pruneOld(kind: PruneKind, before: number, limit: number): Promise<number>;
  /** How many rows `pruneOld` would delete (in all batches) for the same cutoff; changes nothing. */
  countPrunable(kind: PruneKind, before: number): Promise<number>;
  // webhooks (src/events/webhooks/)
  /**
   * The webhook outbox (events/webhooks/outbox.ts). In one transaction: reads up to
   * `limit` events after the endpoint's cursor, copies those of `types` (null: all) into
   * its deliveries and moves the cursor past every event read; an endpoint without a
   * cursor gets one at the current end of the events. Returns how many events were read.
   */
  copyWebhookEvents(endpoint: string, types: readonly EventType[] | null, limit: number, now?: number): Promise<number>;
  /** Takes up to `limit` due deliveries of an endpoint under a lease, each the earliest pending one of its message. */
  claimWebhookDeliveries(endpoint: string, limit: number, leaseMs: number, now?: number): Promise<WebhookDelivery[]>;
  /** Records what became of requests: delivered, retry at nextAt (pushing the message's later deliveries back with it), or failed. */
  settleWebhookDeliveries(settlements: readonly WebhookSettlement[]): Promise<void>;
  /** At start: frees the leases of requests a previous run left in flight; returns how many. */
  recoverWebhookDeliveries(): Promise<number>;
  /** One batch of `sealrelay webhooks replay` (WebhookTable.replay): call again from `resumeAfter` until it is null. */
  replayWebhooks(endpoint: string, afterId: string, types: readonly EventType[] | null, limit: number, now?: number): Promise<WebhookReplay & { resumeAfter: string | null }>;
  /** Every endpoint that ever had a cursor (configured or not any more), by name. */
  webhookStatus(): Promise<WebhookEndpointStatus[]>;
  /** Deliveries given up or failing, the latest first; of one endpoint or (null) all. */
  troubledWebhookDeliveries(endpoint: string | null, limit: number): Promise<WebhookDeliveryInfo[]>;
  /** Deletes delivered and failed deliveries settled before `before` (one batch each); returns how many. */
  pruneWebhookDeliveries(before: number): Promise<number>;
  // audit trail (src/events/audit/)
  /**
   * Appends an entry to the hash-chained audit trail (events/audit/entry.ts) and
   * returns it, committed durably. Appends are serialised (the previous hash is read
   * in the write transaction). There is no way to change or remove an entry.
   * Throws a TypeError naming the field when the input is not valid.
   */
  appendAudit(input: AuditInput): Promise<AuditEntry>;
  /** Entries in seq order (after `afterSeq`), filtered; exactly as stored, for `audit verify`. */
  listAudit(query: AuditQuery): Promise<AuditEntry[]>;
  // tracking, unsubscribes and suppressions (src/reporting/tracking/)
  /** Suppressions, newest first, optionally of one sender domain and/or one address. */
  listSuppressions(filter?: SuppressionFilter): Promise<Suppression[]>;
  /** Adds one (an operator's: source manual); false when it was there already. Throws a TypeError for a bad domain or address. */
  addSuppression(s: { senderDomain: string; recipient: string; source: SuppressionSource; createdAt?: number }): Promise<boolean>;
  /** False when there was none. Throws a TypeError for a bad domain or address. */
  removeSuppression(senderDomain: string, recipient: string): Promise<boolean>;
  /** Of `recipients`, those suppressed for mail from `senderDomain`. */
  suppressedAmong(senderDomain: string, recipients: readonly string[]): Promise<string[]>;
  /** The recipient (queueId, seq) names, from its `queued` event; null when unknown. */
  trackedRecipient(queueId: string, seq: number): Promise<TrackedRecipient | null>;
  /** Writes `opened` or `clicked` for that recipient; false when unknown. */
  recordTracking(queueId: string, seq: number, type: 'opened' | 'clicked', opts: { at?: number; automated: boolean }): Promise<boolean>;
  /** One-click unsubscribe of that recipient from its sender's domain, with its `unsubscribed` event; null when unknown. */
  unsubscribe(queueId: string, seq: number, at?: number): Promise<Unsubscribed | null>;

  /**
   * Writes a consistent copy of the whole store to `path` while the relay runs (the
   * SQLite online backup API: readers and writers go on). The copy is a store file
   * itself: restoring is putting it in place of store.path while the relay is stopped.
   */
  backup(path: string): Promise<void>;
  /** How many body parts are sealed under each key of store.encryption (null: stored before encryption was on). */
  bodyKeysInUse(): Promise<{ keyId: string | null; parts: number }[]>;
  close(): Promise<void>;
}

export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return (at < 0 ? '' : address.slice(at + 1)).toLowerCase();
}

/**
 * An email address as the key store indexes it: trimmed, lower case, the domain as
 * an IDNA A-label (RFC 5890), so that "Bob@Bücher.example" and
 * "bob@xn--bcher-kva.example" find the same keys. Null when it is not an address.
 */
export function normaliseAddress(address: string): string | null {
  const trimmed = address.trim().toLowerCase();
  const at = trimmed.lastIndexOf('@');
  if (at <= 0 || at === trimmed.length - 1 || /\s/.test(trimmed)) return null;
  const domain = domainToASCII(trimmed.slice(at + 1));
  return domain ? `${trimmed.slice(0, at)}@${domain}` : null;
}

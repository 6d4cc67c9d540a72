// The Store the relay uses on SQLite: SqliteStore running in a worker thread
// (store-worker.ts), so that fsyncs and checkpoints never block the event loop
// that serves SMTP sessions. Calls reach the worker in order; each resolves only
// when the worker has finished it — a write that joins the next group commit
// (`enqueue`, `finish`) after that commit, so a quick call made later may resolve first.
//
// The thread that opened the store owns it (open/close). Another thread — the
// delivery worker — reaches the same store thread over a port of its own
// (`connect()` here, `attach()` there), so its calls never pass through the
// ingress thread.
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { DeliveryRecord } from '../../delivery/record.ts';
import { siblingModule, tsxWorker } from '../../tsx-worker.ts';
import type { EventQuery, EventType, RelayEvent } from '../../events/event.ts';
import type { WebhookDelivery, WebhookDeliveryInfo, WebhookEndpointStatus, WebhookReplay, WebhookSettlement } from '../../events/webhooks/outbox.ts';
import type { Suppression, SuppressionFilter, SuppressionSource, TrackedRecipient, Unsubscribed } from '../../reporting/tracking/suppression.ts';
import type { AuditEntry, AuditInput, AuditQuery } from '../../events/audit/entry.ts';
import type { ReportCountsQuery, ReportCountsRow } from '../../reporting/counts.ts';
import type { DueTlsReport, NewTlsReport, TlsReportSend, TlsReportSettlement } from '../../reporting/tlsrpt/state.ts';
import type { Env } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import { lockStoreFile, type OwnerLock } from './owner-lock.ts';
import type { DomainKnowledge, KeyKind, KeyLookup, LogRecord, NewMessage, QueueEntry, QueueItem, QueueStats, RecipientKey, RecordCursor, RecordFilter, Settlement, Store } from '../store.ts';
import type { OperatorAction, QueueBatch, QueueCount, QueueSelection } from '../store.ts';
import type { CodeCheck, NewPortalItem, PortalCode, PortalEventInput, PortalItem, PortalItemHead, PortalItemInfo, SetCodeResult, WrappedItemKey } from '../store.ts';
import type { ApiToken, ApiTokenInfo, IdempotencyKey, IdempotentEnqueue, NewApiToken } from '../store.ts';
import type { PruneKind } from '../store.ts';

/**
 * What the store thread needs to load store.encryption's keys itself (key bytes never
 * travel between threads): the settings, and only the environment variables they name.
 */
export interface BodyKeySource {
  readonly encryption: Config['store']['encryption'];
  readonly env: Env;
}

export interface StoreWorkerData {
  readonly path: string;
  readonly bodyKeys: BodyKeySource | null;
}

/** The BodyKeySource of a config: its encryption settings and the variables they name. */
export function bodyKeySource(store: Config['store'], env: Env): BodyKeySource {
  const named = Object.fromEntries(store.encryption.keys.flatMap((k) => (k.env !== undefined ? [[k.env, env[k.env]]] : [])));
  return { encryption: store.encryption, env: named };
}

type Op = Exclude<keyof Store, never>;
export interface StoreRequest {
  id: number;
  op: Op;
  args: unknown[];
}
export interface StoreResponse {
  id: number;
  value?: unknown;
  /** `code`: SQLite's or the system's (SQLITE_FULL, ENOSPC…), so callers can tell a full disk from other failures. */
  error?: { name: string; message: string; code?: string };
}

const ENTRY = siblingModule('store-worker', import.meta.url);
/** After `close` was answered, how long the thread may take to end before it is terminated, in ms. */
const WORKER_EXIT_WAIT_MS = 1000;

export class ThreadedSqliteStore implements Store {
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private failure: Error | null = null;
  /** Held by the relay's store (owner-lock.ts) from open to close: one relay per store file. */
  private ownerLock: OwnerLock | null = null;

  private constructor(
    /** The store thread itself (owner), or a port to it (attached). */
    private readonly worker: Worker | MessagePort,
    onError: (message: string) => void,
  ) {
    worker.on('message', (res: StoreResponse & { log?: string }) => {
      if (res.log) return onError(res.log);
      const call = this.pending.get(res.id);
      if (!call) return;
      this.pending.delete(res.id);
      if (res.error) call.reject(Object.assign(new Error(res.error.message), { name: res.error.name, code: res.error.code }));
      else call.resolve(res.value);
    });
    const fail = (err: Error) => {
      this.failure = err;
      for (const call of this.pending.values()) call.reject(err);
      this.pending.clear();
    };
    if (worker instanceof Worker) {
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`store thread exited (code ${code})`)));
    } else {
      worker.on('close', () => fail(new Error('store port closed')));
    }
  }

  /** A client of the store thread behind `port` (from `connect()` on the owning thread). Its close() only lets go of the port. */
  static attach(port: MessagePort): ThreadedSqliteStore {
    return new ThreadedSqliteStore(port, () => undefined);
  }

  /** A new port to the store thread, to hand to another thread (transfer it) for `attach()`. */
  connect(): MessagePort {
    if (!(this.worker instanceof Worker)) throw new Error('only the thread that opened the store can connect others');
    const { port1, port2 } = new MessageChannel();
    this.worker.postMessage({ connect: port2 }, [port2]);
    return port1;
  }

  /**
   * Starts the thread and opens (and migrates) the database; rejects with the reason it could not.
   * `exclusive` (the relay's store): first takes the file's owner lock, refusing a second relay.
   */
  static async open(
    path: string,
    onBackgroundError: (message: string) => void = () => undefined,
    opts: { exclusive?: boolean; bodyKeys?: BodyKeySource } = {},
  ): Promise<ThreadedSqliteStore> {
    const lock = opts.exclusive ? lockStoreFile(path) : null;
    let store: ThreadedSqliteStore;
    try {
      store = await ThreadedSqliteStore.start(path, onBackgroundError, opts.bodyKeys ?? null);
    } catch (err) {
      lock?.release();
      throw err;
    }
    store.ownerLock = lock;
    return store;
  }

  private static async start(path: string, onBackgroundError: (message: string) => void, bodyKeys: BodyKeySource | null): Promise<ThreadedSqliteStore> {
    const worker = tsxWorker(ENTRY, { workerData: { path, bodyKeys } satisfies StoreWorkerData });
    let onMessage!: (m: { ready?: boolean; fatal?: string }) => void;
    let onError!: (err: Error) => void;
    let onExit!: (code: number) => void;
    try {
      await new Promise<void>((resolve, reject) => {
        onMessage = (m) => (m.ready ? resolve() : m.fatal ? reject(new Error(m.fatal)) : undefined);
        onError = reject;
        onExit = (code) => reject(new Error(`store thread exited during start (code ${code})`));
        worker.on('message', onMessage).on('error', onError).on('exit', onExit);
      });
    } catch (err) {
      await worker.terminate();
      throw err;
    } finally {
      // Only our own listeners: Worker keeps internal ones that must stay.
      worker.off('message', onMessage).off('error', onError).off('exit', onExit);
    }
    return new ThreadedSqliteStore(worker, onBackgroundError);
  }

  private call<T>(op: Op, ...args: unknown[]): Promise<T> {
    return this.callTransferring(op, args, []);
  }

  private callTransferring<T>(op: Op, args: unknown[], transfer: ArrayBuffer[]): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, op, args } satisfies StoreRequest, transfer);
    });
  }

  /** A large body's memory moves to the store thread instead of being copied (see Store.enqueue). */
  enqueue(message: NewMessage): Promise<void> {
    return this.callTransferring('enqueue', [message], transferable(message.body));
  }
  /** Each part's memory moves to the store thread, as a large body's does. */
  stageBodyPart(queueId: string, part: number, data: Buffer): Promise<void> {
    return this.callTransferring('stageBodyPart', [queueId, part, data], transferable(data));
  }
  discardStaged(queueId: string): Promise<void> {
    return this.call('discardStaged', queueId);
  }
  claim(opts: { owner: string; limit: number; leaseMs: number; now?: number }): Promise<QueueItem[]> {
    return this.call('claim', opts);
  }
  async readBody(queueId: string): Promise<Buffer | null> {
    // Buffers arrive as plain Uint8Arrays; wrap without copying.
    const body = await this.call<Uint8Array | null>('readBody', queueId);
    return body && Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  }
  finish(records: readonly DeliveryRecord[], settlements: readonly Settlement[], bounces: readonly NewMessage[] = [], portalItems: readonly NewPortalItem[] = []): Promise<void> {
    return this.call('finish', records, settlements, bounces, portalItems);
  }
  unclaim(items: readonly { queueId: string; seq: number }[]): Promise<void> {
    return this.call('unclaim', items);
  }
  renewLeases(owner: string, items: readonly { queueId: string; seq: number }[], leaseMs: number, now?: number): Promise<number> {
    return this.call('renewLeases', owner, items, leaseMs, now);
  }
  recoverInterrupted(): Promise<number> {
    return this.call('recoverInterrupted');
  }
  nextDueAt(): Promise<number | null> {
    return this.call('nextDueAt');
  }
  listQueue(opts?: { limit?: number; select?: QueueSelection }): Promise<QueueEntry[]> {
    return this.call('listQueue', opts);
  }
  countQueue(select: QueueSelection): Promise<QueueCount> {
    return this.call('countQueue', select);
  }
  getQueueEntry(queueId: string): Promise<QueueEntry | null> {
    return this.call('getQueueEntry', queueId);
  }
  hold(queueId: string, operator: string): Promise<number> {
    return this.call('hold', queueId, operator);
  }
  releaseHold(queueId: string, operator: string): Promise<number> {
    return this.call('releaseHold', queueId, operator);
  }
  flush(queueId: string | null, operator: string): Promise<number> {
    return this.call('flush', queueId, operator);
  }
  deleteEntry(queueId: string, operator: string): Promise<number> {
    return this.call('deleteEntry', queueId, operator);
  }
  actOnQueue(
    action: OperatorAction,
    select: QueueSelection,
    opts: { operator: string; limit: number; afterId?: string; audit?: Pick<AuditInput, 'actor' | 'action'> | null },
  ): Promise<QueueBatch> {
    return this.call('actOnQueue', action, select, opts);
  }
  queueStats(): Promise<QueueStats> {
    return this.call('queueStats');
  }
  queryRecords(filter: RecordFilter): Promise<DeliveryRecord[]> {
    return this.call('queryRecords', filter);
  }
  queryLog(filter: RecordFilter): Promise<LogRecord[]> {
    return this.call('queryLog', filter);
  }
  logAfter(cursor: RecordCursor | null, filter: RecordFilter): Promise<{ records: LogRecord[]; cursor: RecordCursor }> {
    return this.call('logAfter', cursor, filter);
  }
  getDomain(domain: string): Promise<DomainKnowledge | null> {
    return this.call('getDomain', domain);
  }
  listDomains(): Promise<DomainKnowledge[]> {
    return this.call('listDomains');
  }
  forgetDomain(domain: string): Promise<boolean> {
    return this.call('forgetDomain', domain);
  }
  recordProbe(domain: string, observation: { at: number; starttlsOffered: boolean; tlsOk: boolean }): Promise<void> {
    return this.call('recordProbe', domain, observation);
  }
  getMtaStsPolicy(domain: string): Promise<string | null> {
    return this.call('getMtaStsPolicy', domain);
  }
  setMtaStsPolicy(domain: string, policyJson: string): Promise<void> {
    return this.call('setMtaStsPolicy', domain, policyJson);
  }
  putKey(key: RecipientKey): Promise<void> {
    return this.call('putKey', key);
  }
  keysFor(address: string, kind?: KeyKind): Promise<RecipientKey[]> {
    return this.call('keysFor', address, kind);
  }
  listKeys(opts?: { address?: string }): Promise<RecipientKey[]> {
    return this.call('listKeys', opts);
  }
  getKey(fingerprint: string): Promise<RecipientKey | null> {
    return this.call('getKey', fingerprint);
  }
  removeKey(fingerprint: string): Promise<boolean> {
    return this.call('removeKey', fingerprint);
  }
  getKeyLookup(address: string): Promise<KeyLookup | null> {
    return this.call('getKeyLookup', address);
  }
  recordKeyLookup(lookup: KeyLookup): Promise<void> {
    return this.call('recordKeyLookup', lookup);
  }
  putPortalItem(item: NewPortalItem): Promise<void> {
    return this.call('putPortalItem', item);
  }
  async getPortalItem(id: string): Promise<PortalItem | null> {
    return portalItemBuffers(await this.call<PortalItem | null>('getPortalItem', id));
  }
  async findPortalItem(tokenHash: Buffer): Promise<PortalItem | null> {
    return portalItemBuffers(await this.call<PortalItem | null>('findPortalItem', tokenHash));
  }
  async findPortalItemHead(tokenHash: Buffer): Promise<PortalItemHead | null> {
    return portalHeadBuffers(await this.call<PortalItemHead | null>('findPortalItemHead', tokenHash));
  }
  getPortalItemInfo(id: string): Promise<PortalItemInfo | null> {
    return this.call('getPortalItemInfo', id);
  }
  listPortalItems(opts?: { message?: string; limit?: number }): Promise<PortalItemInfo[]> {
    return this.call('listPortalItems', opts);
  }
  recordPortalEvent(itemId: string, outcome: 'portal-viewed' | 'portal-opened' | 'portal-downloaded' | 'portal-replied', event: PortalEventInput): Promise<boolean> {
    return this.call('recordPortalEvent', itemId, outcome, event);
  }
  setPortalCode(itemId: string, code: PortalCode, event: PortalEventInput): Promise<SetCodeResult> {
    return this.call('setPortalCode', itemId, code, event);
  }
  checkPortalCode(itemId: string, hash: Buffer, opts: { lockMs: number; event: PortalEventInput }): Promise<CodeCheck> {
    return this.call('checkPortalCode', itemId, hash, opts);
  }
  recallPortalItems(message: string, operator: string, now?: number): Promise<PortalItemInfo[]> {
    return this.call('recallPortalItems', message, operator, now);
  }
  expirePortalItems(now: number, limit: number): Promise<number> {
    return this.call('expirePortalItems', now, limit);
  }
  async portalKeysToRewrap(currentKeyId: string, limit: number, afterId?: string): Promise<WrappedItemKey[]> {
    const keys = await this.call<WrappedItemKey[]>('portalKeysToRewrap', currentKeyId, limit, afterId);
    return keys.map((k) => ({ ...k, wrapNonce: asBuffer(k.wrapNonce), wrappedKey: asBuffer(k.wrappedKey) }));
  }
  rewrapPortalKeys(rewrapped: readonly (WrappedItemKey & { fromKeyId: string })[]): Promise<number> {
    return this.call('rewrapPortalKeys', rewrapped);
  }
  listEvents(query: EventQuery): Promise<RelayEvent[]> {
    return this.call('listEvents', query);
  }

  // reports (src/reporting/)
  reportCounts(query: ReportCountsQuery): Promise<ReportCountsRow[]> {
    return this.call('reportCounts', query);
  }
  // TLS reports (src/reporting/tlsrpt/)
  recordDomains(since: number, until: number): Promise<string[]> {
    return this.call('recordDomains', since, until);
  }
  tlsReportDayDone(day: string): Promise<boolean> {
    return this.call('tlsReportDayDone', day);
  }
  saveTlsReports(day: string, reports: readonly NewTlsReport[], now: number, giveUpAt: number): Promise<void> {
    return this.call('saveTlsReports', day, reports, now, giveUpAt);
  }
  dueTlsReports(now: number, limit: number): Promise<DueTlsReport[]> {
    return this.call('dueTlsReports', now, limit);
  }
  settleTlsReports(settlements: readonly TlsReportSettlement[]): Promise<void> {
    return this.call('settleTlsReports', settlements);
  }
  listTlsReports(opts?: { domain?: string; limit?: number }): Promise<TlsReportSend[]> {
    return this.call('listTlsReports', opts);
  }
  // API tokens and idempotency (src/http/api/)
  createApiToken(token: NewApiToken): Promise<void> {
    return this.call('createApiToken', token);
  }
  async findApiToken(id: string): Promise<ApiToken | null> {
    const token = await this.call<ApiToken | null>('findApiToken', id);
    return token && { ...token, secretHash: asBuffer(token.secretHash) };
  }
  listApiTokens(): Promise<ApiTokenInfo[]> {
    return this.call('listApiTokens');
  }
  revokeApiToken(name: string, now: number): Promise<boolean> {
    return this.call('revokeApiToken', name, now);
  }
  touchApiToken(id: string, at: number): Promise<void> {
    return this.call('touchApiToken', id, at);
  }
  /** The body moves to the store thread as enqueue's does. */
  async enqueueIdempotent(message: NewMessage, key: IdempotencyKey): Promise<IdempotentEnqueue> {
    const done = await this.callTransferring<IdempotentEnqueue>('enqueueIdempotent', [message, key], transferable(message.body));
    return done.result === 'repeat' ? { ...done, requestHash: asBuffer(done.requestHash) } : done;
  }
  pruneIdempotencyKeys(before: number): Promise<number> {
    return this.call('pruneIdempotencyKeys', before);
  }
  pruneOld(kind: PruneKind, before: number, limit: number): Promise<number> {
    return this.call('pruneOld', kind, before, limit);
  }
  countPrunable(kind: PruneKind, before: number): Promise<number> {
    return this.call('countPrunable', kind, before);
  }
  // webhooks (src/events/webhooks/)
  copyWebhookEvents(endpoint: string, types: readonly EventType[] | null, limit: number, now?: number): Promise<number> {
    return this.call('copyWebhookEvents', endpoint, types, limit, now);
  }
  claimWebhookDeliveries(endpoint: string, limit: number, leaseMs: number, now?: number): Promise<WebhookDelivery[]> {
    return this.call('claimWebhookDeliveries', endpoint, limit, leaseMs, now);
  }
  settleWebhookDeliveries(settlements: readonly WebhookSettlement[]): Promise<void> {
    return this.call('settleWebhookDeliveries', settlements);
  }
  recoverWebhookDeliveries(): Promise<number> {
    return this.call('recoverWebhookDeliveries');
  }
  replayWebhooks(endpoint: string, afterId: string, types: readonly EventType[] | null, limit: number, now?: number): Promise<WebhookReplay & { resumeAfter: string | null }> {
    return this.call('replayWebhooks', endpoint, afterId, types, limit, now);
  }
  webhookStatus(): Promise<WebhookEndpointStatus[]> {
    return this.call('webhookStatus');
  }
  troubledWebhookDeliveries(endpoint: string | null, limit: number): Promise<WebhookDeliveryInfo[]> {
    return this.call('troubledWebhookDeliveries', endpoint, limit);
  }
  pruneWebhookDeliveries(before: number): Promise<number> {
    return this.call('pruneWebhookDeliveries', before);
  }
  // audit trail (src/events/audit/)
  appendAudit(input: AuditInput): Promise<AuditEntry> {
    return this.call('appendAudit', input);
  }
  listAudit(query: AuditQuery): Promise<AuditEntry[]> {
    return this.call('listAudit', query);
  }
  // tracking, unsubscribes and suppressions (src/reporting/tracking/)
  listSuppressions(filter?: SuppressionFilter): Promise<Suppression[]> {
    return this.call('listSuppressions', filter);
  }
  addSuppression(s: { senderDomain: string; recipient: string; source: SuppressionSource; createdAt?: number }): Promise<boolean> {
    return this.call('addSuppression', s);
  }
  removeSuppression(senderDomain: string, recipient: string): Promise<boolean> {
    return this.call('removeSuppression', senderDomain, recipient);
  }
  suppressedAmong(senderDomain: string, recipients: readonly string[]): Promise<string[]> {
    return this.call('suppressedAmong', senderDomain, recipients);
  }
  trackedRecipient(queueId: string, seq: number): Promise<TrackedRecipient | null> {
    return this.call('trackedRecipient', queueId, seq);
  }
  recordTracking(queueId: string, seq: number, type: 'opened' | 'clicked', opts: { at?: number; automated: boolean }): Promise<boolean> {
    return this.call('recordTracking', queueId, seq, type, opts);
  }
  unsubscribe(queueId: string, seq: number, at?: number): Promise<Unsubscribed | null> {
    return this.call('unsubscribe', queueId, seq, at);
  }

  backup(path: string): Promise<void> {
    return this.call('backup', path);
  }
  bodyKeysInUse(): Promise<{ keyId: string | null; parts: number }[]> {
    return this.call('bodyKeysInUse');
  }
  async close(): Promise<void> {
    try {
      await this.closeThread();
    } finally {
      this.ownerLock?.release();
      this.ownerLock = null;
    }
  }

  private async closeThread(): Promise<void> {
    if (this.failure) return;
    const worker = this.worker;
    if (!(worker instanceof Worker)) {
      this.failure = new Error('store client closed');
      worker.close();
      return;
    }
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    await this.call('close');
    // The worker closes its port after answering and ends by itself; make sure it does.
    const timer = setTimeout(() => void worker.terminate(), WORKER_EXIT_WAIT_MS);
    await exited;
    clearTimeout(timer);
  }
}

/** Buffers cross threads as plain Uint8Arrays: wrapped again, without copying. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function portalHeadBuffers<T extends PortalItemHead>(item: T | null): T | null {
  if (!item) return null;
  return {
    ...item,
    tokenHash: asBuffer(item.tokenHash),
    passphraseHash: item.passphraseHash && asBuffer(item.passphraseHash),
    code: item.code && { ...item.code, hash: asBuffer(item.code.hash) },
  };
}

function portalItemBuffers(item: PortalItem | null): PortalItem | null {
  const head = portalHeadBuffers(item);
  if (!head) return null;
  const s = head.sealed;
  return { ...head, sealed: s && { ...s, wrapNonce: asBuffer(s.wrapNonce), wrappedKey: asBuffer(s.wrappedKey), contentNonce: asBuffer(s.contentNonce), content: asBuffer(s.content) } };
}

/** Bodies this large move between threads instead of being copied (a copy of each would be held twice at once). */
const TRANSFER_MIN_BYTES = 64 * 1024;
/** At most this much memory besides the body itself may move with it. */
const TRANSFER_MAX_SLACK = 4096;

/**
 * The memory to move with a large body: its ArrayBuffer, when the body has it to
 * itself (allocations this large never come from Node's shared pool; the slack
 * check keeps it so). Small bodies are copied: cheaper than a transfer.
 */
export function transferable(body: Uint8Array): ArrayBuffer[] {
  const buffer = body.buffer;
  if (!(buffer instanceof ArrayBuffer) || body.byteLength < TRANSFER_MIN_BYTES) return [];
  return buffer.byteLength - body.byteLength <= TRANSFER_MAX_SLACK ? [buffer] : [];
}

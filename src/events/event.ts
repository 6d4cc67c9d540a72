// The event model: one fact about one recipient of one message, written by the
// store in the same transaction as the fact itself (an outbox). Reports, webhooks,
// metrics and the dashboard read events; none keeps its own copy of the truth.
//
// An event carries the envelope and the fields a user filters on, never anything
// from the message itself (no subject, no body, no headers).
//
// Ids are time-ordered (like ULID): 48 bits of milliseconds and 80 random bits, as
// 32 lower-case hex digits, so that the order of the ids is the order events were
// written. A consumer (a webhook endpoint, a metrics reader) keeps one cursor — the
// last id it handled — and asks for what came after; the same id is what receivers
// deduplicate on. A purely random id would need a second column to page by. The
// store makes each new id greater than every id before it (`nextEventId`), so a
// clock that steps back, or many events in one millisecond, never reorder them.
import { randomBytes } from 'node:crypto';
import type { DeliveryRecord, Method } from '../delivery/record.ts';

export const EVENT_TYPES = [
  'queued',
  'delivered',
  'deferred',
  'bounced',
  'dropped',
  /** Delivered by any method but plaintext (the portal included), with the method. */
  'secured',
  'suppressed',
  'portal-notified',
  'portal-opened',
  'replied',
  'recalled',
  'expired',
  'opened',
  'clicked',
  'unsubscribed',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];
export const isEventType = (type: string): type is EventType => (EVENT_TYPES as readonly string[]).includes(type);

/** One event as the store hands it out. */
export interface RelayEvent {
  /** Time-ordered, unique: 32 hex digits (see the module comment). */
  readonly id: string;
  readonly queueId: string;
  readonly seq: number;
  /** When the fact happened, ms since the epoch (for an attempt: when it ended). */
  readonly at: number;
  readonly type: EventType;
  /** Envelope sender; '' for the null sender (bounces). */
  readonly sender: string;
  readonly recipient: string;
  /** The recipient's domain, lower case. */
  readonly domain: string;
  /** How the message travelled: set for delivered, secured and portal-notified; null otherwise. */
  readonly method: Method | null;
  /** The TLS version an attempt negotiated with the MX ("TLSv1.3", "TLSv1.2"); null: none (plaintext, not an attempt, never connected). */
  readonly tls: string | null;
  /** The message's campaign (reports.campaign_header, or the API's field); null: none. */
  readonly campaign: string | null;
  /** The value of the custom header named by reports.custom_header; null: none. */
  readonly custom: string | null;
  /** The message's subject, for reports split by subject; null: none. Never sent to webhooks. */
  readonly subject: string | null;
  /** An open or click made by a machine (an image proxy, a link scanner): left out of rates by default. */
  readonly automated: boolean;
}

/** The facts of the message an event belongs to: written with `queued`, copied by the store into every later event of it. */
export type MessageFacts = Pick<RelayEvent, 'campaign' | 'custom' | 'subject'>;

/** An event before the store gives it its id. Without the message facts, the store copies them from the message's `queued` event. */
export type NewEvent = Omit<RelayEvent, 'id' | keyof MessageFacts | 'automated' | 'tls'> & Partial<MessageFacts> & { readonly automated?: boolean; readonly tls?: string | null };

/** What `Store.listEvents` is asked: events after a cursor, in id order. */
export interface EventQuery {
  /** Only events written after this id (the last one the reader handled). */
  readonly afterId?: string;
  /** Only events whose fact happened at or after this time (ms since the epoch). */
  readonly since?: number;
  /** Only these types; absent: all. */
  readonly types?: readonly EventType[];
  /** At most this many (1 … MAX_EVENT_PAGE). */
  readonly limit: number;
}

export const MAX_EVENT_PAGE = 10_000;
const ID = /^[0-9a-f]{32}$/;

/** Checks a query from outside (API, CLI) before it reaches SQL; throws a TypeError naming what is wrong. */
export function checkEventQuery(q: EventQuery): EventQuery {
  if (!Number.isSafeInteger(q.limit) || q.limit < 1 || q.limit > MAX_EVENT_PAGE) {
    throw new TypeError(`events: limit must be a whole number from 1 to ${MAX_EVENT_PAGE}, not ${String(q.limit)}`);
  }
  if (q.afterId !== undefined && !ID.test(q.afterId)) throw new TypeError('events: afterId must be an event id (32 hex digits)');
  if (q.since !== undefined && !Number.isFinite(q.since)) throw new TypeError('events: since must be a time in ms');
  for (const type of q.types ?? []) {
    if (!isEventType(type)) throw new TypeError(`events: unknown type "${String(type)}"`);
  }
  return q;
}

const TIME_HEX = 12;
const RANDOM_HEX = 20;

/**
 * A new event id, written at `now`: greater than `last` (the greatest id written
 * before, or null). Normally the time and 80 random bits; when that would not sort
 * after `last` (same millisecond, or the clock stepped back), `last` plus one.
 */
export function nextEventId(last: string | null, now = Date.now()): string {
  const id = Math.max(0, Math.trunc(now)).toString(16).padStart(TIME_HEX, '0').slice(-TIME_HEX) + randomBytes(RANDOM_HEX / 2).toString('hex');
  if (last === null || id > last) return id;
  return (BigInt(`0x${last}`) + 1n).toString(16).padStart(TIME_HEX + RANDOM_HEX, '0');
}

/** The queue facts of a message's recipients, for its `queued` events. */
export function queuedEvents(
  m: { queueId: string; sender: string; recipients: readonly string[]; receivedAt: number; subject: string | null; campaign?: string | null; custom?: string | null },
  domainOf: (address: string) => string,
): NewEvent[] {
  return m.recipients.map((recipient, seq) => ({
    queueId: m.queueId,
    seq,
    at: m.receivedAt,
    type: 'queued',
    sender: m.sender,
    recipient,
    domain: domainOf(recipient),
    method: null,
    campaign: m.campaign ?? null,
    custom: m.custom ?? null,
    subject: m.subject,
  }));
}

/** Methods that are not plaintext: a message delivered (or handed to the portal) by one of them is `secured`. */
const SECURE_METHODS: ReadonlySet<Method> = new Set(['tls', 'pgp+tls', 'pgp', 'smime+tls', 'smime', 'portal']);

/** The events one attempt's record makes: its outcome, and `secured` when it was delivered by a secure method. */
export function attemptEvents(r: DeliveryRecord): NewEvent[] {
  const base = {
    queueId: r.queueId,
    seq: r.seq,
    at: Date.parse(r.at) + Math.max(0, r.durationMs || 0),
    sender: r.sender,
    recipient: r.recipient,
    domain: r.domain,
    tls: r.tls?.protocol ?? null,
  };
  const reached = r.outcome === 'delivered' || r.outcome === 'portal-notified';
  const events: NewEvent[] = [{ ...base, type: r.outcome, method: reached ? r.method : null }];
  if (reached && SECURE_METHODS.has(r.method)) events.push({ ...base, type: 'secured', method: r.method });
  return events;
}

/** The portal events (store.ts PortalOutcome) that are events too, and the type each becomes. */
export const PORTAL_EVENT_TYPES: Readonly<Partial<Record<string, EventType>>> = {
  'portal-opened': 'portal-opened',
  'portal-replied': 'replied',
  'portal-recalled': 'recalled',
  'portal-expired': 'expired',
};

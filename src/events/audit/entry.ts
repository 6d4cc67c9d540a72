// The audit trail: who read or changed what (DESIGN: "append-only and
// hash-chained"). Every access to message data — CLI reads that show recipients,
// API requests, portal opens, key imports, queue changes, config reloads — is one
// entry: when, who (actor kind and name, IP), the action, its target and a short
// detail. No field ever takes message content: a target is an id, a fingerprint or
// a route; a detail is a count or a note a few words long.
//
// The chain: entry n carries the hash of entry n-1 (`prev`; the first carries
// GENESIS) and its own `hash` = SHA-256 over the RFC 8785 (JCS) canonical form of
// every field, `prev` and its seq included — so editing any field, deleting,
// inserting or reordering entries breaks the chain at that seq (verify.ts). What a
// chain cannot tell by itself is that its newest entries were cut off, or that the
// whole table was rewritten with fresh hashes by someone who can write the file:
// the head (seq and hash) that `sealrelay audit verify` prints, kept elsewhere,
// and given back as --expect-head, catches both.
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/** Whose act it was: a person at the console, an API token, a portal recipient, or the relay itself. */
export const ACTOR_KINDS = ['os-user', 'token', 'recipient', 'relay'] as const;
export type ActorKind = (typeof ACTOR_KINDS)[number];

export const AUDIT_ACTIONS = [
  /** `sealrelay log`, or the log read through the API. */
  'log.read',
  /** `sealrelay queue list|show`. */
  'queue.read',
  'queue.hold',
  'queue.release',
  'queue.flush',
  'queue.delete',
  /** `sealrelay evidence show`. */
  'evidence.read',
  /** `sealrelay portal list|show`. */
  'portal.read',
  /** A recipient was shown a portal message (after proof of address). */
  'portal.open',
  'portal.download',
  'portal.recall',
  'key.import',
  'key.remove',
  /** The config (policy included) was re-read by a running relay. */
  'policy.reload',
  'report.download',
  /** `sealrelay suppression list|add|remove`: who may not be mailed, and by whose hand. */
  'suppression.read',
  'suppression.add',
  'suppression.remove',
  /** `sealrelay webhooks replay`: events sent to an endpoint again. */
  'webhooks.replay',
  /** A request to the API (src/http/api/), recorded when it was answered. */
  'api.request',
  /** The audit trail itself was read or exported. */
  'audit.read',
  /** Retention deleted old delivery records, events or portal items (`sealrelay store prune`, or the relay's own run): how many of each. */
  'store.prune',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];
export const isAuditAction = (action: string): action is AuditAction => (AUDIT_ACTIONS as readonly string[]).includes(action);

/** The `prev` of the first entry. */
export const GENESIS = '0'.repeat(64);
/** Longest actor name, target or detail, in characters: short facts, never content. */
const MAX_FIELD = 256;
const MAX_IP = 64;
/** The version of the hashed form; changing what is hashed means a new one. */
const HASH_VERSION = 1;

/** What a caller records. */
export interface AuditInput {
  /** ms since the epoch; now when absent. */
  readonly at?: number;
  readonly actor: { readonly kind: ActorKind; readonly name: string };
  readonly ip?: string | null;
  readonly action: AuditAction;
  /** What was acted on: a queue id, a key fingerprint, a route, a filter. */
  readonly target?: string | null;
  /** A short note: a count, a status; never content. */
  readonly detail?: string | null;
}

/** An entry as stored. */
export interface AuditEntry {
  /** 1, 2, 3, … without gaps. */
  readonly seq: number;
  readonly at: number;
  readonly actorKind: ActorKind;
  readonly actorName: string;
  readonly ip: string | null;
  readonly action: AuditAction;
  readonly target: string | null;
  readonly detail: string | null;
  /** The hash of entry seq-1 (GENESIS for the first). */
  readonly prev: string;
  /** Hex SHA-256 of the canonical form of this entry (`entryHash`). */
  readonly hash: string;
}

/** What `Store.listAudit` is asked: entries in seq order, after a cursor. */
export interface AuditQuery {
  readonly afterSeq?: number;
  /** ms since the epoch. */
  readonly since?: number;
  /** Exact actor name (an OS user, a token name, a recipient address). */
  readonly actor?: string;
  readonly action?: AuditAction;
  readonly limit: number;
}

export const MAX_AUDIT_PAGE = 10_000;

/** Checks what a caller records; throws a TypeError naming the field. Returns it with `at` filled in. */
export function checkAuditInput(input: AuditInput, now = Date.now()): Required<AuditInput> {
  const at = input.at ?? now;
  if (!Number.isSafeInteger(at) || at < 0) throw new TypeError(`audit: at must be a time in ms, not ${String(at)}`);
  if (!(ACTOR_KINDS as readonly string[]).includes(input.actor?.kind)) throw new TypeError(`audit: unknown actor kind "${String(input.actor?.kind)}"`);
  if (!isAuditAction(input.action)) throw new TypeError(`audit: unknown action "${String(input.action)}"`);
  const text = (name: string, value: string | null | undefined, max: number, required = false): string | null => {
    if (value === undefined || value === null) {
      if (required) throw new TypeError(`audit: ${name} is required`);
      return null;
    }
    if (typeof value !== 'string' || (required && !value.trim())) throw new TypeError(`audit: ${name} must be a non-empty string`);
    if (value.length > max) throw new TypeError(`audit: ${name} is longer than ${max} characters`);
    // One line each: an entry printed in a table or a CSV cannot forge another.
    if (/\p{Cc}/u.test(value)) throw new TypeError(`audit: ${name} has control characters`);
    return value;
  };
  return {
    at,
    actor: { kind: input.actor.kind, name: text('actor name', input.actor.name, MAX_FIELD, true)! },
    ip: text('ip', input.ip, MAX_IP),
    action: input.action,
    target: text('target', input.target, MAX_FIELD),
    detail: text('detail', input.detail, MAX_FIELD),
  };
}

/** Makes a value fit a field: one line, at most `max` characters (for callers recording what came from outside). */
export function fitField(value: string, max = MAX_FIELD): string {
  const flat = value.replace(/\p{Cc}+/gu, ' ');
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/** The hash of an entry: SHA-256 over the JCS form of every field but `hash`, `prev` and `seq` included. */
export function entryHash(e: Omit<AuditEntry, 'hash'>): string {
  const form = canonicalize({
    v: HASH_VERSION,
    seq: e.seq,
    at: e.at,
    actor: { kind: e.actorKind, name: e.actorName },
    ip: e.ip,
    action: e.action,
    target: e.target,
    detail: e.detail,
    prev: e.prev,
  });
  if (form === undefined) throw new TypeError('audit: entry cannot be canonicalised');
  return createHash('sha256').update(form, 'utf8').digest('hex');
}

/** The entry that follows `last` (null: the first). */
export function chainEntry(last: Pick<AuditEntry, 'seq' | 'hash'> | null, input: Required<AuditInput>): AuditEntry {
  const unhashed = {
    seq: (last?.seq ?? 0) + 1,
    at: input.at,
    actorKind: input.actor.kind,
    actorName: input.actor.name,
    ip: input.ip,
    action: input.action,
    target: input.target,
    detail: input.detail,
    prev: last?.hash ?? GENESIS,
  };
  return { ...unhashed, hash: entryHash(unhashed) };
}

/** Checks a query from outside (API, CLI) before it reaches SQL. */
export function checkAuditQuery(q: AuditQuery): AuditQuery {
  if (!Number.isSafeInteger(q.limit) || q.limit < 1 || q.limit > MAX_AUDIT_PAGE) throw new TypeError(`audit: limit must be a whole number from 1 to ${MAX_AUDIT_PAGE}`);
  if (q.afterSeq !== undefined && (!Number.isSafeInteger(q.afterSeq) || q.afterSeq < 0)) throw new TypeError('audit: afterSeq must be a whole number');
  if (q.since !== undefined && !Number.isFinite(q.since)) throw new TypeError('audit: since must be a time in ms');
  if (q.action !== undefined && !isAuditAction(q.action)) throw new TypeError(`audit: unknown action "${String(q.action)}"`);
  if (q.actor !== undefined && typeof q.actor !== 'string') throw new TypeError('audit: actor must be a string');
  return q;
}

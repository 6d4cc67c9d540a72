// The audit entry of one API request, for the API (src/http/api/) to record from a
// fastify onResponse hook: which token (its name or id — never the secret), from
// where, which route, and the answer's status. The route is the route's pattern
// plus, as the target, what it named (a queue id, a report), never a query string
// or a body. It takes src/http/api/context.ts ApiRequestRecord as it is (the API's
// `onRequestDone`). Values from outside are fitted to the trail's fields (one line,
// bounded), so a hostile path or header can neither fail the entry nor forge another.
import type { Store } from '../../store/store.ts';
import { fitField, type AuditAction, type AuditEntry } from './entry.ts';

export interface ApiRequestFacts {
  /** The token's name or id as the API knows it; null: no valid token (the entry then records the refusal). */
  readonly token: string | null;
  readonly ip: string | null;
  /** HTTP method. */
  readonly method: string;
  /** The route pattern ("/api/v1/messages/:id"), not the raw URL; null: no route matched (a 404). */
  readonly route: string | null;
  readonly status: number;
  /** What the request named (a queue id, a key fingerprint); absent: the route is the target. */
  readonly target?: string | null;
  /** A more telling action than `api.request` (`log.read`, `report.download`, `queue.hold`, …). */
  readonly action?: AuditAction;
  /** ms since the epoch; now when absent. */
  readonly at?: number;
}

/** Appends the request's entry; resolves with it once it is committed. */
export function auditRequest(store: Pick<Store, 'appendAudit'>, facts: ApiRequestFacts): Promise<AuditEntry> {
  const route = `${fitField(facts.method, 16)} ${facts.route === null ? '(no route)' : fitField(facts.route, 200)}`;
  return store.appendAudit({
    at: facts.at,
    actor: { kind: 'token', name: facts.token === null ? '(none)' : fitField(facts.token) },
    ip: facts.ip === null ? null : fitField(facts.ip, 64),
    action: facts.action ?? 'api.request',
    target: facts.target ? fitField(facts.target) : route,
    detail: facts.target ? `${route} → ${facts.status}` : `→ ${facts.status}`,
  });
}

// What each operator action on the queue leaves besides its operator records: the
// log event on stderr and the audit action (single-message and bulk alike).
import type { AuditAction } from '../events/audit/entry.ts';
import type { LogEvent } from '../log.ts';
import type { OperatorAction } from '../store/store.ts';

/** The log event of each operator action. */
export const ACTION_EVENTS = {
  delete: 'queue.deleted',
  hold: 'queue.held',
  release: 'queue.released',
  flush: 'queue.flushed',
} as const satisfies Record<OperatorAction, LogEvent>;

/** The audit action of each operator action. */
export const AUDIT_ACTIONS = {
  delete: 'queue.delete',
  hold: 'queue.hold',
  release: 'queue.release',
  flush: 'queue.flush',
} as const satisfies Record<OperatorAction, AuditAction>;

/** What each action did, as its answer says it: "deleted 3 recipients of 2 messages". */
export const ACTION_PAST = { delete: 'deleted', hold: 'held', release: 'released', flush: 'flushed' } as const satisfies Record<OperatorAction, string>;

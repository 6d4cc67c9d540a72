// Who runs a command — the OS user, named in operator records and the audit trail —
// and the audit entry a command leaves when it shows or changes message data
// (events/audit/entry.ts). The entry is written before the command prints its
// answer: a read that could not be recorded shows nothing.
import { userInfo } from 'node:os';
import { fitField, type AuditAction } from '../events/audit/entry.ts';
import type { Store } from '../store/store.ts';

/** The OS user running the command; the uid where the system has no name for it (a container's arbitrary uid). */
export function currentOperator(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? 'unknown'}`;
  }
}

/** Records that the OS user running this command did `action` on `target` (`detail`: a count, never content). */
export async function auditCommand(store: Store, action: AuditAction, target: string | null, detail: string | null = null): Promise<void> {
  await store.appendAudit({
    actor: { kind: 'os-user', name: fitField(currentOperator()) },
    action,
    target: target === null ? null : fitField(target),
    detail: detail === null ? null : fitField(detail),
  });
}

/** A filter as the audit trail names it: "recipient=bob@example.org since=…", or "all". */
export function describeFilter(filter: object): string {
  const parts = Object.entries(filter)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}=${k === 'since' && typeof v === 'number' ? new Date(v).toISOString() : String(v)}`);
  return parts.length ? parts.join(' ') : 'all';
}

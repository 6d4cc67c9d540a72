// Which of a recipient's keys to encrypt to: one that works today, and of those the
// newest, because a recipient who made a new key wants mail under it (the old one
// may already be on its way out). Judging a stored key needs no crypto library.
import type { KeyKind, RecipientKey } from '../store/store.ts';

/** The newest key of `kind` that is neither expired, revoked, nor unusable at `now`; null when there is none. */
export function chooseKey(keys: readonly RecipientKey[], kind: KeyKind, now: number): RecipientKey | null {
  const usable = keys.filter((k) => k.kind === kind && keyProblem(k, now) === null);
  // Unknown creation sorts last; equal ones go to the latest imported.
  usable.sort((a, b) => (b.createdAt ?? Number.MIN_SAFE_INTEGER) - (a.createdAt ?? Number.MIN_SAFE_INTEGER) || b.importedAt - a.importedAt);
  return usable[0] ?? null;
}

/** A one-line verdict: null when the key can be used now, else why not ("expired 2026-01-01", "revoked", unusable reason). */
export function keyProblem(key: RecipientKey, now: number): string | null {
  if (key.revoked) return 'revoked';
  if (key.unusable) return key.unusable;
  if (key.createdAt !== null && key.createdAt > now) return `not valid before ${day(key.createdAt)}`;
  if (key.expiresAt !== null && key.expiresAt <= now) return `expired ${day(key.expiresAt)}`;
  return null;
}

function day(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
